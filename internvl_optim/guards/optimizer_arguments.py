"""An optimizer config checked before anything is built.

* :func:`check_optimizer_numbers`: every number of ``optim_wrapper`` in
  range (``lr`` > 0, ``betas`` in [0, 1), ...), never a string;
* :func:`check_optimizer_arguments`: against the optimizer class itself:
  every key is an argument of it, and every value has the type of that
  argument's default (``amsgrad='yes'`` is not a bool: PyTorch would take
  any truthy value).

Pure: inspects the class, builds nothing."""
import difflib
import inspect
import math
from typing import Any, Mapping

from ..core.numbers import (LEARNING_RATE, NON_NEGATIVE, POSITIVE,
                            UNIT_CLOSED, UNIT_CLOSED_OPEN, check_number,
                            is_number, is_numeric_text)

#: keys of an optimizer config that are not arguments of the class
NOT_ARGUMENTS = ('type', )


def _takes_bool(param: inspect.Parameter) -> bool:
    """A flag: default ``True``/``False``, or ``None`` with a bool
    annotation (``foreach: Optional[bool] = None``)."""
    if isinstance(param.default, bool):
        return True
    annotation = str(param.annotation)
    return param.default is None and 'bool' in annotation and not any(
        other in annotation for other in ('float', 'int', 'str', 'Tensor'))


def check_optimizer_arguments(optimizer_cfg: Mapping[str, Any], optimizer_cls,
                              where: str = 'optim_wrapper.optimizer') -> None:
    """Raise ``TypeError`` naming the key for an argument ``optimizer_cls``
    does not take, or a value of the wrong type."""
    try:
        signature = inspect.signature(optimizer_cls)
    except (TypeError, ValueError):  # pragma: no cover (builtins)
        return
    params = dict(list(signature.parameters.items())[1:])  # after `params`
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD
                     for p in params.values())
    name = getattr(optimizer_cls, '__name__', str(optimizer_cls))
    for key, value in optimizer_cfg.items():
        if key in NOT_ARGUMENTS:
            continue
        param = params.get(key)
        if param is None or param.kind in (inspect.Parameter.VAR_KEYWORD,
                                           inspect.Parameter.VAR_POSITIONAL):
            if open_ended:
                continue
            valid = [k for k, p in params.items()
                     if p.kind not in (inspect.Parameter.VAR_KEYWORD,
                                       inspect.Parameter.VAR_POSITIONAL)]
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ''
            raise TypeError(f'{where}.{key} is not an argument of {name}.'
                            f'{hint} Valid: {", ".join(valid)}')
        default = param.default
        if _takes_bool(param):
            if not (isinstance(value, bool) or
                    (value is None and default is None)):
                raise TypeError(
                    f'{where}.{key} must be True or False'
                    + (' (or None)' if default is None else '')
                    + f' ({name}\'s default is {default!r}), got {value!r}')
        elif is_number(default):
            if not is_number(value):
                hint = (f' (a string: write {value} without quotes)'
                        if is_numeric_text(value) else '')
                raise TypeError(f'{where}.{key} must be a number like '
                                f'{name}\'s default {default!r}, got '
                                f'{value!r}{hint}')
        elif isinstance(default, tuple) and all(map(is_number, default)):
            if not (isinstance(value, (list, tuple))
                    and len(value) == len(default)
                    and all(map(is_number, value))):
                raise TypeError(f'{where}.{key} must be {len(default)} '
                                f'numbers like {name}\'s default {default}, '
                                f'got {value!r}')


#: optimizer keys with a range; any other number must be finite, and no
#: number may be given as a string
OPTIMIZER_RANGES = {
    'lr': LEARNING_RATE, 'weight_decay': NON_NEGATIVE, 'eps': POSITIVE,
    'momentum': UNIT_CLOSED, 'dampening': UNIT_CLOSED, 'alpha': UNIT_CLOSED,
    'rho': UNIT_CLOSED,
}


def check_betas(where: str, value) -> None:
    """Adam's ``betas``: two numbers in [0, 1) (a config's or a saved
    group's)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise TypeError(f'{where} must be two numbers in [0, 1), got '
                        f'{value!r}')
    for i, beta in enumerate(value):
        check_number(f'{where}[{i}]', beta, UNIT_CLOSED_OPEN)


def check_optimizer_numbers(optim_wrapper_cfg: Mapping) -> None:
    """Every number of ``optim_wrapper.optimizer`` (``lr`` > 0,
    ``weight_decay`` >= 0, ``betas`` in [0, 1), ...), ``clip_grad.max_norm``
    and ``accumulative_counts``: a real, finite number in range, not a
    string; raises ``TypeError``/``ValueError`` naming the key."""
    optimizer = optim_wrapper_cfg.get('optimizer') or {}
    for key, value in optimizer.items():
        where = f'optim_wrapper.optimizer.{key}'
        if key in OPTIMIZER_RANGES:
            check_number(where, value, OPTIMIZER_RANGES[key])
        elif key == 'betas':
            check_betas(where, value)
        elif is_numeric_text(value):
            raise TypeError(f'{where} must be a number, got {value!r} (a '
                            f'string: write {value} without quotes)')
        elif is_number(value) and not math.isfinite(value):
            raise ValueError(f'{where} must be a finite number, got {value}')
    clip_grad = optim_wrapper_cfg.get('clip_grad')
    if clip_grad is not None and not isinstance(clip_grad, Mapping):
        raise TypeError('optim_wrapper.clip_grad must be a dict such as '
                        f'dict(max_norm=1.0) or None, got {clip_grad!r}')
    if isinstance(clip_grad, Mapping) and 'max_norm' in clip_grad:
        check_number('optim_wrapper.clip_grad.max_norm',
                     clip_grad['max_norm'], POSITIVE)
    counts = optim_wrapper_cfg.get('accumulative_counts', 1)
    if not isinstance(counts, int) or isinstance(counts, bool) or counts < 1:
        raise ValueError('optim_wrapper.accumulative_counts must be an int '
                         f'>= 1, got {counts!r}')
