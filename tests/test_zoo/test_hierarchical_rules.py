"""Layer ids, DCN multipliers and freezing for hierarchical backbones, with
exact values (rate 0.5, lr 1.0, weight decay 0.1)."""
import functools
import re

import pytest
import torch
from torch import nn

from internvl_optim import LayerDecaySettings, build_param_groups
from internvl_optim.runtime.freezing import apply_freezing

from helpers import build_plan, layer_by_name, lr_wd_by_name
from hierarchical_models import CBNet, ConvNeXt, InternImage
from mmseg_models import WD
from toy_models import DecodeHead, ToySegmentor


plan = functools.partial(build_plan, layer_decay_rate=0.5, weight_decay=WD)


def swin_segmentor():
    import mmseg.models  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = nn.Module()
    model.backbone = MODELS.build(dict(
        type='SwinTransformer', pretrain_img_size=32, embed_dims=8,
        depths=(1, 2, 1, 1), num_heads=(1, 1, 1, 1), window_size=2,
        use_abs_pos_embed=True, out_indices=(0, 1, 2, 3)))
    model.decode_head = DecodeHead()
    return model


def test_swin_blocks_numbered_across_stages():
    p = plan(swin_segmentor())
    assert p.num_layers == 5
    assert p.layer_rule == 'stage rule (backbone.stages, depths [1, 2, 1, 1])'
    layers = layer_by_name(p.groups)
    expected_layers = {
        'backbone.patch_embed.projection.weight': 0,
        'backbone.patch_embed.norm.weight': 0,
        'backbone.absolute_pos_embed': 0,
        'backbone.stages.0.blocks.0.attn.w_msa.qkv.weight': 1,
        'backbone.stages.0.downsample.reduction.weight': 2,
        'backbone.stages.1.blocks.0.ffn.layers.0.0.weight': 2,
        'backbone.stages.1.blocks.1.norm1.weight': 3,
        'backbone.stages.1.downsample.norm.weight': 4,
        'backbone.stages.2.blocks.0.attn.w_msa.relative_position_bias_table':
        4,
        'backbone.stages.2.downsample.reduction.weight': 5,
        'backbone.stages.3.blocks.0.norm2.bias': 5,
        'backbone.norm3.weight': 6,
        'decode_head.layers.1.weight': 6,
    }
    assert {n: layers[n] for n in expected_layers} == expected_layers
    got = lr_wd_by_name(p.groups)
    assert got['backbone.absolute_pos_embed'] == (1 / 64, 0.0)
    assert got['backbone.stages.1.blocks.1.attn.w_msa.qkv.weight'] == \
        (1 / 8, WD)
    assert got['backbone.stages.3.blocks.0.attn.w_msa.proj.bias'] == \
        (1 / 2, 0.0)


def test_internimage_levels_and_dcn_multiplier():
    model = ToySegmentor(InternImage(depths=(1, 2, 1, 1)))
    p = plan(model, dcn_lr_mul=0.25)
    assert p.num_layers == 5
    got = lr_wd_by_name(p.groups)
    expected = {
        'backbone.patch_embed.conv1.weight': (1 / 64, WD),
        'backbone.patch_embed.norm1.weight': (1 / 64, 0.0),
        'backbone.levels.0.blocks.0.dcn.input_proj.weight': (1 / 32, WD),
        'backbone.levels.0.blocks.0.dcn.offset.weight': (1 / 128, WD),
        'backbone.levels.0.blocks.0.dcn.offset.bias': (1 / 128, 0.0),
        'backbone.levels.0.blocks.0.dcn.center_feature_scale_proj_weight':
        (1 / 128, WD),
        'backbone.levels.0.blocks.0.dcn_pack.conv_offset.weight':
        (1 / 128, WD),
        'backbone.levels.0.blocks.0.dcn_pack.weight': (1 / 32, WD),
        'backbone.levels.0.blocks.0.dcn.mask.weight': (1 / 32, WD),
        'backbone.levels.0.downsample.conv.weight': (1 / 16, WD),
        'backbone.levels.0.norm.weight': (1 / 16, 0.0),
        'backbone.levels.1.blocks.1.mlp.0.weight': (1 / 8, WD),
        'backbone.levels.2.blocks.0.dcn.offset.weight': (1 / 16, WD),
        'backbone.levels.3.blocks.0.dcn.offset.weight': (1 / 8, WD),
        'backbone.levels.3.norm.weight': (1.0, 0.0),
        'decode_head.conv_seg.weight': (1.0, WD),
    }
    assert {n: got[n] for n in expected} == expected
    names = [g['group_name'] for g in p.groups]
    assert 'layer_1_dcn_decay' in names and 'layer_1_decay' in names


