# InternViT-300M-448px (24 blocks, width 1024, 16 heads, LayerNorm, qkv bias,
# no qk-norm; architecture from its config.json) + InternVL's FPN adapters
# + UperNet.  InternVL ships no 300M segmentation recipe: the head widths
# here are ours.
_base_ = ['./upernet_intern_vit_6b.py']
model = dict(
    backbone=dict(
        pretrain_size=448,
        img_size=504,
        patch_size=14,
        embed_dim=1024,
        depth=24,
        num_heads=16,
        mlp_ratio=4.,
        qkv_bias=True,
        qk_normalization=False,
        norm_type='layer_norm',
        init_values=0.1,
        drop_path_rate=0.1,
        out_indices=[5, 11, 17, 23],
        pretrained='./pretrained/InternViT-300M-448px'),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=768),
    auxiliary_head=dict(in_channels=1024, channels=256))
