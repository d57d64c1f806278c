"""An absolute ``eta_min`` judged by what it does to the layer ratios.

MMEngine's ``PolyLR`` and ``CosineAnnealingLR`` move every group from its
own starting lr ``b`` towards the same absolute floor ``eta_min``
(PolyLR: ``(b - eta_min) * (1 - x) ** power + eta_min`` at fraction ``x``
of its span).  A floor at or above some group's starting lr makes that
group's lr *rise* during training: an error.  A lower floor only flattens
the layer ratios towards the end; the group with the smallest starting lr
flattens first, and its lr is twice the floor at

* PolyLR: ``x = 1 - (eta_min / (b - eta_min)) ** (1 / power)``,
* CosineAnnealingLR: ``x = arccos(2 * eta_min / (b - eta_min) - 1) / pi``,

from which point the ratios visibly compress: a warning that says so.
Pure: numbers in, message out.
"""
import math
from typing import Mapping, Optional, Tuple


def flattening_fraction(kind: str, floor: float, start: float,
                        power: float = 1.0) -> Optional[float]:
    """Fraction of the scheduler's span at which the lr that starts at
    ``start`` is ``2 * floor`` (None for other schedulers)."""
    ratio = floor / (start - floor)
    if kind.startswith('Poly'):
        return 1 - ratio ** (1 / power) if power > 0 else 1.0
    if kind.startswith('CosineAnnealing'):
        return math.acos(min(1.0, 2 * ratio - 1)) / math.pi
    return None


def judge_floor(where: str, kind: str, floor: float,
                start_lrs: Mapping[str, float], power: float = 1.0,
                span: Tuple[int, int] = None) -> Tuple[Optional[str],
                                                       Optional[str]]:
    """``(error, warning)`` for a scheduler with absolute ``eta_min=floor``
    over groups starting at ``start_lrs`` (group name -> lr)."""
    if not floor or not start_lrs:
        return None, None
    lowest_name = min(start_lrs, key=start_lrs.get)
    lowest = start_lrs[lowest_name]
    if floor >= lowest:
        return (f'{where} has eta_min={floor:g}, at or above the starting lr '
                f'of group {lowest_name} ({lowest:.4g}): that group\'s lr '
                'would rise during training. Use eta_min=0.0, or '
                'eta_min_ratio where the scheduler has it '
                '(CosineAnnealingLR), or a floor below every group\'s lr'), None
    fraction = flattening_fraction(kind, floor, lowest, power)
    when = ('towards the end' if fraction is None else
            f'from {100 * fraction:.1f} % of its span'
            + (f' (iteration {span[0] + fraction * (span[1] - span[0]):.0f})'
               if span else ''))
    return None, (
        f'{where} has an absolute eta_min={floor:g}: every group moves '
        f'towards the same floor, so the layer ratios flatten {when}, where '
        f'the lowest group ({lowest_name}, starting at {lowest:.4g}) is at '
        'twice the floor. eta_min=0.0 (or eta_min_ratio) keeps the ratios '
        'to the end')