def test_offset_lr_scale_on_backbone_sampling_offsets():
    backbone = InternImage(depths=(1, 1, 1, 1))
    backbone.levels[1].blocks[0].attn = nn.Module()
    backbone.levels[1].blocks[0].attn.sampling_offsets = nn.Linear(4, 8)
    backbone.levels[1].blocks[0].attn.reference_points = nn.Linear(4, 2)
    model = ToySegmentor(backbone)
    model.decode_head.sampling_offsets = nn.Linear(4, 8)
    got = lr_wd_by_name(plan(model, offset_lr_scale=0.1, dcn_lr_mul=0.5)
                        .groups)
    lr = 1 / 8  # block 0 of level 1 is layer 2 of 4
    assert got['backbone.levels.1.blocks.0.attn.sampling_offsets.weight'] == \
        (pytest.approx(lr * 0.1), WD)
    assert got['backbone.levels.1.blocks.0.attn.reference_points.bias'] == \
        (pytest.approx(lr * 0.1), 0.0)
    assert got['backbone.levels.1.blocks.0.dcn.offset.weight'] == \
        (lr * 0.5, WD)
    assert got['decode_head.sampling_offsets.weight'] == (1.0, WD)


def test_cbnet_composite_backbones_share_layer_ids():
    p = plan(ToySegmentor(CBNet(depths=(1, 2, 1, 1))))
    layers = layer_by_name(p.groups)
    for k in (0, 1):
        assert layers[f'backbone.cb_modules.{k}.patch_embed.conv1.weight'] \
            == 0
        assert layers[f'backbone.cb_modules.{k}.levels.1.blocks.1.'
                      'mlp.0.weight'] == 3
    assert layers['backbone.cb_linears.0.weight'] == 6


def test_multiplier_that_matches_nothing():
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.offset_lr_scale=0.1 matches no backbone parameter '
            "(looked for ('sampling_offsets', 'reference_points'))")):
        plan(ToySegmentor(InternImage()), offset_lr_scale=0.1)


def test_depths_that_disagree_with_the_model():
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.depths=[2, 2, 6, 2] disagrees with the model: '
            "backbone 'backbone' (InternImage) has depths [1, 2, 1, 1]")):
        plan(ToySegmentor(InternImage()), depths=[2, 2, 6, 2])
    assert plan(ToySegmentor(InternImage()), depths=[1, 2, 1, 1]).num_layers \
        == 5


def test_freeze_levels():
    model = ToySegmentor(InternImage(depths=(1, 2, 1, 1)))
    p = plan(model, freeze_backbone=[0, 2])
    names = set(lr_wd_by_name(p.groups))
    assert not any(n.startswith(('backbone.levels.0.', 'backbone.levels.2.'))
                   for n in names)
    assert 'backbone.levels.1.blocks.0.dcn.offset.weight' in names
    assert 'backbone.patch_embed.conv1.weight' in names
    # the core changes nothing; the plan lists what to freeze
    assert all(q.requires_grad for q in model.parameters())
    assert p.to_freeze == [model.backbone.levels[0], model.backbone.levels[2]]
    apply_freezing(p)
    assert all(not q.requires_grad
               for q in model.backbone.levels[0].parameters())
    # frozen BatchNorm keeps its running statistics through training
    bn = model.backbone.levels[0].blocks[0].norm2
    before = bn.running_mean.clone()
    model.train()
    model.backbone(torch.randn(2, 3, 16, 16))
    assert not bn.training
    assert torch.equal(bn.running_mean, before)
    live_bn = model.backbone.levels[1].blocks[0].norm2
    assert live_bn.training and live_bn.num_batches_tracked == 1


def test_freeze_all_and_out_of_range():
    model = ToySegmentor(InternImage())
    p = plan(model, freeze_backbone='all')
    assert {n.split('.')[0] for n in lr_wd_by_name(p.groups)} == \
        {'decode_head'}
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.freeze_backbone=[1, 4]: [4] out of range, backbone '
            "'backbone' (InternImage) has 4 levels (valid 0..3, or 'all')")):
        plan(ToySegmentor(InternImage()), freeze_backbone=[1, 4])


def test_freeze_convnext_stage_takes_its_downsample_layer():
    model = ToySegmentor(ConvNeXt(arch=([1, 1, 2, 1], [4, 4, 4, 4])))
    p = plan(model, freeze_backbone=[0])
    names = set(lr_wd_by_name(p.groups))
    assert not any(n.startswith(('backbone.stages.0.',
                                 'backbone.downsample_layers.0.'))
                   for n in names)
    assert 'backbone.downsample_layers.1.1.weight' in names


