"""Numbers that pass one by one but fail together, containers of the wrong
type, optimizer arguments of the wrong type, scheduler arguments that
divide by zero."""
import re

import pytest
import torch
from mmengine.config import Config
from torch import nn

from internvl_optim import LayerDecaySettings, build_param_groups
from internvl_optim.guards.optimizer_arguments import check_optimizer_arguments
from internvl_optim.engine.config_checks import (check_optim_wrapper,
                                                 check_param_schedulers)
from internvl_optim.engine.optimizers.layer_decay_constructor import \
    LayerDecayOptimizerConstructor

from helpers import lr_wd_by_name
from toy_models import ToyInternViT, ToySegmentor


def constructor(optimizer=None, paramwise=None, **wrapper):
    return LayerDecayOptimizerConstructor(
        dict(optimizer=optimizer or dict(type='AdamW', lr=1e-3), **wrapper),
        paramwise)


def test_lr_times_lr_mult_overflowing_is_an_error():
    model = ToySegmentor(ToyInternViT(depth=2))
    build = constructor(dict(type='AdamW', lr=1e3),
                        dict(custom_keys={'decode_head': dict(lr_mult=1e3)}))
    with pytest.raises(ValueError) as err:
        build(model)
    assert str(err.value) == (
        '8 parameter(s) get an lr above 10000 or a non-finite lr or weight '
        'decay once the multipliers are applied, e.g. '
        'decode_head.layers.0.weight: lr 1000000.0 (base lr 1000 x scale '
        '1000), weight decay 0.01. Lower optim_wrapper.optimizer.lr or the '
        'lr_mult / decay_mult of paramwise_cfg.custom_keys')


@pytest.mark.parametrize('lr', [1e308, 1e5, 10000.5])
def test_an_lr_no_optimizer_survives_is_refused_before_building(lr):
    # 1e308 passes "finite and > 0" but Adam's first step size, lr / (1 -
    # beta1), overflows to inf
    with pytest.raises(ValueError, match=re.escape(
            f'optim_wrapper.optimizer.lr must be in (0, 10000], got {lr}')):
        constructor(dict(type='AdamW', lr=lr))
    from internvl_optim import param_groups
    with pytest.raises(ValueError, match=re.escape(
            f'lr must be in (0, 10000], got {lr}')):
        param_groups(nn.Linear(2, 2), lr=lr)
    assert constructor(dict(type='AdamW', lr=1e4)).base_lr == 1e4


def test_a_vanishing_lr_is_named():
    model = ToySegmentor(ToyInternViT(depth=2))
    messages = []
    plan = build_param_groups(
        model, LayerDecaySettings.from_paramwise_cfg(
            dict(layer_decay_rate=1e-8)), 1.0, 0.05, warn=messages.append)
    lrs = lr_wd_by_name(plan.groups)
    assert lrs['backbone.cls_token'][0] == pytest.approx(1e-24)  # 1e-8 ** 3
    assert lrs['backbone.blocks.0.attn.qkv.weight'][0] == pytest.approx(1e-16)
    tiny = [m for m in messages if 'updates vanish' in m]
    assert len(tiny) == 1
    assert re.match(
        r'\d+ parameter tensors \(layers \[0, 1\]\) get an lr below 1e-12 '
        r'\(base lr x 1e-12\), e\.g\. backbone\.\S+: 1e-(24|16); their '
        r'updates vanish in float32', tiny[0])


@pytest.mark.parametrize('paramwise, name', [([1, 2], 'list'), (3, 'int'),
                                             ('rate', 'str')])
def test_paramwise_cfg_of_the_wrong_type(paramwise, name):
    with pytest.raises(TypeError) as err:
        constructor(paramwise=paramwise)
    assert str(err.value) == (
        'optim_wrapper.paramwise_cfg must be a dict of keys such as '
        f'layer_decay_rate and num_layers, got a {name}: {paramwise!r}')


def test_optimizer_none_is_a_type_error():
    with pytest.raises(TypeError) as err:
        LayerDecayOptimizerConstructor(dict(optimizer=None))
    assert str(err.value) == (
        "optim_wrapper.optimizer must be a dict such as dict(type='AdamW', "
        'lr=1e-4, weight_decay=0.05), got None')


@pytest.mark.parametrize('key, value, message', [
    ('amsgrad', 'yes', "optim_wrapper.optimizer.amsgrad must be True or False "
                       "(AdamW's default is False), got 'yes'"),
    ('foreach', 1, 'optim_wrapper.optimizer.foreach must be True or False '
                   "(or None) (AdamW's default is None), got 1"),
    ('fused', 'true', 'optim_wrapper.optimizer.fused must be True or False '
                      "(or None) (AdamW's default is None), got 'true'"),
    ('maximize', 'no', 'optim_wrapper.optimizer.maximize must be True or '
                       "False (AdamW's default is False), got 'no'"),
    ('capturable', None, 'optim_wrapper.optimizer.capturable must be True or '
                         "False (AdamW's default is False), got None"),
    ('amsgrd', True, "optim_wrapper.optimizer.amsgrd is not an argument of "
                     "AdamW. Did you mean 'amsgrad'? Valid: lr, betas, eps, "
                     'weight_decay, amsgrad, maximize, foreach, capturable, '
                     'differentiable, fused'),
])
def test_optimizer_arguments_have_their_defaults_types(key, value, message):
    with pytest.raises(TypeError) as err:
        constructor(dict(type='AdamW', lr=1e-3, **{key: value}))
    assert str(err.value) == message


