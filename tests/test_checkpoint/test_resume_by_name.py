"""A resume after the groups changed carries the optimizer state by
parameter name: real MMEngine 0.10.7 runs, saved and resumed with another
``layer_decay_rate``, more blocks unfrozen, or a head ``lr_mult``.

Facts relied on (MMEngine 0.10.7): ``Runner.train`` builds the optimizer
and schedulers, then ``load_or_resume``; ``Runner.resume`` calls hooks'
``after_load_checkpoint`` from ``load_checkpoint`` before it loads
``checkpoint['optimizer']`` into the optimizer wrapper and each
``checkpoint['param_schedulers'][i]`` into the i-th scheduler
(``_ParamScheduler.load_state_dict`` is ``__dict__.update``); the train
loop calls ``before_train`` after that.  ``_ParamScheduler`` sets
``initial_lr`` on every group and keeps ``base_values`` (one per group);
``CosineAnnealingParamScheduler`` updates each group's lr from its current
lr (the chainable form).  PyTorch's ``Optimizer.state_dict`` numbers the
parameters across groups in order and keeps every group key but
``params``.
"""
import itertools

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch import nn

import internvl_optim  # noqa: F401  (registers the constructor and hooks)
from mmengine_toys import TinyViT, toy_loader
from internvl_optim.checkpoint import CheckpointError
from internvl_optim.checkpoint.state_by_name import (StateMatchError,
                                                     adapt_scheduler_state,
                                                     load_state_by_name,
                                                     match_state_by_name)

_names = itertools.count()
BASE_LR = 0.01


class Record(Hook):
    """The optimizer as the run starts training (after any resume) and as
    it ends: per parameter name, its lr, weight decay and state."""

    def __init__(self):
        self.at_start = self.at_end = None
        self.scheduler_bases = None

    @staticmethod
    def snapshot(runner):
        optimizer = runner.optim_wrapper.optimizer
        out = {}
        for group in optimizer.param_groups:
            for name, p in zip(group['param_names'], group['params']):
                state = {k: v.clone() for k, v in
                         optimizer.state.get(p, {}).items()}
                out[name] = (group['lr'], group['weight_decay'], state,
                             group.get('initial_lr'))
        return out

    def before_train(self, runner):
        self.at_start = self.snapshot(runner)
        self.scheduler_bases = [list(s.base_values)
                                for s in runner.param_schedulers]

    def after_train(self, runner):
        self.at_end = self.snapshot(runner)


def make_runner(work_dir, max_iters, paramwise, resume_from=None,
                record=None):
    hooks = [dict(type='CheckpointTrustHook')] + ([record] if record else [])
    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(
        model=TinyViT(), work_dir=str(work_dir),
        experiment_name=f'by_name_{next(_names)}',
        train_dataloader=toy_loader(),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=0.05),
            constructor='LayerDecayOptimizerConstructor',
            paramwise_cfg=dict(num_layers=3, **paramwise)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                 end=2),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=2, end=12,
                 T_max=10, eta_min=0.0)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=4, by_epoch=False)),
        custom_hooks=hooks, resume=resume_from is not None,
        load_from=None if resume_from is None else str(resume_from),
        randomness=dict(seed=0), default_scope='mmengine',
        log_level='WARNING')


BEFORE = dict(layer_decay_rate=0.9)


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """4 iterations at rate 0.9 (iter_4.pth), and the same run carried on
    uninterrupted to 6."""
    work_dir = tmp_path_factory.mktemp('by_name')
    make_runner(work_dir, 4, BEFORE).train()
    straight = Record()
    make_runner(tmp_path_factory.mktemp('straight'), 6, BEFORE,
                record=straight).train()
    checkpoint = torch.load(work_dir / 'iter_4.pth', weights_only=False)
    return work_dir / 'iter_4.pth', checkpoint, straight


def saved_state_by_name(checkpoint):
    optimizer = checkpoint['optimizer']
    by_name, factor = {}, {}
    for group in optimizer['param_groups']:
        for index, name in zip(group['params'], group['param_names']):
            by_name[name] = optimizer['state'].get(index, {})
            factor[name] = group['lr'] / group['initial_lr']
    return by_name, factor


def resume(saved, tmp_path, paramwise, caplog=None):
    path, checkpoint, _ = saved
    record = Record()
    runner = make_runner(tmp_path, 6, paramwise, resume_from=path,
                         record=record)
    runner.train()
    return runner, record


def plan_lr(layer_id, rate, num_layers=3):
    return BASE_LR * rate ** (num_layers + 1 - layer_id)


LAYER = {'backbone.patch_embed.weight': 0, 'backbone.cls_token': 0,
         'backbone.blocks.0.0.weight': 1, 'backbone.blocks.1.0.weight': 2,
         'backbone.blocks.2.0.weight': 3, 'head.weight': 4}