def test_convnext_default_is_mmseg_layer_wise():
    model = ToySegmentor(ConvNeXt(arch=([1, 1, 7, 1], [4, 4, 4, 4])))
    p = plan(model)
    assert p.num_layers == 6  # 4 + (7 - 1) // 3
    layers = layer_by_name(p.groups)
    expected = {
        'backbone.downsample_layers.0.0.weight': 0,
        'backbone.stages.0.0.gamma': 1,
        'backbone.downsample_layers.1.1.weight': 2,
        'backbone.stages.1.0.pointwise_conv1.weight': 2,
        'backbone.downsample_layers.2.1.weight': 3,
        'backbone.stages.2.2.depthwise_conv.weight': 3,
        'backbone.stages.2.3.depthwise_conv.weight': 4,
        'backbone.stages.2.6.norm.weight': 5,
        'backbone.downsample_layers.3.1.weight': 6,
        'backbone.stages.3.0.pointwise_conv2.weight': 6,
        'backbone.norm3.weight': 7,
    }
    assert {n: layers[n] for n in expected} == expected
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.num_layers=12 disagrees with the model')):
        plan(model, num_layers=12)


def test_convnext_stage_wise():
    model = ToySegmentor(ConvNeXt(arch=([1, 1, 2, 1], [4, 4, 4, 4])))
    p = plan(model, decay_type='stage_wise', num_layers=6)
    got = lr_wd_by_name(p.groups)
    assert got['backbone.downsample_layers.2.1.weight'] == (1 / 128, WD)
    assert got['backbone.stages.0.0.pointwise_conv1.weight'] == (1 / 64, WD)
    assert got['backbone.stages.3.0.gamma'] == (1 / 8, 0.0)
    assert got['backbone.norm3.weight'] == (1.0, 0.0)
    with pytest.raises(ValueError, match=re.escape(
            "paramwise_cfg.num_layers=3 with decay_type='stage_wise' must be "
            '>= 4')):
        plan(model, decay_type='stage_wise', num_layers=3)
    with pytest.raises(ValueError, match=re.escape(
            "paramwise_cfg.decay_type='stage_wise' is MMSeg's ConvNeXt rule, "
            "but backbone 'backbone' (InternImage) is not ConvNeXt-shaped")):
        plan(ToySegmentor(InternImage()), decay_type='stage_wise')


def test_a_bad_config_freezes_nothing():
    model = ToySegmentor(InternImage())
    with pytest.raises(ValueError, match='through paramwise_cfg.custom_keys'):
        plan(model, freeze_backbone='all',
             custom_keys={'decode_head': dict(lr_mult=0.0)})
    with pytest.raises(ValueError, match='offset_lr_scale'):
        plan(model, freeze_backbone=[0], offset_lr_scale=0.5)
    assert all(p.requires_grad for p in model.parameters())
    assert all(not getattr(m, '_internvl_optim_frozen', False)
               for m in model.modules())


def test_internimage_recipe_paramwise_cfg_works_unchanged():
    # InternImage's detection configs: num_layers = sum(depths), depths
    # given, offset_lr_scale for deformable attention in the backbone
    backbone = InternImage(depths=(4, 4, 21, 4))
    backbone.levels[3].blocks[0].attn = nn.Module()
    backbone.levels[3].blocks[0].attn.sampling_offsets = nn.Linear(4, 8)
    p = plan(ToySegmentor(backbone), num_layers=33, depths=[4, 4, 21, 4],
             offset_lr_scale=0.01)
    assert p.num_layers == 33
    got = lr_wd_by_name(p.groups)
    # level 3 block 0 is layer 4 + 4 + 21 + 1 = 30 of 33: 0.5 ** 4
    assert got['backbone.levels.3.blocks.0.attn.sampling_offsets.weight'] \
        == (pytest.approx(0.5**4 * 0.01), WD)
    assert got['backbone.levels.3.blocks.0.mlp.0.weight'] == (0.5**4, WD)
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.num_layers=30 disagrees with the model')):
        plan(ToySegmentor(InternImage(depths=(4, 4, 21, 4))), num_layers=30)


