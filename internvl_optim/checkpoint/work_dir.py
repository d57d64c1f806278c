"""A work dir as ``--resume`` reads it, and one trainer per work dir.

``last_checkpoint`` is a file anyone (a kill during a write, a copied
directory, a crafted archive) may have left in any state; only a text file
naming a complete checkpoint of this work dir is followed.  Otherwise the
newest complete ``iter_N.pth`` / ``epoch_N.pth`` of the work dir is used
and the reason said.  Two trainers in one work dir overwrite each other's
checkpoints: :class:`WorkDirLock` stops the second at once.
"""
import fcntl
import os
import stat
import os.path as osp
import re
import socket
import sys
import time
import zipfile
from typing import Callable, Mapping, Optional, Sequence

from .errors import CheckpointError
from .state_fragments import fragment_files

ZIP_MAGIC = b'PK\x03\x04'  # torch.save's default format (a zip archive)

#: checkpoints MMEngine's CheckpointHook writes: files, or directories for
#: DeepSpeed and sharded FSDP
CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')
#: what makes a directory a checkpoint: DeepSpeed's model states, or the
#: ``rank{i}.pth`` files of a sharded FSDP checkpoint
DIRECTORY_CHECKPOINT = re.compile(r'^(mp_rank_\d+_model_states\.pt|'
                                  r'rank\d+\.pth)$')
#: DeepSpeed's per-rank optimizer files
ZERO_OPTIM_FILE = re.compile(
    r'^zero_pp_rank_(\d+)_mp_rank_00_optim_states\.pt$')
#: ``last_checkpoint`` holds one path; anything longer is not MMEngine's
LAST_CHECKPOINT_MAX_BYTES = 4096


def _is_complete_file(path: str) -> bool:
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    with open(path, 'rb') as f:
        if f.read(4) != ZIP_MAGIC:
            return False
    return zipfile.is_zipfile(path)


def is_complete_checkpoint(path: str) -> bool:
    """A regular file that is a non-empty zip archive with its central
    directory (what ``torch.save`` writes last), or a DeepSpeed / FSDP
    checkpoint directory whose ``.pt``/``.pth`` files all are; cheap (reads
    no tensors)."""
    if osp.isdir(path):
        names = os.listdir(path)
        files = [osp.join(path, f) for f in names
                 if f.endswith(('.pt', '.pth'))]
        return (any(DIRECTORY_CHECKPOINT.match(f) for f in names)
                and all(map(_is_complete_file, files))
                and _all_fragments(names))
    return _is_complete_file(path)


def _all_fragments(names) -> bool:
    """A DeepSpeed directory with state saved by name holds one fragment
    file per rank that saved it (one per ``zero_pp_rank_{r}`` optimizer
    file): a run killed while the ranks wrote them left fewer."""
    fragments = fragment_files(names)
    if not fragments:
        return True
    ranks = {int(m.group(1))
             for m in map(ZERO_OPTIM_FILE.match, names) if m}
    return set(fragments) == ranks


def newest_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The complete ``iter_N.pth`` / ``epoch_N.pth`` with the largest N."""
    found = []
    for name in os.listdir(work_dir) if osp.isdir(work_dir) else []:
        match = CHECKPOINT_NAME.match(name)
        path = osp.join(work_dir, name)
        if match and not osp.islink(path) and is_complete_checkpoint(path):
            found.append((int(match.group(1)), osp.getmtime(path), path))
    return max(found)[2] if found else None


def _read_record(record: str):
    """``(path it names, None)`` or ``(None, what is wrong with it)``."""
    if osp.isdir(record):
        return None, f'{record} is a directory, not a file naming a checkpoint'
    if not osp.isfile(record):
        return None, f'{record} is not a regular file'
    with open(record, 'rb') as f:
        data = f.read(LAST_CHECKPOINT_MAX_BYTES + 1)
    if len(data) > LAST_CHECKPOINT_MAX_BYTES:
        return None, (f'{record} is over {LAST_CHECKPOINT_MAX_BYTES} bytes, '
                      'not one checkpoint path')
    try:
        text = data.decode('utf-8').strip()
    except UnicodeDecodeError:
        return None, f'{record} is not UTF-8 text (binary data)'
    if not text:
        return None, f'{record} is empty'
    if '\n' in text or '\x00' in text:
        return None, f'{record} holds more than one line'
    return text, None


def resume_fallback(work_dir: str,
                    log: Callable[[str], None]) -> Optional[str]:
    """For ``--resume`` without a path: ``None`` where MMEngine's own
    auto-resume is safe (``work_dir/last_checkpoint`` is a text file naming
    a complete checkpoint directly inside ``work_dir``, or there is no such
    file: training starts from scratch); else the newest complete
    checkpoint in ``work_dir``, the reason said through ``log``, or an
    error when there is none."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.lexists(record):
        return None
    named, problem = _read_record(record)
    if named is not None:
        inside = osp.realpath(osp.dirname(named) or '.') == \
            osp.realpath(work_dir)
        if not inside:
            problem = (f'{record} names {named!r}, which is outside the work '
                       f'dir (another run\'s checkpoint?)')
        elif is_complete_checkpoint(named):
            return None
        else:
            problem = (f'{record} names {named!r}, which is '
                       + ('incomplete' if osp.exists(named) else 'missing'))
    fallback = newest_complete_checkpoint(work_dir)
    if fallback is None:
        raise CheckpointError(
            f'Cannot resume: {problem}, and {work_dir} holds no other '
            'complete checkpoint (iter_N.pth / epoch_N.pth). Give one with '
            '--resume CHECKPOINT, or train without --resume')
    log(f'{problem}; resuming from the newest complete checkpoint in the '
        f'work dir, {fallback}')
    return fallback


