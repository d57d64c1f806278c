# Head tuning: InternViT-6B frozen (embeddings and blocks; the FPN adapters
# train), UperNet trained; no layer decay.  The frozen ViT is kept in
# bfloat16 as InternVL does (12 GB of weights instead of 24); the trained FPN
# adapters stay float32, so a plain optimizer loses nothing.
_base_ = [
    '../../_base_/models/upernet_intern_vit_6b.py',
    '../../_base_/datasets/ade20k_504x504.py',
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/schedule_80k_warmup_poly.py'
]
model = dict(
    backbone=dict(drop_path_rate=0.0, freeze_vit=True,
                  unfreeze_pos_embed=False, param_dtype='bfloat16'))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=48, layer_decay_rate=1.0))
