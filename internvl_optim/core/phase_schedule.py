"""Phases over layers: LP-FT, gradual unfreezing, per-layer warm-up.

Layer decay fixes the ratio between layers once; these recipes move it over
time without ever changing the groups (resume, ZeRO partitions and DDP's
buckets need the same groups from step 0).  Each group gets the step at
which its layer joins training (``join_at``) and a warm-up length
(``join_warmup``); what changes over time is a factor on the group's lr:

* ``head_only=H``: for the first H steps only the head trains (linear
  probing, then fine-tuning: LP-FT);
* ``unfreeze_every=K``: after that the layers join from the top down, one
  every K steps (the last block at H, the one below at H + K, ..., the
  embeddings last); ``0`` lets all join at H;
* ``warmup=W``: a layer that joins after step 0 rises linearly to its lr
  over W steps;
* ``unit='tower'``: with towers (a VLM), whole towers join instead of
  layers, the last one first (the language model, then the projector,
  then the vision tower); the parameters outside the towers are the head.

Steps are iterations, or epochs with ``by_epoch=True``.  Pure: the factor is
applied by :mod:`internvl_optim.runtime.layer_phases`.
"""
import numbers
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple

#: the group entries the phases are written in
JOIN_AT, JOIN_WARMUP, JOIN_BY_EPOCH = 'join_at', 'join_warmup', 'join_by_epoch'
FIELDS = ('head_only', 'unfreeze_every', 'warmup', 'by_epoch', 'unit')
#: more steps than any run takes (a larger count is a mistake or crafted)
MAX_STEPS = 10**8
#: what joins at a time: one layer, or one tower of a multi-tower model
UNITS = ('layer', 'tower')


@dataclass(frozen=True)
class LayerPhases:
    """``paramwise_cfg.layer_phases``, validated."""
    head_only: int = 0
    unfreeze_every: int = 0
    warmup: int = 0
    by_epoch: bool = False
    unit: str = 'layer'

    @classmethod
    def from_cfg(cls, value, where: str = 'paramwise_cfg.layer_phases'
                 ) -> Optional['LayerPhases']:
        """``None``, a :class:`LayerPhases`, or a dict of :data:`FIELDS`.

        >>> LayerPhases.from_cfg(dict(head_only=100, unfreeze_every=10))
        LayerPhases(head_only=100, unfreeze_every=10, warmup=0, by_epoch=False, unit='layer')
        >>> LayerPhases.from_cfg(dict(head_only=-1))
        Traceback (most recent call last):
        ...
        ValueError: paramwise_cfg.layer_phases.head_only must be an int >= 0, got -1
        """
        if value is None or isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                f'{where} must be a dict such as dict(head_only=500, '
                f'unfreeze_every=100, warmup=50), got {value!r}')
        unknown = [k for k in value if k not in FIELDS]
        if unknown:
            raise ValueError(f'{where} has unknown key {unknown[0]!r}; '
                             f'valid: {FIELDS}')
        for key in FIELDS[:3]:
            item = value.get(key, 0)
            if not isinstance(item, numbers.Integral) or isinstance(
                    item, bool) or item < 0:
                raise ValueError(f'{where}.{key} must be an int >= 0, got '
                                 f'{item!r}')
            if item > MAX_STEPS:
                raise ValueError(
                    f'{where}.{key} must be at most {MAX_STEPS:,} steps '
                    f'(more than any run takes), got an int of '
                    f'{len(str(item)) if item < 10 ** 50 else "over 50"} '
                    'digits')
        if value.get('unit', 'layer') not in UNITS:
            raise ValueError(f'{where}.unit must be one of {UNITS}, got '
                             f'{value["unit"]!r}')
        if not isinstance(value.get('by_epoch', False), bool):
            raise TypeError(f'{where}.by_epoch must be True or False, got '
                            f'{value["by_epoch"]!r}')
        phases = cls(**{k: value[k] for k in value})
        if not (phases.head_only or phases.unfreeze_every or phases.warmup):
            raise ValueError(
                f'{where} sets no phase (head_only, unfreeze_every and '
                'warmup are all 0): every layer would train from the start. '
                'Remove it, or set one of them')
        if not (phases.head_only or phases.unfreeze_every):
            raise ValueError(
                f'{where}.warmup={phases.warmup} warms up the layers that '
                'join after step 0, but with head_only=0 and '
                'unfreeze_every=0 every layer joins at step 0: the warm-up '
                'applies to none. Set head_only or unfreeze_every, or use '
                "the run's own warm-up (a LinearLR param_scheduler)")
        return phases

    def join_at(self, layer_id: int, top: int) -> int:
        """The step at which ``layer_id`` joins; ``top`` is the head's
        layer id (the tower's ``num_layers + 1``): it trains from step 0.

        >>> phases = LayerPhases(head_only=100, unfreeze_every=10)
        >>> [phases.join_at(i, top=4) for i in (4, 3, 2, 1, 0)]
        [0, 100, 110, 120, 130]
        """
        if layer_id >= top:
            return 0
        return self.head_only + (top - 1 - layer_id) * self.unfreeze_every


