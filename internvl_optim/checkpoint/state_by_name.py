"""Optimizer state matched to parameters by name, not by position.

PyTorch keys an optimizer's per-parameter state (Adam's moments and step)
by the parameter's position in the groups, so a resume after any change to
the groups (another ``layer_decay_rate``, more blocks unfrozen, a tower's
``lr_mult``) either fails or puts moments on the wrong tensors.  Our groups
carry ``param_names``; :func:`match_state_by_name` rebuilds a saved state
for the live groups by those names:

* a parameter in both keeps its state (moments, step), whatever group it
  now sits in; one only in the live groups starts fresh; one only in the
  checkpoint is dropped; a parameter whose state has another shape is an
  error naming it;
* a parameter whose saved state holds other fields than its live update
  keeps (AdamW's ``step``, ``exp_avg``, ``exp_avg_sq``; Muon's and SGD's
  ``momentum_buffer``: :func:`optimizer_state_fields`) starts fresh and is
  named: a run switched from AdamW to the hybrid ``MuonAdamW`` keeps the
  moments of the parameters that stay on AdamW;
* the group hyperparameters (lr, weight decay, betas, ...) are the live
  groups', i.e. the new config's; a scheduled one (``initial_<key>`` set
  by the scheduler) continues from the point of its schedule the
  checkpoint reached: ``initial_<key> * saved <key> / saved initial_<key>``;
* :func:`adapt_scheduler_state` gives the schedulers' per-group lists
  (``base_lrs``, ``base_values``, ...) the live groups' values.

Nothing changed (same groups, names and configured values) is reported as
such, so the caller loads the checkpoint untouched.  A state without names
(older, or another tool's) is not matched: :func:`saved_param_names`
returns ``None`` and the layout must be identical, as before.  Pure: no
MMEngine import; plain PyTorch and HF ``Trainer`` users call
:func:`load_state_by_name`.
"""
import collections
import math
import numbers
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..core.numbers import MAX_LR
from .errors import CheckpointError

#: group entries that are not hyperparameters
NOT_HYPER = ('params', 'param_names')
#: scheduler state entries holding one value per param group (PyTorch's
#: ``LRScheduler`` and ``ReduceLROnPlateau``, MMEngine's ``_ParamScheduler``)
PER_GROUP_KEYS = ('base_lrs', 'base_values', 'lr_lambdas', 'min_lrs',
                  'max_lrs', 'base_momentums', 'max_momentums')
#: per-group entries holding the groups' current value
LAST_VALUE_KEYS = ('_last_lr', '_last_value')


#: the per-parameter state fields of the updates whose state is known
ADAMW_FIELDS = frozenset(('step', 'exp_avg', 'exp_avg_sq'))
MOMENTUM_FIELDS = frozenset(('momentum_buffer', ))


def optimizer_state_fields(optimizer):
    """``group -> the state fields a parameter of that group keeps``
    (None: not known, the saved state is taken as it is) for ``optimizer``:
    per group for ``MuonAdamW`` (its ``algorithm``), else by class
    (``Adam`` / ``AdamW``, with ``max_exp_avg_sq`` under ``amsgrad``;
    ``SGD`` with momentum)."""
    name = type(optimizer).__name__

    def fields(group: Mapping):
        algorithm = group.get('algorithm')
        if algorithm == 'muon':
            return MOMENTUM_FIELDS
        if algorithm == 'adamw' or name in ('Adam', 'AdamW'):
            return ADAMW_FIELDS | ({'max_exp_avg_sq'} if group.get('amsgrad')
                                   else set())
        if name == 'SGD':
            return MOMENTUM_FIELDS if group.get('momentum') else frozenset()
        return None
    return fields


class StateMatchError(CheckpointError):
    """The saved state cannot be carried to the live groups by name."""


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _group_label(group: Mapping, index: int) -> str:
    return str(group.get('group_name', f'group {index}'))