def test_freeze_cbnet_levels_in_every_composite_backbone():
    # freezing once probed the backbone differently from the layer
    # rules and failed on CBNet with "no stages, levels or blocks"
    model = ToySegmentor(CBNet(depths=(1, 2, 1, 1)))
    p = plan(model, freeze_backbone=[0])
    apply_freezing(p)
    names = set(lr_wd_by_name(p.groups))
    for k in (0, 1):
        assert not any(n.startswith(f'backbone.cb_modules.{k}.levels.0.')
                       for n in names)
        assert all(not q.requires_grad for q in
                   model.backbone.cb_modules[k].levels[0].parameters())
        assert f'backbone.cb_modules.{k}.levels.1.blocks.1.mlp.0.weight' in \
            names
    assert 'backbone.cb_linears.0.weight' in names
    # layer ids unchanged by freezing
    assert layer_by_name(p.groups)[
        'backbone.cb_modules.1.levels.1.blocks.1.mlp.0.weight'] == 3
    with pytest.raises(ValueError, match=re.escape(
            "[4] out of range, backbone 'backbone' (CBNet) has 4 levels")):
        plan(ToySegmentor(CBNet()), freeze_backbone=[4])


def test_layer_regex_with_mmseg_convnext_rules_is_an_error():
    # with decay_type given, MMSeg's ConvNeXt rules win and the
    # regex was silently ignored (without decay_type the regex wins)
    model = ToySegmentor(ConvNeXt(arch=([1, 1, 2, 1], [4, 4, 4, 4])))
    regex = dict(embed='^downsample_layers\\.0', blocks='^stages\\.(\\d+)\\.')
    with pytest.raises(ValueError, match=re.escape(
            f'paramwise_cfg.layer_regex={regex!r} is not used: MMSeg ConvNeXt '
            'layer_wise rule (depths [1, 1, 2, 1]) decides the layer ids of '
            "backbone 'backbone' (ConvNeXt), and it takes no layer_regex. "
            'Remove layer_regex')):
        plan(model, decay_type='layer_wise', layer_regex=regex)
    p = plan(model, layer_regex=regex)
    assert layer_by_name(p.groups)['backbone.stages.3.0.gamma'] == 4


def test_internimage_detection_keys_dino_head_and_backbone_small_lr():
    # InternImage's detection constructor (custom_layer_decay_optimizer_
    # constructor.py): dino_head multiplies the head's sampling_offsets /
    # reference_points by 0.1; backbone_small_lr every layer whose scale
    # is below 1 by 0.1
    backbone = InternImage(depths=(1, 1, 1, 1))
    model = ToySegmentor(backbone)
    model.decode_head.sampling_offsets = nn.Linear(4, 8)
    model.decode_head.reference_points = nn.Linear(4, 2)
    p = plan(model, dino_head=True, backbone_small_lr=True)
    got = lr_wd_by_name(p.groups)
    assert got['decode_head.sampling_offsets.weight'] == \
        (pytest.approx(0.1), WD)
    assert got['decode_head.reference_points.bias'] == \
        (pytest.approx(0.1), 0.0)
    assert got['decode_head.conv_seg.weight'] == (1.0, WD)
    # level 1 block 0 is layer 2 of N = 4: 0.5 ** 3, then x0.1
    assert got['backbone.levels.1.blocks.0.mlp.0.weight'] == \
        (pytest.approx(0.5**3 * 0.1), WD)
    assert got['backbone.levels.3.norm.weight'] == (1.0, 0.0)  # N + 1
    names = [g['group_name'] for g in p.groups]
    assert 'layer_5_dino_head_decay' in names
    # at rate 1.0 no scale is below 1: backbone_small_lr changes nothing
    p = build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
        dict(backbone_small_lr=True)), 1.0, WD)
    assert {x.lr for x in p.params if x.name.startswith('backbone.')} == {1.0}
    with pytest.raises(TypeError, match=re.escape(
            "paramwise_cfg.dino_head must be True or False, got 'yes'")):
        plan(model, dino_head='yes')


@pytest.mark.parametrize('spec, units', [([0, 2], ('levels', 0, 2)),
                                         ([1], ('levels', 1))])
def test_backbone_is_probed_once_per_build(monkeypatch, spec, units):
    """("one model view, built once"): the layer rule and
    freeze_backbone share one probe of the backbone."""
    from internvl_optim.core import (backbone_probe, freeze_selection,
                                     layer_rules)
    probed = []

    def counting_probe(module):
        probed.append(type(module).__name__)
        return backbone_probe.probe(module)
    monkeypatch.setattr(layer_rules, 'probe', counting_probe)
    monkeypatch.setattr(freeze_selection, 'probe', counting_probe)
    model = ToySegmentor(InternImage(depths=(1, 2, 1, 1)))
    p = plan(model, freeze_backbone=spec)
    assert probed == ['InternImage']
    kind, *indices = units
    assert p.to_freeze == [getattr(model.backbone, kind)[i] for i in indices]
    # without a shared probe (a caller of select_units alone) it probes
    probed.clear()
    assert freeze_selection.select_units(model.backbone, spec, 'backbone') == \
        p.to_freeze
    assert probed == ['InternImage']