def test_nothing_changed_resumes_bit_identical(saved, tmp_path):
    """Same config: the checkpoint is loaded as it is, and 4 + 2 iterations
    equal 6 uninterrupted ones bit for bit."""
    _, _, straight = saved
    _, record = resume(saved, tmp_path, BEFORE)
    assert record.at_end.keys() == straight.at_end.keys()
    for name, (lr, wd, state, _) in record.at_end.items():
        lr0, wd0, state0, _ = straight.at_end[name]
        assert (lr, wd) == (lr0, wd0), name
        for key in state0:
            assert torch.equal(state[key], state0[key]), (name, key)


def test_another_rate_keeps_every_moment_and_takes_the_new_lrs(saved,
                                                               tmp_path):
    _, checkpoint, _ = saved
    old_state, factor = saved_state_by_name(checkpoint)
    runner, record = resume(saved, tmp_path, dict(layer_decay_rate=0.5))
    assert runner.iter == 6
    start = record.at_start
    assert start.keys() == old_state.keys()  # no parameter added/removed
    (progress,) = set(round(f, 12) for f in factor.values())
    assert 0 < progress < 1  # inside the cosine: a real schedule point
    for name, (lr, wd, state, initial) in start.items():
        assert state.keys() == old_state[name].keys()
        for key, value in old_state[name].items():  # moments and step
            assert torch.equal(state[key], value), (name, key)
        if name in LAYER:
            assert initial == pytest.approx(plan_lr(LAYER[name], 0.5),
                                            rel=1e-12), name
            assert lr == pytest.approx(plan_lr(LAYER[name], 0.5) * progress,
                                       rel=1e-12), name
    # the schedulers' per-group bases are the new groups' initial lrs
    # (and the base lr MMEngine's OptimWrapper shows them as one more group)
    initial = [g['initial_lr'] for g in runner.optim_wrapper.param_groups]
    assert len(initial) == 11 and initial[-1] == BASE_LR
    assert record.scheduler_bases == [initial, initial]
    # two more steps keep the new ratios (the chainable cosine)
    end = record.at_end
    assert end['backbone.blocks.0.0.weight'][0] / end['head.weight'][0] == \
        pytest.approx(0.5 ** 3, rel=1e-9)
    assert end['backbone.cls_token'][0] / end['head.weight'][0] == \
        pytest.approx(0.5 ** 4, rel=1e-9)


def test_the_change_table_is_logged(saved, tmp_path):
    path, checkpoint, _ = saved
    runner = make_runner(tmp_path, 6, dict(layer_decay_rate=0.5),
                         resume_from=path)
    messages = []
    runner.logger.warning = messages.append
    runner.train()
    (table,) = [m for m in messages if 'matched by parameter name' in m]
    lines = table.splitlines()
    assert lines[0] == (
        f'checkpoint {str(path)!r}: Resuming with the optimizer state '
        'matched by parameter name; what changed since the checkpoint:')
    assert lines[1:3] == [
        '  layer_3_decay: lr 0.009 -> 0.005; lr_scale 0.9 -> 0.5',
        '  layer_3_no_decay: lr 0.009 -> 0.005; lr_scale 0.9 -> 0.5']
    assert '  layer_0_decay: lr 0.006561 -> 0.000625; ' \
        'lr_scale 0.6561 -> 0.0625' in lines
    assert len(lines) == 10  # the head's groups did not change
    assert lines[-1] == ('  parameters: 18 keep their state, 0 start '
                         'fresh, 0 dropped')


def test_more_blocks_unfrozen_start_fresh(tmp_path):
    """Saved with blocks 0 and 1 frozen; resumed with block 1 unfrozen: its
    parameters start with no state, the others keep theirs."""
    frozen = dict(layer_decay_rate=0.9, freeze_backbone=[0, 1])
    make_runner(tmp_path / 'a', 4, frozen).train()
    path = tmp_path / 'a' / 'iter_4.pth'
    checkpoint = torch.load(path, weights_only=False)
    old_state, _ = saved_state_by_name(checkpoint)
    assert 'backbone.blocks.1.0.weight' not in old_state
    record = Record()
    make_runner(tmp_path / 'b', 6, dict(frozen, freeze_backbone=[0]),
                resume_from=path, record=record).train()
    start = record.at_start
    assert set(start) - set(old_state) == {
        'backbone.blocks.1.0.weight', 'backbone.blocks.1.0.bias',
        'backbone.blocks.1.1.weight', 'backbone.blocks.1.1.bias'}
    for name in set(start) - set(old_state):
        assert start[name][2] == {}, name  # fresh: no moments, no step
    for name, state in old_state.items():
        for key, value in state.items():
            assert torch.equal(start[name][2][key], value), (name, key)
    # the new block trained in the two resumed iterations
    assert float(record.at_end['backbone.blocks.1.0.weight'][2]['step']) \
        == 2.0


