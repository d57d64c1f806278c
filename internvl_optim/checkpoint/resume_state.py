"""What a resumed checkpoint may make the run do, checked before MMEngine
acts on it.

MMEngine's resume takes from the file: the iteration to continue from (and
advances the dataloader that many steps), the ``MessageHub`` (whose
``best_ckpt`` path ``CheckpointHook`` later *deletes*, and whose
``keep_ckpt_ids`` name checkpoints it deletes), the optimizer and scheduler
state (loaded into live objects: a scheduler's ``load_state_dict`` sets any
attribute the file names) and the weights.  :func:`check_resume_state`
validates all of it against the run being resumed, described by a
:class:`ResumeContext`; paths that leave the checkpoint directory are
dropped with a warning, everything else wrong is a :class:`CheckpointError`
naming the field.  Pure: no MMEngine import.
"""
import math
import numbers
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import torch

from ..core.numbers import MAX_LR, check_number
from ..guards.scheduler_numbers import check_scheduler_numbers
from ..guards.optimizer_arguments import OPTIMIZER_RANGES, check_betas
from .errors import CheckpointError
from .state_by_name import (LAST_VALUE_KEYS, PER_GROUP_KEYS, StateMatchError,
                            saved_param_names)
from .tensors import (TensorTrustError, check_tensors, unusable_tensor,
                      weights_mismatch)

#: ``MessageHub.runtime_info`` keys that hold a checkpoint path
#: (MMEngine's ``CheckpointHook``: ``best_ckpt``, ``best_ckpt_<metric>``,
#: ``last_ckpt``)
PATH_KEY = re.compile(r'^(best_ckpt(_.+)?|last_ckpt)$')
#: the name MMEngine's ``CheckpointHook`` gives a best checkpoint
#: (``best_{metric}_{iter|epoch}_{n}.pth``): the only files a ``best_ckpt``
#: from a resumed file may name, since the next better score deletes it
BEST_NAME = re.compile(r'^best_.+_(iter|epoch)_\d+\.pth$')
#: ``runtime_info`` keys holding a score compared with new ones
SCORE_KEY = re.compile(r'^best_score(_.+)?$')
MESSAGE_HUB_FIELDS = ('log_scalars', 'runtime_info', 'resumed_keys')

NON_FINITE_WEIGHTS_OPT_OUT = (
    "To load them anyway: custom_hooks=[dict(type='CheckpointTrustHook', "
    'allow_nonfinite_weights=True)]')


@dataclass
class ResumeContext:
    """The run a checkpoint is loaded into.

    Attributes:
        checkpoint_dirs: directories this run writes checkpoints to (the
            work dir, and a ``CheckpointHook(out_dir=...)``); a path from
            the file must name a file directly inside one of them.
        resuming: ``--resume`` (iteration, message hub, optimizer and
            schedulers are taken from the file) or ``load_from`` (weights
            only).
        max_iters / max_epochs: the training loop's; ``None`` when unknown.
        model_state: the model's ``state_dict()`` (names, shapes, dtypes).
        strict_keys: on resume, missing or extra weight names are errors.
        optimizer_groups: the live optimizer's ``param_groups`` (types).
        scheduler_states: the live schedulers' states (``state_dict()``).
        allow_nonfinite_weights: load NaN/Inf weights without an error.
    """
    checkpoint_dirs: Sequence[str] = ()
    resuming: bool = True
    max_iters: Optional[int] = None
    max_epochs: Optional[int] = None
    model_state: Optional[Mapping[str, torch.Tensor]] = None
    strict_keys: bool = True
    optimizer_groups: Optional[Sequence[Mapping]] = None
    scheduler_states: Optional[Sequence[Mapping]] = None
    allow_nonfinite_weights: bool = False
    warn: Callable[[str], None] = field(default=print, repr=False)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _type_name(value) -> str:
    return type(value).__name__


def _need_dict(value, where: str, source: str) -> dict:
    if not isinstance(value, dict):
        raise CheckpointError(f'{source}: {where} must be a dict, got a '
                              f'{_type_name(value)}')
    return value


