"""The numbers of one parameter scheduler (a config entry or its saved
state) that divide or multiply every step, in range."""
from typing import Any, Mapping

from ..core.numbers import (FROM_MINUS_ONE, NON_NEGATIVE, POSITIVE, UNIT_CLOSED,
                            UNIT_OPEN, UNIT_OPEN_CLOSED, Range, check_number,
                            is_number)


#: arguments (and saved state) of MMEngine's parameter schedulers that
#: divide or multiply every step, with the values that keep them finite:
#: LinearLR divides by ``start_factor``, ConstantLR by ``factor``,
#: CosineAnnealingLR by ``T_max``, OneCycleLR by ``total_steps``,
#: ``div_factor`` and ``final_div_factor``, PolyLR's ``power`` exponent
SCHEDULER_RANGES: Mapping[str, Range] = {
    'start_factor': UNIT_OPEN_CLOSED, 'end_factor': UNIT_CLOSED,
    'factor': UNIT_OPEN_CLOSED, 'T_max': POSITIVE, 'total_iters': POSITIVE,
    'power': NON_NEGATIVE, 'eta_min': NON_NEGATIVE,
    'eta_min_ratio': NON_NEGATIVE, 'gamma': POSITIVE, 'step_size': POSITIVE,
    'total_steps': POSITIVE, 'pct_start': UNIT_OPEN, 'div_factor': POSITIVE,
    'final_div_factor': POSITIVE, 'begin': NON_NEGATIVE, 'end': POSITIVE,
    'last_step': FROM_MINUS_ONE, 'T_0': POSITIVE, 'T_mult': POSITIVE,
}


def check_scheduler_numbers(scheduler: Mapping[str, Any],
                            where: str) -> None:
    """The arguments of :data:`SCHEDULER_RANGES` present in ``scheduler``
    (a config entry or a saved state) in range; ``begin < end``."""
    for key, valid in SCHEDULER_RANGES.items():
        value = scheduler.get(key)
        if value is None:
            continue
        check_number(f'{where}.{key}', value, valid)
    begin, end = scheduler.get('begin'), scheduler.get('end')
    if is_number(begin) and is_number(end) and begin >= end:
        raise ValueError(f'{where}: begin={begin} must be < end={end}')
