"""What kind of module holds a parameter, where the multipliers ask:
deformable convs (MMCV's, recognised by class name: no MMCV import) and
depthwise convs.  Norms are :func:`~internvl_optim.core.weight_decay.
is_norm_module`."""
import functools
from typing import Mapping, Optional

from torch import nn


def is_dcn_module(module: Optional[nn.Module]) -> bool:
    """A deformable conv (MMCV's, by class name: no MMCV import).

    >>> is_dcn_module(nn.Conv2d(2, 2, 1))
    False
    """
    return module is not None and _is_dcn_type(type(module))


@functools.lru_cache(maxsize=None)
def _is_dcn_type(cls: type) -> bool:
    return any('DeformConv' in c.__name__ for c in cls.__mro__)


def is_depthwise_conv(module: Optional[nn.Module]) -> bool:
    """A ``Conv2d`` with ``groups == in_channels`` (MMEngine's test).

    >>> is_depthwise_conv(nn.Conv2d(4, 4, 3, groups=4))
    True
    """
    return isinstance(module, nn.Conv2d) and \
        module.in_channels == module.groups


def parent_is_dcn(name: str, modules: Mapping[str, nn.Module]) -> bool:
    """Whether the module holding ``name`` sits directly in a deformable
    conv (MMEngine's condition for ``dcn_offset_lr_mult`` and for not
    applying bias/flat multipliers)."""
    parts = name.split('.')
    return len(parts) >= 3 and is_dcn_module(
        modules.get('.'.join(parts[:-2])))
