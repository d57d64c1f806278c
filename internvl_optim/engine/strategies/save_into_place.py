"""A checkpoint of several ranks (DeepSpeed's and sharded FSDP's directory,
or FSDP's one full file) saved under a new name and renamed into place.

DeepSpeed, FSDP and MMEngine write each file of such a checkpoint with a
plain ``open`` / ``torch.save(path)``: through a link left at the name,
and, if the run is killed, a partial checkpoint under the final name.
:func:`save_into_place` has every rank save under ``<name>.saving`` (made
fresh: anything left there, a link included, is removed first, never
followed), waits for all ranks, and renames it to ``<name>``, moving an
older checkpoint of that name aside first and removing it after.  The
names it uses match no checkpoint name (``iter_N.pth``), so a run killed
midway leaves nothing ``--resume`` would take.

The rename is made by the first process, then, where a node does not share
the file system (its own ``<name>.saving`` is still there), by the first
process of that node.
"""
import os
import os.path as osp
import shutil
from typing import Callable

import torch.distributed as dist

STAGING, REPLACED = '.saving', '.replaced'


def remove_entry(path: str) -> None:
    """Remove ``path`` whatever it is, never following a link: a link or a
    file is unlinked, a real directory removed with its contents."""
    if osp.islink(path) or (osp.lexists(path) and not osp.isdir(path)):
        os.unlink(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


def move_into_place(staging: str, final: str) -> None:
    """``staging`` renamed to ``final``; an entry already at ``final`` (a
    checkpoint of an earlier run, a link) is moved aside first and removed
    after, so the rename replaces the entry itself."""
    aside = final + REPLACED
    remove_entry(aside)
    if osp.lexists(final):
        os.rename(final, aside)
    os.replace(staging, final)
    remove_entry(aside)


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() \
        else 0


def save_into_place(filename: str, save: Callable[[str], None]) -> None:
    """Every rank calls it: ``save(staging)`` writes the checkpoint under
    the staging name (collectively, as the strategy saves), then it is
    renamed to ``filename``."""
    staging = filename + STAGING
    local_first = int(os.environ.get('LOCAL_RANK', _rank())) == 0
    if _rank() == 0:  # one after the other: a shared disk is cleared once
        remove_entry(staging)
    _barrier()
    if _rank() != 0 and local_first:
        remove_entry(staging)
    _barrier()
    save(staging)
    _barrier()
    if _rank() == 0 and osp.lexists(staging):
        move_into_place(staging, filename)
    _barrier()
    if _rank() != 0 and local_first and osp.lexists(staging):
        move_into_place(staging, filename)  # a node of its own disk
    _barrier()