def saved_param_names(state_dict: Mapping) -> Optional[Dict[int, str]]:
    """``{index: name}`` of a saved optimizer state whose every group
    carries ``param_names`` for its integer ``params``; ``None`` when it
    does not (then it can only be loaded into an identical layout)."""
    groups = state_dict.get('param_groups') if isinstance(
        state_dict, Mapping) else None
    if not isinstance(groups, (list, tuple)) or not groups:
        return None
    names: Dict[int, str] = {}
    for i, group in enumerate(groups):
        params = group.get('params') if isinstance(group, Mapping) else None
        group_names = group.get('param_names') if isinstance(
            group, Mapping) else None
        if not isinstance(params, (list, tuple)) or not isinstance(
                group_names, (list, tuple)) or len(params) != len(
                group_names) or not all(
                isinstance(p, int) and not isinstance(p, bool)
                for p in params) or not all(
                isinstance(n, str) for n in group_names):
            return None
        for index, name in zip(params, group_names):
            if index in names:
                raise StateMatchError(
                    f'optimizer.param_groups[{i}].params: index {index} is '
                    'in two groups')
            names[index] = name
    if len(set(names.values())) != len(names):
        twice = collections.Counter(names.values()).most_common(1)[0][0]
        raise StateMatchError(f'optimizer.param_groups: parameter {twice!r} '
                              'is named in two places')
    return names


def live_param_names(groups: Sequence[Mapping]) -> Optional[List[str]]:
    """The live groups' names in PyTorch's index order, or ``None`` when a
    group has no ``param_names``."""
    names: List[str] = []
    for group in groups:
        group_names = group.get('param_names')
        if not isinstance(group_names, (list, tuple)) or len(
                group_names) != len(group['params']):
            return None
        names.extend(group_names)
    if len(set(names)) != len(names):
        return None
    return names


def configured(group: Mapping, key: str):
    """What the config set for ``key``: the value before any scheduler
    moved it (``initial_<key>``), else the value."""
    return group.get(f'initial_{key}', group.get(key))


_PLAIN = (float, int, bool, str, type(None))


def _same(a, b) -> bool:
    if a is b or (type(a) is type(b) and type(a) in _PLAIN and a == b):
        return True
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) \
            and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if _is_real(a) and _is_real(b):
        return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a == b


def _progress(group: Mapping, key: str) -> Optional[float]:
    """How far a scheduler has moved ``key``: ``value / initial``."""
    initial, value = group.get(f'initial_{key}'), group.get(key)
    if _is_real(initial) and _is_real(value) and initial > 0:
        return value / initial
    return None


def _scheduled(group: Mapping) -> List[str]:
    """The keys of ``group`` a scheduler moves (``initial_<key>`` set)."""
    return [key[len('initial_'):] for key in group
            if key.startswith('initial_') and key[len('initial_'):] in group
            and _is_real(group[key])]


def continue_schedule(live: Mapping, saved: Optional[Mapping],
                      label: Optional[str] = None) -> dict:
    """``live`` (a group as configured now) at the point of its schedule
    that ``saved`` (the same group in the checkpoint) reached; ``label``
    names the group in errors (default: its ``group_name``)."""
    label = label or str(live.get('group_name', 'group'))
    result = dict(live)
    for key in _scheduled(live):
        factor = _progress(saved, key) if isinstance(saved, Mapping) \
            else None
        if factor is not None:
            result[key] = _continued(label, key, live[f'initial_{key}'],
                                     factor)
    return result


def _continued(label: str, key: str, initial: float, factor: float) -> float:
    """``initial * factor``, the new value at the checkpoint's point of the
    schedule; a factor from the file that makes it non-finite, or an lr
    above :data:`MAX_LR`, is refused naming the group."""
    value = initial * factor
    if key == 'lr' and value == 0.0 and initial > 0:
        raise StateMatchError(
            f'{label}: the checkpoint\'s lr is 0 with initial_lr '
            f'{initial:g}: the schedulers, which scale the current lr, '
            'would keep it at 0 for the rest of the run. A run that ended at '
            'lr 0 continues from its weights (load_from=CHECKPOINT without '
            '--resume) with a new schedule')
    if not math.isfinite(value) or (key == 'lr' and value > MAX_LR):
        raise StateMatchError(
            f'{label}: the checkpoint\'s {key} / initial_{key} ({factor:g}) '
            f'would put {key} at {value:g} (valid: finite'
            + (f', at most {MAX_LR:g}' if key == 'lr' else '') + ')')
    return value


def _fmt(value) -> str:
    if _is_real(value) and not isinstance(value, int):
        return f'{value:.4g}'
    if isinstance(value, tuple):
        return '(' + ', '.join(_fmt(v) for v in value) + ')'
    return str(value)


