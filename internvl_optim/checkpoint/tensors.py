"""What a tensor read from a file may be: floating and finite.

A checkpoint or a released weight file is data from elsewhere.  NaN or Inf
in a weight gives a NaN loss at the first step, far from its cause; an
integer or bool tensor where the model holds floats is silently cast by
``load_state_dict``.  Both are refused here, naming the tensors.
"""
from typing import Iterable, List, Mapping, Optional, Tuple

import torch

#: how many offending tensors a message names
SHOWN = 5


class TensorTrustError(ValueError):
    """Tensors that a file must not give the model."""


def _local_tensors(value) -> Iterable[torch.Tensor]:
    """The plain tensors behind ``value`` (a ShardedTensor's local shards)."""
    shards = getattr(value, 'local_shards', None)
    if callable(shards):
        return [shard.tensor for shard in shards()]
    return [value]


def unusable_tensor(tensor: torch.Tensor) -> str:
    """Why a tensor read from a file cannot be used as values at all (a
    sparse or quantized layout, a meta tensor holding nothing), else ''.
    A ShardedTensor is judged by its local shards."""
    if callable(getattr(tensor, 'local_shards', None)):
        return next(filter(None, map(unusable_tensor,
                                     _local_tensors(tensor))), '')
    if tensor.layout != torch.strided:
        return f'a {str(tensor.layout).replace("torch.", "")} tensor'
    if tensor.device.type == 'meta':
        return 'a meta tensor: it holds no values'
    if tensor.is_quantized:
        return 'a quantized tensor'
    return ''


def count_nonfinite(tensor: torch.Tensor) -> int:
    """NaN/Inf values of a floating or complex tensor (0 for others)."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return 0
    if tensor.numel() == 0 or tensor.device.type == 'meta':
        return 0
    return int((~torch.isfinite(tensor)).sum())


def _show(items: List[str]) -> str:
    more = f' and {len(items) - SHOWN} more' if len(items) > SHOWN else ''
    return ', '.join(items[:SHOWN]) + more


def nonfinite_report(state: Mapping[str, object]) -> List[str]:
    """``'name (k of n values)'`` for every tensor of ``state`` holding NaN
    or Inf."""
    found = []
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        tensors = list(_local_tensors(value))
        bad = sum(count_nonfinite(t) for t in tensors)
        if bad:
            total = sum(t.numel() for t in tensors)
            found.append(f'{name} ({bad} of {total} values)')
    return found


def wrong_kind_report(state: Mapping[str, object],
                      reference: Optional[Mapping[str, torch.Tensor]] = None
                      ) -> List[str]:
    """Entries that are not tensors, and integer/bool tensors where the
    model's tensor of that name (``reference``; without one, any) is
    floating."""
    found = []
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            found.append(f'{name} (a {type(value).__name__}, not a tensor)')
            continue
        unusable = unusable_tensor(value)
        if unusable:
            found.append(f'{name} ({unusable})')
            continue
        own = None if reference is None else reference.get(name)
        # (a ShardedTensor answers by a local shard)
        local = next(iter(_local_tensors(value)), None)
        if local is None:
            continue  # a shard-less ShardedTensor on this rank
        if local.is_complex() and own is not None and \
                own.is_floating_point():
            found.append(f'{name} ({local.dtype}, the model holds '
                         f'{own.dtype}: the imaginary part would be '
                         'dropped)')
            continue
        if local.is_floating_point() or local.is_complex():
            continue
        if own is not None and not (own.is_floating_point()
                                    or own.is_complex()):
            continue  # an integer buffer (BatchNorm's num_batches_tracked)
        if reference is not None and own is None:
            continue  # not the model's: reported as an extra key elsewhere
        wanted = own.dtype if own is not None else 'a floating dtype'
        found.append(f'{name} ({local.dtype}, the model holds {wanted})')
    return found


def check_tensors(state: Mapping[str, object], source: str,
                  reference: Optional[Mapping[str, torch.Tensor]] = None,
                  allow_nonfinite: bool = False,
                  opt_out: str = '') -> None:
    """Raise :class:`TensorTrustError` naming the tensors of ``state`` that
    are not tensors, integer/bool where floats belong, or (unless
    ``allow_nonfinite``) hold NaN/Inf.  ``opt_out`` says how to load
    non-finite weights anyway."""
    wrong = wrong_kind_report(state, reference)
    if wrong:
        raise TensorTrustError(
            f'{source}: {len(wrong)} entr{"y" if len(wrong) == 1 else "ies"} '
            f'of the weights cannot be loaded into floating parameters: '
            f'{_show(wrong)}. load_state_dict would cast them silently; '
            'this is not a checkpoint of this model, or it is damaged')
    if allow_nonfinite:
        return
    bad = nonfinite_report(state)
    if bad:
        raise TensorTrustError(
            f'{source}: {len(bad)} tensor(s) hold NaN or Inf: {_show(bad)}. '
            'Training from them gives a NaN loss at the first step; the '
            'file is damaged or was saved after training diverged'
            + (f'. {opt_out}' if opt_out else ''))


def key_differences(state: Mapping[str, object],
                    reference: Mapping[str, torch.Tensor]
                    ) -> Tuple[List[str], List[str], List[str]]:
    """(missing, unexpected, shape mismatches) of ``state`` against the
    model's ``reference`` state dict."""
    missing = sorted(k for k in reference if k not in state)
    unexpected = sorted(k for k in state if k not in reference)
    shapes = sorted(
        f'{k} {tuple(state[k].shape)} vs the model\'s '
        f'{tuple(reference[k].shape)}'
        for k in state if k in reference
        and isinstance(state[k], torch.Tensor)
        and getattr(state[k], 'local_shards', None) is None
        and tuple(state[k].shape) != tuple(reference[k].shape))
    return missing, unexpected, shapes


def weights_mismatch(state: Mapping[str, object],
                     reference: Mapping[str, torch.Tensor]) -> Optional[str]:
    """``None`` when ``state`` holds exactly the names and shapes of the
    model's ``reference`` state dict; else what differs, counted and named
    (``load_state_dict``'s own "Error(s) in loading state_dict" lists every
    key, hundreds of lines for a large model)."""
    missing, unexpected, shapes = key_differences(state, reference)
    if not (missing or unexpected or shapes):
        return None

    def show(items):
        return (f'{len(items)} ({", ".join(items[:3])}'
                + (', ...' if len(items) > 3 else '') + ')'
                if items else '0')
    return (f'missing {show(missing)}, unexpected {show(unexpected)}, '
            f'shape mismatches {show(shapes)}')
