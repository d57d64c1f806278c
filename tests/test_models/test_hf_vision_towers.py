"""HuggingFace vision towers users fine-tune, from transformers 5.24 with
tiny random configs (nothing downloaded): every parameter's lr and weight
decay at ``layer_decay_rate=0.5`` (2 blocks: embeddings 0.125, block 0
0.25, block 1 0.5, after the blocks 1.0).

Facts (transformers 5.24, read from the built models): ``ViTModel`` keeps
its blocks at ``layers``; ``Dinov2WithRegistersModel`` and
``InternVLVisionModel`` at ``encoder.layer``, CLIP's and SigLIP's vision
models at ``encoder.layers``; CLIP and SigLIP hold the position embedding
in an ``nn.Embedding`` (``embeddings.position_embedding.weight``); CLIP
has ``pre_layrnorm`` (sic) before the blocks; DINOv2's layer scales are
``layer_scale{1,2}.lambda1``, InternVL's ``lambda_{1,2}``.
"""
import pytest

from internvl_optim import LayerDecaySettings, build_param_groups

from helpers import lr_wd_by_name

T = pytest.importorskip('transformers')
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, image_size=32, patch_size=8)

EMBED, B0, B1, TOP = 0.125, 0.25, 0.5, 1.0
WD = 0.05


def groups(model):
    warnings = []
    plan = build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
        dict(layer_decay_rate=0.5)), 1.0, WD, warn=warnings.append)
    assert warnings == []
    assert plan.num_layers == 2
    return lr_wd_by_name(plan.groups)


def check(lrs, expected):
    for name, value in expected.items():
        assert lrs[name] == value, name
    # every block parameter: its block's lr; decay only on >= 2-D weights
    for name, (lr, wd) in lrs.items():
        if '.0.' in name and ('layer.' in name or 'layers.' in name):
            assert lr == B0, name
        if '.1.' in name and ('layer.' in name or 'layers.' in name):
            assert lr == B1, name


def test_vit():
    lrs = groups(T.ViTModel(T.ViTConfig(**SMALL)))
    check(lrs, {
        'embeddings.cls_token': (EMBED, 0.0),
        'embeddings.position_embeddings': (EMBED, 0.0),
        'embeddings.patch_embeddings.projection.weight': (EMBED, WD),
        'embeddings.patch_embeddings.projection.bias': (EMBED, 0.0),
        'layers.0.attention.q_proj.weight': (B0, WD),
        'layers.1.layernorm_after.weight': (B1, 0.0),
        'layernorm.weight': (TOP, 0.0),
        'pooler.dense.weight': (TOP, WD)})


def test_dinov2_with_registers():
    lrs = groups(T.Dinov2WithRegistersModel(T.Dinov2WithRegistersConfig(
        **SMALL, num_register_tokens=2)))
    check(lrs, {
        'embeddings.cls_token': (EMBED, 0.0),
        'embeddings.mask_token': (EMBED, 0.0),
        'embeddings.register_tokens': (EMBED, 0.0),
        'embeddings.position_embeddings': (EMBED, 0.0),
        'embeddings.patch_embeddings.projection.weight': (EMBED, WD),
        'encoder.layer.0.layer_scale1.lambda1': (B0, 0.0),
        'encoder.layer.1.mlp.fc2.weight': (B1, WD),
        'layernorm.weight': (TOP, 0.0)})


def test_clip_vision():
    lrs = groups(T.CLIPVisionModel(T.CLIPVisionConfig(**SMALL)))
    check(lrs, {
        'embeddings.class_embedding': (EMBED, 0.0),
        'embeddings.position_embedding.weight': (EMBED, 0.0),
        'embeddings.patch_embedding.weight': (EMBED, WD),
        'pre_layrnorm.weight': (EMBED, 0.0),  # runs before the blocks
        'encoder.layers.0.self_attn.q_proj.weight': (B0, WD),
        'encoder.layers.1.layer_norm2.bias': (B1, 0.0),
        'post_layernorm.weight': (TOP, 0.0)})


def test_siglip_vision():
    lrs = groups(T.SiglipVisionModel(T.SiglipVisionConfig(**SMALL)))
    check(lrs, {
        'embeddings.position_embedding.weight': (EMBED, 0.0),
        'embeddings.patch_embedding.weight': (EMBED, WD),
        'encoder.layers.0.mlp.fc1.weight': (B0, WD),
        'post_layernorm.weight': (TOP, 0.0),
        # the attention-pooling head comes after the blocks
        'head.attention.in_proj_weight': (TOP, WD),
        'head.mlp.fc1.weight': (TOP, WD)})


def test_internvl_vision():
    lrs = groups(T.InternVLVisionModel(T.InternVLVisionConfig(**SMALL)))
    check(lrs, {
        'embeddings.cls_token': (EMBED, 0.0),
        'embeddings.position_embeddings': (EMBED, 0.0),
        'embeddings.patch_embeddings.projection.weight': (EMBED, WD),
        'encoder.layer.0.lambda_1': (B0, 0.0),
        'encoder.layer.0.attention.q_proj.weight': (B0, WD),
        'encoder.layer.1.layernorm_before.weight': (B1, 0.0)})
    assert len(lrs) == sum(1 for _ in T.InternVLVisionModel(
        T.InternVLVisionConfig(**SMALL)).parameters())