# --- numbers ------------------------------------------------------------------
def check_numbers_like(value, reference, where: str, source: str) -> None:
    """``value`` (from the file) has the type of ``reference`` (the live
    object's) and every number in it is finite; containers recursively.
    ``reference=None`` checks finiteness only."""
    shards = getattr(value, 'local_shards', None)
    if callable(shards):  # FSDP's ShardedTensor: its local pieces
        for i, shard in enumerate(shards()):
            check_numbers_like(shard.tensor, None, f'{where} (shard {i})',
                               source)
        return
    if isinstance(value, torch.Tensor):
        unusable = unusable_tensor(value)
        if unusable:
            raise CheckpointError(f'{source}: {where} is {unusable}')
        if reference is not None and not isinstance(reference, torch.Tensor) \
                and not _is_real(reference):
            raise CheckpointError(f'{source}: {where} is a tensor, the run '
                                  f'holds a {_type_name(reference)}')
        if (value.is_floating_point() or value.is_complex()) and \
                value.numel() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f'{source}: {where} holds NaN or Inf')
        return
    if isinstance(value, bool) or isinstance(reference, bool):
        if reference is not None and type(value) is not type(reference):
            raise CheckpointError(
                f'{source}: {where} must be {_type_name(reference)} like the '
                f'run\'s {reference!r}, got {value!r}')
        return
    if _is_real(value):
        if not math.isfinite(value):
            raise CheckpointError(f'{source}: {where} must be a finite '
                                  f'number, got {value}')
        if reference is not None and not (
                _is_real(reference) or isinstance(reference, torch.Tensor)):
            raise CheckpointError(
                f'{source}: {where} is a number ({value}), the run holds '
                f'{reference!r}')
        return
    if reference is not None and _is_real(reference):
        raise CheckpointError(f'{source}: {where} must be a number like the '
                              f'run\'s {reference!r}, got {value!r}')
    if isinstance(value, Mapping):
        if reference is not None and not isinstance(reference, Mapping):
            raise CheckpointError(f'{source}: {where} is a dict, the run '
                                  f'holds a {_type_name(reference)}')
        for key, item in value.items():
            check_numbers_like(item, None if reference is None
                               else reference.get(key), f'{where}.{key}',
                               source)
        return
    if isinstance(value, (list, tuple)):
        if reference is not None:
            if not isinstance(reference, (list, tuple)):
                raise CheckpointError(
                    f'{source}: {where} is a {_type_name(value)}, the run '
                    f'holds a {_type_name(reference)}')
            if len(reference) != len(value) and all(
                    _is_real(r) for r in reference):
                raise CheckpointError(
                    f'{source}: {where} has {len(value)} values, the run '
                    f'{len(reference)}')
        for i, item in enumerate(value):
            ref = (reference[i] if isinstance(reference, (list, tuple))
                   and i < len(reference) else None)
            check_numbers_like(item, ref, f'{where}[{i}]', source)
        return
    if reference is not None and value is not None and \
            isinstance(reference, str) and not isinstance(value, str):
        raise CheckpointError(f'{source}: {where} must be a str like the '
                              f'run\'s {reference!r}, got {value!r}')


# --- meta -----------------------------------------------------------------------
def check_meta(checkpoint: dict, context: ResumeContext, source: str) -> None:
    """``meta.iter`` / ``meta.epoch``: ints in ``[0, max_iters]`` /
    ``[0, max_epochs]`` (MMEngine advances the dataloader ``iter`` steps);
    ``meta.seed`` an int seed."""
    meta = _need_dict(checkpoint.get('meta'), 'meta', source)
    limits = (('iter', context.max_iters), ('epoch', context.max_epochs))
    for key, limit in limits:
        if key not in meta:
            raise CheckpointError(f'{source}: meta.{key} is missing (not a '
                                  'checkpoint MMEngine can resume from)')
        value = meta[key]
        valid = (f'[0, {limit}] (this run\'s max_{key}s)' if limit is not None
                 else '>= 0')
        if not _is_int(value):
            raise CheckpointError(f'{source}: meta.{key} must be an int in '
                                  f'{valid}, got {value!r}')
        if value < 0 or (limit is not None and value > limit):
            raise CheckpointError(f'{source}: meta.{key}={value} is outside '
                                  f'{valid}')
    seed = meta.get('seed')
    if seed is not None and not (_is_int(seed) and 0 <= seed < 2 ** 32):
        raise CheckpointError(f'{source}: meta.seed must be an int in '
                              f'[0, 2**32), got {seed!r}')


