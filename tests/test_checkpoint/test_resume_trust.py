"""Everything --resume takes from a checkpoint is checked before MMEngine
acts on it: a real MMEngine 0.10.7 Runner, a toy model and a
toy metric, checkpoints it wrote itself and then crafted.

Facts from MMEngine 0.10.7 (``mmengine/hooks/checkpoint_hook.py``): with
``save_best``, ``before_train`` reads ``message_hub.runtime_info
['best_ckpt']`` and, at the next better score, ``after_val_epoch`` removes
that file ("The previous best checkpoint <path> is removed");
``keep_ckpt_ids`` names ``iter_{id}.pth`` files it removes.
``Runner.resume`` sets the loop's iteration from ``meta.iter`` and
advances the dataloader that many steps; ``_ParamScheduler.
load_state_dict`` is ``self.__dict__.update(state_dict)``.
"""
import copy
import itertools
import re

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import internvl_optim  # noqa: F401  (registers CheckpointTrustHook)
from internvl_optim.checkpoint import CheckpointError

_names = itertools.count()


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.norm = nn.BatchNorm1d(1)  # an int64 buffer: num_batches_tracked

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.norm(self.linear(inputs))
        if mode == 'loss':
            return dict(loss=(out ** 2).mean())
        return [dict(out=o) for o in out]


class ToyData(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.0]))


class RisingScore(BaseMetric):
    """A validation score that improves every time (so CheckpointHook
    replaces its best checkpoint each validation)."""
    calls = 0

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        RisingScore.calls += 1
        return dict(score=float(RisingScore.calls))


