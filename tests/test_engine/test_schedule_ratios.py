"""Warm-up and poly decay scale every layer-decay group by the same factor:
the lr ratios between layers hold at every iteration of a run."""
import re

import pytest
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS

from internvl_optim import LayerDecayOptimizerConstructor
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


def test_absolute_eta_min_would_erase_ratios_and_is_rejected():
    absolute = [dict(SCHEDULE[1], eta_min=1e-4)]
    history, scales = run(absolute)
    last = history[-1]
    assert last[-1] / last[0] > 0.9  # embeddings ~ head: ratios gone
    cfg = Config(dict(optim_wrapper=dict(paramwise_cfg=dict(
        layer_decay_rate=0.9)), param_scheduler=SCHEDULE[:1] + absolute))
    with pytest.raises(ValueError, match=re.escape(
            'param_scheduler[1] (PolyLR) has an absolute eta_min=0.0001: it '
            'drives every layer-decay group to the same lr')):
        check_schedulers_keep_ratios(cfg)
    check_schedulers_keep_ratios(Config(dict(
        optim_wrapper=dict(paramwise_cfg=dict(layer_decay_rate=1.0)),
        param_scheduler=absolute)))  # no decay, no ratios to keep
