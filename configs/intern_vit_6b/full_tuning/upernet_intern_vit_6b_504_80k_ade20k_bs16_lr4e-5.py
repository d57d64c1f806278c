# Full tuning of InternViT-6B with UperNet on ADE20K (InternVL recipe):
# AdamW lr 4e-5, weight decay 0.05, layer decay 0.95 over 48 blocks,
# warm-up 1500 iterations then poly, 80k iterations, batch 16 (8 x 2), crop 504.
# The trained ViT stays float32 here: a plain optimizer would round its
# updates away in bfloat16.  InternVL trains it in bfloat16 under DeepSpeed,
# which keeps float32 master weights: see the *_deepspeed.py variant.
_base_ = [
    '../../_base_/models/upernet_intern_vit_6b.py',
    '../../_base_/datasets/ade20k_504x504.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/schedule_80k_warmup_poly.py'
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=48, layer_decay_rate=0.95))