def make_runner(work_dir, max_iters, load_from=None, trust=True,
                trust_args=None, schedulers=None):
    loader = dict(dataset=ToyData(), batch_size=2, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='default_collate'))  # a batch tensor
    hooks = ([dict(type='CheckpointTrustHook', **(trust_args or {}))]
             if trust else [])
    return Runner(
        model=ToyModel(), work_dir=str(work_dir),
        experiment_name=f'trust_{next(_names)}',
        train_dataloader=loader, val_dataloader=loader,
        val_evaluator=dict(type=RisingScore), val_cfg=dict(),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=2),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01,
                                          weight_decay=0.0)),
        param_scheduler=schedulers or [dict(type='LinearLR',
                                            start_factor=0.5, by_epoch=False,
                                            begin=0, end=2)],
        default_hooks=dict(checkpoint=dict(
            type='CheckpointHook', interval=2, by_epoch=False,
            save_best='score', rule='greater')),
        custom_hooks=hooks, resume=load_from is not None,
        load_from=None if load_from is None else str(load_from),
        default_scope='mmengine', log_level='WARNING')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 4-iteration run: iter_2.pth, iter_4.pth and a best checkpoint."""
    work_dir = tmp_path_factory.mktemp('trained')
    make_runner(work_dir, 4).train()
    return work_dir


def crafted(trained, tmp_path, change):
    checkpoint = torch.load(trained / 'iter_4.pth', weights_only=True)
    change(checkpoint)
    path = tmp_path / 'crafted.pth'
    torch.save(checkpoint, path)
    return path


def resume(path, work_dir, max_iters=6, **kw):
    runner = make_runner(work_dir, max_iters, load_from=path, **kw)
    runner.train()
    return runner


def test_an_untouched_checkpoint_resumes(trained, tmp_path):
    path = crafted(trained, tmp_path, lambda c: None)
    runner = resume(path, tmp_path / 'w')
    assert runner.iter == 6


# --- the file-deletion attack ---------------------------------------------------

def _point_best_ckpt_at(victim):
    def change(checkpoint):
        checkpoint['message_hub']['runtime_info']['best_ckpt'] = str(victim)
        checkpoint['message_hub']['runtime_info']['best_score'] = -1e9
    return change


def test_without_the_hook_mmengine_deletes_the_named_file(trained, tmp_path):
    """The attack is real: plain MMEngine removes the file."""
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    path = crafted(trained, tmp_path, _point_best_ckpt_at(victim))
    resume(path, tmp_path / 'w', trust=False)
    assert not victim.exists()


def test_with_the_hook_the_named_file_survives(trained, tmp_path):
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    path = crafted(trained, tmp_path, _point_best_ckpt_at(victim))
    work_dir = tmp_path / 'w'
    runner = make_runner(work_dir, 6, load_from=path)
    messages = []
    runner.logger.warning = messages.append
    runner.train()
    assert victim.read_text() == 'precious'
    # last_ckpt names the trained run's iter_4.pth: another work dir
    assert messages[0] == (
        f"checkpoint '{path}': dropped from message_hub.runtime_info: "
        f"last_ckpt='{trained / 'iter_4.pth'}' (not a checkpoint file of "
        "this work dir; CheckpointHook would delete it); "
        f"best_ckpt='{victim}' (not a checkpoint file of this work dir; "
        'CheckpointHook would delete it)')
    # the run's own best checkpoint is still managed: iter 6 is the best
    assert sorted(p.name for p in work_dir.glob('best_*.pth')) == [
        'best_score_iter_6.pth']


def test_keep_ckpt_ids_outside_the_run_are_dropped(trained, tmp_path):
    def change(checkpoint):
        checkpoint['message_hub']['runtime_info']['keep_ckpt_ids'] = [
            '../../victim', 10 ** 9]
    path = crafted(trained, tmp_path, change)
    runner = make_runner(tmp_path / 'w', 6, load_from=path)
    messages = []
    runner.logger.warning = messages.append
    runner.train()
    assert messages[0].startswith(
        f"checkpoint '{path}': dropped from message_hub.runtime_info: ")
    assert messages[0].endswith(
        "; keep_ckpt_ids=['../../victim', 1000000000] (must be iterations or "
        'epochs of this run; CheckpointHook deletes the checkpoints they '
        'name)')


def test_a_best_ckpt_inside_the_work_dir_is_kept(trained, tmp_path):
    """The run's own bookkeeping survives a resume in the same dir."""
    work_dir = tmp_path / 'same'
    make_runner(work_dir, 4).train()
    best = work_dir / 'best_score_iter_4.pth'
    assert best.exists()
    resume(work_dir / 'iter_4.pth', work_dir, max_iters=6)
    assert not best.exists()  # replaced by the new best, as MMEngine does
    assert (work_dir / 'best_score_iter_6.pth').exists()


# --- numbers that would hang or poison the run --------------------------------

@pytest.mark.parametrize('value, message', [
    (10 ** 12, 'meta.iter=1000000000000 is outside [0, 6] (this run\'s '
               'max_iters)'),
    (-5, 'meta.iter=-5 is outside [0, 6] (this run\'s max_iters)'),
    ('4', "meta.iter must be an int in [0, 6] (this run's max_iters), "
          "got '4'"),
])
def test_meta_iter_out_of_range_is_refused(trained, tmp_path, value,
                                           message):
    path = crafted(trained, tmp_path,
                   lambda c: c['meta'].__setitem__('iter', value))
    with pytest.raises(CheckpointError) as err:
        resume(path, tmp_path / 'w')
    assert str(err.value) == f"checkpoint '{path}': {message}"


def _set(*path_and_value):
    """A change that sets ``checkpoint[k1][k2]...[kn] = value``."""
    *path, value = path_and_value

    def change(checkpoint):
        node = checkpoint
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _nan_moment(checkpoint):
    checkpoint['optimizer']['state'][0]['exp_avg'][0, 0] = float('nan')


def _moment_adam_cannot_write(checkpoint):
    state = checkpoint['optimizer']['state'][0]
    state['exp_avg'][0, 0] = 1e30
    state['exp_avg_sq'][0, 0] = 0.0


def _uint8_step(checkpoint):
    checkpoint['optimizer']['state'][0]['step'] = torch.tensor(
        4, dtype=torch.uint8)


