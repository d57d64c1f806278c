"""DeepSpeed ZeRO's partitioned optimizer state, read and written by
parameter name (a patch of live DeepSpeed objects, kept apart).

DeepSpeed ZeRO-1/2/3 keeps each rank's slice of the flattened fp32 master
weights and Adam moments in flat partitions whose layout depends on the
world size and the groups, and its checkpoints are tied to both.
:func:`local_fragments` gives what this rank holds as
``{name: slice of the flattened parameter}``
(:mod:`internvl_optim.checkpoint.state_fragments` writes and checks the
files); :func:`apply_fragments` puts saved fragments into a freshly
built engine at any world size, parameter by parameter, and sets the model
weights from the fp32 masters.  No collective is used: every rank reads
the files itself.

Facts relied on (DeepSpeed 0.15.4, ``runtime/zero/stage_1_and_2.py`` and
``stage3.py``, ``utils/tensor_fragment.py``):

* ZeRO-1/2: ``single_partition_of_fp32_groups[i]`` is group ``i``'s flat
  fp32 partition, ``bit16_groups[i]`` its parameters; a parameter with a
  slice on this rank has ``_hp_mapping`` with ``lp_fragment_address``
  (offset in the flattened parameter) and ``hp_fragment_address`` (offset
  in the partition); every rank holds every (low-precision) parameter.
* ZeRO-3: ``fp32_partitioned_groups_flat[i]`` / ``fp16_groups[i]``;
  ``grad_position[param_id] = (i, offset, partition_numel)``; rank ``r``
  holds elements ``[r * partition_numel, (r + 1) * partition_numel)`` of
  the flattened (padded) parameter, its low-precision copy in
  ``param.ds_tensor``.
* The basic optimizer (``optimizer.optimizer``) keeps its per-element
  state under the flat partition, created at the first step (PyTorch's
  Adam: ``step`` a float32 scalar tensor, ``exp_avg``, ``exp_avg_sq``).
"""
from typing import Dict, Iterator, List, Mapping, Tuple

import torch
import torch.distributed as dist

from ..checkpoint.state_by_name import (StateMatchError,
                                        optimizer_state_fields)
from ..checkpoint.state_fragments import FORMAT, MASTER, VERSION


class UnsupportedZeroOptimizer(TypeError):
    """An optimizer whose partitions this module does not know."""


def zero_stage(optimizer) -> int:
    if hasattr(optimizer, 'fp32_partitioned_groups_flat'):
        if getattr(optimizer, 'swap_optimizer', False):
            raise UnsupportedZeroOptimizer(
                'ZeRO-3 with the optimizer state offloaded to NVMe: its '
                'state cannot be carried by name')
        return 3
    if hasattr(optimizer, 'single_partition_of_fp32_groups'):
        return 2 if getattr(optimizer, 'partition_gradients', False) else 1
    raise UnsupportedZeroOptimizer(
        f'{type(optimizer).__name__} is not a DeepSpeed ZeRO-1/2/3 optimizer')


def _dp_rank(optimizer) -> int:
    group = getattr(optimizer, 'dp_process_group', None)
    return dist.get_rank(group=group) if dist.is_initialized() else 0


def _slices(optimizer) -> Iterator[Tuple[torch.nn.Parameter, int,
                                         torch.Tensor, int, int, int]]:
    """``(param, group, flat partition, offset in it, start in the
    flattened parameter, count)`` of every slice this rank holds."""
    if zero_stage(optimizer) == 3:
        rank = _dp_rank(optimizer)
        for i, params in enumerate(optimizer.fp16_groups):
            flat = optimizer.fp32_partitioned_groups_flat[i]
            for p in params:
                _, offset, per_rank = optimizer.grad_position[
                    optimizer.get_param_id(p)]
                start = rank * per_rank
                count = max(0, min(per_rank, p.ds_numel - start))
                yield p, i, flat, offset, min(start, p.ds_numel), count
        return
    for i, params in enumerate(optimizer.bit16_groups):
        flat = optimizer.single_partition_of_fp32_groups[i]
        for p in params:
            mapping = getattr(p, '_hp_mapping', None)
            if mapping is not None:
                yield (p, i, flat, mapping.hp_fragment_address.start,
                       mapping.lp_fragment_address.start,
                       mapping.lp_fragment_address.numel)


def _groups(optimizer) -> List[list]:
    return (optimizer.fp16_groups if zero_stage(optimizer) == 3 else
            optimizer.bit16_groups)


def _flats(optimizer) -> List[torch.Tensor]:
    return (optimizer.fp32_partitioned_groups_flat
            if zero_stage(optimizer) == 3 else
            optimizer.single_partition_of_fp32_groups)


def _shape(p) -> Tuple[int, ...]:
    return tuple(p.ds_shape) if hasattr(p, 'ds_shape') else tuple(p.shape)


def _state_keys(state: Mapping, flat: torch.Tensor) -> List[str]:
    return sorted(k for k, v in state.items() if isinstance(
        v, torch.Tensor) and v.shape == flat.shape)


def _step(state: Mapping) -> int:
    step = state.get('step', 0)
    return int(step.item() if isinstance(step, torch.Tensor) else step)


def _names(module) -> Dict[int, str]:
    return {id(p): n for n, p in module.named_parameters()}


