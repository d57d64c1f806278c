# The demo's setup with a BEiT backbone: the same model trained with our
# constructor or MMSeg's (benchmarks/run_benchmarks.py switches them).
_base_ = ['../../configs/demo/internvit_tiny_upernet_synthetic_ade20k.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='BEiT',
        img_size=(64, 64),
        patch_size=8,
        embed_dims=64,
        num_layers=4,
        num_heads=4,
        mlp_ratio=2,
        out_indices=(0, 1, 2, 3)))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.9))
train_cfg = dict(max_iters=60, val_interval=1000)
default_hooks = dict(
    checkpoint=dict(interval=1000),
    logger=dict(interval=1))
