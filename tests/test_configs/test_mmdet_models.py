"""Real MMDetection 3.3.0 models from its shipped configs (meta device)
under our constructor: DINO with InternImage's
``dino_head`` and Mask R-CNN with a Swin backbone, exact lr and weight
decay per named parameter at layer_decay_rate 0.9."""
import os
from importlib import import_module

import pytest

from internvl_optim import LayerDecayOptimizerConstructor

from helpers import lr_wd_by_name

mmdet = pytest.importorskip('mmdet')


def build(rel, **paramwise):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from internvl_optim.analysis.meta_device import meta_device
    cfg = Config.fromfile(os.path.join(os.path.dirname(mmdet.__file__),
                                       '.mim', 'configs', rel))
    init_default_scope('mmdet')
    import_module('mmdet.models')  # registers MMDet's models
    with meta_device():
        model = MODELS.build(cfg.model)
    optim = cfg.optim_wrapper.to_dict()
    recipe = dict(optim.pop('paramwise_cfg', None) or {})
    optim.pop('constructor', None)
    optim['type'] = 'OptimWrapper'
    optim.pop('loss_scale', None)
    constructor = LayerDecayOptimizerConstructor(
        optim, dict(recipe, layer_decay_rate=0.9, **paramwise))
    constructor(model)
    return (constructor.plan, lr_wd_by_name(constructor.plan.groups),
            optim['optimizer']['lr'], optim['optimizer']['weight_decay'])


def test_dino_with_dino_head():
    plan, got, lr, wd = build('dino/dino-4scale_r50_8xb2-12e_coco.py',
                              dino_head=True)
    # MMDet's ResNet-50: conv1, bn1, layer1..4, N = 5 (layer1 is unit 2);
    # the recipe's 'backbone' custom key (lr_mult=0.1) composes with the
    # layer scale
    assert plan.layer_rule == 'module order rule (backbone.*: 6 units)'
    # (frozen_stages=1: conv1, bn1 and layer1 are in no group)
    assert 'backbone.layer1.0.conv1.weight' in plan.frozen
    assert got['backbone.layer2.0.conv1.weight'] == \
        (pytest.approx(lr * 0.9**3 * 0.1), wd)
    # deformable attention outside the backbone: heads' layer, x0.1
    name = 'encoder.layers.0.self_attn.sampling_offsets.weight'
    assert got[name] == (pytest.approx(lr * 0.1), wd)
    name = 'decoder.layers.0.cross_attn.sampling_offsets.bias'
    assert got[name] == (pytest.approx(lr * 0.1), 0.0)
    assert got['decoder.layers.0.cross_attn.value_proj.weight'] == (lr, wd)
    assert got['level_embed'] == (lr, wd)  # outside the backbone: N + 1


def test_mask_rcnn_swin():
    plan, got, lr, wd = build('swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py')
    assert plan.layer_rule == \
        'stage rule (backbone.stages, depths [2, 2, 6, 2])'
    # stage 2 block 3 is layer 2 + 2 + 3 + 1 = 8 of N = 12; the recipe's
    # relative_position_bias_table and norm keys: decay_mult=0
    assert got['backbone.stages.2.blocks.3.attn.w_msa.qkv.weight'] == \
        (pytest.approx(lr * 0.9**5), wd)
    assert got['backbone.stages.2.blocks.3.attn.w_msa.'
               'relative_position_bias_table'] == \
        (pytest.approx(lr * 0.9**5), 0.0)
    assert got['backbone.stages.2.blocks.3.norm1.weight'] == \
        (pytest.approx(lr * 0.9**5), 0.0)
    assert got['backbone.patch_embed.projection.weight'] == \
        (pytest.approx(lr * 0.9**13), wd)
    assert got['roi_head.bbox_head.fc_cls.weight'] == (lr, wd)
    assert got['neck.fpn_convs.0.conv.weight'] == (lr, wd)


def test_mask2former_swin_from_mmdet_configs():
    # the recipe: 'backbone' lr_mult=0.1 decay_mult=1.0; every Swin norm
    # and relative_position_bias_table lr_mult=0.1 decay_mult=0;
    # query_embed / query_feat / level_embed decay_mult=0
    plan, got, lr, wd = build(
        'mask2former/mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco.py')
    assert plan.layer_rule == \
        'stage rule (backbone.stages, depths [2, 2, 6, 2])'
    scale = 0.9**5 * 0.1  # stage 2 block 3: layer 8 of N = 12
    block = 'backbone.stages.2.blocks.3.'
    assert got[block + 'attn.w_msa.qkv.weight'] == \
        (pytest.approx(lr * scale), wd)
    assert got[block + 'attn.w_msa.qkv.bias'] == \
        (pytest.approx(lr * scale), wd)  # the 'backbone' key: decay 1.0
    assert got[block + 'norm1.weight'] == (pytest.approx(lr * scale), 0.0)
    assert got[block + 'attn.w_msa.relative_position_bias_table'] == \
        (pytest.approx(lr * scale), 0.0)
    assert got['panoptic_head.query_embed.weight'] == (lr, 0.0)
    assert got['panoptic_head.level_embed.weight'] == (lr, 0.0)
    assert got['panoptic_head.cls_embed.weight'] == (lr, wd)