# --- message hub --------------------------------------------------------------
def _inside(path: str, directories: Sequence[str]) -> bool:
    """``path`` names a file directly inside one of ``directories``
    (symbolic links resolved)."""
    parent = osp.realpath(osp.dirname(path) or '.')
    return any(parent == osp.realpath(d) for d in directories)


def check_message_hub(checkpoint: dict, context: ResumeContext,
                      source: str) -> None:
    """The hub's three dicts; checkpoint paths inside this run's checkpoint
    directories, ``keep_ckpt_ids`` iterations of this run, best scores
    finite: each else dropped with a warning (MMEngine deletes the files
    they name)."""
    hub = _need_dict(checkpoint.get('message_hub'), 'message_hub', source)
    for name in MESSAGE_HUB_FIELDS:
        _need_dict(hub.get(name), f'message_hub.{name}', source)
    for key, value in hub['resumed_keys'].items():
        if not isinstance(key, str) or not isinstance(value, bool):
            raise CheckpointError(
                f'{source}: message_hub.resumed_keys must map names to '
                f'True/False, got {key!r}: {value!r}')
    info = hub['runtime_info']
    dropped, removed = [], []
    for key in list(info):
        value = info[key]
        if not isinstance(key, str):
            raise CheckpointError(f'{source}: message_hub.runtime_info has '
                                  f'a key that is not a str: {key!r}')
        if PATH_KEY.match(key):
            if value is None:
                continue
            if not isinstance(value, str) or not value or not _inside(
                    value, context.checkpoint_dirs) or not osp.basename(
                    value).endswith('.pth'):
                dropped.append(f'{key}={value!r} (not a checkpoint file of '
                               'this work dir; CheckpointHook would delete '
                               'it)')
                removed.append(key)
            elif key.startswith('best_ckpt') and not _own_best(value):
                dropped.append(f'{key}={value!r} (not a best checkpoint '
                               'CheckpointHook wrote: best_<metric>_<iter|'
                               'epoch>_<n>.pth, a plain file; the next '
                               'better score would delete it)')
                removed.append(key)
        elif key == 'keep_ckpt_ids':
            limit = max(context.max_iters or 0, context.max_epochs or 0) \
                or None
            if not isinstance(value, (list, tuple)) or not all(
                    _is_int(v) and 0 <= v and (limit is None or v <= limit)
                    for v in value):
                dropped.append(f'keep_ckpt_ids={value!r} (must be iterations '
                               'or epochs of this run; CheckpointHook deletes '
                               'the checkpoints they name)')
                removed.append(key)
        elif SCORE_KEY.match(key):
            if not (_is_real(value) and math.isfinite(value)):
                dropped.append(f'{key}={value!r} (not a finite number)')
                removed.append(key)
    for key in removed:  # (MMEngine warns for resumed keys it lacks)
        del info[key]
        hub['resumed_keys'].pop(key, None)
    if dropped:
        context.warn(f'{source}: dropped from message_hub.runtime_info: '
                     + '; '.join(dropped))


# --- optimizer ------------------------------------------------------------------
def _optimizer_states(saved) -> List[Mapping]:
    """The plain optimizer state dicts in ``saved`` (one, or one per
    wrapper of an ``OptimWrapperDict``)."""
    if isinstance(saved, Mapping) and 'param_groups' in saved:
        return [saved]
    if isinstance(saved, Mapping) and saved and all(
            isinstance(v, Mapping) and 'param_groups' in v
            for v in saved.values()):
        return list(saved.values())
    return []


