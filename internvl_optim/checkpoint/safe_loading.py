"""Safe loading of checkpoints: what a file may contain, and what from it is
never run.

``torch.load(weights_only=True)`` (the default since PyTorch 2.6) only
creates objects from an allow-list.  MMEngine 0.10.7 checkpoints need a few
more: ``HistoryBuffer`` objects of the ``MessageHub``, numpy arrays, scalars
and dtypes, and references to HistoryBuffer's statistic methods (pickled as
``getattr(HistoryBuffer, 'min')``).  This module allow-lists exactly those,
each narrowed so that nothing a file says can widen it:

- ``getattr`` is :func:`restricted_getattr`: it returns only the
  (class, attribute) pairs of :data:`ALLOWED_ATTRIBUTES`, a frozenset fixed
  here.  It reads no state that unpickling could change.
- ``HistoryBuffer`` is rebuilt through :class:`_LoadedHistoryBuffer`, whose
  ``__setstate__`` accepts only the buffer's own fields (numeric arrays and
  an int) and never touches the class.  MMEngine's own ``__setstate__``
  copies the file's ``statistics_methods`` into the class-level dict; a
  file could register arbitrary names there.
- ``numpy.dtype`` is :func:`numeric_dtype`: numeric dtypes only, so no
  object arrays (which hold arbitrary objects) can be built.

Separately, MMEngine's ``Runner.resume`` passes ``checkpoint['meta']
['config']`` to ``Config.fromstring``, which executes it as Python.
:func:`drop_executable_meta` removes it; :func:`load_checkpoint_file` (the
local-file loader our tools install into MMEngine's ``CheckpointLoader``)
applies it to every checkpoint MMEngine reads, and
``SafeResumeDeepSpeedStrategy`` to DeepSpeed's.
"""
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, List

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer

from .errors import CheckpointError

#: What ``getattr`` may return while unpickling: (class path, attribute).
#: HistoryBuffer's default statistic methods, and the one class that
#: PyTorch's ShardedTensor pickles by attribute.
ALLOWED_ATTRIBUTES = frozenset({
    ('mmengine.logging.history_buffer.HistoryBuffer', 'min'),
    ('mmengine.logging.history_buffer.HistoryBuffer', 'max'),
    ('mmengine.logging.history_buffer.HistoryBuffer', 'current'),
    ('mmengine.logging.history_buffer.HistoryBuffer', 'mean'),
    ('torch.distributed._shard.sharded_tensor.api.ShardedTensor',
     'ProcessGroupState'),
})

#: numpy dtype kinds a checkpoint may hold: bool, int, uint, float, complex.
NUMERIC_KINDS = 'biufc'

#: ``checkpoint['meta']`` keys that MMEngine would execute as code.
EXECUTABLE_META_KEYS = ('config', )


def _refuse(what: str):
    raise pickle.UnpicklingError(f'internvl_optim: refusing {what} while '
                                 'loading a checkpoint')


def _class_path(owner) -> str:
    return f'{owner.__module__}.{owner.__qualname__}'


def restricted_getattr(owner, name):
    """The stand-in for ``getattr`` while unpickling: only the pairs of
    :data:`ALLOWED_ATTRIBUTES`, on the real classes."""
    owner = _PICKLED_AS.get(owner, owner) if isinstance(owner, type) \
        else owner
    if (isinstance(owner, type) and isinstance(name, str)
            and (_class_path(owner), name) in ALLOWED_ATTRIBUTES
            and name in owner.__dict__):
        return getattr(owner, name)
    allowed = ', '.join(sorted(f'{c.rsplit(".", 1)[1]}.{n}'
                               for c, n in ALLOWED_ATTRIBUTES))
    _refuse(f'getattr({owner!r}, {name!r}); only {allowed} are allowed')


def numeric_dtype(*args):
    """``numpy.dtype`` for numeric dtypes only."""
    dtype = np.dtype(*args)
    if dtype.kind not in NUMERIC_KINDS:
        _refuse(f'numpy dtype {dtype!r} (only numeric dtypes are allowed)')
    return dtype


