"""Checking numbers from configs and files: real, finite, in range, never a
quoted string; and the small dicts that hold them (known fields only).
Used by the settings, the models, the engine's config checks and the
checkpoint checks alike."""
import math
import numbers
from typing import Callable, Mapping, Tuple


def is_number(value) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def short_repr(value) -> str:
    """``repr(value)``, but an int of 64 bits or more as its size (a
    crafted count can have thousands of digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and \
            value.bit_length() >= 64:
        return f'an int of {value.bit_length()} bits'
    return repr(value)


def is_numeric_text(value) -> bool:
    """A string that reads as a number (``'1e-4'``): a quoted number."""
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_fields(where: str, value, fields: Tuple[str, ...]) -> Mapping:
    """``value`` if it is a dict whose keys are among ``fields``; else
    ``TypeError`` / ``ValueError`` naming ``where`` and the valid fields."""
    if not isinstance(value, Mapping):
        raise TypeError(f'{where} must be a dict with keys {fields}, got '
                        f'{value!r}')
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(f'{where} has unknown keys {unknown}; valid: '
                         f'{fields}')
    return value


Range = Tuple[str, Callable[[float], bool]]

#: ranges a number may have: (text for messages, test)
POSITIVE: Range = ('a number > 0', lambda v: v > 0)
NON_NEGATIVE: Range = ('a number >= 0', lambda v: v >= 0)
ANY: Range = ('a number', lambda v: True)
UNIT_OPEN_CLOSED: Range = ('in (0, 1]', lambda v: 0 < v <= 1)
UNIT_CLOSED: Range = ('in [0, 1]', lambda v: 0 <= v <= 1)
UNIT_CLOSED_OPEN: Range = ('in [0, 1)', lambda v: 0 <= v < 1)
UNIT_OPEN: Range = ('in (0, 1)', lambda v: 0 < v < 1)
FROM_MINUS_ONE: Range = ('a number >= -1', lambda v: v >= -1)
#: the largest learning rate accepted, base or per group: no optimizer in
#: use trains above it, and an lr near float's limit (1e308) overflows in
#: the first step (Adam's step size is lr / (1 - beta1))
MAX_LR = 1e4
LEARNING_RATE: Range = (f'in (0, {MAX_LR:g}]', lambda v: 0 < v <= MAX_LR)


def check_number(where: str, value, valid: Range) -> float:
    """``value`` as a float if it is a finite real number in range ``valid``
    (one of the ranges above); else ``TypeError`` (not a number, including
    numeric strings) or ``ValueError`` (non-finite or out of range), naming
    ``where``."""
    text, in_range = valid
    wanted = text if text.startswith('a number') else f'a number {text}'
    if not is_number(value):
        hint = (f' (a string: write {value} without quotes)'
                if is_numeric_text(value) else '')
        raise TypeError(f'{where} must be {wanted}, got {value!r}{hint}')
    try:
        as_float = float(value)
    except OverflowError:  # an int beyond any float
        raise ValueError(f'{where} must be {text}, got an integer of '
                         f'{value.bit_length()} bits') from None
    if not math.isfinite(as_float):
        raise ValueError(f'{where} must be a finite number, got {value}')
    if not in_range(as_float):
        raise ValueError(f'{where} must be {text}, got {value}')
    return as_float
