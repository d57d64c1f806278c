# The tiny VLM recipe at scale, for planning (tools/analyze_param_groups.py
# builds it on the meta device; nothing is allocated or downloaded): an
# InternViT-6B-448px vision tower (45 blocks, width 3200), the pixel-shuffle
# projector and a 70B-class Llama language model (80 layers, width 8192),
# under DeepSpeed ZeRO-3 with bf16. Layer decay 0.9 in the vision tower;
# freeze the language model with paramwise_cfg.freeze_llm=True.
_base_ = ['./internvl_tiny_vlm_synthetic.py']

model = dict(config=dict(
    _delete_=True,
    vision_config=dict(hidden_size=3200, num_hidden_layers=45,
                       num_attention_heads=25, intermediate_size=12800,
                       image_size=448, patch_size=14, use_qk_norm=True,
                       norm_type='rms_norm'),
    text_config=dict(model_type='llama', hidden_size=8192,
                     num_hidden_layers=80, num_attention_heads=64,
                     num_key_value_heads=8, intermediate_size=28672,
                     vocab_size=128256),
    image_token_id=128000, downsample_ratio=0.5))
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    zero_optimization=dict(stage=3, overlap_comm=True,
                           contiguous_gradients=True),
    gradient_clipping=1.0)
optim_wrapper = dict(
    type='DeepSpeedOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.9))
