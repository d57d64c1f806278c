"""The layer ratios survive the schedulers, or the run says which group
lost them: a DeepSpeed config ``scheduler`` is an error before training; a
scheduler that writes one absolute lr into every group is named at the
first iteration.

Fact relied on (DeepSpeed 0.15.4, ``deepspeed/runtime/lr_schedules.py``):
``WarmupLR._format_param`` turns a scalar ``warmup_min_lr`` /
``warmup_max_lr`` into one value per param group and ``get_lr`` returns
``min_lr + delta_lr * gamma`` for each: every group at the same lr."""
import itertools
import json
import os

import pytest
import torch
from mmengine.optim.scheduler.param_scheduler import _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.runner import Runner

import internvl_optim  # noqa: F401
from internvl_optim.engine.train_config import prepare_train_config
from mmengine_toys import TinyViT, toy_loader
from test_train_config import DEMO, ROOT, demo  # noqa: F401  (fixture)

DEEPSPEED_DEMO = os.path.join(
    ROOT, 'configs/demo/internvit_tiny_upernet_synthetic_ade20k_deepspeed.py')
WARMUP = dict(type='WarmupLR', params=dict(warmup_min_lr=0,
                                           warmup_max_lr=1e-3,
                                           warmup_num_steps=10))
_names = itertools.count()


def test_a_deepspeed_config_scheduler_stops_the_run_before_training(demo):
    cfg = demo(DEEPSPEED_DEMO, **{'strategy.config': dict(scheduler=WARMUP)})
    with pytest.raises(ValueError, match=(
            r"strategy.config.scheduler \(WarmupLR\) sets every param group "
            r'to the same lr .* Remove \'scheduler\' from the DeepSpeed '
            'config')):
        prepare_train_config(cfg, 'ds.py')


def test_a_deepspeed_json_file_is_read_too(demo, tmp_path):
    path = tmp_path / 'ds.json'
    path.write_text(json.dumps(dict(scheduler=WARMUP,
                                    train_micro_batch_size_per_gpu=1)))
    cfg = demo(DEEPSPEED_DEMO, **{'strategy.config': str(path)})
    with pytest.raises(ValueError, match=(
            f"the DeepSpeed config '{path}' \\(strategy.config\\).scheduler "
            r'\(WarmupLR\) sets every param group to the same lr')):
        prepare_train_config(cfg, 'ds.py')


def test_one_lr_for_all_groups_has_nothing_to_lose(demo):
    cfg = demo(DEEPSPEED_DEMO, **{
        'strategy.config': dict(scheduler=WARMUP),
        'optim_wrapper.paramwise_cfg': dict(layer_decay_rate=1.0)})
    prepare_train_config(cfg, 'ds.py')  # no error


@PARAM_SCHEDULERS.register_module()
class FlatLRForTest(_ParamScheduler):
    """Writes one absolute lr into every group, as DeepSpeed's do."""

    def __init__(self, optimizer, **kwargs):
        super().__init__(optimizer, 'lr', **kwargs)

    def _get_value(self):
        return [1e-3 for _ in self.optimizer.param_groups]


def run(tmp_path, schedulers):
    torch.manual_seed(0)
    runner = Runner(
        model=TinyViT(), work_dir=str(tmp_path),
        experiment_name=f'guard_{next(_names)}',
        train_dataloader=toy_loader(),
        train_cfg=dict(by_epoch=False, max_iters=3),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.05),
            constructor='LayerDecayOptimizerConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.5)),
        param_scheduler=schedulers,
        custom_hooks=[dict(type='LayerLrSpreadHook')],
        default_scope='mmengine', log_level='WARNING')
    said = []
    runner.logger.warning = said.append
    runner.train()
    return [m for m in said if 'lr ratios' in m]


def test_a_scheduler_that_flattens_the_lrs_is_named_once(tmp_path):
    (message,) = run(tmp_path, [dict(type='FlatLRForTest', by_epoch=False)])
    assert message.startswith(
        "Iteration 0: the layer-wise lr ratios are no longer the plan's: "
        'group layer_0_decay is at lr 0.001, while layer_4_decay is at '
        "0.001: the ratio between them is 1, the plan's 0.0625 (their "
        'lr_scale 0.0625 and 1).')
    assert "this run's param_scheduler: ['FlatLRForTest']" in message


def test_ratio_keeping_schedulers_are_not_named(tmp_path):
    assert run(tmp_path, [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=2),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=2, end=3,
             T_max=1, eta_min_ratio=0.01)]) == []
