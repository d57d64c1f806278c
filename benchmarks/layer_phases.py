#!/usr/bin/env python
"""What the phases over layers cost per iteration, on the LP-FT demo config
(tiny InternViT + UperNet, synthetic ADE20K, CPU), in one process:

    python benchmarks/layer_phases.py [--iters 30] [--rounds 3] [--steps 200]

First table: seconds per training iteration (the mean over a run, the
first 5 left out; the median of interleaved rounds) and the ratio to the
first row.  Run-to-run noise on a shared CPU is several per cent, so this
table shows large effects only:

* ``no phases``: the demo's plain layer decay;
* ``phases, head only``: the head-only phase (LP-FT): gradients of the
  layers not joined are dropped before the step, their backward still runs;
* ``backbone requires_grad=False``: what skipping the backbone's backward
  would give in that phase (not done: under DDP, changing requires_grad
  mid-run breaks the reducer's buckets unless ``find_unused_parameters``).

Second table: the scheduler's own cost, measured where it is paid: the
optimizer step of the demo's groups with and without the phase patch
(every layer joined), interleaved ``--steps`` times, the median
difference, as a fraction of a plain iteration.
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import internvl_optim  # noqa: E402,F401
from internvl_optim.datasets.synthetic_ade20k import \
    make_synthetic_ade20k  # noqa: E402

ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..')
CONFIG = osp.join(ROOT, 'configs/demo/internvit_tiny_lp_ft_synthetic_ade20k.py')


class IterTimes(Hook):
    priority = 'VERY_HIGH'

    def __init__(self):
        self.times, self.start = [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.times.append(time.perf_counter() - self.start)


class FreezeBackbone(Hook):
    def before_train(self, runner):
        for p in runner.model.backbone.parameters():
            p.requires_grad_(False)


def run(data_root, iters, phases, extra_hooks=(), keep=False):
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.val_dataloader.dataset.data_root = data_root
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1
    cfg.default_hooks.checkpoint.interval = iters + 1
    cfg.default_hooks.logger.interval = iters + 1
    cfg.log_level = 'WARNING'
    cfg.work_dir = tempfile.mkdtemp()
    if phases is None:
        del cfg.optim_wrapper.paramwise_cfg['layer_phases']
        cfg.param_scheduler = cfg.param_scheduler[:-1]
    else:
        cfg.optim_wrapper.paramwise_cfg.layer_phases = phases
    timer = IterTimes()
    runner = Runner.from_cfg(cfg)
    for hook in (timer, *extra_hooks):
        runner.register_hook(hook)
    runner.train()
    return runner if keep else statistics.mean(timer.times[5:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--steps', type=int, default=200)
    args = parser.parse_args()
    data_root = make_synthetic_ade20k(tempfile.mkdtemp())
    far = 10 ** 6  # a head-only phase longer than the run
    cases = [('no phases', None, ()),
             ('phases, head only', dict(head_only=far), ()),
             ('backbone requires_grad=False', None, (FreezeBackbone(),))]
    times = {name: [] for name, _, _ in cases}
    for _ in range(args.rounds):  # interleaved, the median of the rounds
        for name, phases, hooks in cases:
            times[name].append(run(data_root, args.iters, phases, hooks))
    rows = [(name, statistics.median(times[name])) for name, _, _ in cases]
    base = rows[0][1]
    print(f'{"run":32s} {"s/iter":>8s} {"ratio":>7s}')
    for name, seconds in rows:
        print(f'{name:32s} {seconds:8.4f} {seconds / base:7.3f}')
    patched, plain = step_times(data_root, args.steps)
    print()
    print(f'{"optimizer step":32s} {"s":>10s}')
    print(f'{"without the phase patch":32s} {plain:10.6f}')
    print(f'{"with the phase patch":32s} {patched:10.6f}')
    print(f'{"scheduler overhead / iteration":32s} '
          f'{(patched - plain) / base:10.4%}')


def step_times(data_root, steps):
    """Median seconds of the patched and the original optimizer step on
    the demo's groups (every layer joined), interleaved."""
    import torch
    runner = run(data_root, 6, dict(warmup=1), keep=True)
    inner = runner.optim_wrapper.optimizer
    patched, original = inner.step, inner.step.__wrapped__
    for group in inner.param_groups:
        for p in group['params']:
            p.grad = torch.full_like(p, 1e-3)
    with_patch, without = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        patched()
        t1 = time.perf_counter()
        original()
        t2 = time.perf_counter()
        with_patch.append(t1 - t0)
        without.append(t2 - t1)
    return statistics.median(with_patch), statistics.median(without)


if __name__ == '__main__':
    main()