@dataclass
class StateMatch:
    """What :func:`match_state_by_name` found.

    Attributes:
        state_dict: the state for the live optimizer (its groups' layout and
            hyperparameters, the checkpoint's per-parameter state).
        changed: False when groups, names and configured values are the
            checkpoint's (load the checkpoint as it is).
        kept / added / removed: parameter names whose state carries over,
            that start fresh (new), that are dropped.
        moved: ``(name, checkpoint group, group now)`` for kept parameters
            that changed group.
        restarted: ``(name, saved fields, update now)`` for parameters
            whose saved state is not what their update keeps: they start
            fresh.
        group_lines: the groups that differ, one line each.
    """
    state_dict: dict
    changed: bool
    kept: List[str] = field(default_factory=list)
    added: List[str] = field(default_factory=list)
    removed: List[str] = field(default_factory=list)
    moved: List[Tuple[str, str, str]] = field(default_factory=list)
    group_lines: List[str] = field(default_factory=list)
    restarted: List[Tuple[str, str, str]] = field(default_factory=list)

    def table(self) -> str:
        """The change, as the log shows it before the first step."""
        def some(names):
            shown = ', '.join(names[:4])
            return shown + (f' and {len(names) - 4} more'
                            if len(names) > 4 else '')
        lines = ['Resuming with the optimizer state matched by parameter '
                 'name; what changed since the checkpoint:']
        lines += [f'  {line}' for line in self.group_lines]
        lines.append(
            f'  parameters: {len(self.kept)} keep their state'
            + (f' ({len(self.moved)} in another group)' if self.moved
               else '')
            + f', {len(self.added)} start fresh'
            + (f' ({some(self.added)})' if self.added else '')
            + f', {len(self.removed)} dropped'
            + (f' ({some(self.removed)})' if self.removed else ''))
        if self.restarted:
            kinds = collections.Counter((f, u) for _, f, u in self.restarted)
            lines.append(
                f'  {len(self.restarted)} start fresh for their new update ('
                + '; '.join(f'{n} with {f} now {u}'
                            for (f, u), n in kinds.items())
                + f'): {some([n for n, _, _ in self.restarted])}')
        return '\n'.join(lines)


def _group_lines(saved_groups, groups) -> List[str]:
    """One line per group added, removed, or with other parameters or
    configured values."""
    then = {_group_label(g, i): g for i, g in enumerate(saved_groups)}
    now = {_group_label(g, i): g for i, g in enumerate(groups)}
    lines = []
    for label, group in now.items():
        old = then.get(label)
        if old is None:
            values = ', '.join(f'{k}={_fmt(configured(group, k))}'
                               for k in ('lr', 'weight_decay') if k in group)
            lines.append(f'{label}: new group ({len(group["params"])} '
                         f'parameters; {values})')
            continue
        diffs = []
        for key in group:
            if key in NOT_HYPER or key.startswith('initial_') or \
                    key not in old:
                continue
            a, b = configured(old, key), configured(group, key)
            if not _same(a, b):
                diffs.append(f'{key} {_fmt(a)} -> {_fmt(b)}')
        before, after = old.get('param_names', ()), group['param_names']
        if list(before) != list(after) and set(before) != set(after):
            before, after = set(before), set(after)
            diffs.append(f'parameters {len(before)} -> {len(after)} '
                         f'(+{len(after - before)} -{len(before - after)})')
        if diffs:
            lines.append(f'{label}: ' + '; '.join(diffs))
    lines += [f'{label}: only in the checkpoint '
              f'({len(g.get("params", ()))} parameters)'
              for label, g in then.items() if label not in now]
    return lines


