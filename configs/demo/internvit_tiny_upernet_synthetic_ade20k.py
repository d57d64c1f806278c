# The demo that runs anywhere: a narrow 4-block InternViT (same structure and
# parameter names as InternViT-6B) with FPN adapters and UperNet, trained with
# layer decay on a synthetic dataset in ADE20K layout for 40 CPU iterations.
#   python tools/make_synthetic_ade20k.py data/synthetic_ade20k
#   python tools/train.py configs/demo/internvit_tiny_upernet_synthetic_ade20k.py
# The pipeline has no random augmentation and the heads no dropout, so a
# resumed run reproduces an uninterrupted one exactly.
_base_ = [
    '../_base_/models/upernet_intern_vit_6b.py',
    '../_base_/default_runtime.py'
]

crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)
# InternViT-6B + UperNet from the base, narrowed: 4 blocks of width 64
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        img_size=64,
        pretrain_size=64,
        patch_size=8,
        embed_dim=64,
        depth=4,
        num_heads=4,
        mlp_ratio=2.,
        drop_path_rate=0.0,
        with_cp=False,
        out_indices=[0, 1, 2, 3],
        pretrained=None),
    decode_head=dict(
        in_channels=[64, 64, 64, 64],
        channels=32,
        dropout_ratio=0.0,
        num_classes=4,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=64,
        channels=16,
        dropout_ratio=0.0,
        num_classes=4,
        norm_cfg=norm_cfg),
    test_cfg=dict(_delete_=True, mode='whole'))

dataset_type = 'ADE20KDataset'
data_root = 'data/synthetic_ade20k'
# the synthetic data uses ADE20K's first four classes (labels 1..4)
metainfo = dict(
    classes=('wall', 'building', 'sky', 'floor'),
    palette=[[120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50]])
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),  # ADE20KDataset reduces the zero label
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=5e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.9))
max_iters = 40
warmup_iters = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=20)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=5, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=20),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
env_cfg = dict(cudnn_benchmark=False)
