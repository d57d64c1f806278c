"""Phases over layers in real MMEngine 0.10.7 runs: ``LayerPhaseScheduler``
beside LinearLR and CosineAnnealingLR, each layer moving only from the
iteration it joins, and ``--resume`` inside the phases equal bit for bit to
an uninterrupted run.

Facts relied on (MMEngine 0.10.7): ``ParamSchedulerHook.after_train_iter``
steps every iteration-based scheduler after the optimizer step; a
``_ParamScheduler`` steps once at construction (``last_step`` 0 at the
first iteration); ``Runner.resume`` loads each scheduler's saved
``__dict__``."""
import itertools

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import internvl_optim  # noqa: F401  (registers the scheduler)
from internvl_optim.engine.train_config import add_layer_phase_scheduler
from mmengine_toys import TinyViT, toy_loader

_names = itertools.count()
PHASES = dict(head_only=2, unfreeze_every=1, warmup=2)
#: head (layer 4) from 0; blocks.2 (layer 3) at 2, blocks.1 at 3, blocks.0
#: at 4, the embeddings at 5
JOIN = {'head': 0, 'backbone.blocks.2': 2, 'backbone.blocks.1': 3,
        'backbone.blocks.0': 4, 'backbone.patch_embed': 5,
        'backbone.cls_token': 5, 'backbone.pos_embed': 5}


class Moves(Hook):
    """Which parameters each iteration changed."""

    def __init__(self):
        self.before, self.moved = None, []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.before = {n: p.detach().clone()
                       for n, p in runner.model.named_parameters()}

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.moved.append({n for n, p in runner.model.named_parameters()
                           if not torch.equal(p, self.before[n])})


def make_runner(work_dir, max_iters, resume_from=None, hooks=(),
                phase_scheduler=True):
    torch.manual_seed(0)
    schedulers = [dict(type='LinearLR', start_factor=0.5, by_epoch=False,
                       begin=0, end=2),
                  dict(type='CosineAnnealingLR', by_epoch=False, begin=2,
                       end=12, T_max=10)]
    if phase_scheduler:
        schedulers.append(dict(type='LayerPhaseScheduler'))
    return Runner(
        model=TinyViT(), work_dir=str(work_dir),
        experiment_name=f'phases_{next(_names)}',
        train_dataloader=toy_loader(),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.05),
            constructor='LayerDecayOptimizerConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.9, layer_phases=PHASES)),
        param_scheduler=schedulers,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=3, by_epoch=False)),
        custom_hooks=[dict(type='CheckpointTrustHook'), *hooks],
        resume=resume_from is not None,
        load_from=None if resume_from is None else str(resume_from),
        randomness=dict(seed=0), default_scope='mmengine',
        log_level='WARNING')


def joined(step):
    return {p for p, at in JOIN.items() if at <= step}


def test_each_layer_moves_from_the_iteration_it_joins(tmp_path):
    moves = Moves()
    runner = make_runner(tmp_path, 7, hooks=[moves])
    runner.train()
    for step, moved in enumerate(moves.moved):
        assert {p for p in JOIN if any(n.startswith(p) for n in moved)} == \
            joined(step), step
    # the other schedulers were not disturbed: the groups' lrs keep the
    # layer ratios of the plan (phases act inside the step only)
    groups = runner.optim_wrapper.optimizer.param_groups
    head = groups[0]['lr']
    assert [round(g['lr'] / head, 12) for g in groups[::2]] == [
        1.0, 0.9, 0.81, 0.729, 0.6561]


def test_resume_inside_the_phases_is_bit_identical(tmp_path):
    straight = make_runner(tmp_path / 'straight', 8)
    straight.train()
    make_runner(tmp_path / 'a', 3).train()  # iter_3.pth: block 1 joins at 3
    resumed = make_runner(tmp_path / 'b', 8,
                          resume_from=tmp_path / 'a' / 'iter_3.pth')
    resumed.train()
    for (n, p), (_, q) in zip(resumed.model.named_parameters(),
                              straight.model.named_parameters()):
        assert torch.equal(p, q), n
    assert resumed.param_schedulers[-1].last_step == 8


def test_phases_without_the_scheduler_stop_before_the_first_update(tmp_path):
    runner = make_runner(tmp_path, 2, phase_scheduler=False)
    with pytest.raises(RuntimeError, match=(
            'paramwise_cfg.layer_phases is set but no layer-phase scheduler '
            'steps this optimizer')):
        runner.train()


def test_train_py_adds_the_scheduler_once():
    cfg = Config(dict(optim_wrapper=dict(paramwise_cfg=dict(
        layer_phases=PHASES)), param_scheduler=dict(type='LinearLR')))
    add_layer_phase_scheduler(cfg)
    assert [s['type'] for s in cfg.param_scheduler] == [
        'LinearLR', 'LayerPhaseScheduler']
    add_layer_phase_scheduler(cfg)
    assert len(cfg.param_scheduler) == 2
    plain = Config(dict(optim_wrapper=dict(paramwise_cfg=dict()),
                        param_scheduler=[]))
    add_layer_phase_scheduler(plain)
    assert plain.param_scheduler == []


def test_a_scheduler_by_epoch_against_phases_by_iteration_is_named(tmp_path):
    runner = make_runner(tmp_path, 2)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    with pytest.raises(ValueError, match=(
            r'LayerPhaseScheduler\(by_epoch=True\) but '
            r'paramwise_cfg.layer_phases.by_epoch is False')):
        runner.build_param_scheduler([dict(type='LayerPhaseScheduler',
                                           by_epoch=True)])
    with pytest.raises(ValueError, match=(
            r'LayerPhaseScheduler\(begin=5\): the phases count from the '
            'start of the run')):
        runner.build_param_scheduler([dict(type='LayerPhaseScheduler',
                                           begin=5)])


@pytest.mark.parametrize('state, message', [
    (dict(by_epoch=False), 'last_step must be the count of steps taken, '
     'an int from 0 to 100,000,000, got None'),
    (dict(last_step=-1, by_epoch=False), 'got -1'),
    (dict(last_step=10**9, by_epoch=False), 'got 1000000000'),
    (dict(last_step=3, by_epoch=True), 'by_epoch=True in the checkpoint, '
     'False in the config'),
])
def test_odd_saved_phase_states_are_refused(state, message):
    from mmengine.optim import OptimWrapper
    from internvl_optim import param_groups
    from internvl_optim.engine.schedulers import LayerPhaseScheduler
    model = TinyViT()
    optimizer = torch.optim.SGD(param_groups(
        model, lr=0.1, layer_decay_rate=0.5,
        layer_phases=dict(head_only=2, unfreeze_every=1)))
    scheduler = LayerPhaseScheduler(OptimWrapper(optimizer))
    with pytest.raises(ValueError) as err:
        scheduler.load_state_dict(state)
    assert message in str(err.value)
    scheduler.load_state_dict(dict(scheduler.state_dict(), last_step=3))
    assert scheduler.last_step == 3
