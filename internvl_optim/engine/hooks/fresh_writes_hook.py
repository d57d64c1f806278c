"""Checkpoint files written to a new name and renamed into place, so a
write never goes through a link (symbolic or hard) left at the name.

MMEngine 0.10.7 writes a checkpoint with ``file_backend.put(bytes,
path)`` (``mmengine/runner/checkpoint.py``: ``save_checkpoint``), and
``LocalBackend.put`` opens ``path`` for writing: through a symlink, or into
a file whose other names (hard links) elsewhere then change too.
:class:`RenameIntoPlaceBackend` writes the bytes to a new file of its own
(``mkstemp``: created exclusively, never following a link) in the same
directory and renames it over ``path``, which replaces the directory entry
itself.  A run killed during the write leaves no partial checkpoint under
the name either.  ``tools/train.py`` gives it to ``CheckpointHook`` (its
``backend_args``) when the checkpoints go to a local directory.

``CheckpointHook`` writes ``last_checkpoint`` with ``open(path, 'w')``
after saving the checkpoint; :class:`FreshWritesHook` removes the entry
before each save, so that ``open`` makes a new file rather than writing
through whatever stood there.
"""
import os
import os.path as osp
import tempfile

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

#: the name ``CheckpointHook(backend_args=dict(backend=...))`` takes
BACKEND = 'rename_into_place'
#: the process's umask (``mkstemp`` makes files 0600; a checkpoint gets
#: the mode ``open`` would give it)
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_then_rename(data: bytes, path: str) -> None:
    """``data`` into a new file beside ``path``, then renamed to ``path``
    (the temporary file is removed if anything fails)."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if osp.lexists(temporary):
            os.unlink(temporary)
        raise


class RenameIntoPlaceBackend(LocalBackend):
    """MMEngine's local backend whose writes go to a new file renamed into
    place (:func:`write_then_rename`); reads, listing and removal are
    ``LocalBackend``'s."""

    def put(self, obj: bytes, filepath) -> None:
        write_then_rename(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        write_then_rename(obj.encode(encoding), str(filepath))


register_backend(BACKEND, RenameIntoPlaceBackend, force=True)


@HOOKS.register_module()
class FreshWritesHook(Hook):
    """Before each checkpoint save, remove the work dir's
    ``last_checkpoint`` entry (a file, or a link left there), so that
    ``CheckpointHook``'s ``open(path, 'w')`` after the save makes a new
    file.  A run killed in between leaves no ``last_checkpoint``; ``--resume``
    then takes the newest complete checkpoint."""

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not is_main_process():  # the process that writes it
            return
        path = osp.join(runner.work_dir, 'last_checkpoint')
        if osp.lexists(path) and not osp.isdir(path):
            os.unlink(path)
