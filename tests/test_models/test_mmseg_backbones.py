"""Exact lr / weight decay of every parameter of real MMSeg VisionTransformer,
BEiT and MAE segmentors (2 blocks, rate 0.5, lr 1.0: head 1, block 1 -> 1/2,
block 0 -> 1/4, embeddings 1/8)."""
from internvl_optim import LayerDecaySettings, build_param_groups

from helpers import lr_wd_by_name
from mmseg_models import HEAD, WD, tiny_segmentor

BLOCK_LR = (1 / 4, 1 / 2)


def plan_of(model):
    settings = LayerDecaySettings.from_paramwise_cfg(
        dict(num_layers=2, layer_decay_rate=0.5))
    return build_param_groups(model, settings, 1.0, WD)


def with_blocks(expected, block_wd):
    for i, lr in enumerate(BLOCK_LR):
        for suffix, wd in block_wd.items():
            expected[f'backbone.layers.{i}.{suffix}'] = (lr, wd)
    expected.update(HEAD)
    return expected


FFN_AND_NORMS = {
    'ln1.weight': 0.0, 'ln1.bias': 0.0, 'ln2.weight': 0.0, 'ln2.bias': 0.0,
    'ffn.layers.0.0.weight': WD, 'ffn.layers.0.0.bias': 0.0,
    'ffn.layers.1.weight': WD, 'ffn.layers.1.bias': 0.0,
}


def test_mmseg_vision_transformer():
    model = tiny_segmentor('VisionTransformer', pre_norm=True,
                           final_norm=True)
    plan = plan_of(model)
    assert plan.layer_rule == 'ViT rule (backbone.layers)'
    expected = with_blocks({
        'backbone.cls_token': (1 / 8, 0.0),
        'backbone.pos_embed': (1 / 8, 0.0),
        'backbone.patch_embed.projection.weight': (1 / 8, WD),
        # the pre-norm runs before the first block: layer 0
        # (MMSeg's constructor gives it the head lr); the final norm after
        # the blocks: head lr
        'backbone.ln_pre.weight': (1 / 8, 0.0),
        'backbone.ln_pre.bias': (1 / 8, 0.0),
        'backbone.ln1.weight': (1.0, 0.0),
        'backbone.ln1.bias': (1.0, 0.0),
    }, {
        **FFN_AND_NORMS,
        'attn.attn.in_proj_weight': WD, 'attn.attn.in_proj_bias': 0.0,
        'attn.attn.out_proj.weight': WD, 'attn.attn.out_proj.bias': 0.0,
    })
    assert lr_wd_by_name(plan.groups) == expected


def test_mmseg_beit():
    plan = plan_of(tiny_segmentor('BEiT'))
    expected = with_blocks({
        'backbone.cls_token': (1 / 8, 0.0),
        'backbone.patch_embed.projection.weight': (1 / 8, WD),
        'backbone.patch_embed.projection.bias': (1 / 8, 0.0),
    }, {
        **FFN_AND_NORMS,
        'gamma_1': 0.0, 'gamma_2': 0.0,
        'attn.q_bias': 0.0, 'attn.v_bias': 0.0,
        # 2-D table: decays, as in MMSeg's constructor
        'attn.relative_position_bias_table': WD,
        'attn.qkv.weight': WD,
        'attn.proj.weight': WD, 'attn.proj.bias': 0.0,
    })
    assert lr_wd_by_name(plan.groups) == expected


def test_mmseg_mae():
    plan = plan_of(tiny_segmentor('MAE'))
    expected = with_blocks({
        'backbone.cls_token': (1 / 8, 0.0),
        'backbone.pos_embed': (1 / 8, 0.0),
        'backbone.patch_embed.projection.weight': (1 / 8, WD),
        'backbone.patch_embed.projection.bias': (1 / 8, 0.0),
    }, {
        **FFN_AND_NORMS,
        'gamma_1': 0.0, 'gamma_2': 0.0,
        'attn.relative_position_bias_table': WD,
        'attn.qkv.weight': WD, 'attn.qkv.bias': 0.0,
        'attn.proj.weight': WD, 'attn.proj.bias': 0.0,
    })
    assert lr_wd_by_name(plan.groups) == expected