def test_a_head_lr_mult_is_applied_and_moments_kept(saved, tmp_path):
    _, checkpoint, _ = saved
    old_state, factor = saved_state_by_name(checkpoint)
    _, record = resume(saved, tmp_path, dict(
        BEFORE, custom_keys={'head': dict(lr_mult=10.0)}))
    lr, _, state, initial = record.at_start['head.weight']
    assert initial == pytest.approx(BASE_LR * 10, rel=1e-12)
    assert lr == pytest.approx(BASE_LR * 10 * factor['head.weight'],
                               rel=1e-12)
    assert torch.equal(state['exp_avg'], old_state['head.weight']['exp_avg'])
    blocks = record.at_start['backbone.blocks.2.0.weight']
    assert blocks[3] == pytest.approx(plan_lr(3, 0.9), rel=1e-12)


# --- the pure function -----------------------------------------------------------
def test_a_parameter_that_changed_shape_is_named():
    w = torch.zeros(2, 3)
    saved = dict(state={0: dict(step=torch.tensor(1.0),
                                exp_avg=torch.zeros(3, 3))},
                 param_groups=[dict(params=[0], param_names=['blocks.0.w'],
                                    lr=1.0)])
    with pytest.raises(StateMatchError, match=(
            r"optimizer state of 'blocks.0.w': exp_avg has shape \[3, 3\] "
            r'in the checkpoint, the parameter is \[2, 3\] now')):
        match_state_by_name(saved, [dict(params=[w], param_names=[
            'blocks.0.w'], lr=0.5)])
    assert issubclass(StateMatchError, CheckpointError)


def test_without_names_nothing_is_matched():
    saved = dict(state={}, param_groups=[dict(params=[0], lr=1.0)])
    live = [dict(params=[torch.zeros(1)], param_names=['w'], lr=1.0)]
    assert match_state_by_name(saved, live) is None


def test_plain_pytorch_and_a_lambda_scheduler():
    """``load_state_by_name`` for an optimizer and a ``LambdaLR`` (what HF
    ``Trainer`` builds): the saved layout had one group, the new one two;
    the scheduler's ``base_lrs`` become the new groups'."""
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(2)), nn.Parameter(torch.randn(3))
    old = torch.optim.AdamW([dict(params=[a, b], param_names=['a', 'b'],
                                  lr=0.1)])
    sched = torch.optim.lr_scheduler.LambdaLR(old, lambda s: 1 / (s + 1))
    for _ in range(3):
        (a.sum() + b.sum()).backward()
        old.step()
        sched.step()
    saved, saved_sched = old.state_dict(), sched.state_dict()

    new = torch.optim.AdamW([dict(params=[b], param_names=['b'], lr=0.2),
                             dict(params=[a], param_names=['a'], lr=0.05)])
    new_sched = torch.optim.lr_scheduler.LambdaLR(new, lambda s: 1 / (s + 1))
    messages = []
    match = load_state_by_name(new, saved, [new_sched], [saved_sched],
                               warn=messages.append)
    assert match.kept == ['b', 'a']
    assert match.moved == [('a', 'group 0', 'group 1')]
    assert torch.equal(new.state[a]['exp_avg'], old.state[a]['exp_avg'])
    assert torch.equal(new.state[b]['exp_avg_sq'],
                       old.state[b]['exp_avg_sq'])
    assert new_sched.base_lrs == [0.2, 0.05]
    assert [g['lr'] for g in new.param_groups] == pytest.approx(
        [0.2 / 4, 0.05 / 4])
    new_sched.step()
    assert [g['lr'] for g in new.param_groups] == pytest.approx(
        [0.2 / 5, 0.05 / 5])
    assert 'group 1: new group (1 parameters; lr=0.05' in messages[0]


def test_a_per_group_list_the_scheduler_does_not_know_is_refused():
    with pytest.raises(StateMatchError, match="scheduler state 'eta_mins' "
                       'holds one value per saved group'):
        adapt_scheduler_state(dict(eta_mins=[0.1, 0.2], last_epoch=3),
                              dict(eta_mins=[0.1]), [dict(lr=1.0)], 2)


def test_a_schedule_point_that_would_overflow_the_lr_is_refused():
    """lr and initial_lr are each in range, but their ratio from the file
    (1e4 / 1e-300) would carry the new lr far above 1e4."""
    w = torch.zeros(2)
    saved = dict(state={}, param_groups=[dict(
        params=[0], param_names=['w'], lr=1e4, initial_lr=1e-300,
        group_name='layer_1_decay')])
    live = [dict(params=[w], param_names=['w'], lr=0.5, initial_lr=0.5,
                 weight_decay=0.1, group_name='layer_1_decay')]
    with pytest.raises(StateMatchError, match=(
            r"layer_1_decay: the checkpoint's lr / initial_lr \(1e\+304\) "
            r'would put lr at 5e\+303 \(valid: finite, at most 10000\)')):
        match_state_by_name(saved, live)