def check_optimizer(checkpoint: dict, context: ResumeContext,
                    source: str) -> None:
    """Every number of the optimizer state finite and of the live groups'
    types (``lr`` and ``weight_decay`` >= 0, ``amsgrad`` a bool, ...)."""
    if 'optimizer' not in checkpoint:
        return
    saved = _need_dict(checkpoint['optimizer'], 'optimizer', source)
    states = _optimizer_states(saved)
    if not states and saved:
        raise CheckpointError(
            f'{source}: optimizer has no param_groups (keys '
            f'{sorted(map(str, saved))[:5]}); not an optimizer state')
    for n, state in enumerate(states):
        where = 'optimizer' if len(states) == 1 else f'optimizer[{n}]'
        groups = state['param_groups']
        if not isinstance(groups, (list, tuple)) or not all(
                isinstance(g, Mapping) for g in groups):
            raise CheckpointError(f'{source}: {where}.param_groups must be a '
                                  'list of dicts')
        live = list(context.optimizer_groups or []) if n == 0 else []
        for i, group in enumerate(groups):
            reference = live[i] if i < len(live) else None
            missing = [k for k in (reference or {})
                       if k not in group and k not in ('params', 'param_names')
                       and not k.startswith('initial_')]
            if missing and len(groups) == len(live):
                raise CheckpointError(
                    f'{source}: {where}.param_groups[{i}] has no '
                    f'{", ".join(sorted(missing)[:5])}'
                    + (' ...' if len(missing) > 5 else '') +
                    ': every group the optimizer saves holds all its '
                    'hyperparameters; the file was cut or crafted')
            for key, value in group.items():
                at = f'{where}.param_groups[{i}].{key}'
                if key == 'params':  # indices; FSDP: parameter names
                    if not isinstance(value, (list, tuple)) or not all(
                            _is_int(p) or isinstance(p, str) for p in value):
                        raise CheckpointError(
                            f'{source}: {at} must be a list of parameter '
                            'indices (or names, FSDP)')
                    continue
                if key == 'param_names':
                    continue  # compared by the layout guard
                ref = None if reference is None else reference.get(key)
                if isinstance(ref, torch.Tensor):
                    ref = ref.item() if ref.numel() == 1 else None
                check_numbers_like(value, ref, at, source)
                if key in ('lr', 'weight_decay', 'initial_lr') and \
                        _is_real(value) and value < 0:
                    raise CheckpointError(f'{source}: {at} must be >= 0, '
                                          f'got {value}')
                _check_group_value(key, value, at, source)
        inner = state.get('state', {})
        inner = _need_dict(inner, f'{where}.state', source)
        _check_state_keys(inner, groups, where, source)
        shape_of, name_of = _live_shapes(state, live, context.strict_keys)
        betas_of = {p: g.get('betas') for g in groups
                    for p in (g.get('params') or ()) if _is_int(p)}
        for index, per_param in inner.items():
            name = name_of.get(index)
            at = f'{where}.state[{index}]' + (f' ({name})' if name else '')
            check_numbers_like(per_param, None, at, source)
            _check_param_state(per_param, shape_of(index), at, source)
            _check_adam_recursion(per_param, betas_of.get(index), at, source)
    for key, value in saved.items():  # e.g. AmpOptimWrapper's loss_scaler
        if key not in ('param_groups', 'state') and not (
                isinstance(value, Mapping) and 'param_groups' in value):
            check_numbers_like(value, None, f'optimizer.{key}', source)


def _check_state_keys(inner: Mapping, groups: Sequence[Mapping], where: str,
                      source: str) -> None:
    """Each key of the per-parameter state is one of the groups'
    ``params`` (an index; a name under FSDP): PyTorch's ``load_state_dict``
    keeps any other key as a stray entry, so a state keyed otherwise (the
    indices as strings) would drop every moment without a word."""
    params = {p for g in groups for p in (g.get('params') or ())
              if _is_int(p) or isinstance(p, str)}
    stray = [k for k in inner if k not in params or isinstance(k, bool)]
    if stray:
        known = sorted(params, key=str)
        raise CheckpointError(
            f'{source}: {where}.state has {len(stray)} key(s) that are no '
            f'parameter of its param_groups ({stray[0]!r}, a '
            f'{_type_name(stray[0])}; the groups hold '
            + (f'{known[0]!r} to {known[-1]!r}' if known else 'none')
            + '): their state would be dropped; the file was cut or '
            'crafted')


