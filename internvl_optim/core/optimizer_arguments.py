"""An optimizer config's arguments checked against the optimizer class
itself: every key is an argument of it, and every value has the type of
that argument's default (``amsgrad='yes'`` is not a bool: PyTorch would
take any truthy value).  Pure: inspects the class, builds nothing."""
import difflib
import inspect
from typing import Any, Mapping

from .numbers import is_number, is_numeric_text

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
