"""Every bad input answers with an error that names the key and what is
valid."""
import functools
import re

import pytest
import torch
from torch import nn

from internvl_optim import LayerDecaySettings, build_param_groups

from helpers import build_plan
from toy_models import ToyInternViT, ToySegmentor


def settings(**cfg):
    return LayerDecaySettings.from_paramwise_cfg(cfg)


@pytest.mark.parametrize('cfg, exc, message', [
    (dict(layer_decay_rat=0.9), ValueError,
     "Unknown key paramwise_cfg.layer_decay_rat. Did you mean "
     "'layer_decay_rate'? Valid keys: num_layers, layer_decay_rate, "
     "decay_rate, layer_decay_reference_depth, first_block_lr_ratio, "
     "decay_type, depths, backbone_name, layer_regex, custom_keys, "
     'dcn_lr_mul, offset_lr_scale, freeze_backbone'),
    (dict(num_layer=12), ValueError,
     "Unknown key paramwise_cfg.num_layer. Did you mean 'num_layers'?"),
    (dict(foo=1), ValueError, 'Unknown key paramwise_cfg.foo. Valid keys:'),
    (dict(norm_decay_mult=-1.0), ValueError,
     'paramwise_cfg.norm_decay_mult must be a number >= 0, got -1.0'),
    (dict(bypass_duplicate='yes'), TypeError,
     "paramwise_cfg.bypass_duplicate must be True or False, got 'yes'"),
    (dict(layer_decay_rate=1.5), ValueError,
     'paramwise_cfg.layer_decay_rate must be in (0, 1], got 1.5'),
    (dict(layer_decay_rate=0), ValueError,
     'paramwise_cfg.layer_decay_rate must be in (0, 1], got 0'),
    (dict(decay_rate=-0.1), ValueError,
     'paramwise_cfg.decay_rate must be in (0, 1], got -0.1'),
    (dict(layer_decay_rate=10 ** 400), ValueError,
     'paramwise_cfg.layer_decay_rate must be in (0, 1], got an integer of '
     '1329 bits'),
    (dict(vision_tower_lr=2 ** 1024), ValueError,
     'paramwise_cfg.vision_tower_lr must be in (0, 10000], got an integer '
     'of 1025 bits'),
    (dict(reproduce=['mmseg_vit']), ValueError,
     "paramwise_cfg.reproduce=['mmseg_vit'] is not a preset; valid: "),
    (dict(layer_phases=dict(head_only=10 ** 400)), ValueError,
     'paramwise_cfg.layer_phases.head_only must be at most 100,000,000 '
     'steps (more than any run takes), got an int of over 50 digits'),
    (dict(layer_decay_rate='0.9'), TypeError,
     "paramwise_cfg.layer_decay_rate must be a number in (0, 1], got '0.9'"),
    (dict(layer_decay_rate=0.9, decay_rate=0.8), ValueError,
     'paramwise_cfg.layer_decay_rate and paramwise_cfg.decay_rate are '
     'aliases but differ: 0.9 != 0.8; give one'),
    (dict(num_layers=0), ValueError,
     'paramwise_cfg.num_layers must be a positive int, got 0'),
    (dict(num_layers=-3), ValueError,
     'paramwise_cfg.num_layers must be a positive int, got -3'),
    (dict(num_layers=12.0), TypeError,
     'paramwise_cfg.num_layers must be a positive int, got 12.0'),
    (dict(decay_type='block_wise'), ValueError,
     "paramwise_cfg.decay_type='block_wise' is not supported; valid: "
     "('layer_wise', 'stage_wise')"),
    (dict(dcn_lr_mul=0), ValueError,
     'paramwise_cfg.dcn_lr_mul must be a number > 0, got 0'),
    (dict(offset_lr_scale=-1.0), ValueError,
     'paramwise_cfg.offset_lr_scale must be a number > 0, got -1.0'),
    (dict(freeze_backbone='some'), ValueError,
     "paramwise_cfg.freeze_backbone must be 'all' or a list of stage/level "
     "indices >= 0, got 'some'"),
    (dict(freeze_backbone=[-1]), ValueError,
     "paramwise_cfg.freeze_backbone must be 'all' or a list"),
    (dict(depths=[2, 0]), ValueError,
     'paramwise_cfg.depths must be a list of positive ints, got [2, 0]'),
    (dict(backbone_name=3), TypeError,
     'paramwise_cfg.backbone_name must be a str, got 3'),
    (dict(custom_keys=[('head', 1)]), TypeError,
     'paramwise_cfg.custom_keys must be a dict'),
    (dict(custom_keys={'head': dict(lr_mul=2)}), ValueError,
     "paramwise_cfg.custom_keys['head'] has unknown keys ['lr_mul']; valid: "
     "('lr_mult', 'decay_mult')"),
    (dict(custom_keys={'head': dict(lr_mult=-1)}), ValueError,
     "paramwise_cfg.custom_keys['head'].lr_mult must be a number >= 0, "
     'got -1'),
])
def test_bad_paramwise_cfg(cfg, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        settings(**cfg)


#: structural keys need a rate: one is set unless given
build = functools.partial(build_plan, layer_decay_rate=0.9, weight_decay=0.1)


def test_num_layers_disagreeing_with_model_states_both_numbers():
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.num_layers=48 disagrees with the model: backbone '
            "'backbone' (ToyInternViT).blocks has 3 layers. Remove num_layers "
            'to infer it, or set num_layers=3')):
        build(ToySegmentor(ToyInternViT(depth=3)), num_layers=48)


