"""A work dir as --resume reads it, and one trainer per work dir:
``last_checkpoint`` that is a directory, binary, not UTF-8 or names another
run's file is not followed; only complete checkpoint files (or DeepSpeed /
FSDP checkpoint directories) count; a second trainer stops at once naming
the holder; a lock left by a killed run is taken over."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from internvl_optim.checkpoint import CheckpointError
from internvl_optim.checkpoint.work_dir import (WorkDirBusy, WorkDirLock,
                                                is_complete_checkpoint,
                                                newest_complete_checkpoint,
                                                resume_fallback)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')


def _checkpoint(path):
    torch.save({'state_dict': {'w': torch.zeros(4)}}, path)
    return str(path)


@pytest.fixture
def work_dir(tmp_path):
    _checkpoint(tmp_path / 'iter_2.pth')
    return tmp_path


@pytest.mark.parametrize('write, reason', [
    (lambda p: p.mkdir(), 'is a directory, not a file naming a checkpoint'),
    (lambda p: p.write_bytes(b'\x80\x04\x95\xff\xfe'),
     'is not UTF-8 text (binary data)'),
    (lambda p: p.write_bytes('iter_2.pth'.encode('utf-16')),
     'is not UTF-8 text (binary data)'),
    (lambda p: p.write_text('x' * 5000), 'is over 4096 bytes, not one '
                                         'checkpoint path'),
    (lambda p: p.write_text('a.pth\nb.pth'), 'holds more than one line'),
])
def test_unreadable_last_checkpoint_falls_back(work_dir, write, reason):
    record = work_dir / 'last_checkpoint'
    write(record)
    messages = []
    assert resume_fallback(str(work_dir), messages.append) == \
        str(work_dir / 'iter_2.pth')
    assert messages == [f'{record} {reason}; resuming from the newest '
                        f'complete checkpoint in the work dir, '
                        f'{work_dir / "iter_2.pth"}']


def test_last_checkpoint_naming_another_runs_file_is_not_followed(
        work_dir, tmp_path_factory):
    other = tmp_path_factory.mktemp('other_run')
    foreign = _checkpoint(other / 'iter_50.pth')
    record = work_dir / 'last_checkpoint'
    record.write_text(foreign)
    messages = []
    assert resume_fallback(str(work_dir), messages.append) == \
        str(work_dir / 'iter_2.pth')
    assert messages[0].startswith(
        f"{record} names '{foreign}', which is outside the work dir "
        "(another run's checkpoint?); resuming from")
    # its own file, complete: MMEngine's auto-resume is used as is
    record.write_text(str(work_dir / 'iter_2.pth'))
    assert resume_fallback(str(work_dir), messages.append) is None


def test_without_any_complete_checkpoint_the_error_says_what_to_do(tmp_path):
    (tmp_path / 'last_checkpoint').mkdir()
    with pytest.raises(CheckpointError, match=re.escape(
            f'Cannot resume: {tmp_path / "last_checkpoint"} is a directory, '
            f'not a file naming a checkpoint, and {tmp_path} holds no other '
            'complete checkpoint')):
        resume_fallback(str(tmp_path), print)


def test_only_files_and_real_checkpoint_directories_count(work_dir):
    fake = work_dir / 'iter_99.pth'
    fake.mkdir()
    _checkpoint(fake / 'anything.pth')  # a directory, not a checkpoint
    assert not is_complete_checkpoint(str(fake))
    assert newest_complete_checkpoint(str(work_dir)) == \
        str(work_dir / 'iter_2.pth')
    deepspeed = work_dir / 'iter_50.pth'
    deepspeed.mkdir()
    _checkpoint(deepspeed / 'mp_rank_00_model_states.pt')
    assert newest_complete_checkpoint(str(work_dir)) == str(deepspeed)
    # a symbolic link named like a checkpoint is not one of this work dir's
    os.symlink(deepspeed / 'mp_rank_00_model_states.pt',
               work_dir / 'iter_70.pth')
    assert newest_complete_checkpoint(str(work_dir)) == str(deepspeed)


# --- one trainer per work dir ---------------------------------------------------

HOLDER = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, {root!r})
    from internvl_optim.checkpoint.work_dir import WorkDirLock
    WorkDirLock({work_dir!r}).acquire(lambda m: None)
    print('held', flush=True)
    time.sleep(120)
''')


def _hold(work_dir):
    process = subprocess.Popen(
        [sys.executable, '-c', HOLDER.format(root=ROOT,
                                             work_dir=str(work_dir))],
        stdout=subprocess.PIPE, text=True)
    for line in process.stdout:  # (importing MMEngine may print first)
        if line.strip() == 'held':
            return process
    raise AssertionError('the holder did not take the lock')


def test_a_second_trainer_stops_naming_the_holder(tmp_path):
    holder = _hold(tmp_path)
    try:
        with pytest.raises(WorkDirBusy) as err:
            WorkDirLock(str(tmp_path)).acquire()
        message = str(err.value)
        assert message.startswith(f'{tmp_path} is in use by another trainer '
                                  f'(pid {holder.pid} on ')
        assert message.endswith(
            "two trainers in one work dir overwrite each other's "
            'checkpoints. Wait for it to end, stop it, or give another '
            '--work-dir')
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    holder = _hold(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / '.train.lock').exists()  # left behind
    messages = []
    lock = WorkDirLock(str(tmp_path)).acquire(messages.append)
    assert messages[0].startswith(
        f'{tmp_path / ".train.lock"}: taking over the lock of a run that '
        f'ended without releasing it (pid {holder.pid} on ')
    assert f'pid {os.getpid()} on ' in (tmp_path / '.train.lock').read_text()
    lock.release()
    assert not (tmp_path / '.train.lock').exists()
    with WorkDirLock(str(tmp_path)):  # free again
        pass


def test_train_py_refuses_a_busy_work_dir_before_building(tmp_path):
    from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k
    data_root = make_synthetic_ade20k(str(tmp_path / 'data'), num_train=2,
                                      num_val=1)
    work_dir = tmp_path / 'work'
    holder = _hold(work_dir)
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, 'tools/train.py'),
             os.path.join(ROOT, 'configs/demo/'
                          'internvit_tiny_upernet_synthetic_ade20k.py'),
             '--work-dir', str(work_dir), '--cfg-options',
             f'train_dataloader.dataset.data_root={data_root}',
             f'val_dataloader.dataset.data_root={data_root}'],
            capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode != 0
    assert f'is in use by another trainer (pid {holder.pid} on ' in \
        result.stderr
    assert 'Iter(train)' not in result.stdout + result.stderr
    assert time.monotonic() - started < 60


# --- entries the run writes are plain files: never written through ---------

def _train_in(work_dir, data_root, *extra):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/train.py'),
         os.path.join(ROOT, 'configs/demo/'
                      'internvit_tiny_upernet_synthetic_ade20k.py'),
         '--work-dir', str(work_dir), *extra, '--cfg-options',
         f'train_dataloader.dataset.data_root={data_root}',
         f'val_dataloader.dataset.data_root={data_root}'],
        capture_output=True, text=True, timeout=120, cwd=ROOT)


def _plant(work_dir, name, kind, outside):
    path = work_dir / name
    if kind == 'link':
        path.symlink_to(outside)
    elif kind == 'directory':
        path.mkdir()
    else:
        os.mkfifo(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize('name, kind, what', [
    ('.train.lock', 'link', 'a symbolic link'),
    ('last_checkpoint', 'link', 'a symbolic link'),
    ('iter_5.pth', 'link', 'a symbolic link'),
    ('best_mIoU_iter_4.pth', 'link', 'a symbolic link'),
    ('last_checkpoint', 'directory', 'a directory'),
    ('last_checkpoint', 'fifo', 'not a regular file (a FIFO, socket or '
                                'device)'),
])
def test_train_py_refuses_entries_it_would_write_through(tmp_path, name,
                                                          kind, what):
    from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k
    data_root = make_synthetic_ade20k(str(tmp_path / 'data'), num_train=2,
                                      num_val=1)
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    outside = tmp_path / 'precious.txt'
    outside.write_text('precious')
    path = _plant(work_dir, name, kind, outside)
    started = time.monotonic()
    result = _train_in(work_dir, data_root)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith(
        f'WorkDirEntryError: {path} is {what}; the run writes '
        f'{"its lock" if name == ".train.lock" else "there"} and never '
        'through a link or into anything but a plain file. Remove it (or '
        'train in another --work-dir)')
    assert outside.read_text() == 'precious'  # the target is unchanged
    assert 'Iter(train)' not in result.stdout + result.stderr
    assert time.monotonic() - started < 60  # a FIFO never blocks it


def test_checkpoint_directories_are_not_refused(tmp_path):
    # DeepSpeed and sharded FSDP save iter_N.pth as a directory
    from internvl_optim.checkpoint.work_dir import (WorkDirEntryError,
                                                    check_written_entries)
    (tmp_path / 'iter_2.pth').mkdir()
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    # an empty one is no checkpoint: the first save would fail on it
    with pytest.raises(WorkDirEntryError, match='iter_2.pth is an empty '
                       'directory; the run saves a checkpoint under that '
                       'name'):
        check_written_entries(str(tmp_path))
    (tmp_path / 'iter_2.pth' / 'mp_rank_00_model_states.pt').write_text('x')
    check_written_entries(str(tmp_path))
    (tmp_path / 'iter_4.pth').symlink_to(tmp_path / 'iter_2.pth')
    with pytest.raises(WorkDirEntryError, match='iter_4.pth is a symbolic '
                       'link'):
        check_written_entries(str(tmp_path))


@pytest.mark.parametrize('entry', ['.train.lock', 'last_checkpoint',
                                   'iter_2.pth', 'zero_to_fp32.py',
                                   'my_config.py'])
def test_hard_links_are_refused_like_symlinks(tmp_path, entry):
    """A hard link in the work dir is a second name for a file elsewhere
    (or for a kept checkpoint): writing it would replace that file's
    content. Refused before anything is written; the file is unchanged."""
    from internvl_optim.checkpoint.work_dir import (WorkDirEntryError,
                                                    WorkDirLock)
    work = tmp_path / 'work'
    work.mkdir()
    precious = tmp_path / 'precious'
    precious.write_text('precious')
    os.link(precious, work / entry)
    with pytest.raises(WorkDirEntryError) as err:
        WorkDirLock(str(work), also=['my_config.py']).acquire(lambda m: None)
    assert str(err.value).startswith(
        f'{work / entry} is a hard link (2 names for one file: writing it '
        'changes the file under its other names)')
    assert precious.read_text() == 'precious'


def test_links_inside_a_checkpoint_directory_are_refused(tmp_path):
    from internvl_optim.checkpoint.work_dir import (WorkDirEntryError,
                                                    check_written_entries)
    target = tmp_path / 'outside.pt'
    target.write_text('x')
    checkpoint = tmp_path / 'iter_5.pth'
    checkpoint.mkdir()
    (checkpoint / 'mp_rank_00_model_states.pt').symlink_to(target)
    with pytest.raises(WorkDirEntryError, match=(
            r'mp_rank_00_model_states.pt is a symbolic link, inside a '
            r'checkpoint directory the run writes into')):
        check_written_entries(str(tmp_path))
    (checkpoint / 'mp_rank_00_model_states.pt').unlink()
    os.link(target, checkpoint / 'state_by_name_rank0.pth.tmp')
    with pytest.raises(WorkDirEntryError, match=(
            r'state_by_name_rank0.pth.tmp is a hard link')):
        check_written_entries(str(tmp_path))


def test_a_work_dir_that_is_a_file_is_named(tmp_path):
    from internvl_optim.checkpoint.work_dir import (WorkDirEntryError,
                                                    WorkDirLock)
    plain = tmp_path / 'notes.txt'
    plain.write_text('mine')
    with pytest.raises(WorkDirEntryError) as err:
        WorkDirLock(str(plain)).acquire(lambda m: None)
    assert str(err.value) == (
        f'the work dir {plain} is a regular file, not a directory; give '
        '--work-dir a directory (new or one of a previous run)')
    assert plain.read_text() == 'mine'


def test_a_long_message_is_cut_to_one_readable_line():
    from internvl_optim.engine.config_checks import MAX_MESSAGE, one_line
    message = 'key\n' * 100000
    line = one_line(message)
    text = ' '.join(['key'] * 100000)  # one line
    keep = (MAX_MESSAGE - 20) // 2
    assert line == (f'{text[:keep]} ... [{len(text) - 2 * keep} characters '
                    f'cut] ... {text[-keep:]}')
    assert len(line) < MAX_MESSAGE + 40


def test_a_planted_log_directory_is_refused(tmp_path):
    """The Runner makes WORK_DIR/<%Y%m%d_%H%M%S>/ and writes its log and
    vis_data there: a link under such a name, or links inside one, would
    be written through."""
    from internvl_optim.checkpoint.work_dir import (WorkDirEntryError,
                                                    check_written_entries)
    outside = tmp_path / 'outside'
    outside.mkdir()
    work = tmp_path / 'work'
    work.mkdir()
    (work / '20261207_120000').symlink_to(outside)
    with pytest.raises(WorkDirEntryError) as err:
        check_written_entries(str(work))
    assert str(err.value).startswith(
        f'{work / "20261207_120000"} is a symbolic link; the run makes its '
        'log directory under a name of this form')
    (work / '20261207_120000').unlink()
    log_dir = work / '20261207_120000'
    (log_dir / 'vis_data').mkdir(parents=True)
    (log_dir / '20261207_120000.log').write_text('a log')
    check_written_entries(str(work))  # a previous run's log directory
    (log_dir / 'vis_data' / 'scalars.json').symlink_to(outside / 'x')
    with pytest.raises(WorkDirEntryError, match=(
            r'scalars.json is a symbolic link, inside a log directory the '
            r'run writes into')):
        check_written_entries(str(work))


def test_checkpoint_hook_out_dir_is_checked_like_the_work_dir(tmp_path):
    """CheckpointHook(out_dir=D) saves into D/<work dir's name>: checked
    before training like the work dir; the planted file is unchanged."""
    from mmengine.config import Config
    from internvl_optim.checkpoint.work_dir import (WorkDirEntryError,
                                                    WorkDirLock,
                                                    checkpoint_out_dir)
    work = tmp_path / 'runs' / 'demo'
    cfg = Config(dict(work_dir=str(work), default_hooks=dict(
        checkpoint=dict(type='CheckpointHook', out_dir=str(tmp_path /
                                                           'store')))))
    out_dir = checkpoint_out_dir(cfg)
    assert out_dir == str(tmp_path / 'store' / 'demo')
    os.makedirs(out_dir)
    precious = tmp_path / 'precious'
    precious.write_text('precious')
    os.link(precious, os.path.join(out_dir, 'iter_4.pth'))
    with pytest.raises(WorkDirEntryError) as err:
        WorkDirLock(str(work), checkpoint_dirs=[out_dir]).acquire(
            lambda m: None)
    assert str(err.value).startswith(
        f'{out_dir}/iter_4.pth is a hard link (2 names for one file')
    assert precious.read_text() == 'precious'
    os.unlink(os.path.join(out_dir, 'iter_4.pth'))
    os.rmdir(out_dir)
    os.symlink(tmp_path, out_dir)
    with pytest.raises(WorkDirEntryError, match=re.escape(
            f'the checkpoint directory {out_dir} (default_hooks.checkpoint.'
            'out_dir) is a symbolic link; the run saves its checkpoints '
            'there and never through a link')):
        WorkDirLock(str(work), checkpoint_dirs=[out_dir]).acquire(
            lambda m: None)
    # unset, remote, or the work dir itself: nothing more to check
    for out in (None, 's3://bucket/ckpts', str(work)):
        cfg.default_hooks.checkpoint.out_dir = out
        assert checkpoint_out_dir(cfg) is None
