"""DeepSpeed checkpoints through tools/train.py carry the ZeRO state by
parameter name (``state_by_name_rank{r}.pth`` beside DeepSpeed's files):
resumed on another number of ranks, or with other groups, each parameter
takes its own state; the schedule continues where it was."""
import os

import pytest

from internvl_optim.checkpoint.safe_loading import (
    allow_deepspeed_checkpoints, load_checkpoint_file)
from test_distributed import ROOT, resume_dir, scalars, train

pytestmark = pytest.mark.slow
CONFIG = os.path.join(ROOT, 'configs/demo/'
                      'internvit_tiny_upernet_synthetic_ade20k_deepspeed.py')
OPTIONS = ['strategy.zero_optimization.stage=2', 'train_cfg.max_iters=8',
           'default_hooks.checkpoint.interval=4',
           'default_hooks.logger.interval=1', 'train_cfg.val_interval=100']


def saved_groups(checkpoint_dir):
    allow_deepspeed_checkpoints()
    return load_checkpoint_file(str(
        checkpoint_dir / 'zero_pp_rank_0_mp_rank_00_optim_states.pt')
    )['optimizer_state_dict']['base_optimizer_state']['param_groups']


def test_zero2_resumes_on_another_number_of_ranks_or_groups(data_root,
                                                            tmp_path):
    straight = tmp_path / 'straight'
    train(2, data_root, straight, *OPTIONS, config=CONFIG)
    assert sorted(f for f in os.listdir(straight / 'iter_4.pth')
                  if f.startswith('state_by_name')) == [
        'state_by_name_rank0.pth', 'state_by_name_rank1.pth']

    one = resume_dir(tmp_path, 'one', straight / 'iter_4.pth')
    log = train(1, data_root, one, *OPTIONS, config=CONFIG, resume=True)
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'iter_4.pth: saved by 2 ranks, resumed on 1; the ZeRO-2 state ' \
        'is taken by parameter name: 107 parameters keep their state, 0 ' \
        'start fresh, 0 dropped' in log
    # the schedule goes on where it was: lr and base_lr of iterations 5-8
    # are the uninterrupted run's (the loss is not: one rank sees another
    # data split)
    expected = scalars(straight)
    assert {i: s[1:] for i, s in scalars(one).items()} == {
        i: expected[i][1:] for i in range(5, 9)}
    assert sorted(f for f in os.listdir(one / 'iter_8.pth')
                  if f.startswith('state_by_name')) == [
        'state_by_name_rank0.pth']

    # without the state by name, DeepSpeed's files only fit 2 ranks
    bare = resume_dir(tmp_path, 'bare', straight / 'iter_4.pth')
    for rank in (0, 1):
        os.remove(bare / 'iter_4.pth' / f'state_by_name_rank{rank}.pth')
    with pytest.raises(AssertionError, match=(
            r'DeepSpeed ZeRO checkpoint saved by 2 ranks without its state '
            r'by parameter name; it can only be resumed on 2 ranks, not 1')):
        train(1, data_root, bare, *OPTIONS, config=CONFIG, resume=True)


    # on 2 ranks again, with another layer_decay_rate: the groups' new
    # ratios, on the schedule's point
    changed = resume_dir(tmp_path, 'changed', straight / 'iter_4.pth')
    log = train(2, data_root, changed, *OPTIONS,
                'optim_wrapper.paramwise_cfg.layer_decay_rate=0.5',
                config=CONFIG, resume=True)
    assert 'resumed epoch: 0, iter: 4' in log
    assert 'saved by 2 ranks, resumed on 2; the ZeRO-2 state is taken by ' \
        'parameter name: 107 parameters keep their state, 0 start fresh, 0 ' \
        'dropped\nResuming with the optimizer state matched by parameter ' \
        'name; what changed since the checkpoint:' in log
    groups = saved_groups(changed / 'iter_8.pth')
    assert [g['lr_scale'] for g in groups[::2]] == pytest.approx(
        [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125])
    for group in groups:
        assert group['lr'] == pytest.approx(groups[0]['lr'] *
                                            group['lr_scale'])
    assert {i: s[1:] for i, s in scalars(changed).items()} == {
        i: expected[i][1:] for i in range(5, 9)}

    # and under another ZeRO stage: ZeRO-1 on 2 ranks from the ZeRO-2 save
    stage1 = resume_dir(tmp_path, 'stage1', straight / 'iter_4.pth')
    log = train(2, data_root, stage1, *OPTIONS,
                'strategy.zero_optimization.stage=1', config=CONFIG,
                resume=True)
    assert 'saved by 2 ranks, resumed on 2; the ZeRO-1 state is taken by ' \
        'parameter name (saved under ZeRO-2): 107 parameters keep their ' \
        'state, 0 start fresh, 0 dropped' in log
    assert {i: s[1:] for i, s in scalars(stage1).items()} == {
        i: expected[i][1:] for i in range(5, 9)}
