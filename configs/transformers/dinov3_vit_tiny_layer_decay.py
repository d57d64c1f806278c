# transformers' DINOv3 ViT as the backbone of a linear classifier, with
# layer decay from what the encoder declares (num_hidden_layers, its
# blocks model.layer.*, the embeddings). Tiny and random: for the analyser,
#   python tools/analyze_param_groups.py configs/transformers/dinov3_vit_tiny_layer_decay.py --check-order --input-size 32 32
custom_imports = dict(imports=['internvl_optim'], allow_failed_imports=False)
default_scope = 'mmengine'
model = dict(
    type='TransformersEncoder', architecture='DINOv3ViTModel',
    config=dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                intermediate_size=64, image_size=32, patch_size=8,
                num_register_tokens=2),
    num_classes=10)
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75))