def test_matching_num_layers_is_accepted():
    plan = build(ToySegmentor(ToyInternViT(depth=3)), num_layers=3)
    assert plan.num_layers == 3


def test_unknown_backbone_structure():

    class Odd(nn.Module):

        def __init__(self):
            super().__init__()
            self.stages = nn.ModuleList([nn.Linear(2, 2)])

    with pytest.raises(ValueError, match=re.escape(
            "Cannot tell the layers of backbone 'backbone' (Odd): it has no "
            'get_layer_depth/get_layer_id method, no block list at any of '
            'blocks, layers, encoder.layers, encoder.layer, encoder.blocks, '
            'transformer.resblocks and no stages/levels of blocks. '
            "Set paramwise_cfg.layer_regex=dict(embed=..., "
            r"blocks=r'...(\d+)...')")):
        build(ToySegmentor(Odd()), layer_decay_rate=0.9)
    # at rate 1.0 (the default) no layer rule is needed
    plan = build(ToySegmentor(Odd()), layer_decay_rate=1.0)
    assert plan.layer_rule == 'no layer rule (layer_decay_rate=1.0)'
    assert {p.lr for p in plan.params} == {1.0}


def test_missing_backbone_name():
    with pytest.raises(ValueError, match=re.escape(
            "paramwise_cfg.backbone_name='img_backbone': the model has no "
            "such sub-module; its top-level sub-modules are ['backbone', "
            "'decode_head']")):
        build(ToySegmentor(ToyInternViT()), backbone_name='img_backbone')


def test_regex_that_matches_nothing():
    with pytest.raises(ValueError, match=re.escape(
            r"paramwise_cfg.layer_regex.blocks='^trunk\\.(\\d+)\\.' matches "
            'no backbone parameter; backbone-relative names look like: '
            'pos_embed, cls_token, patch_embed.proj.weight')):
        build(ToySegmentor(ToyInternViT()),
              layer_regex=dict(embed='^pos', blocks=r'^trunk\.(\d+)\.'))
    with pytest.raises(ValueError, match=re.escape(
            "paramwise_cfg.layer_regex.embed='^stem' matches no backbone "
            'parameter')):
        build(ToySegmentor(ToyInternViT()),
              layer_regex=dict(embed='^stem', blocks=r'^blocks\.(\d+)\.'))


@pytest.mark.parametrize('spec, message', [
    (dict(embed='^a'), "must have exactly the keys ('embed', 'blocks'); "
     "unknown: [], missing: ['blocks']"),
    (dict(embed='^a', blocks=r'^b\.\d+'), 'must have exactly one capturing '
     'group for the block index, it has 0'),
    (dict(embed='(', blocks=r'^b\.(\d+)'), "paramwise_cfg.layer_regex.embed="
     "'(' is not a valid regular expression"),
])
def test_bad_regex_spec(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build(ToySegmentor(ToyInternViT()), layer_regex=spec)


def test_custom_key_matching_nothing_is_a_warning():
    # MMEngine ignores such keys and shipped recipes carry them
    warnings = []
    plan = build_param_groups(
        ToySegmentor(ToyInternViT()), settings(
            custom_keys={'auxiliary_head': dict(lr_mult=2.0),
                         'decode_head': dict(lr_mult=3.0)}), 1.0, 0.1,
        warn=warnings.append)
    assert warnings[0].startswith(
        "paramwise_cfg.custom_keys ['auxiliary_head'] match no parameter "
        'name (ignored, as MMEngine does); names look like: ')
    assert {p.lr for p in plan.params if p.name.startswith('decode_head')} \
        == {3.0}


def test_no_trainable_parameters():
    model = ToySegmentor(ToyInternViT())
    model.requires_grad_(False)
    with pytest.raises(ValueError, match=re.escape(
            'ToySegmentor has no trainable parameters (57 frozen): nothing to '
            'optimize')):
        build(model)


def test_own_layer_method_returning_bad_id():

    class Bad(ToyInternViT):

        def get_layer_id(self, rel_name):
            return 99

    with pytest.raises(ValueError, match=re.escape(
            "Bad.get_layer_id gave layer id 99 to parameter "
            "'backbone.pos_embed'; valid ids are integers 0..4 "
            '(num_layers=3)')):
        build(ToySegmentor(Bad(depth=3)))


@pytest.mark.parametrize('pattern', [r'^(a+)+$', r'(x*)*y', r'^((ab)+c)+$',
                                     r'(?=(\w+\.)+)z', r'^(?:a|(b+))*$'])
def test_layer_regex_with_exponential_backtracking_is_refused(pattern):
    with pytest.raises(ValueError, match=re.escape(
            f'paramwise_cfg.layer_regex.blocks={pattern!r} repeats a part '
            'that itself repeats without bound')):
        settings(layer_decay_rate=0.9, layer_regex=dict(
            embed='^stem', blocks=pattern))
    # the shapes that are fine: one level of repetition
    settings(layer_decay_rate=0.9, layer_regex=dict(
        embed=r'^(stem|cls_token)', blocks=r'^trunk\.(\d+)\.'))
