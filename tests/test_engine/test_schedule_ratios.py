"""Warm-up and poly decay scale every layer-decay group by the same factor:
the lr ratios between layers hold at every iteration of a run."""
import re

import pytest
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS

from internvl_optim import LayerDecayOptimizerConstructor
from internvl_optim.guards.schedule_floor import judge_floor
from internvl_optim.engine.config_checks import check_schedulers_keep_ratios

from toy_models import ToyInternViT, ToySegmentor


def run(schedulers, iters=40):
    constructor = LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        dict(layer_decay_rate=0.5))
    wrapper = constructor(ToySegmentor(ToyInternViT(depth=3)))
    built = [PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper))
             for s in schedulers]
    history = []
    for _ in range(iters):
        history.append([g['lr'] for g in wrapper.optimizer.param_groups])
        wrapper.optimizer.step()
        for scheduler in built:
            scheduler.step()
    scales = [g['lr_scale'] for g in wrapper.optimizer.param_groups]
    return history, scales


SCHEDULE = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=5),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=5,
         end=40)
]


def test_warmup_and_poly_keep_layer_ratios_every_iteration():
    history, scales = run(SCHEDULE)
    assert scales == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625,
                      0.0625]
    assert history[0][0] == pytest.approx(1e-5)  # warm-up start
    assert history[5][0] == pytest.approx(1e-3)  # warm-up end
    assert history[22][0] == pytest.approx(5e-4)  # poly half way
    assert history[39][0] == 0.0  # poly reaches eta_min=0 at end - 1
    for it, lrs in enumerate(history):
        for lr, scale in zip(lrs, scales):
            assert lr == pytest.approx(lrs[0] * scale, rel=1e-9), it


def test_absolute_eta_min_flattens_ratios_and_is_judged_by_what_it_does():
    absolute = [dict(SCHEDULE[1], eta_min=1e-4)]
    history, scales = run(absolute)
    last = history[-1]
    assert last[-1] / last[0] > 0.9  # embeddings ~ head: ratios gone
    # a floor below every group's lr is a warning at the start of
    # training that says from when the ratios flatten ...
    start = {'layer_4_decay': 1e-3, 'layer_0_decay': 1e-3 * 0.5 ** 4}
    error, warning = judge_floor('param_scheduler[1] (PolyLR)', 'PolyLR',
                                 1e-5, start, 1.0, (5, 40))
    assert error is None
    # (6.25e-5 - 1e-5) * (1 - x) + 1e-5 = 2e-5  =>  x = 1 - 1 / 5.25
    assert warning == (
        'param_scheduler[1] (PolyLR) has an absolute eta_min=1e-05: every '
        'group moves towards the same floor, so the layer ratios flatten '
        'from 81.0 % of its span (iteration 33), where the lowest group '
        '(layer_0_decay, starting at 6.25e-05) is at twice the floor. '
        'eta_min=0.0 (or eta_min_ratio) keeps the ratios to the end')


def test_a_floor_above_a_groups_lr_is_an_error_naming_it():
    start = {'layer_4_decay': 1e-3, 'layer_0_decay': 6.25e-5}
    error, _ = judge_floor('param_scheduler[1] (PolyLR)', 'PolyLR', 1e-4,
                           start)
    assert error == (
        'param_scheduler[1] (PolyLR) has eta_min=0.0001, at or above the '
        'starting lr of group layer_0_decay (6.25e-05): that group\'s lr '
        'would rise during training. Use eta_min=0.0, or eta_min_ratio '
        'where the scheduler has it (CosineAnnealingLR), or a floor below '
        "every group's lr")
    # before anything is built: a floor at or above the base lr itself
    cfg = Config(dict(optim_wrapper=dict(
        optimizer=dict(type='AdamW', lr=1e-4),
        paramwise_cfg=dict(layer_decay_rate=0.9)),
        param_scheduler=[dict(SCHEDULE[1], eta_min=1e-4)]))
    with pytest.raises(ValueError, match=re.escape(
            'param_scheduler[0] (PolyLR) has eta_min=0.0001, at or above the '
            'starting lr of group heads (0.0001)')):
        check_schedulers_keep_ratios(cfg)
    cfg.param_scheduler[0].eta_min = 1e-5
    check_schedulers_keep_ratios(cfg)  # judged when training starts
    check_schedulers_keep_ratios(Config(dict(
        optim_wrapper=dict(optimizer=dict(lr=1e-5),
                           paramwise_cfg=dict(layer_decay_rate=1.0)),
        param_scheduler=[dict(SCHEDULE[1], eta_min=1e-4)])))  # no decay


def test_the_hook_judges_the_real_groups_before_training():
    from types import SimpleNamespace

    from internvl_optim.engine.hooks import LayerLrSpreadHook
    constructor = LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
        dict(layer_decay_rate=0.5))
    wrapper = constructor(ToySegmentor(ToyInternViT(depth=3)))
    warnings = []
    runner = SimpleNamespace(
        optim_wrapper=wrapper, logger=SimpleNamespace(warning=warnings.append),
        param_schedulers=[PARAM_SCHEDULERS.build(dict(
            SCHEDULE[1], eta_min=1e-4, optimizer=wrapper))])
    with pytest.raises(ValueError, match=re.escape(
            'param_scheduler[0] (PolyLR) has eta_min=0.0001, at or above the '
            'starting lr of group layer_0_decay (6.25e-05)')):
        LayerLrSpreadHook().before_train(runner)
    runner.param_schedulers = [PARAM_SCHEDULERS.build(dict(
        SCHEDULE[1], eta_min=1e-5, optimizer=wrapper))]
    LayerLrSpreadHook().before_train(runner)
    assert warnings[0].startswith(
        'param_scheduler[0] (PolyLR) has an absolute eta_min=1e-05: every '
        'group moves towards the same floor, so the layer ratios flatten '
        'from 81.0 % of its span (iteration 33)')
