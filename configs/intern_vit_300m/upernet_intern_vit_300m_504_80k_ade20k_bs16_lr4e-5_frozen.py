# Head tuning of InternViT-300M-448px: the ViT frozen and kept in bfloat16,
# InternVL's FPN adapters and UperNet trained (float32); no layer decay.
_base_ = ['./upernet_intern_vit_300m_504_80k_ade20k_bs16_lr4e-5.py']
model = dict(
    backbone=dict(drop_path_rate=0.0, freeze_vit=True,
                  param_dtype='bfloat16'))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24, layer_decay_rate=1.0))