def phase_factor(join_at: int, warmup: int, step: int) -> float:
    """The factor on a group's lr at ``step`` (0-based).

    >>> [phase_factor(10, 4, s) for s in (9, 10, 11, 13, 14)]
    [0.0, 0.25, 0.5, 1.0, 1.0]
    >>> phase_factor(0, 4, 0)  # in from the start: the run's own warm-up
    1.0
    """
    if step < join_at:
        return 0.0
    if warmup and join_at > 0 and step - join_at < warmup:
        return (step - join_at + 1) / warmup
    return 1.0


def annotate_groups(groups: Iterable[dict], phases: LayerPhases,
                    tops: Mapping[str, int], default_top: int) -> None:
    """Write ``join_at`` / ``join_warmup`` into each group, from its
    ``layer_id`` and its tower's head id (``tops[tower]``, in the towers'
    order, else ``default_top``).  Groups here hold one layer each.

    >>> groups = [dict(layer_id=3, tower='vision'), dict(layer_id=1),
    ...           dict(layer_id=1, tower='language')]
    >>> annotate_groups(groups, LayerPhases(head_only=5, unfreeze_every=2,
    ...                 unit='tower'), dict(vision=4, language=1), 1)
    >>> [g['join_at'] for g in groups]
    [7, 0, 5]
    """
    towers = list(tops)
    for group in groups:
        tower = group.get('tower') or ''
        if phases.unit == 'tower':
            rank = len(towers) - 1 - towers.index(tower) if tower in towers \
                else None  # outside the towers: the head
            group[JOIN_AT] = 0 if rank is None else (
                phases.head_only + rank * phases.unfreeze_every)
        else:
            group[JOIN_AT] = phases.join_at(group['layer_id'],
                                            tops.get(tower, default_top))
        group[JOIN_WARMUP] = phases.warmup
        group[JOIN_BY_EPOCH] = phases.by_epoch


def group_factors(groups: Sequence[Mapping], step: int) -> List[float]:
    """The factor of every group at ``step`` (1.0 for a group without
    phases)."""
    return [phase_factor(g[JOIN_AT], g.get(JOIN_WARMUP, 0), step)
            if JOIN_AT in g else 1.0 for g in groups]


def has_phases(groups: Sequence[Mapping]) -> bool:
    return any(JOIN_AT in g for g in groups)


def schedule_table(groups: Sequence[Mapping], steps: Sequence[int]
                   ) -> List[Tuple[str, List[float]]]:
    """``(group name, [effective lr at each step])``: the plan's lr times
    the phase factor (other schedulers not included)."""
    return [(str(g.get('group_name', i)),
             [g.get('initial_lr', g['lr']) * f for f in (
                 group_factors([g], s)[0] for s in steps)])
            for i, g in enumerate(groups)]
