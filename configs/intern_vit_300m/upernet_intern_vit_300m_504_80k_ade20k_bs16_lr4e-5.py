# Full tuning of InternViT-300M-448px with UperNet on ADE20K at crop 504:
# AdamW lr 4e-5, weight decay 0.05, layer decay 0.9 over 24 blocks (BEiT-L's
# recipe scale; InternVL publishes none for 300M), warm-up 1500 then poly,
# 80k iterations, batch 16 (8 x 2).
# Weights: the HuggingFace repository OpenGVLab/InternViT-300M-448px (or
# -V2_5) downloaded as a directory to ./pretrained/InternViT-300M-448px.
_base_ = [
    '../_base_/models/upernet_intern_vit_300m.py',
    '../_base_/datasets/ade20k_504x504.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_80k_warmup_poly.py'
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=24, layer_decay_rate=0.9))