def _live_shapes(state: Mapping, live: Sequence[Mapping], strict: bool):
    """``(shape_of(index), {index: name})``: the live parameter a saved
    state index belongs to, by name where both sides name their parameters
    (a resume may regroup them), else by position.  Shapes only where they
    are the model's (``strict``: not under a strategy that flattens or
    shards them)."""
    try:
        saved_names = saved_param_names(state) or {}
    except StateMatchError as err:
        raise CheckpointError(str(err)) from None
    tensors = [(n, p) for g in live for n, p in zip(
        g.get('param_names') or [None] * len(g.get('params', ())),
        g.get('params', ())) if isinstance(p, torch.Tensor)]
    live_named = {n: tuple(p.shape) for n, p in tensors if n is not None}
    by_name = bool(saved_names) and len(live_named) == len(tensors)

    def shape_of(index):
        if not strict or not _is_int(index):
            return None
        if by_name:
            return live_named.get(saved_names.get(index))
        return tuple(tensors[index][1].shape) \
            if 0 <= index < len(tensors) else None
    return shape_of, saved_names


#: optimizer state kept as running squares or sums: square roots are taken
#: of them, so a negative value gives NaN weights at the next step
NON_NEGATIVE_STATE = ('exp_avg_sq', 'max_exp_avg_sq', 'square_avg', 'sum',
                      'acc_delta', 'exp_inf')


def _check_group_value(key: str, value, at: str, source: str) -> None:
    """A group hyperparameter as the optimizer will use it: in the ranges
    its construction accepts (``lr`` <= 1e4, ``betas`` in [0, 1), ``eps``
    > 0, ...)."""
    try:
        if key in OPTIMIZER_RANGES and key != 'lr' and _is_real(value):
            check_number(at, value, OPTIMIZER_RANGES[key])
        elif key in ('lr', 'initial_lr') and _is_real(value) and \
                value > MAX_LR:
            raise ValueError(f'{at} must be at most {MAX_LR:g} (above it '
                             f'the first step overflows), got {value}')
        elif key == 'betas':
            check_betas(at, value)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f'{source}: {err}') from None


def _check_param_state(per_param, shape, at: str, source: str) -> None:
    """One parameter's optimizer state: ``step`` a count >= 0, the moments
    tensors of the parameter's shape (``shape``; None: unknown), running
    squares >= 0."""
    if not isinstance(per_param, Mapping):
        raise CheckpointError(f'{source}: {at} must be a dict of state '
                              f'tensors, got a {_type_name(per_param)}')
    for key, value in per_param.items():
        where = f'{at}.{key}'
        if key == 'step':
            step = value.item() if isinstance(value, torch.Tensor) and \
                value.numel() == 1 else value
            if isinstance(step, bool) or not _is_real(step) or step < 0 \
                    or step != int(step):
                raise CheckpointError(
                    f'{source}: {where} must be a count of steps (an int '
                    f'>= 0, or a one-value tensor of one), got {value!r}')
            continue
        if not isinstance(value, torch.Tensor):
            if isinstance(value, (list, tuple, str)):
                raise CheckpointError(
                    f'{source}: {where} must be a tensor, got a '
                    f'{_type_name(value)}')
            continue
        sharded = callable(getattr(value, 'local_shards', None))
        if shape is not None and not sharded and (
                value.dim() or shape != ()) and tuple(value.shape) != shape:
            raise CheckpointError(
                f'{source}: {where} has shape {tuple(value.shape)}, the '
                f'parameter {list(shape)}')
        pieces = ([s.tensor for s in value.local_shards()] if sharded
                  else [value])
        if key in NON_NEGATIVE_STATE and any(
                t.numel() and t.is_floating_point() and bool((t < 0).any())
                for t in pieces):
            raise CheckpointError(
                f'{source}: {where} holds negative values; it is a running '
                'square, whose square root the next step takes (NaN '
                'weights)')


#: step tensors of these dtypes cannot count the steps of a run (a uint8
#: step wraps at 255; Adam's bias correction then divides by ~0)
SMALL_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.bool)


