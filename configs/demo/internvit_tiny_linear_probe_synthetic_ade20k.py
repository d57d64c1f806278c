# Linear probing on the demo: the tiny InternViT frozen, the last block's
# features into a 1x1-conv classifier (the small version of
# configs/intern_vit_6b/linear_probing).
_base_ = ['./internvit_tiny_upernet_synthetic_ade20k.py']
model = dict(
    backbone=dict(freeze_vit=True, with_fpn=False, out_indices=[3]),
    decode_head=dict(
        _delete_=True,
        type='FCNHead',
        in_channels=64,
        channels=64,
        num_convs=0,
        dropout_ratio=0.0,
        concat_input=False,
        num_classes=4,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)
optim_wrapper = dict(
    optimizer=dict(weight_decay=0.0),
    paramwise_cfg=dict(layer_decay_rate=1.0))
