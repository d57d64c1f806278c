"""Let ``torch.load(weights_only=True)`` (the default since PyTorch 2.6) read
MMEngine checkpoints, without turning safe loading off.

MMEngine 0.10.7 checkpoints hold, besides tensors and plain containers, the
``MessageHub`` state: ``HistoryBuffer`` objects with numpy arrays, numpy
scalars and dtypes, and references to HistoryBuffer's statistic methods
(pickled as ``getattr(HistoryBuffer, 'min')``).  Resuming on torch 2.13 fails
with "Weights only load failed ... Unsupported global".

We allow-list exactly these globals.  ``builtins.getattr`` is *not* allowed
in general: the name is mapped to :func:`restricted_getattr`, which
only returns HistoryBuffer's registered statistic methods (and, for FSDP
checkpoints, ``ShardedTensor.ProcessGroupState``) and rejects any other
attribute lookup.
"""
import pickle

import numpy as np
import torch


# registered by every HistoryBuffer; custom ones via register_statistics
DEFAULT_STATISTICS = {'min', 'max', 'current', 'mean'}

#: (class, attribute) pairs other than HistoryBuffer statistics that
#: checkpoints may look up; :func:`allow_fsdp_checkpoints` adds one.
EXTRA_ALLOWED_ATTRIBUTES = set()


def restricted_getattr(owner, name):
    """The restricted stand-in for ``getattr`` while unpickling: only
    HistoryBuffer's statistic methods and :data:`EXTRA_ALLOWED_ATTRIBUTES`."""
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = DEFAULT_STATISTICS | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    if (owner, name) in EXTRA_ALLOWED_ATTRIBUTES:
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'internvl_optim: refusing getattr({owner!r}, {name!r}) while '
        'loading a checkpoint; only HistoryBuffer statistic methods are '
        'allowed' + (' and ' + ', '.join(
            sorted(f'{o.__name__}.{n}' for o, n in EXTRA_ALLOWED_ATTRIBUTES))
            if EXTRA_ALLOWED_ATTRIBUTES else ''))


def mmengine_checkpoint_globals() -> list:
    """The globals MMEngine checkpoints need, as ``add_safe_globals`` takes
    them (objects, or ``(object, pickled_name)`` pairs)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover
        from numpy.core import multiarray
    dtype_classes = {
        type(np.dtype(t))
        for t in (np.float64, np.float32, np.float16, np.int64, np.int32,
                  np.int16, np.int8, np.uint8, np.bool_)
    }
    entries = [HistoryBuffer, np.ndarray, np.dtype, *sorted(
        dtype_classes, key=lambda c: c.__name__),
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
    ``ShardedTensor`` and the metadata types it pickles."""
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
    it for ``FSDPStrategy`` configs); a ShardedTensor pickles its process
    group state as ``getattr(ShardedTensor, 'ProcessGroupState')``."""
    from torch.distributed._shard.sharded_tensor.api import ShardedTensor
    torch.serialization.add_safe_globals(fsdp_checkpoint_globals())
    EXTRA_ALLOWED_ATTRIBUTES.add((ShardedTensor, 'ProcessGroupState'))


def allow_mmengine_checkpoints() -> None:
    """Register :func:`mmengine_checkpoint_globals` with PyTorch (idempotent)."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