def match_state_by_name(saved: Mapping, groups: Sequence[Mapping],
                        state_fields=None) -> Optional[StateMatch]:
    """The saved optimizer state ``saved`` (PyTorch's ``state_dict()``
    format, groups with ``param_names``) rebuilt for the live ``groups``
    (``params`` tensors and ``param_names``).

    ``state_fields(group)`` (:func:`optimizer_state_fields`) gives the
    fields a live group's parameters keep; a saved state with others
    starts fresh.  Returns ``None`` when either side has no names for
    every parameter (then only an identical layout can be loaded).  Raises
    :class:`StateMatchError` naming the parameter whose state has another
    shape than the live parameter.

    >>> import torch
    >>> w, b = torch.zeros(2, 3), torch.zeros(3)
    >>> saved = dict(state={0: dict(step=torch.tensor(4.),
    ...                             exp_avg=torch.ones(2, 3))},
    ...              param_groups=[dict(params=[0], param_names=['w'],
    ...                                 lr=0.5, initial_lr=1.0)])
    >>> groups = [dict(params=[b], param_names=['b'], lr=2.0,
    ...                initial_lr=2.0),
    ...           dict(params=[w], param_names=['w'], lr=0.1,
    ...                initial_lr=0.1)]
    >>> match = match_state_by_name(saved, groups)
    >>> match.changed, match.kept, match.added
    (True, ['w'], ['b'])
    >>> sorted(match.state_dict['state']), [
    ...     g['lr'] for g in match.state_dict['param_groups']]
    ([1], [1.0, 0.05])
    """
    index_to_name = saved_param_names(saved)
    names_now = live_param_names(groups)
    if index_to_name is None or names_now is None:
        return None
    saved_groups = list(saved['param_groups'])
    same_layout = len(saved_groups) == len(groups) and all(
        _group_label(a, i) == _group_label(b, i)
        and list(a['param_names']) == list(b['param_names'])
        for i, (a, b) in enumerate(zip(saved_groups, groups)))
    lines = _group_lines(saved_groups, groups)
    if same_layout and not lines and state_fields is not None:
        # the same groups under another optimizer (AdamW -> SGD): its
        # state and hyperparameters are not the saved ones
        saved_state = saved.get('state') or {}
        for group, old in zip(groups, saved_groups):
            wanted = state_fields(group)
            if wanted is None:
                continue
            if any(isinstance(saved_state.get(i), Mapping)
                   and set(saved_state[i]) and
                   set(saved_state[i]) != set(wanted)
                   for i in old['params']) or set(group) - set(old) - {
                       'params', 'param_names'}:
                lines = ['the optimizer changed: its per-parameter state '
                         'and hyperparameters are not the saved ones']
                break
    if same_layout and not lines:  # nothing changed: load it as it is
        return StateMatch(state_dict=dict(saved), changed=False,
                          kept=list(names_now))
    saved_state = saved.get('state') or {}
    name_to_index = {n: i for i, n in index_to_name.items()}
    saved_group_of = {}
    for i, group in enumerate(saved_groups):
        for name in group['param_names']:
            saved_group_of[name] = i

    # global progress per scheduled key (for groups with no old params)
    def common_progress(key, group_indices):
        counts = collections.Counter()
        for gi, weight in group_indices:
            factor = _progress(saved_groups[gi], key)
            if factor is not None:
                counts[factor] += weight
        return counts.most_common(1)[0][0] if counts else None

    everywhere = collections.Counter(saved_group_of.values())
    state: Dict[int, dict] = {}
    new_groups: List[dict] = []
    kept, added, moved, restarted = [], [], [], []
    index = 0
    for gi, group in enumerate(groups):
        label = _group_label(group, gi)
        wanted = state_fields(group) if state_fields is not None else None
        new_group = {k: v for k, v in group.items() if k != 'params'}
        new_group['param_names'] = list(group['param_names'])
        new_group['params'] = []
        origins = collections.Counter()
        for name, param in zip(group['param_names'], group['params']):
            new_group['params'].append(index)
            if name in name_to_index:
                old_index = name_to_index[name]
                origins[saved_group_of[name]] += 1
                old_label = _group_label(saved_groups[saved_group_of[name]],
                                         saved_group_of[name])
                fresh = False
                if old_index in saved_state:
                    per_param = saved_state[old_index]
                    _check_shapes(name, per_param, param)
                    fresh = wanted is not None and isinstance(
                        per_param, Mapping) and bool(set(per_param)) and \
                        set(per_param) != set(wanted)
                    if fresh:  # counted apart, not as kept or moved
                        restarted.append((
                            name, '+'.join(sorted(per_param)),
                            group.get('algorithm') or
                            '+'.join(sorted(wanted)) or 'no state'))
                    else:
                        state[index] = per_param
                if not fresh:
                    kept.append(name)
                    if old_label != label:
                        moved.append((name, old_label, label))
            else:
                added.append(name)
            index += 1
        for key in _scheduled(group):
            factor = common_progress(key, origins.items() or
                                     everywhere.items())
            if factor is not None:
                new_group[key] = _continued(label, key,
                                            group[f'initial_{key}'], factor)
        new_groups.append(new_group)
    live = set(names_now)
    removed = [n for n in name_to_index if n not in live]
    if not lines:
        lines = ['the groups are the same but in another order']
    result = {k: v for k, v in saved.items()
              if k not in ('state', 'param_groups')}
    result.update(state=state, param_groups=new_groups)
    return StateMatch(state_dict=result, changed=True, kept=kept,
                      added=added, removed=removed, moved=moved,
                      group_lines=lines, restarted=restarted)


