"""Checkpoints written to a new name and renamed into place, and
``last_checkpoint`` made anew at each save: a link (symbolic or hard)
standing at a name the run writes is replaced, never written through, even
one planted after the work dir was checked.  A real MMEngine 0.10.7 Runner
with the settings ``tools/train.py`` gives it."""
import os
import stat

import torch
from mmengine.config import Config
from mmengine.runner import Runner

import internvl_optim  # noqa: F401  (registers the hook and the backend)
from internvl_optim.checkpoint.safe_loading import load_checkpoint_file
from internvl_optim.engine.hooks.fresh_writes_hook import (
    BACKEND, write_then_rename)
from internvl_optim.engine.train_config import write_checkpoints_by_rename

from mmengine_toys import TinyViT, toy_loader


def test_write_then_rename_replaces_links_and_keeps_the_mode(tmp_path):
    precious = tmp_path / 'precious'
    precious.write_bytes(b'precious')
    hard = tmp_path / 'hard.pth'
    os.link(precious, hard)
    soft = tmp_path / 'soft.pth'
    soft.symlink_to(precious)
    for path in (hard, soft):
        write_then_rename(b'checkpoint', str(path))
        assert path.read_bytes() == b'checkpoint'
        assert not path.is_symlink() and os.stat(path).st_nlink == 1
    assert precious.read_bytes() == b'precious'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(hard).st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'hard.pth', 'precious', 'soft.pth']  # no temporary file left


def test_a_runner_writes_through_no_link_planted_in_its_work_dir(tmp_path):
    """Links planted at the names a 4-iteration run writes (as a process
    could while it trains): every target keeps its content, the run's
    files are new files under those names."""
    work = tmp_path / 'work'
    work.mkdir()
    precious = tmp_path / 'precious'
    precious.write_text('precious')
    os.link(precious, work / 'iter_2.pth')
    (work / 'iter_4.pth').symlink_to(precious)
    (work / 'last_checkpoint').symlink_to(precious)
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(
        type='CheckpointHook', interval=2, by_epoch=False))))
    write_checkpoints_by_rename(cfg)
    assert cfg.default_hooks.checkpoint.backend_args == dict(
        backend=BACKEND)
    torch.manual_seed(0)
    Runner(model=TinyViT(), work_dir=str(work), experiment_name='renamed',
           train_dataloader=toy_loader(),
           train_cfg=dict(by_epoch=False, max_iters=4),
           optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
           default_hooks=cfg.default_hooks.to_dict(),
           custom_hooks=cfg.custom_hooks,
           default_scope='mmengine', log_level='WARNING').train()
    assert precious.read_text() == 'precious'
    for name in ('iter_2.pth', 'iter_4.pth', 'last_checkpoint'):
        path = work / name
        assert not path.is_symlink() and os.stat(path).st_nlink == 1
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_4.pth')
    assert load_checkpoint_file(str(work / 'iter_4.pth'))['meta'][
        'iter'] == 4


def test_a_checkpoint_hook_with_its_own_backend_is_left_alone():
    for hook in (dict(type='CheckpointHook', backend_args=dict(
                     backend='petrel')),
                 dict(type='CheckpointHook', out_dir='s3://bucket/runs')):
        cfg = Config(dict(default_hooks=dict(checkpoint=dict(hook))))
        write_checkpoints_by_rename(cfg)
        assert cfg.default_hooks.checkpoint.to_dict() == hook
        assert cfg.custom_hooks == [dict(type='FreshWritesHook')]


def test_a_checkpoint_directory_is_saved_aside_and_renamed_into_place(
        tmp_path):
    """What DeepSpeed and FSDP save (a directory of files, written with
    plain opens) is saved under iter_N.pth.saving and renamed: a link left
    at either name is replaced, never written through or followed, and an
    older checkpoint of the name is replaced whole."""
    from internvl_optim.engine.strategies.save_into_place import \
        save_into_place
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'kept.pt').write_text('kept')
    work = tmp_path / 'work'
    work.mkdir()
    final = work / 'iter_4.pth'
    final.mkdir()  # an earlier run's checkpoint, with a file this one lacks
    (final / 'rank1.pth').write_text('old')
    (work / 'iter_4.pth.saving').symlink_to(outside)  # planted

    seen = []

    def save(staging):
        seen.append(staging)
        os.makedirs(staging)
        for rank in range(1):
            with open(os.path.join(staging, f'rank{rank}.pth'), 'w') as f:
                f.write('new')
    save_into_place(str(final), save)
    assert seen == [str(final) + '.saving']
    assert sorted(os.listdir(final)) == ['rank0.pth']
    assert (final / 'rank0.pth').read_text() == 'new'
    assert sorted(os.listdir(work)) == ['iter_4.pth']
    assert sorted(os.listdir(outside)) == ['kept.pt']  # not followed

    # one file (FSDP's full state): a symlink at the name is replaced
    (work / 'iter_6.pth').symlink_to(outside / 'kept.pt')

    def save_file(staging):
        with open(staging, 'w') as f:
            f.write('full')
    save_into_place(str(work / 'iter_6.pth'), save_file)
    assert (work / 'iter_6.pth').read_text() == 'full'
    assert not (work / 'iter_6.pth').is_symlink()
    assert (outside / 'kept.pt').read_text() == 'kept'
