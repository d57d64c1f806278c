"""Bad numbers never reach the optimizer: every number of
``paramwise_cfg`` and of ``optim_wrapper`` is a finite real in range, a
numeric string is named as such, and a configuration that trains nothing at
lr 0 is an error."""
import math
import re

import pytest

from internvl_optim import LayerDecaySettings, build_param_groups
from internvl_optim.engine.optimizers.layer_decay_constructor import LayerDecayOptimizerConstructor

from toy_models import ToyInternViT, ToySegmentor

INF, NAN = math.inf, math.nan


@pytest.mark.parametrize('cfg, exc, message', [
    (dict(layer_decay_rate=NAN), ValueError,
     'paramwise_cfg.layer_decay_rate must be a finite number, got nan'),
    (dict(decay_rate=INF), ValueError,
     'paramwise_cfg.decay_rate must be a finite number, got inf'),
    (dict(layer_decay_rate='0.9'), TypeError,
     "paramwise_cfg.layer_decay_rate must be a number in (0, 1], got '0.9' "
     '(a string: write 0.9 without quotes)'),
    (dict(layer_decay_rate=True), TypeError,
     'paramwise_cfg.layer_decay_rate must be a number in (0, 1], got True'),
    (dict(num_layers='24'), TypeError,
     "paramwise_cfg.num_layers must be a positive int, got '24' (a string: "
     'write 24 without quotes)'),
    (dict(custom_keys={'head': dict(lr_mult=INF)}), ValueError,
     "paramwise_cfg.custom_keys['head'].lr_mult must be a finite number, "
     'got inf'),
    (dict(custom_keys={'head': dict(lr_mult=NAN)}), ValueError,
     "paramwise_cfg.custom_keys['head'].lr_mult must be a finite number, "
     'got nan'),
    (dict(custom_keys={'head': dict(decay_mult=-INF)}), ValueError,
     "paramwise_cfg.custom_keys['head'].decay_mult must be a finite number, "
     'got -inf'),
    (dict(custom_keys={'head': dict(decay_mult='0')}), TypeError,
     "paramwise_cfg.custom_keys['head'].decay_mult must be a number >= 0, "
     "got '0' (a string: write 0 without quotes)"),
    (dict(dcn_lr_mul=NAN), ValueError,
     'paramwise_cfg.dcn_lr_mul must be a finite number, got nan'),
    (dict(offset_lr_scale=INF), ValueError,
     'paramwise_cfg.offset_lr_scale must be a finite number, got inf'),
    (dict(dcn_lr_mul='0.1'), TypeError,
     "paramwise_cfg.dcn_lr_mul must be a number > 0, got '0.1' (a string: "
     'write 0.1 without quotes)'),
])
def test_bad_paramwise_numbers(cfg, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        LayerDecaySettings.from_paramwise_cfg(cfg)


def test_non_finite_dcn_multiplier_on_a_backbone_it_matches():
    # before these checks this built groups with lr nan
    from hierarchical_models import InternImage  # needs mmcv.ops
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.dcn_lr_mul must be a finite number, got inf')):
        build_param_groups(
            ToySegmentor(InternImage()),
            LayerDecaySettings.from_paramwise_cfg(dict(dcn_lr_mul=INF)),
            1.0, 0.05)


def optimizer(**kw):
    return dict(optimizer=dict(type='AdamW', **{'lr': 1e-3, **kw}))


@pytest.mark.parametrize('wrapper, exc, message', [
    (optimizer(lr='5e-3'), TypeError,
     "optim_wrapper.optimizer.lr must be a number in (0, 10000], got '5e-3' (a string: "
     'write 5e-3 without quotes)'),
    (optimizer(weight_decay='0.05'), TypeError,
     "optim_wrapper.optimizer.weight_decay must be a number >= 0, got '0.05' "
     '(a string: write 0.05 without quotes)'),
    (optimizer(lr=INF), ValueError,
     'optim_wrapper.optimizer.lr must be a finite number, got inf'),
    (optimizer(lr=NAN), ValueError,
     'optim_wrapper.optimizer.lr must be a finite number, got nan'),
    (optimizer(lr=0), ValueError,
     'optim_wrapper.optimizer.lr must be in (0, 10000], got 0'),
    (optimizer(lr=-1e-4), ValueError,
     'optim_wrapper.optimizer.lr must be in (0, 10000], got -0.0001'),
    (optimizer(weight_decay=-0.05), ValueError,
     'optim_wrapper.optimizer.weight_decay must be a number >= 0, got -0.05'),
    (optimizer(weight_decay=NAN), ValueError,
     'optim_wrapper.optimizer.weight_decay must be a finite number, got nan'),
    (optimizer(betas=(0.9, 1.5)), ValueError,
     'optim_wrapper.optimizer.betas[1] must be in [0, 1), got 1.5'),
    (optimizer(betas=(0.9, '0.999')), TypeError,
     "optim_wrapper.optimizer.betas[1] must be a number in [0, 1), got "
     "'0.999' (a string: write 0.999 without quotes)"),
    (optimizer(betas=0.9), TypeError,
     'optim_wrapper.optimizer.betas must be two numbers in [0, 1), got 0.9'),
    (optimizer(eps=0), ValueError,
     'optim_wrapper.optimizer.eps must be a number > 0, got 0'),
    (optimizer(momentum=1.5), ValueError,
     'optim_wrapper.optimizer.momentum must be in [0, 1], got 1.5'),
    (optimizer(amsgrad='1'), TypeError,
     "optim_wrapper.optimizer.amsgrad must be a number, got '1' (a string: "
     'write 1 without quotes)'),
    (optimizer(lr_decay=INF), ValueError,
     'optim_wrapper.optimizer.lr_decay must be a finite number, got inf'),
    (dict(clip_grad=dict(max_norm=NAN), **optimizer()), ValueError,
     'optim_wrapper.clip_grad.max_norm must be a finite number, got nan'),
    (dict(clip_grad=dict(max_norm='1.0'), **optimizer()), TypeError,
     "optim_wrapper.clip_grad.max_norm must be a number > 0, got '1.0'"),
    (dict(accumulative_counts=0, **optimizer()), ValueError,
     'optim_wrapper.accumulative_counts must be an int >= 1, got 0'),
])
def test_bad_optimizer_numbers_stop_the_constructor(wrapper, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        LayerDecayOptimizerConstructor(wrapper, dict(layer_decay_rate=0.9))


def test_good_optimizer_numbers_pass():
    constructor = LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999),
                            eps=1e-8, weight_decay=0.05),
             clip_grad=dict(max_norm=1.0), accumulative_counts=2),
        dict(layer_decay_rate=0.9))
    assert constructor.base_lr == 4e-5


