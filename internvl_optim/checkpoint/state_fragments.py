"""Per-parameter optimizer state saved as fragments keyed by name, one
file per rank, read back at any number of ranks.

An optimizer that partitions its state (DeepSpeed ZeRO-1/2/3) holds, on
each rank, a slice of each parameter's flattened fp32 master weight and
moments.  Each rank writes what it holds, keyed by parameter name with the
slice's offset in the flattened parameter
(``state_by_name_rank{r}.pth``); :func:`read_fragments` checks the files
of all ranks and assembles any parameter's full tensors, so a run at
another world size (or with other groups) takes each parameter's state by
its name.  Nothing read is trusted: every field is checked against what it
will be used for and refused naming the file and the field.

Pure PyTorch (no MMEngine, no DeepSpeed); the live optimizer is read and
written by :mod:`internvl_optim.runtime.zero_state_by_name`.
"""
import math
import numbers
import os.path as osp
import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .errors import CheckpointError
from .state_by_name import (_PLAIN, StateMatch, StateMatchError,
                            continue_schedule, match_state_by_name)

FORMAT = 'internvl_optim.state_fragments'
VERSION = 1
#: what each rank writes into a checkpoint directory
FILE_NAME = 'state_by_name_rank{rank}.pth'
FILE_PATTERN = re.compile(r'^state_by_name_rank(0|[1-9]\d*)\.pth$')
#: the flattened master weight's key; the others are the optimizer's
#: per-element state (Adam's ``exp_avg``, ``exp_avg_sq``, ...)
MASTER = 'fp32'
#: state that must be >= 0 (a negative second moment makes sqrt NaN)
NON_NEGATIVE = ('exp_avg_sq', 'max_exp_avg_sq')
#: at most this many ranks (a crafted world size is not a loop bound)
MAX_WORLD_SIZE = 1 << 16
#: a step count a float32 step tensor holds exactly
MAX_STEP = 1 << 24


def fragment_file(directory: str, rank: int) -> str:
    return osp.join(directory, FILE_NAME.format(rank=rank))


def fragment_files(names: Sequence[str]) -> Dict[int, str]:
    """``{rank: file name}`` of the fragment files among ``names``."""
    found = {}
    for name in names:
        match = FILE_PATTERN.match(name)
        if match:
            found[int(match.group(1))] = name
    return found


def _short(value) -> str:
    """``repr(value)``, cut for a message (a crafted number can be huge)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:20] + '...'


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class SavedFragments:
    """The checked fragments of every rank: names, shapes, steps, and each
    parameter's full tensors on demand (:meth:`full`)."""

    def __init__(self, world_size: int, stage, groups: List[dict],
                 shapes: Dict[str, Tuple[int, ...]], steps: Dict[str, int],
                 keys: Tuple[str, ...],
                 pieces: Dict[str, List[Tuple[int, int, Mapping]]]):
        self.world_size = world_size
        self.stage = stage
        #: the saved groups (``param_names`` and hyperparameters), in the
        #: optimizer's order
        self.groups = groups
        self.shapes = shapes
        self.steps = steps
        #: the per-element state keys besides :data:`MASTER`
        self.keys = keys
        self._pieces = pieces

    @property
    def names(self) -> List[str]:
        return list(self.shapes)

    def full(self, name: str, key: str = MASTER) -> torch.Tensor:
        """``name``'s full tensor under ``key``, in its saved shape."""
        flat = torch.cat([tensors[key] for _, _, tensors in
                          self._pieces[name]]) if self._pieces[name] else \
            torch.zeros(0)
        return flat.view(self.shapes[name])


def _fail(source: str, field: str, problem: str):
    raise CheckpointError(f'{source}: {field} {problem}; this file cannot '
                          'be resumed from (state saved by name per rank)')