def _complex_moment(checkpoint):
    state = checkpoint['optimizer']['state'][0]
    state['exp_avg'] = state['exp_avg'].to(torch.complex64)


def _state_keyed_by_strings(checkpoint):
    state = checkpoint['optimizer']['state']
    checkpoint['optimizer']['state'] = {str(k): v for k, v in state.items()}


def _every_group_at_lr_0(checkpoint):
    for group in checkpoint['optimizer']['param_groups']:
        group['lr'] = 0.0


def _integer_weight(checkpoint):
    checkpoint['state_dict']['linear.weight'] = torch.ones(
        1, 2, dtype=torch.int64)


def _missing_and_extra_weights(checkpoint):
    del checkpoint['state_dict']['linear.bias']
    checkpoint['state_dict']['head.weight'] = torch.zeros(3)


#: a crafted field of the checkpoint, and the whole message that names it
REFUSED = {
    'optimizer lr inf': (
        _set('optimizer', 'param_groups', 0, 'lr', float('inf')),
        'optimizer.param_groups[0].lr must be a finite number, got inf'),
    'optimizer flag of the wrong type': (
        _set('optimizer', 'param_groups', 0, 'amsgrad', 'yes'),
        "optimizer.param_groups[0].amsgrad must be bool like the run's "
        "False, got 'yes'"),
    'optimizer moments with NaN': (
        _nan_moment, 'optimizer.state[0].exp_avg holds NaN or Inf'),
    'a moment Adam cannot write': (
        _moment_adam_cannot_write,
        'optimizer.state[0]: exp_avg 1e+30 with exp_avg_sq '
        '0 (element 0): no run of Adam with betas (0.9, 0.999) gives '
        '|exp_avg| above 7.27 x sqrt(exp_avg_sq); the state was not written '
        'by Adam'),
    'a uint8 step': (
        _uint8_step,
        'optimizer.state[0].step is a torch.uint8 tensor; a '
        'step count must be a float32 / int64 tensor or an int (Adam keeps '
        'a float32 one)'),
    'a complex moment': (
        _complex_moment,
        "optimizer.state[0].exp_avg is torch.complex64; "
        "Adam's moments are real floating tensors (a complex or integer one "
        'is not what Adam wrote)'),
    'state keyed by strings': (
        _state_keyed_by_strings,
        "optimizer.state has 4 key(s) that are no parameter of its "
        "param_groups ('0', a str; the groups hold 0 to 3): their state "
        'would be dropped; the file was cut or crafted'),
    'every group at lr 0': (
        _every_group_at_lr_0,
        "optimizer.param_groups[0]: the checkpoint's lr is 0 with "
        'initial_lr 0.01: the schedulers, which scale the current lr, '
        'would keep it at 0 for the rest of the run. A run that ended at lr 0 continues from its '
        'weights (load_from=CHECKPOINT without --resume) with a new '
        'schedule'),
    'scheduler value inf': (
        _set('param_schedulers', 0, 'base_values', [float('inf')]),
        'param_schedulers[0].base_values[0] must be a finite number, got '
        'inf'),
    'scheduler attribute it does not have': (
        _set('param_schedulers', 0, 'optimizer', 0),
        "param_schedulers[0] sets ['optimizer'], which the configured "
        'scheduler does not have'),
    'scheduler start_factor 0': (
        _set('param_schedulers', 0, 'start_factor', 0.0),
        'param_schedulers[0].start_factor must be in (0, 1], got 0.0'),
    'integer weights': (
        _integer_weight,
        '1 entry of the weights cannot be loaded into floating parameters: '
        'linear.weight (torch.int64, the model holds torch.float32). '
        'load_state_dict would cast them silently; this is not a checkpoint '
        'of this model, or it is damaged'),
    'missing and extra weights': (
        _missing_and_extra_weights,
        'its weights do not match the model being resumed: missing 1 '
        '(linear.bias), unexpected 1 (head.weight), shape mismatches 0. '
        'Resume needs the checkpoint of this config; to start from other '
        'weights, use load_from=CHECKPOINT without --resume'),
}


