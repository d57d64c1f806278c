# Detection demo that runs anywhere: MMDetection's own RetinaNet R-18 config
# with our constructor (layer decay over the ResNet's units), trained on the
# project's synthetic COCO-layout dataset for 40 CPU iterations.
#   python tools/make_synthetic_coco.py data/synthetic_coco
#   python tools/train.py configs/demo/retinanet_r18_synthetic_coco.py
# No random augmentation, so a resumed run reproduces an uninterrupted one.
_base_ = ['mmdet::retinanet/retinanet_r18_fpn_1x_coco.py']
custom_imports = dict(imports=['internvl_optim'], allow_failed_imports=False)
default_scope = 'mmdet'

data_root = 'data/synthetic_coco/'
metainfo = dict(classes=('box', 'plate'),
                palette=[(200, 40, 40), (40, 60, 210)])
model = dict(
    backbone=dict(init_cfg=None),  # no download: trained from scratch
    bbox_head=dict(num_classes=2),
    # 40 iterations from scratch: keep low-score boxes for the metric
    test_cfg=dict(score_thr=0.0))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
train_dataloader = dict(
    _delete_=True,
    batch_size=4,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True,
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric='bbox')
test_evaluator = val_evaluator

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=40,
                 val_interval=20)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=20))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