def _check_shapes(name: str, per_param, param) -> None:
    if not isinstance(per_param, Mapping) or not isinstance(
            param, torch.Tensor):
        return
    for key, value in per_param.items():
        if isinstance(value, torch.Tensor) and value.dim() and \
                value.shape != param.shape:
            raise StateMatchError(
                f'optimizer state of {name!r}: {key} has shape '
                f'{list(value.shape)} in the checkpoint, the parameter is '
                f'{list(param.shape)} now. A parameter that changed shape '
                'cannot keep its state: start from the weights '
                '(load_from=CHECKPOINT without resume) or restore its shape')


def adapt_scheduler_state(saved: Mapping, live: Mapping,
                          new_groups: Sequence[Mapping],
                          saved_group_count: int) -> dict:
    """A scheduler's saved state with its per-group lists taken from the
    live scheduler (``base_lrs``, ``base_values``, ...) and its last values
    from ``new_groups``; progress (``last_epoch``, ``last_step``, counts)
    stays the checkpoint's.  Nested schedulers (``_schedulers``) likewise.
    A list of one value per saved group under a key not known to be per
    group is an error naming the key."""
    result = dict(saved)
    param = saved.get('param_name', 'lr')
    for key, value in saved.items():
        if key == '_schedulers' and isinstance(value, (list, tuple)) and \
                isinstance(live.get(key), (list, tuple)) and \
                len(value) == len(live[key]):
            result[key] = [adapt_scheduler_state(s, l, new_groups,
                                                 saved_group_count)
                           for s, l in zip(value, live[key])]
        elif key in LAST_VALUE_KEYS:
            result[key] = [g.get(param) for g in new_groups]
        elif key in PER_GROUP_KEYS:
            if key not in live:
                raise StateMatchError(
                    f'scheduler state {key!r}: the configured scheduler has '
                    'none; resume with the schedulers the run was saved '
                    'with')
            result[key] = live[key]
        elif isinstance(value, (list, tuple)) and len(
                value) == saved_group_count and saved_group_count != len(
                new_groups):
            raise StateMatchError(
                f'scheduler state {key!r} holds one value per saved group; '
                'it cannot be carried to the new groups. Resume with the '
                'groups the run was saved with, or start from the weights')
    return result


def load_state_by_name(optimizer, state_dict: Mapping, schedulers=(),
                       scheduler_states=(), warn=print) -> StateMatch:
    """Load ``state_dict`` into ``optimizer`` matched by parameter name,
    and ``scheduler_states`` into ``schedulers`` adapted to the new groups
    (plain PyTorch, HF ``Trainer``); ``warn`` receives the change table
    when something changed.  Without names on either side the state is
    loaded as PyTorch does (the layout guard refuses a different one)."""
    match = match_state_by_name(state_dict, optimizer.param_groups,
                                optimizer_state_fields(optimizer))
    schedulers, scheduler_states = list(schedulers), list(scheduler_states)
    if len(schedulers) != len(scheduler_states):
        raise ValueError(f'{len(schedulers)} schedulers and '
                         f'{len(scheduler_states)} scheduler states')
    if match is None or not match.changed:
        optimizer.load_state_dict(state_dict)
        for scheduler, state in zip(schedulers, scheduler_states):
            scheduler.load_state_dict(state)
        return match
    adapted = [adapt_scheduler_state(
        state, scheduler.state_dict(), match.state_dict['param_groups'],
        len(state_dict['param_groups']))
        for scheduler, state in zip(schedulers, scheduler_states)]
    warn(match.table())
    optimizer.load_state_dict(match.state_dict)
    for scheduler, state in zip(schedulers, adapted):
        scheduler.load_state_dict(state)
    return match
