"""Build a model without allocating its weights.

``with torch.device('meta')`` makes every tensor a shape-only meta tensor,
but some MMSeg backbones call ``.item()`` in ``__init__`` (the stochastic
depth schedule ``torch.linspace(0, rate, depth)``), which meta tensors
reject.  :func:`meta_device` puts only the big constructors (``empty``,
``zeros``, ``ones``, ``rand*``, ``full``, ...) on the meta device and leaves
data-carrying ones (``linspace``, ``arange``, ``tensor``, ...) real: those are
small and their values are read during construction.
"""
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

#: Constructors whose (small) results ``__init__`` code may read.
KEEP_REAL = {
    torch.linspace, torch.logspace, torch.arange, torch.range, torch.tensor,
    torch.as_tensor, torch.asarray, torch.scalar_tensor
}


class _MetaWeights(TorchFunctionMode):

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _device_constructors() and func not in KEEP_REAL and \
                kwargs.get('device') is None:
            kwargs['device'] = 'meta'
        return func(*args, **kwargs)


@contextmanager
def meta_device():
    """Context in which modules are built with meta (shape-only) weights."""
    with _MetaWeights():
        yield