class WorkDirBusy(RuntimeError):
    """Another trainer holds the work dir."""


class WorkDirEntryError(ValueError):
    """An entry the run would write through is not a plain file."""


#: top-level entries of a work dir the run writes (``last_checkpoint`` and
#: the checkpoints ``CheckpointHook`` saves and deletes)
WRITTEN_ENTRY = re.compile(
    r'^(last_checkpoint|(iter|epoch)_\d+\.pth|best_.+\.pth|'
    r'zero_to_fp32\.py)$')
#: the log directory MMEngine's Runner makes for each run
#: (``%Y%m%d_%H%M%S``: its log, ``vis_data/`` with the scalars and config)
LOG_DIRECTORY = re.compile(r'^\d{8}_\d{6}$')


def _kind(path: str) -> str:
    if osp.islink(path):
        return 'a symbolic link'
    if osp.isdir(path):
        return 'a directory'
    if osp.isfile(path):
        links = os.lstat(path).st_nlink
        if links == 1:
            return 'a regular file'
        return (f'a hard link ({links} names for one file: writing it '
                'changes the file under its other names)')
    return 'not a regular file (a FIFO, socket or device)'


def _plain_file(path: str) -> bool:
    """A regular file with one name (no symlink, no hard link)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1


def check_written_entries(work_dir: str, also: Sequence[str] = ()) -> None:
    """Before training: every entry the run will write or delete
    (:data:`WRITTEN_ENTRY`, and the lock) is a plain file or absent (a
    checkpoint may also be a real directory: DeepSpeed's, sharded FSDP's).
    A link would make the run write through it to a place outside the work
    dir, a directory or FIFO where a file is written would crash or block
    the first save after training already ran; a hard link (a second name
    for a file elsewhere, or for a kept checkpoint) would have the file
    overwritten under its other name.  Inside a checkpoint directory the
    same holds for every entry.  ``also``: more entry names the run writes
    (the config dump).  Refused naming the entry."""
    if not osp.isdir(work_dir):
        return
    for name in sorted(os.listdir(work_dir)):
        if not (WRITTEN_ENTRY.match(name) or name == WorkDirLock.FILE
                or name in also or LOG_DIRECTORY.match(name)):
            continue
        path = osp.join(work_dir, name)
        if LOG_DIRECTORY.match(name):
            _check_log_directory(path)
            continue
        # a checkpoint may be a directory (DeepSpeed's, sharded FSDP's)
        directory_ok = name.endswith('.pth')
        if directory_ok and osp.isdir(path) and not osp.islink(path):
            if not os.listdir(path):
                raise WorkDirEntryError(
                    f'{path} is an empty directory; the run saves a '
                    'checkpoint under that name (a file, or a directory '
                    'of its own for DeepSpeed). Remove it (or train in '
                    'another --work-dir)')
            _check_checkpoint_directory(path)
            continue
        if not _plain_file(path):
            raise WorkDirEntryError(
                f'{path} is {_kind(path)}; the run writes '
                f'{"its lock" if name == WorkDirLock.FILE else "there"} and '
                'never through a link or into anything but a plain file. '
                'Remove it (or train in another --work-dir)')


def _check_log_directory(path: str) -> None:
    """A log directory the Runner may write into (one of a run started in
    the same second has the same name): a real directory whose entries are
    plain files or real directories."""
    if osp.islink(path) or not osp.isdir(path):
        raise WorkDirEntryError(
            f'{path} is {_kind(path)}; the run makes its log directory under '
            'a name of this form and writes its log there, never through a '
            'link. Remove it (or train in another --work-dir)')
    _check_directory_entries(path, 'a log directory')


def _check_directory_entries(path: str, what: str) -> None:
    for folder, dirs, files in os.walk(path, followlinks=False):
        for name in dirs + files:
            entry = osp.join(folder, name)
            if osp.islink(entry) or (name in files and
                                     not _plain_file(entry)):
                raise WorkDirEntryError(
                    f'{entry} is {_kind(entry)}, inside {what} the run '
                    'writes into; it would write through it. Remove the '
                    'directory (or train in another --work-dir)')


def _check_checkpoint_directory(path: str) -> None:
    """Every entry of a checkpoint directory the run may write again
    (DeepSpeed's ``iter_N.pth/``) is a plain file of one name, or a real
    directory of such files."""
    _check_directory_entries(path, 'a checkpoint directory')


class WorkDirLock:
    """An exclusive ``flock`` on ``WORK_DIR/.train.lock``, held while the
    process trains.  The file says who holds it; the kernel drops the lock
    when its process dies, so a lock file left by a killed run is detected
    (the lock is free) and taken over."""

    FILE = '.train.lock'

    def __init__(self, work_dir: str, also: Sequence[str] = (),
                 checkpoint_dirs: Sequence[str] = ()):
        self.work_dir = work_dir
        self.path = osp.join(work_dir, self.FILE)
        #: more entries the run writes (the config dump), checked too
        self.also = tuple(also)
        #: directories outside the work dir the checkpoints are saved in
        #: (``CheckpointHook(out_dir=...)``), checked like the work dir
        self.checkpoint_dirs = tuple(checkpoint_dirs)
        self._fd: Optional[int] = None

    def acquire(self, log: Callable[[str], None] = print) -> 'WorkDirLock':
        if osp.lexists(self.work_dir) and not osp.isdir(self.work_dir):
            raise WorkDirEntryError(
                f'the work dir {self.work_dir} is {_kind(self.work_dir)}, '
                'not a directory; give --work-dir a directory (new or '
                'one of a previous run)')
        os.makedirs(self.work_dir, exist_ok=True)
        check_written_entries(self.work_dir, self.also)
        for directory in self.checkpoint_dirs:
            if osp.islink(directory) or (osp.lexists(directory) and
                                         not osp.isdir(directory)):
                raise WorkDirEntryError(
                    f'the checkpoint directory {directory} '
                    '(default_hooks.checkpoint.out_dir) is '
                    f'{_kind(directory)}; the run saves its checkpoints '
                    'there and never through a link. Give out_dir a real '
                    'directory')
            check_written_entries(directory)
        # O_NOFOLLOW: a link planted after the check is not followed either
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                         0o644)
        except OSError as err:
            raise WorkDirEntryError(
                f'{self.path}: cannot open the lock as a plain file '
                f'({err.strerror}); remove it') from None
        if os.fstat(fd).st_nlink != 1:  # linked after the check
            os.close(fd)
            raise WorkDirEntryError(
                f'{self.path} is a hard link; the run writes its lock there '
                'and never through a link. Remove it')
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise WorkDirBusy(
                f'{self.work_dir} is in use by another trainer ({holder}); '
                'two trainers in one work dir overwrite each other\'s '
                'checkpoints. Wait for it to end, stop it, or give another '
                '--work-dir') from None
        previous = _read_holder(fd, default='')
        if previous:
            log(f'{self.path}: taking over the lock of a run that ended '
                f'without releasing it ({previous})')
        os.ftruncate(fd, 0)
        os.pwrite(fd, (f'pid {os.getpid()} on {socket.gethostname()}, '
                       f'started {time.strftime("%Y-%m-%d %H:%M:%S")}: '
                       f'{" ".join(sys.argv)[:300]}').encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd: int, default: str = 'holder unknown') -> str:
    data = os.pread(fd, 1024, 0)
    text = data.decode('utf-8', 'replace').strip()
    return text or default


def checkpoint_out_dir(cfg) -> Optional[str]:
    """Where ``CheckpointHook(out_dir=...)`` saves a run's checkpoints when
    not in the work dir: ``out_dir/<the work dir's last name>`` (MMEngine
    0.10.7's rule); ``None`` when unset or a remote URI."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    out_dir = hook.get('out_dir') if isinstance(hook, Mapping) else None
    if not isinstance(out_dir, str) or not out_dir or '://' in out_dir:
        return None
    work_dir = str(cfg.get('work_dir'))
    if osp.abspath(out_dir) == osp.abspath(work_dir):
        return None
    return osp.join(out_dir, osp.basename(work_dir.rstrip(osp.sep)))