class _LoadedHistoryBuffer(HistoryBuffer):
    """What a pickled ``HistoryBuffer`` is rebuilt as; it turns into a plain
    ``HistoryBuffer`` once its state is checked."""

    FIELDS = {'_log_history': np.ndarray, '_count_history': np.ndarray,
              'max_length': int}
    #: written by HistoryBuffer.__getstate__; ignored on load: the running
    #: process's statistic methods are the ones that apply
    IGNORED = ('statistics_methods', )

    def __setstate__(self, state):
        if not isinstance(state, dict):
            _refuse(f'HistoryBuffer state of type {type(state).__name__}')
        unknown = sorted(set(state) - set(self.FIELDS) - set(self.IGNORED))
        if unknown:
            _refuse(f'HistoryBuffer state with unknown fields {unknown}')
        for key, kind in self.FIELDS.items():
            value = state.get(key)
            if type(value) is not kind or (
                    kind is np.ndarray and value.dtype.kind not in NUMERIC_KINDS):
                _refuse(f'HistoryBuffer field {key} = {type(value).__name__}')
        self.__dict__.update({k: state[k] for k in self.FIELDS})
        self.__class__ = HistoryBuffer


#: classes a pickle names that are rebuilt as another class
_PICKLED_AS = {_LoadedHistoryBuffer: HistoryBuffer}


def _numeric_dtype_classes() -> list:
    return sorted({type(np.dtype(code)) for code in np.typecodes['All']
                   if np.dtype(code).kind in NUMERIC_KINDS},
                  key=lambda c: c.__name__)


def mmengine_checkpoint_globals() -> list:
    """The globals MMEngine checkpoints need, as ``add_safe_globals`` takes
    them (objects, or ``(object, pickled_name)`` pairs)."""
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover
        from numpy.core import multiarray
    entries = [(_LoadedHistoryBuffer,
                'mmengine.logging.history_buffer.HistoryBuffer'),
               np.ndarray, (numeric_dtype, 'numpy.dtype'),
               *_numeric_dtype_classes(),
               (restricted_getattr, 'builtins.getattr')]
    # numpy 1 and numpy 2 pickle these under different module names
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries.append((multiarray._reconstruct, f'{module}._reconstruct'))
        entries.append((multiarray.scalar, f'{module}.scalar'))
    return entries


def deepspeed_checkpoint_globals() -> list:
    """What MMEngine's DeepSpeedStrategy checkpoints hold besides the
    above: MMEngine's ConfigDict and three DeepSpeed types (its loss scaler,
    the ZeRO stage enum, tensor fragment addresses).  Imports DeepSpeed."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address
    from mmengine.config import ConfigDict
    return [ConfigDict, LossScaler, ZeroStageEnum, fragment_address]


def allow_deepspeed_checkpoints() -> None:
    """Register :func:`deepspeed_checkpoint_globals` (``tools/train.py``
    calls it for ``DeepSpeedStrategy`` configs)."""
    torch.serialization.add_safe_globals(deepspeed_checkpoint_globals())


def fsdp_checkpoint_globals() -> list:
    """What MMEngine's FSDPStrategy checkpoints hold with its default
    ``state_dict_cfg='local'`` (one ``rankN.pth`` per rank): PyTorch's
    ``ShardedTensor`` and the metadata types it pickles (its process group
    state is pickled as ``getattr(ShardedTensor, 'ProcessGroupState')``,
    one of :data:`ALLOWED_ATTRIBUTES`)."""
    from torch.distributed._shard.metadata import ShardMetadata
    from torch.distributed._shard.sharded_tensor.api import ShardedTensor
    from torch.distributed._shard.sharded_tensor.metadata import (
        MEM_FORMAT_ENCODING, ShardedTensorMetadata, TensorProperties)
    from torch.distributed._shard.sharded_tensor.shard import Shard
    from torch.distributed._shard.sharding_spec.api import \
        EnumerableShardingSpec
    from torch.distributed._shard.sharding_spec.chunk_sharding_spec import \
        ChunkShardingSpec
    from torch.distributed.remote_device import _remote_device
    return [ShardedTensor, ShardedTensor.ProcessGroupState, Shard,
            ShardMetadata, ShardedTensorMetadata,
            TensorProperties, MEM_FORMAT_ENCODING, EnumerableShardingSpec,
            ChunkShardingSpec, _remote_device]


def allow_fsdp_checkpoints() -> None:
    """Register :func:`fsdp_checkpoint_globals` (``tools/train.py`` calls
    it for ``FSDPStrategy`` configs)."""
    torch.serialization.add_safe_globals(fsdp_checkpoint_globals())


_MMENGINE_ALLOWED = []


def allow_mmengine_checkpoints() -> None:
    """Register :func:`mmengine_checkpoint_globals` with PyTorch (idempotent;
    :func:`load_checkpoint_file` calls it, so it never depends on what was
    imported first)."""
    if not _MMENGINE_ALLOWED:
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
        _MMENGINE_ALLOWED.append(True)


def drop_executable_meta(checkpoint: Any, source: str = 'checkpoint') -> Any:
    """Remove ``meta`` entries MMEngine would execute (``meta.config``, read
    by ``Runner.resume`` through ``Config.fromstring``); returns
    ``checkpoint``, changed in place."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict):
        dropped = [k for k in EXECUTABLE_META_KEYS if meta.pop(k, None)
                   is not None]
        if dropped:
            print_log(f'{source}: ignored meta.{", meta.".join(dropped)} '
                      '(a config stored in a checkpoint is never executed)',
                      logger='current', level=30)
    return checkpoint