def adam_moment_bound(beta1: float, beta2: float) -> Optional[float]:
    """The largest ``|exp_avg| / sqrt(exp_avg_sq)`` Adam's own recursion
    can produce with these betas, whatever the gradients:
    ``m = (1 - b1) sum b1^k g``, ``v = (1 - b2) sum b2^k g^2`` give, by
    Cauchy-Schwarz, ``m^2 <= (1 - b1)^2 / ((1 - b2)(1 - b1^2 / b2)) v``
    (None where ``b1^2 >= b2``: no bound).

    >>> round(adam_moment_bound(0.9, 0.999), 3)
    7.27
    """
    if not (0 <= beta1 < 1 and 0 < beta2 < 1) or beta1 ** 2 >= beta2:
        return None
    return (1 - beta1) / math.sqrt((1 - beta2) * (1 - beta1 ** 2 / beta2))


def _check_adam_recursion(per_param, betas, at: str, source: str) -> None:
    """An Adam state is what Adam's recursion can produce: floating
    moments (a complex one would lose its imaginary part), of one shape,
    a step tensor wide enough to count, and ``|exp_avg|`` within
    :func:`adam_moment_bound` of ``sqrt(exp_avg_sq)``."""
    if not isinstance(per_param, Mapping):
        return
    step = per_param.get('step')
    if isinstance(step, torch.Tensor) and step.dtype in SMALL_INT_DTYPES:
        raise CheckpointError(
            f'{source}: {at}.step is a {step.dtype} tensor; a step count '
            'must be a float32 / int64 tensor or an int (Adam keeps a '
            'float32 one)')
    moments = {k: per_param.get(k) for k in ('exp_avg', 'exp_avg_sq')}
    for key, value in moments.items():
        if isinstance(value, torch.Tensor) and not value.is_floating_point():
            raise CheckpointError(
                f'{source}: {at}.{key} is {value.dtype}; Adam\'s moments are '
                'real floating tensors (a complex or integer one is not '
                'what Adam wrote)')
    m, v = moments['exp_avg'], moments['exp_avg_sq']
    if not (isinstance(m, torch.Tensor) and isinstance(v, torch.Tensor)):
        return
    if m.shape != v.shape:
        raise CheckpointError(
            f'{source}: {at}: exp_avg {tuple(m.shape)} and exp_avg_sq '
            f'{tuple(v.shape)} differ in shape; Adam keeps both of the '
            "parameter's shape")
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(
            _is_real(b) for b in betas)) or not m.numel():
        return
    bound = adam_moment_bound(float(betas[0]), float(betas[1]))
    if bound is None:
        return
    limit = bound * v.double().clamp(min=0).sqrt() * (1 + 1e-3) + 1e-12
    if bool((m.double().abs() > limit).any()):
        worst = (m.double().abs() - limit).argmax().item()
        raise CheckpointError(
            f'{source}: {at}: exp_avg {m.flatten()[worst].item():.4g} with '
            f'exp_avg_sq {v.flatten()[worst].item():.4g} (element {worst}): '
            f'no run of Adam with betas {tuple(betas)} gives |exp_avg| above '
            f'{bound:.4g} x sqrt(exp_avg_sq); the state was not written by '
            'Adam')