def test_custom_keys_that_stop_every_parameter_are_an_error():
    model = ToySegmentor(ToyInternViT(depth=2))
    with pytest.raises(ValueError, match=re.escape(
            f'Every trainable parameter ({len(list(model.parameters()))} '
            f'tensors) gets lr 0: {len(list(model.parameters()))} through '
            "paramwise_cfg.custom_keys ['.'] (lr_mult=0); nothing would "
            'train.')):
        build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
            dict(custom_keys={'.': dict(lr_mult=0)})), 1e-3, 0.05)


def test_custom_keys_that_stop_part_of_the_model_are_said():
    model = ToySegmentor(ToyInternViT(depth=2))
    warnings = []
    plan = build_param_groups(
        model, LayerDecaySettings.from_paramwise_cfg(
            dict(custom_keys={'backbone.': dict(lr_mult=0)})), 1e-3, 0.05,
        warn=warnings.append)
    stopped = [p for p in plan.params if p.lr == 0]
    assert stopped and all(p.name.startswith('backbone.') for p in stopped)
    assert (f'{len(stopped)} trainable parameter tensors get lr 0: '
            f'{len(stopped)} through paramwise_cfg.custom_keys '
            "['backbone.'] (lr_mult=0); they stay") in warnings[0]
    assert all(p.lr == 1e-3 for p in plan.params
               if not p.name.startswith('backbone.'))


def test_layer_decay_underflowing_to_zero_is_blamed_on_the_rate():
    # 1e-200 ** 3 underflows to 0.0 below layer N + 1 = 3; no custom keys
    model = ToySegmentor(ToyInternViT(depth=2))
    warnings = []
    plan = build_param_groups(
        model, LayerDecaySettings.from_paramwise_cfg(
            dict(layer_decay_rate=1e-200)), 1.0, 0.05, warn=warnings.append)
    stopped = [p for p in plan.params if p.lr == 0]
    layers = sorted({p.layer_id for p in stopped})
    assert layers == [0, 1]  # 1e-200 ** 2 == 0.0 too; layer 2 gets 1e-200
    said = [w for w in warnings if 'get lr 0' in w]
    assert said == [
        f'{len(stopped)} trainable parameter tensors get lr 0: '
        f'{len(stopped)} because layer decay underflows to 0 in layers '
        '[0, 1] (layer_decay_rate ** (N + 1 - layer) is below the smallest '
        'float); they stay in the optimizer but do not change']
    assert 'custom_keys' not in said[0]


def test_invalid_layer_regex_is_an_error_even_where_a_model_method_wins():
    # the regex is checked in the settings, also where a model's own
    # get_layer_depth decides the ids (before these checks it then got only a
    # "not used" warning)
    with pytest.raises(ValueError, match=re.escape(
            "paramwise_cfg.layer_regex.blocks='(' is not a valid regular "
            'expression')):
        LayerDecaySettings.from_paramwise_cfg(
            dict(layer_regex=dict(embed='x', blocks='(')))
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.layer_regex must have exactly the keys')):
        LayerDecaySettings.from_paramwise_cfg(dict(layer_regex=dict(embed='x')))
