# Linear probing: frozen InternViT-6B, block 45's features (index 44) into a
# linear classifier (a 1x1 conv), weight decay 0.  The frozen ViT is kept in
# bfloat16 as InternVL does.  InternVL's FCNHead has its own with_norm=True
# option, which MMSeg's FCNHead lacks: the classifier here has no norm.
_base_ = [
    '../../_base_/models/upernet_intern_vit_6b.py',
    '../../_base_/datasets/ade20k_504x504.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/schedule_80k_warmup_poly.py'
]
model = dict(
    backbone=dict(
        drop_path_rate=0.0, freeze_vit=True, with_fpn=False,
        out_indices=[44], param_dtype='bfloat16'),
    decode_head=dict(
        _delete_=True,
        type='FCNHead',
        in_channels=3200,
        channels=3200,
        num_convs=0,
        dropout_ratio=0.0,
        concat_input=False,
        num_classes=150,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.0),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=48, layer_decay_rate=1.0))