def local_fragments(optimizer, module, world_size: int) -> dict:
    """What this rank writes: its slices of every parameter's fp32 master
    and per-element state, by name, with each parameter's step."""
    names = _names(module)
    inner = optimizer.optimizer
    keys = None
    for flat in _flats(optimizer):
        state = inner.state.get(flat)
        if state:
            found = _state_keys(state, flat)
            if keys is not None and found != keys:
                raise StateMatchError(
                    f'the ZeRO partitions hold different state ({keys} and '
                    f'{found}); it cannot be saved by name')
            keys = found
    keys = keys or []
    params = {}
    for p, i, flat, offset, start, count in _slices(optimizer):
        state = inner.state.get(flat) or {}
        entry = dict(shape=list(_shape(p)), start=start, numel=count,
                     step=_step(state))
        entry[MASTER] = flat.narrow(0, offset, count).detach().clone()
        for key in keys:
            entry[key] = (state[key].narrow(0, offset, count).detach()
                          .clone() if key in state else
                          torch.zeros(count, dtype=flat.dtype))
        params[names[id(p)]] = entry
    return dict(format=FORMAT, version=VERSION, world_size=world_size,
                rank=_dp_rank(optimizer), stage=zero_stage(optimizer),
                keys=keys, params=params,
                groups=[{k: v for k, v in g.items() if k != 'params'}
                        for g in inner.param_groups])


def live_groups(optimizer) -> List[dict]:
    """The live basic optimizer's groups with their (low-precision) model
    parameters as ``params``, as :func:`~internvl_optim.checkpoint.
    state_by_name.match_state_by_name` takes them."""
    return [dict(g, params=list(params)) for g, params in zip(
        optimizer.optimizer.param_groups, _groups(optimizer))]


def check_saved_keys(inner, saved) -> None:
    """The saved per-element state is what the live basic optimizer keeps
    (AdamW: ``exp_avg`` and ``exp_avg_sq``; ``max_exp_avg_sq`` too under
    ``amsgrad``): a state with fewer or other fields would fail at the
    first step, after training started.  No saved step > 0 may come
    without it."""
    fields = optimizer_state_fields(inner)
    for group in inner.param_groups:
        wanted = fields(group)
        if wanted is None:
            continue
        wanted = sorted(set(wanted) - {'step'})
        stepped = any(step > 0 for step in saved.steps.values())
        if sorted(saved.keys) != wanted and (saved.keys or stepped):
            raise StateMatchError(
                f"'keys' is {list(saved.keys)}, but the live "
                f'{type(inner).__name__} keeps {wanted} per element'
                + ('' if saved.keys else ' (and the saved steps are > 0)')
                + ': the state was saved by another optimizer, or cut. '
                'Resume with the optimizer it was saved with, or start from '
                'the weights (load_from=CHECKPOINT without --resume)')


@torch.no_grad()
def apply_fragments(optimizer, module, saved) -> Tuple[List[str],
                                                       List[str],
                                                       List[str]]:
    """Put ``saved`` (a checked
    :class:`~internvl_optim.checkpoint.state_fragments.SavedFragments`)
    into the live ZeRO optimizer by name, and the fp32 masters into the
    model's weights.  Returns ``(kept, added, removed)`` names.

    A group whose saved parameters have different steps, or that mixes
    saved and new parameters, is refused: ZeRO keeps one step per flat
    partition."""
    names = _names(module)
    inner = optimizer.optimizer
    stage = zero_stage(optimizer)
    check_saved_keys(inner, saved)
    kept, added = [], []
    for i, params in enumerate(_groups(optimizer)):
        members = [names[id(p)] for p in params]
        for p, name in zip(params, members):
            if name in saved.shapes and saved.shapes[name] != _shape(p):
                raise StateMatchError(
                    f'{name}: the checkpoint holds its state for shape '
                    f'{list(saved.shapes[name])}, the model has '
                    f'{list(_shape(p))}')
        old = [n for n in members if n in saved.shapes]
        new = [n for n in members if n not in saved.shapes]
        steps = sorted({saved.steps[n] for n in old})
        if old and (len(steps) > 1 or new):
            raise StateMatchError(
                f'group {i} ({inner.param_groups[i].get("group_name", i)}) '
                'would hold parameters at different steps ('
                + (f'saved steps {steps}' if len(steps) > 1 else
                   f'{new[0]} is new, {old[0]} is at step {steps[0]}')
                + '); ZeRO keeps one step per group. Resume with the '
                'groups of the checkpoint, or from the weights only')
        kept += old
        added += new
        flat = _flats(optimizer)[i]
        if old and (saved.keys or steps[0]):
            state = inner.state.setdefault(flat, {})
            state['step'] = torch.tensor(float(steps[0]), dtype=torch.float32)
            for key in saved.keys:
                state.setdefault(key, torch.zeros_like(flat))
    local = {id(p): (flat, offset, start, count)
             for p, _, flat, offset, start, count in _slices(optimizer)}
    for params in _groups(optimizer):
        for p in params:
            name = names[id(p)]
            if name not in saved.shapes:
                continue
            master = saved.full(name).flatten()
            if id(p) in local:
                flat, offset, start, count = local[id(p)]
                flat.narrow(0, offset, count).copy_(
                    master.narrow(0, start, count))
                state = inner.state.get(flat, {})
                for key in saved.keys:
                    state[key].narrow(0, offset, count).copy_(
                        saved.full(name, key).flatten().narrow(0, start,
                                                               count))
            if stage == 3:
                if id(p) in local:
                    _, _, start, count = local[id(p)]
                    p.ds_tensor.data.narrow(0, 0, count).copy_(
                        master.narrow(0, start, count))
            else:
                p.data.copy_(master.view_as(p))
    live = set(names.values())
    removed = [n for n in saved.names if n not in live]
    return kept, added, removed