def _check_header(content, source: str, rank: int) -> None:
    if not isinstance(content, Mapping):
        _fail(source, 'the file', f'holds a {type(content).__name__}, not '
              'a dict')
    if content.get('format') != FORMAT or content.get('version') != VERSION:
        _fail(source, "'format'/'version'",
              f'are {content.get("format")!r}/{content.get("version")!r}, '
              f'not {FORMAT!r}/{VERSION}')
    world_size = content.get('world_size')
    if not _is_int(world_size) or not 1 <= world_size <= MAX_WORLD_SIZE:
        _fail(source, "'world_size'", f'is {_short(world_size)}, not an '
              'integer '
              f'in [1, {MAX_WORLD_SIZE}]')
    if content.get('stage') not in (1, 2, 3) or isinstance(
            content.get('stage'), bool):
        _fail(source, "'stage'", f'is {content.get("stage")!r}, not a ZeRO '
              'stage 1, 2 or 3')
    if content.get('rank') != rank or not _is_int(content.get('rank')):
        _fail(source, "'rank'", f'is {content.get("rank")!r}, but the file '
              f'is rank {rank}\'s')


def _plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(v, _PLAIN) for v in value)
    return isinstance(value, _PLAIN)


def _check_groups(groups, source: str) -> List[dict]:
    """The saved groups: ``param_names`` and plain hyperparameters (no
    ``params``: parameters are matched by name)."""
    if not isinstance(groups, (list, tuple)) or not all(
            isinstance(g, Mapping) and isinstance(g.get('param_names'), (
                list, tuple)) and all(isinstance(n, str)
                                      for n in g['param_names'])
            for g in groups):
        _fail(source, "'groups'", 'is not a list of groups with '
              "'param_names'")
    for i, group in enumerate(groups):
        for key, value in group.items():
            if not isinstance(key, str) or key == 'params' or (
                    key != 'param_names' and not _plain(value)):
                _fail(source, f"'groups'[{i}][{key!r}]", 'is not a plain '
                      'hyperparameter')
            if key in ('lr', 'initial_lr', 'weight_decay') and (
                    isinstance(value, bool) or not isinstance(
                        value, (int, float)) or not math.isfinite(value)
                    or value < 0):
                _fail(source, f"'groups'[{i}][{key!r}]",
                      f'is {_short(value)}; an lr or weight decay is a '
                      'finite number >= 0')
    return [dict(g, param_names=list(g['param_names'])) for g in groups]


def _check_entry(name, entry, source: str, keys) -> Tuple:
    field = f'params[{name!r}]'
    if not isinstance(name, str) or not isinstance(entry, Mapping):
        _fail(source, field, 'is not a parameter name with a dict')
    shape = entry.get('shape')
    if not isinstance(shape, (list, tuple)) or not all(
            _is_int(d) and d >= 0 for d in shape):
        _fail(source, f'{field}.shape', f'is {shape!r}, not a list of '
              'sizes')
    numel = math.prod(shape)
    start, count = entry.get('start'), entry.get('numel')
    if not _is_int(start) or not _is_int(count) or start < 0 or \
            count < 0 or start + count > numel:
        _fail(source, f'{field}.start/numel', f'are {start!r}/{count!r}, '
              f'not a slice of the {numel} elements of shape '
              f'{list(shape)}')
    step = entry.get('step')
    if not _is_int(step) or not 0 <= step <= MAX_STEP:
        _fail(source, f'{field}.step', f'is {_short(step)}, not an integer in '
              f'[0, {MAX_STEP}]')
    tensors = {}
    for key in (MASTER, *keys):
        value = entry.get(key)
        where = f'{field}.{key}'
        if not isinstance(value, torch.Tensor) or value.layout != \
                torch.strided or value.is_meta or value.dtype != \
                torch.float32 or value.shape != (count, ):
            if not isinstance(value, torch.Tensor):
                what = type(value).__name__
            elif value.layout != torch.strided or value.is_meta:
                what = ('a meta tensor' if value.is_meta else
                        f'a tensor of layout {value.layout}')
            else:
                what = (f'a {value.dtype} tensor of shape '
                        f'{tuple(value.shape)}')
            _fail(source, where, f'is {what}, not a float32 tensor of '
                  f'{count} elements')
        if not bool(torch.isfinite(value).all()):
            _fail(source, where, 'holds non-finite values')
        if key in NON_NEGATIVE and bool((value < 0).any()):
            _fail(source, where, 'holds negative values (a second moment '
                  'is >= 0)')
        tensors[key] = value
    return tuple(shape), step, start, count, tensors


