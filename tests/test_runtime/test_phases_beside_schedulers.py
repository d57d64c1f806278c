"""Phases over layers beside PyTorch's own schedulers, built before or
after ``LayerPhaseLR``: ``StepLR``, ``SequentialLR`` (warm-up then
cosine), ``OneCycleLR``.  ``LRScheduler.__init__`` wraps
``optimizer.step.__func__`` (torch 2.13, ``patch_track_step_called``) and
warns when the step it wrapped was replaced (``_wrapped_by_lr_sched``);
with SGD on a gradient of ones each parameter moves by exactly its
group's lr times its phase factor, so every step of every group is
checked."""
import warnings

import pytest
import torch
from torch import nn

from internvl_optim import param_groups
from internvl_optim.runtime.layer_phases import LayerPhaseLR

STEPS = 6
#: head_only=2, unfreeze_every=1: the head (layer 3) from step 0, block 1
#: (layer 2) from step 2, block 0 (layer 1) from step 3
JOIN_AT = {'head.weight': 0, 'blocks.1.weight': 2, 'blocks.0.weight': 3}


def model():
    torch.manual_seed(0)
    m = nn.Sequential()
    m.blocks = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))
    m.head = nn.Linear(2, 1)
    return m.double()


SCHEDULERS = {
    'StepLR': lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, 0.5),
    'SequentialLR': lambda opt: torch.optim.lr_scheduler.SequentialLR(
        opt, [torch.optim.lr_scheduler.LinearLR(opt, 0.25, total_iters=2),
              torch.optim.lr_scheduler.CosineAnnealingLR(opt, 4)], [2]),
    'OneCycleLR': lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g['lr'] for g in opt.param_groups],
        total_steps=STEPS, cycle_momentum=False),
}


def run(scheduler_name, phases_first):
    m = model()
    named = dict(m.named_parameters())
    optimizer = torch.optim.SGD(param_groups(
        m, lr=1.0, layer_decay_rate=0.5,
        layer_phases=dict(head_only=2, unfreeze_every=1)))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no "step() has been overridden"
        if phases_first:
            phases = LayerPhaseLR(optimizer)
            scheduler = SCHEDULERS[scheduler_name](optimizer)
        else:
            scheduler = SCHEDULERS[scheduler_name](optimizer)
            phases = LayerPhaseLR(optimizer)
        moves, lrs = [], []
        for _ in range(STEPS):
            lr = {name: g['lr'] for g in optimizer.param_groups
                  for name in g['param_names']}
            before = {n: named[n].detach().clone() for n in JOIN_AT}
            for p in m.parameters():
                p.grad = torch.ones_like(p)
            optimizer.step()
            phases.step()
            scheduler.step()
            lrs.append({n: lr[n] for n in JOIN_AT})
            moves.append({n: (before[n] - named[n]).flatten()[0].item()
                          for n in JOIN_AT})
    return lrs, moves


@pytest.mark.parametrize('phases_first', [True, False],
                         ids=['phases first', 'scheduler first'])
@pytest.mark.parametrize('scheduler_name', list(SCHEDULERS))
def test_each_group_moves_by_its_scheduled_lr_times_its_phase(
        scheduler_name, phases_first):
    lrs, moves = run(scheduler_name, phases_first)
    for step in range(STEPS):
        for name, join_at in JOIN_AT.items():
            factor = 1.0 if step >= join_at else 0.0
            assert moves[step][name] == pytest.approx(
                lrs[step][name] * factor, rel=1e-9, abs=1e-15), (step, name)
    # the schedulers keep the plan's ratios (head 1, block 1 0.5, block 0
    # 0.25 of the head) at every step, whichever was built first
    for step_lrs in lrs:
        head = step_lrs['head.weight']
        assert step_lrs['blocks.1.weight'] == pytest.approx(head / 2)
        assert step_lrs['blocks.0.weight'] == pytest.approx(head / 4)


def test_step_lr_values_exactly():
    lrs, moves = run('StepLR', phases_first=True)
    assert [m['head.weight'] for m in moves] == [1, .5, .25, .125, .0625,
                                                 .03125]
    assert [m['blocks.1.weight'] for m in moves] == [0, 0, .125, .0625,
                                                     .03125, .015625]
    assert [m['blocks.0.weight'] for m in moves] == [0, 0, 0, .03125,
                                                     .015625, .0078125]


@pytest.mark.parametrize('scheduler_name', list(SCHEDULERS))
def test_both_orders_train_the_same(scheduler_name):
    assert run(scheduler_name, True) == run(scheduler_name, False)


def test_phase_groups_in_a_bare_optimizer_stop_at_the_first_step():
    """Without LayerPhaseLR (or the MMEngine scheduler, or the HF
    callback) the phases would never apply: every layer would train from
    step 0. The first step stops, naming what to add; nothing moved."""
    m = model()
    optimizer = torch.optim.SGD(param_groups(
        m, lr=1.0, layer_decay_rate=0.5, layer_phases=dict(head_only=2)))
    before = [p.detach().clone() for p in m.parameters()]
    for p in m.parameters():
        p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match=(
            r'paramwise_cfg.layer_phases is set but no layer-phase '
            r'scheduler steps this optimizer: every layer would train from '
            r"step 0\. .*LayerPhaseLR\(optimizer\) in plain PyTorch, or "
            r'callbacks=\[LayerPhaseCallback\(optimizer\)\] in HF Trainer')):
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
    # an optimizer without phases is not concerned
    plain = torch.optim.SGD(param_groups(m, lr=1.0, layer_decay_rate=0.5))
    plain.step()