@pytest.mark.parametrize('case', list(REFUSED))
def test_a_crafted_field_is_refused_naming_it(trained, tmp_path, case):
    change, message = REFUSED[case]
    path = crafted(trained, tmp_path, change)
    with pytest.raises(CheckpointError) as err:
        resume(path, tmp_path / 'w')
    assert str(err.value) == f"checkpoint '{path}': {message}"


def test_scheduler_count_must_match(trained, tmp_path):
    path = crafted(trained, tmp_path, lambda c: None)
    two = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                end=2),
           dict(type='ConstantLR', factor=0.5, by_epoch=False, begin=2,
                end=6)]
    with pytest.raises(CheckpointError) as err:
        resume(path, tmp_path / 'w', schedulers=two)
    assert str(err.value).startswith(
        f"checkpoint '{path}': param_schedulers holds 1 scheduler state(s), "
        'the config has 2 param_scheduler(s)')


# --- weights ------------------------------------------------------------------

def test_nan_weights_are_refused_unless_allowed(trained, tmp_path):
    def change(checkpoint):
        checkpoint['state_dict']['linear.weight'][0, 1] = float('nan')
        checkpoint['state_dict']['linear.bias'][0] = float('inf')
    path = crafted(trained, tmp_path, change)
    with pytest.raises(CheckpointError) as err:
        resume(path, tmp_path / 'w')
    assert str(err.value) == (
        f"checkpoint '{path}': 2 tensor(s) hold NaN or Inf: linear.weight (1 "
        'of 2 values), linear.bias (1 of 1 values). Training from them gives '
        'a NaN loss at the first step; the file is damaged or was saved '
        'after training diverged. To load them anyway: '
        "custom_hooks=[dict(type='CheckpointTrustHook', "
        'allow_nonfinite_weights=True)]')
    runner = make_runner(tmp_path / 'w2', 6, load_from=path,
                         trust_args=dict(allow_nonfinite_weights=True))
    runner.train()
    assert torch.isnan(runner.model.linear.weight).any()


def test_load_from_without_resume_allows_other_keys(trained, tmp_path):
    """Fine-tuning from other weights (load_from, no resume): extra keys
    stay MMEngine's warning, but NaN is still refused."""
    def change(checkpoint):
        checkpoint['state_dict']['head.weight'] = torch.zeros(3)
    path = crafted(trained, tmp_path, change)
    runner = make_runner(tmp_path / 'w', 2)
    runner.load_checkpoint(str(path))
    saved = torch.load(path, weights_only=True)['state_dict']
    assert torch.equal(runner.model.linear.weight.detach(),
                       saved['linear.weight'])

    def poison(checkpoint):
        checkpoint['state_dict']['linear.weight'][0, 0] = float('nan')
    path = crafted(trained, tmp_path, poison)
    runner = make_runner(tmp_path / 'w2', 2)
    with pytest.raises(CheckpointError, match=re.escape(
            '1 tensor(s) hold NaN or Inf: linear.weight (1 of 2 values)')):
        runner.load_checkpoint(str(path))
    assert not torch.isnan(runner.model.linear.weight).any()


# --- containers of the wrong type -------------------------------------------------

@pytest.mark.parametrize('field, value, message', [
    ('message_hub', [], 'message_hub must be a dict, got a list'),
    ('message_hub', torch.zeros(1), 'message_hub must be a dict, got a '
                                    'Tensor'),
    ('meta', 'x', 'meta must be a dict, got a str'),
    ('optimizer', [1], 'optimizer must be a dict, got a list'),
    ('param_schedulers', 3, 'param_schedulers must be a list of scheduler '
                            'state dicts'),
])
def test_wrong_containers_name_the_field(trained, tmp_path, field, value,
                                         message):
    path = crafted(trained, tmp_path,
                   lambda c: c.__setitem__(field, copy.deepcopy(value)))
    with pytest.raises(CheckpointError) as err:
        resume(path, tmp_path / 'w')
    assert str(err.value) == f"checkpoint '{path}': {message}"