def test_numbers_and_tuples_keep_their_defaults_types():
    # (the constructor's own number checks name these first; the argument
    # check covers optimizers whose numbers it does not know)
    with pytest.raises(TypeError) as err:
        check_optimizer_arguments(dict(eps='1e-8'), torch.optim.AdamW)
    assert str(err.value) == (
        "optim_wrapper.optimizer.eps must be a number like AdamW's default "
        "1e-08, got '1e-8' (a string: write 1e-8 without quotes)")
    with pytest.raises(TypeError) as err:
        check_optimizer_arguments(dict(betas=(0.9, )), torch.optim.AdamW)
    assert str(err.value) == (
        "optim_wrapper.optimizer.betas must be 2 numbers like AdamW's "
        'default (0.9, 0.999), got (0.9,)')


def test_good_optimizer_arguments_pass():
    check_optimizer_arguments(dict(type='AdamW', lr=1e-3, amsgrad=True,
                                   foreach=None, betas=[0.9, 0.95]),
                              torch.optim.AdamW)
    check_optimizer_arguments(dict(type='SGD', lr=0.1, momentum=0.9,
                                   nesterov=True), torch.optim.SGD)


@pytest.mark.parametrize('scheduler, message', [
    (dict(type='LinearLR', start_factor=0, by_epoch=False, begin=0, end=10),
     'param_scheduler[0] (LinearLR).start_factor must be in (0, 1], got 0'),
    (dict(type='ConstantLR', factor=0.0), 'param_scheduler[0] (ConstantLR)'
                                          '.factor must be in (0, 1], got 0.0'),
    (dict(type='CosineAnnealingLR', T_max=0), 'param_scheduler[0] '
     '(CosineAnnealingLR).T_max must be a number > 0, got 0'),
    (dict(type='PolyLR', power=-1.0), 'param_scheduler[0] (PolyLR).power '
                                      'must be a number >= 0, got -1.0'),
    (dict(type='PolyLR', begin=10, end=10), 'param_scheduler[0] (PolyLR): '
                                            'begin=10 must be < end=10'),
])
def test_scheduler_arguments_that_divide_are_in_range(scheduler, message):
    with pytest.raises(ValueError) as err:
        check_param_schedulers(Config(dict(param_scheduler=[scheduler])))
    assert str(err.value) == message


def test_the_config_check_runs_the_constructor_checks_first():
    cfg = Config(dict(optim_wrapper=dict(
        constructor='LayerDecayOptimizerConstructor',
        optimizer=dict(type='AdamW', lr=1e-3, amsgrad='yes'))))
    with pytest.raises(TypeError, match=re.escape(
            "optim_wrapper.optimizer.amsgrad must be True or False")):
        check_optim_wrapper(cfg)
    cfg.optim_wrapper.optimizer.amsgrad = False
    cfg.optim_wrapper.paramwise_cfg = [0.9]
    with pytest.raises(TypeError, match=re.escape(
            'optim_wrapper.paramwise_cfg must be a dict')):
        check_optim_wrapper(cfg)


# --- odd backbones ------------------------------------------------------------

class CBWithATuple(nn.Module):
    def __init__(self):
        super().__init__()
        self.cb_modules = (1, 2)  # not a ModuleList
        self.stem = nn.Conv2d(3, 4, 3)
        self.layer1 = nn.Conv2d(4, 4, 3)
        self.layer2 = nn.Conv2d(4, 4, 3)


class WithBackbone(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(4, 2)


def test_cb_modules_that_is_not_a_list_is_not_cbnet():
    model = WithBackbone(CBWithATuple())
    for rate in (1.0, 0.5):
        plan = build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
            dict(layer_decay_rate=rate)), 1.0, 0.0)
        lrs = lr_wd_by_name(plan.groups)
        assert lrs['head.weight'][0] == 1.0
    # at 0.5 the module-order rule: stem 0, layer1 1, layer2 2, head 3
    assert lrs['backbone.stem.weight'][0] == 0.125
    assert lrs['backbone.layer2.weight'][0] == 0.5


def test_a_backbone_without_parameters_is_fine_without_layer_decay():
    model = WithBackbone(nn.Identity())
    plan = build_param_groups(model, LayerDecaySettings.from_paramwise_cfg({}),
                              1.0, 0.05)
    assert lr_wd_by_name(plan.groups) == {'head.weight': (1.0, 0.05),
                                          'head.bias': (1.0, 0.0)}
    assert plan.layer_rule == 'no layer rule (layer_decay_rate=1.0)'
    with pytest.raises(ValueError) as err:
        build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
            dict(layer_decay_rate=0.9)), 1.0, 0.05)
    assert str(err.value) == (
        "backbone 'backbone' (Identity) has no parameters: layer decay has "
        'nothing to decay. Set paramwise_cfg.backbone_name to the sub-module '
        'that holds the backbone, or layer_decay_rate=1.0')
