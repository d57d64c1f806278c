"""MMSeg's shipped ViT/DeiT, Swin, SegFormer and Twins configs with our
constructor switched on keep their recipes' custom keys: exact
lr and weight decay for the parameters those keys name, on the real models
(meta device), at layer_decay_rate 0.9."""
import os

import pytest
from mmengine.config import Config

from internvl_optim import LayerDecayOptimizerConstructor

from helpers import lr_wd_by_name


def build(rel):
    import mmseg
    from mmengine.registry import MODELS, init_default_scope

    from internvl_optim.analysis.meta_device import meta_device
    cfg = Config.fromfile(os.path.join(os.path.dirname(mmseg.__file__),
                                       '.mim', 'configs', rel))
    init_default_scope('mmseg')
    with meta_device():
        model = MODELS.build(cfg.model)
    optim = cfg.optim_wrapper.to_dict()
    paramwise = dict(optim.pop('paramwise_cfg'), layer_decay_rate=0.9)
    optim.pop('constructor', None)
    constructor = LayerDecayOptimizerConstructor(optim, paramwise)
    constructor(model)
    lr = optim['optimizer']['lr']
    wd = optim['optimizer']['weight_decay']
    return constructor.plan, lr_wd_by_name(constructor.plan.groups), lr, wd


def test_vit_deit_recipe():
    plan, got, lr, wd = build(
        'vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py')
    assert plan.layer_rule == 'ViT rule (backbone.layers)'
    n = plan.num_layers
    assert n == 12
    # custom_keys pos_embed, cls_token and norm: decay_mult=0
    assert got['backbone.pos_embed'] == (pytest.approx(lr * 0.9**13), 0.0)
    assert got['backbone.cls_token'] == (pytest.approx(lr * 0.9**13), 0.0)
    assert got['backbone.layers.4.ln1.weight'] == \
        (pytest.approx(lr * 0.9**8), 0.0)
    assert got['backbone.layers.4.ffn.layers.0.0.weight'] == \
        (pytest.approx(lr * 0.9**8), wd)


def test_swin_recipe():
    plan, got, lr, wd = build(
        'swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-'
        '512x512.py')
    assert plan.layer_rule == \
        'stage rule (backbone.stages, depths [2, 2, 6, 2])'
    # relative_position_bias_table: decay_mult=0 (block 1 of stage 2 is
    # layer 2 + 2 + 1 + 1 = 6 of N = 12)
    name = ('backbone.stages.2.blocks.1.attn.w_msa.'
            'relative_position_bias_table')
    assert got[name] == (pytest.approx(lr * 0.9**7), 0.0)
    assert got['backbone.stages.2.blocks.1.attn.w_msa.qkv.weight'] == \
        (pytest.approx(lr * 0.9**7), wd)
    assert got['backbone.norm3.weight'] == (pytest.approx(lr), 0.0)


def test_segformer_recipe():
    plan, got, lr, wd = build(
        'segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py')
    assert plan.num_layers == 8
    # 'norm': decay_mult=0; 'head': lr_mult=10
    assert got['backbone.layers.1.1.0.norm1.weight'] == \
        (pytest.approx(lr * 0.9**6), 0.0)
    assert got['decode_head.conv_seg.weight'] == (pytest.approx(lr * 10), wd)
    assert got['backbone.layers.1.0.projection.weight'] == \
        (pytest.approx(lr * 0.9**6), wd)


def test_twins_recipe_pos_block_matches_nothing_in_mmseg():
    """Twins' recipe names 'pos_block' (the original Twins code's name);
    MMSeg calls those convs position_encodings, so the key matches nothing:
    MMEngine ignores it silently, we warn and, as MMEngine, decay them."""
    from internvl_optim.core.plan_checks import unmatched_custom_keys
    plan, got, lr, wd = build(
        'twins/twins_pcpvt-s_uperhead_8xb4-160k_ade20k-512x512.py')
    assert plan.layer_rule == \
        'parallel stage rule (backbone.layers, depths [3, 4, 6, 3])'
    settings = type('S', (), {'custom_keys': {'pos_block': {}, 'norm': {}}})
    assert unmatched_custom_keys(settings, list(got)) == ['pos_block']
    # position encoding of stage 1 runs after its first block: layer 4
    assert got['backbone.position_encodings.1.proj.weight'] == \
        (pytest.approx(lr * 0.9**13), wd)
    assert got['backbone.layers.1.0.norm1.weight'] == \
        (pytest.approx(lr * 0.9**13), 0.0)  # 'norm': decay_mult=0