def read_fragments(directory: str, names: Sequence[str],
                   load: Callable[[str], object]) -> Optional[
                       SavedFragments]:
    """The fragments in ``directory`` (whose entries are ``names``),
    loaded with ``load`` and checked; ``None`` when it has none."""
    files = fragment_files(names)
    if not files:
        return None
    first = None
    shapes: Dict[str, Tuple[int, ...]] = {}
    steps: Dict[str, int] = {}
    pieces: Dict[str, List] = {}
    for rank in sorted(files):
        source = osp.join(directory, files[rank])
        content = load(source)
        _check_header(content, source, rank)
        if first is None:
            first = content
            keys = content.get('keys')
            if not isinstance(keys, (list, tuple)) or not all(
                    isinstance(k, str) and k not in (MASTER, 'step')
                    and k.isidentifier()
                    for k in keys):
                _fail(source, "'keys'", f'is {keys!r}, not a list of state '
                      'names')
            keys = tuple(keys)
            groups = _check_groups(content.get('groups'), source)
        for field in ('world_size', 'stage', 'keys', 'groups'):
            if content.get(field) != first.get(field):
                _fail(source, repr(field), f'is {content.get(field)!r}, '
                      f'but rank 0 saved {first.get(field)!r}')
        params = content.get('params')
        if not isinstance(params, Mapping):
            _fail(source, "'params'", 'is not a dict by parameter name')
        for name, entry in params.items():
            shape, step, start, count, tensors = _check_entry(
                name, entry, source, keys)
            if shapes.setdefault(name, shape) != shape:
                _fail(source, f'params[{name!r}].shape', f'is {list(shape)}'
                      f', another rank saved {list(shapes[name])}')
            if steps.setdefault(name, step) != step:
                _fail(source, f'params[{name!r}].step', f'is {step}, '
                      f'another rank saved {steps[name]}')
            pieces.setdefault(name, []).append((start, count, tensors))
    world_size = first['world_size']
    if sorted(files) != list(range(world_size)):
        missing = sorted(set(range(world_size)) - set(files))
        extra = sorted(set(files) - set(range(world_size)))
        raise CheckpointError(
            f'{directory}: saved by {world_size} ranks, but the fragment '
            f'files of ranks {missing} are missing' if missing else
            f'{directory}: saved by {world_size} ranks, yet holds fragment '
            f'files of ranks {extra}')
    grouped = {n for g in groups for n in g['param_names']}
    for name in shapes:
        _check_tiling(directory, name, shapes[name], pieces[name])
        if name not in grouped:
            raise CheckpointError(f'{directory}: {name!r} has state but is '
                                  "in none of the saved 'groups'")
    return SavedFragments(world_size, first.get('stage'), groups, shapes,
                          steps, keys, {n: sorted(p, key=lambda x: x[0])
                                        for n, p in pieces.items()})


def _check_tiling(directory: str, name: str, shape, pieces) -> None:
    """The slices of all ranks cover the flattened parameter once."""
    end = 0
    for start, count, _ in sorted(pieces, key=lambda x: x[0]):
        if count == 0:
            continue
        if start != end:
            raise CheckpointError(
                f'{directory}: the saved slices of {name!r} '
                f'{"overlap" if start < end else "leave a gap"} at element '
                f'{min(start, end)} of {math.prod(shape)}; each element '
                'must be saved by exactly one rank')
        end = start + count
    if end != math.prod(shape):
        raise CheckpointError(
            f'{directory}: the saved slices of {name!r} end at element '
            f'{end} of {math.prod(shape)}; each element must be saved by '
            'exactly one rank')


def match_groups(saved: SavedFragments, live_groups: Sequence[Mapping]
                 ) -> StateMatch:
    """The saved groups against the live ones (``params`` and
    ``param_names``), as :func:`~.state_by_name.match_state_by_name` sees
    them: what changed, and in ``state_dict['param_groups']`` each live
    group's values at the checkpoint's point of its schedule (taken from
    the saved group with the same parameters when nothing changed)."""
    offset, skeleton = 0, []
    for group in saved.groups:
        count = len(group['param_names'])
        skeleton.append(dict(group, params=list(range(offset,
                                                      offset + count))))
        offset += count
    saved_state = dict(state={}, param_groups=skeleton)
    match = match_state_by_name(saved_state, live_groups)
    if match is None:
        raise StateMatchError(
            "the live optimizer's groups carry no 'param_names'; state "
            'saved by name cannot be matched to them')
    if not match.changed:
        match.state_dict = dict(state={}, param_groups=[
            continue_schedule(live, old)
            for live, old in zip(live_groups, skeleton)])
    return match
