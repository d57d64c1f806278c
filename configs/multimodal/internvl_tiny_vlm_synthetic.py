# A tiny transformers-native InternVL (2-block vision tower, pixel-shuffle
# projector, 2-layer Qwen2) trained by MMEngine on synthetic image-text
# batches made here (nothing downloaded), with layer decay inside the vision
# tower and the projector and language model at the base lr (the layout is
# recognised). CPU: a few seconds.
custom_imports = dict(imports=['internvl_optim'], allow_failed_imports=False)
default_scope = 'mmengine'

model = dict(
    type='TransformersVLM',
    architecture='InternVLForConditionalGeneration',
    config=dict(
        vision_config=dict(hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64,
                           image_size=32, patch_size=8, use_qk_norm=True,
                           norm_type='rms_norm'),
        text_config=dict(model_type='qwen2', hidden_size=32,
                         num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64,
                         vocab_size=100),
        image_token_id=99, downsample_ratio=0.5))

train_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='SyntheticImageText', num_samples=16, image_size=32,
                 image_tokens=4, image_token_id=99))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=6)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.05),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
log_level = 'INFO'
log_processor = dict(by_epoch=False)
