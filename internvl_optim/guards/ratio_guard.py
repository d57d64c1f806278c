"""Do the live lrs still keep the plan's ratios between groups?

Every scheduler that keeps the ratios moves all groups by one factor:
``lr / initial_lr`` is the same for every group (phases over layers act
inside the optimizer step only, so they do not count here).  A scheduler
that writes an absolute lr into each group (DeepSpeed's ``WarmupLR`` /
``WarmupDecayLR`` / ``OneCycle`` / ``LRRangeTest``, a hand-written one), or
a wrapper that rebuilt the groups, breaks that; :func:`ratio_drift` names
the group.  :func:`deepspeed_scheduler_problem` finds such a scheduler in a
DeepSpeed config before training.  Pure functions over plain dicts.
"""
import math
import numbers
from typing import Mapping, Optional, Sequence

#: DeepSpeed 0.15.4 (``deepspeed/runtime/lr_schedules.py``): each of these
#: turns a scalar ``*_lr`` into one value per group (``_format_param``)
#: and sets every group to it
DEEPSPEED_SCHEDULERS = ('WarmupLR', 'WarmupDecayLR', 'WarmupCosineLR',
                        'OneCycle', 'LRRangeTest')


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def deepspeed_scheduler_problem(ds_config, where: str) -> Optional[str]:
    """An error message when the DeepSpeed config ``ds_config`` (a dict)
    has a ``scheduler``: DeepSpeed's schedulers set every param group to
    the same lr, erasing the layer-decay ratios.

    >>> print(deepspeed_scheduler_problem(dict(scheduler=dict(
    ...     type='WarmupLR')), 'strategy.config'))  # doctest: +ELLIPSIS
    strategy.config.scheduler (WarmupLR) sets every param group to the same lr...
    """
    if not isinstance(ds_config, Mapping) or not ds_config.get('scheduler'):
        return None
    scheduler = ds_config['scheduler']
    kind = scheduler.get('type') if isinstance(scheduler, Mapping) else None
    return (f'{where}.scheduler ({kind}) sets every param group to the same '
            "lr (DeepSpeed's schedulers write one lr into all groups), "
            'erasing the layer-wise ratios of paramwise_cfg. Remove '
            "'scheduler' from the DeepSpeed config and schedule with "
            "MMEngine's param_scheduler (LinearLR for a warm-up, "
            'CosineAnnealingLR, ...), or with HF Trainer\'s lr_scheduler_type,'
            ' which keep the ratios')


def ratio_drift(groups: Sequence[Mapping], rel_tol: float = 1e-6,
                planned_names: Optional[Sequence[str]] = None
                ) -> Optional[str]:
    """``None`` when every group is at the same fraction of its planned
    lr; else a message naming the group furthest from the first group's
    (the head's) fraction.

    The plan is the groups' own ``lr_scale`` (set when they were built; no
    scheduler rewrites it, while ``OneCycleLR`` and ``CyclicLR`` rewrite
    ``initial_lr``), else ``initial_lr``.  A non-finite lr is named, and
    with ``planned_names`` (the group names the guard saw at the start)
    groups that are no longer those (an optimizer rebuilt from
    ``model.parameters()``, a wrapper that regrouped) are named too.

    >>> groups = [dict(group_name='head', lr=0.5, initial_lr=1.0),
    ...           dict(group_name='layer_1', lr=0.25, initial_lr=0.5)]
    >>> ratio_drift(groups) is None
    True
    >>> groups[1]['lr'] = 0.5  # flattened
    >>> print(ratio_drift(groups))
    group layer_1 is at lr 0.5, 1 x its planned 0.5, while head is at 0.5 x its planned 1: the ratio between them is 1, the plan's 0.5
    """
    names = [str(g.get('group_name', i)) for i, g in enumerate(groups)]
    for name, group in zip(names, groups):
        lr = group.get('lr')
        if _real(lr) and not math.isfinite(lr):
            return f'group {name} is at lr {lr}: not a finite number'
    if planned_names is not None and list(names) != list(planned_names):
        missing = [n for n in planned_names if n not in names]
        return (f'the optimizer has {len(names)} groups now, '
                f'{len(planned_names)} were planned'
                + (f' (missing: {", ".join(missing[:3])}'
                   + (', ...' if len(missing) > 3 else '') + ')'
                   if missing else '')
                + ': it was rebuilt or regrouped after the groups were made, '
                'and their lrs are not the plan\'s')
    by_scale = all(_real(g.get('lr_scale')) for g in groups)
    key = 'lr_scale' if by_scale else 'initial_lr'
    scheduled = [(name, g['lr'], g[key])
                 for name, g in zip(names, groups)
                 if _real(g.get(key)) and g[key] > 0 and _real(g.get('lr'))]
    if len(scheduled) < 2:
        return None
    ref_name, ref_lr, ref_initial = scheduled[0]
    ref = ref_lr / ref_initial
    worst, worst_gap = None, 0.0
    for name, lr, initial in scheduled[1:]:
        gap = abs(lr / initial - ref)
        if gap > rel_tol * max(abs(ref), 1e-300) and gap > worst_gap:
            worst, worst_gap = (name, lr, initial), gap
    if worst is None:
        return None
    name, lr, initial = worst
    if by_scale:
        return (f'group {name} is at lr {lr:.4g}, while {ref_name} is at '
                f'{ref_lr:.4g}: the ratio between them is '
                f'{lr / ref_lr if ref_lr else float("inf"):.4g}, the '
                f'plan\'s {initial / ref_initial:.4g} (their lr_scale '
                f'{initial:.4g} and {ref_initial:.4g})')
    return (f'group {name} is at lr {lr:.4g}, {lr / initial:.4g} x its '
            f'planned {initial:.4g}, while {ref_name} is at {ref:.4g} x its '
            f'planned {ref_initial:.4g}: the ratio between them is '
            f'{lr / ref_lr if ref_lr else float("inf"):.4g}, the plan\'s '
            f'{initial / ref_initial:.4g}')