_TORCH_REASON = re.compile(r'WeightsUnpickler error:\s*(.*?)'
                           r'(?:\s*Please use `torch\.serialization|\n|$)', re.S)
#: torch's advice around the reason (it suggests ``weights_only=False``)
_TORCH_ADVICE = ('Weights only load failed', '(1)', '(2)',
                 'Check the documentation')


def _safe_loading_reason(message: str) -> str:
    """The unpickler's own reason from torch's message, without its advice
    to turn safe loading off."""
    found = _TORCH_REASON.search(message)
    if found:
        return found.group(1).strip().rstrip('.')
    lines = [line.strip() for line in message.splitlines()
             if line.strip() and not line.strip().startswith(_TORCH_ADVICE)]
    return lines[0].rstrip('.') if lines else ''


ZIP_MAGIC = b'PK\x03\x04'   # torch.save's default format (a zip archive)
PICKLE_MAGIC = b'\x80'       # legacy torch.save, plain pickles


def _check_container(path: str, size: int) -> None:
    """Name what the file is when it cannot be a checkpoint at all."""
    if size == 0:
        raise CheckpointError(
            f'checkpoint {path!r} is empty (0 bytes): probably a save that '
            'was interrupted; use an earlier checkpoint')
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == ZIP_MAGIC:
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f'checkpoint {path!r} ({size:,} bytes) is truncated: its zip '
                'archive has no central directory (an interrupted save or '
                'download?); use an earlier checkpoint or download it again')
    elif not head.startswith(PICKLE_MAGIC):
        raise CheckpointError(
            f'{path!r} ({size:,} bytes, starting {head!r}) is not a PyTorch '
            'checkpoint: torch.save writes a zip archive (starting '
            f"{ZIP_MAGIC!r}) or, before PyTorch 1.6, a pickle")


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """``torch.load(path, weights_only=True)`` with errors that name the file
    and say what is wrong: missing, empty, truncated, not a PyTorch
    checkpoint, or holding something safe loading refuses (never with the
    advice to load it unsafely)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist'
                                + (' (it is a directory)'
                                   if os.path.isdir(path) else ''))
    size = os.path.getsize(path)
    _check_container(path, size)
    allow_mmengine_checkpoints()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f'checkpoint {path!r} was refused by safe loading: '
            f'{_safe_loading_reason(str(err))}. Checkpoints written by '
            'MMEngine, MMSeg, InternVL or internvl_optim never need this; '
            'nothing from the file was run. If it comes from another tool, '
            'save its weights as a plain dict of tensors') from None
    except (RuntimeError, EOFError, IndexError, KeyError, ValueError) as err:
        raise CheckpointError(
            f'checkpoint {path!r} ({size:,} bytes) is damaged or not a '
            f'PyTorch checkpoint: {type(err).__name__}: '
            f'{_safe_loading_reason(str(err)) or "unexpected end of data"}'
        ) from None


def load_from_local(filename: str, map_location=None) -> Any:
    """MMEngine ``CheckpointLoader`` scheme for local files: safe loading
    with clear errors, executable ``meta`` entries dropped."""
    filename = osp.expanduser(filename)
    return drop_executable_meta(
        load_checkpoint_file(filename, map_location), filename)


def install_safe_local_loader() -> None:
    """Make MMEngine read local checkpoint files (``load_from``, resume,
    ``init_cfg=dict(type='Pretrained')``) with :func:`load_from_local`
    (idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                     force=True)


def enable_safe_checkpoint_loading() -> None:
    """Everything above: the allow-list and the local loader (called when
    ``internvl_optim`` is imported)."""
    allow_mmengine_checkpoints()
    install_safe_local_loader()


__all__: List[str] = [
    'ALLOWED_ATTRIBUTES', 'CheckpointError', 'restricted_getattr',
    'numeric_dtype', 'drop_executable_meta', 'load_checkpoint_file',
    'enable_safe_checkpoint_loading', 'allow_deepspeed_checkpoints',
    'allow_fsdp_checkpoints'
]