def test_runtime_info_of_the_wrong_type_names_the_field(trained, tmp_path):
    path = crafted(trained, tmp_path, lambda c: c['message_hub'].__setitem__(
        'runtime_info', torch.zeros(2)))
    with pytest.raises(CheckpointError, match=re.escape(
            'message_hub.runtime_info must be a dict, got a Tensor')):
        resume(path, tmp_path / 'w')


@pytest.mark.parametrize('kind', ['kept checkpoint', 'link to a directory'])
def test_a_best_ckpt_naming_a_file_this_run_did_not_write_as_best_is_dropped(
        trained, tmp_path, kind):
    """Inside the work dir is not enough: a best_ckpt naming iter_2.pth
    (a checkpoint the user keeps) would be deleted at the next better
    score, and one naming a link to a directory crashed the run."""
    work_dir = tmp_path / 'w'
    work_dir.mkdir()
    if kind == 'kept checkpoint':
        victim = work_dir / 'iter_2.pth'
        victim.write_bytes(b'kept')
    else:
        target = tmp_path / 'elsewhere'
        target.mkdir()
        (target / 'data.bin').write_bytes(b'kept')
        victim = work_dir / 'best_score_iter_2.pth'
        victim.symlink_to(target, target_is_directory=True)
    path = crafted(trained, tmp_path, _point_best_ckpt_at(victim))
    runner = make_runner(work_dir, 6, load_from=path)
    messages = []
    runner.logger.warning = messages.append
    runner.train()
    assert any(f"best_ckpt='{victim}' (not a best checkpoint CheckpointHook "
               'wrote: best_<metric>_<iter|epoch>_<n>.pth, a plain file; the '
               'next better score would delete it)' in m for m in messages)
    if kind == 'kept checkpoint':
        assert victim.read_bytes() == b'kept'
    else:
        assert (tmp_path / 'elsewhere' / 'data.bin').read_bytes() == b'kept'
        assert victim.is_symlink()
    assert (work_dir / 'best_score_iter_6.pth').exists()


def test_group_values_of_an_unnamed_state_never_override_the_config(
        trained, tmp_path):
    """param_names stripped: the state loads by position, and the group
    hyperparameters are still the config's (maximize, eps), the lr at the
    point of its schedule the checkpoint reached."""
    def change(checkpoint):
        for group in checkpoint['optimizer']['param_groups']:
            group.pop('param_names', None)
            group['maximize'] = True
            group['eps'] = 0.5
    path = crafted(trained, tmp_path, change)
    runner = make_runner(tmp_path / 'w', 5, load_from=path)
    runner.train()
    groups = runner.optim_wrapper.optimizer.param_groups
    assert [g['maximize'] for g in groups] == [False] * len(groups)
    assert [g['eps'] for g in groups] == [1e-8] * len(groups)
    assert runner.iter == 5



def _zero_dim_moments(checkpoint):
    state = checkpoint['optimizer']['state'][0]
    state['exp_avg'] = torch.tensor(0.1)
    state['exp_avg_sq'] = torch.tensor(0.1)


def _group_without_lr_and_betas(checkpoint):
    group = checkpoint['optimizer']['param_groups'][0]
    del group['lr'], group['betas']


@pytest.mark.parametrize('change, message', [
    (_zero_dim_moments, 'optimizer.state[0].exp_avg has shape (), the '
     'parameter [1, 2]'),
    (_group_without_lr_and_betas, 'optimizer.param_groups[0] has no betas, '
     'lr: every group the optimizer saves holds all its hyperparameters'),
])
def test_cut_states_are_refused(trained, tmp_path, change, message):
    path = crafted(trained, tmp_path, change)
    with pytest.raises(CheckpointError) as err:
        resume(path, tmp_path / 'w')
    assert str(err.value).startswith(f"checkpoint '{path}': {message}")