# --- schedulers -----------------------------------------------------------------
def check_schedulers(checkpoint: dict, context: ResumeContext,
                     source: str) -> None:
    """One state per configured scheduler, each with only the live
    scheduler's attributes (MMEngine's ``load_state_dict`` sets whatever
    the file names), of the same types, numbers finite and in range."""
    if 'param_schedulers' not in checkpoint:
        return
    saved = checkpoint['param_schedulers']
    if isinstance(saved, Mapping):  # one list per optimizer wrapper
        items = [(f'param_schedulers.{k}', v) for k, v in saved.items()]
    else:
        items = [('param_schedulers', saved)]
    live = context.scheduler_states
    saved_groups = _saved_group_counts(checkpoint)
    for where, states in items:
        if not isinstance(states, (list, tuple)) or not all(
                isinstance(s, Mapping) for s in states):
            raise CheckpointError(f'{source}: {where} must be a list of '
                                  'scheduler state dicts')
        if live is not None and len(items) == 1 and len(states) != len(live):
            raise CheckpointError(
                f'{source}: {where} holds {len(states)} scheduler state(s), '
                f'the config has {len(live)} param_scheduler(s); resuming '
                'would pair them wrongly. Resume with the schedulers the run '
                'was saved with, or start from its weights (load_from)')
        for i, state in enumerate(states):
            at = f'{where}[{i}]'
            reference = live[i] if live is not None and len(items) == 1 \
                else None
            if reference is not None:
                unknown = sorted(str(k) for k in state if k not in reference)
                if unknown:
                    raise CheckpointError(
                        f'{source}: {at} sets {unknown}, which the '
                        f'configured scheduler does not have')
            for key, value in state.items():
                ref = None if reference is None else reference.get(key)
                if key in PER_GROUP_KEYS + LAST_VALUE_KEYS and isinstance(
                        value, (list, tuple)) and isinstance(
                        ref, (list, tuple)) and len(value) in saved_groups:
                    # one per group of the checkpoint's optimizer: carried
                    # to the live groups by name (state_by_name)
                    ref = [ref[0] if ref else None] * len(value)
                check_numbers_like(value, ref, f'{at}.{key}', source)
            try:
                check_scheduler_numbers(state, at)
            except (TypeError, ValueError) as err:
                raise CheckpointError(f'{source}: {err}') from None


def _saved_group_counts(checkpoint: dict) -> Tuple[int, ...]:
    """How many values per group a scheduler of the checkpoint's optimizer
    holds: its groups (and one more, MMEngine's ``base_param_settings``)."""
    states = _optimizer_states(checkpoint.get('optimizer'))
    if len(states) != 1 or not isinstance(states[0].get('param_groups'),
                                          (list, tuple)):
        return ()
    count = len(states[0]['param_groups'])
    return (count, count + 1)


# --- weights ----------------------------------------------------------------------
def check_weights(checkpoint: dict, context: ResumeContext,
                  source: str) -> None:
    """Weights finite and floating where the model's are; on resume the
    same names and shapes as the model."""
    state = checkpoint.get('state_dict')
    if state is None:
        if context.resuming:
            raise CheckpointError(f'{source}: no state_dict (weights) to '
                                  'resume from')
        return
    state = _need_dict(state, 'state_dict', source)
    reference = context.model_state
    plain = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    try:
        check_tensors(plain, source, reference,
                      context.allow_nonfinite_weights,
                      NON_FINITE_WEIGHTS_OPT_OUT)
    except TensorTrustError as err:
        raise CheckpointError(str(err)) from None
    if context.resuming and context.strict_keys and reference is not None:
        check_same_weights(plain, reference, source)


def check_same_weights(state: Mapping, reference: Mapping,
                       source: str) -> None:
    """A resumed checkpoint's weights have the model's names and shapes
    (:func:`~.tensors.weights_mismatch`); else a ``CheckpointError``
    counting and naming the differences."""
    mismatch = weights_mismatch(state, reference)
    if mismatch:
        raise CheckpointError(
            f'{source}: its weights do not match the model being resumed: '
            f'{mismatch}. Resume needs the checkpoint of this config; to '
            'start from other weights, use load_from=CHECKPOINT without '
            '--resume')


def _own_best(path: str) -> bool:
    """A best checkpoint as ``CheckpointHook`` writes it: its name, and a
    plain file (not a link, a directory or a FIFO) if it exists."""
    if not BEST_NAME.match(osp.basename(path)):
        return False
    return not osp.lexists(path) or (osp.isfile(path)
                                     and not osp.islink(path))


def check_resume_state(checkpoint: Any, context: ResumeContext,
                       source: str) -> None:
    """Everything above; ``checkpoint`` is changed in place only by dropping
    untrusted paths."""
    checkpoint = _need_dict(checkpoint, 'the checkpoint', source)
    check_weights(checkpoint, context, source)
    if not context.resuming:
        return
    check_meta(checkpoint, context, source)
    check_message_hub(checkpoint, context, source)
    check_optimizer(checkpoint, context, source)
    check_schedulers(checkpoint, context, source)
