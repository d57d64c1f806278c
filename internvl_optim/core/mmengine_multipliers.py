"""MMEngine's ``DefaultOptimWrapperConstructor`` multipliers, composed with
layer decay.

Each configured ``*_decay_mult`` sets ``weight_decay = base_wd * mult`` for
its kind of parameter, overriding this package's default (zero for norms,
biases and 1-D parameters), in MMEngine's order of precedence: norm, bias,
depthwise conv, 1-D ("flat").  ``bias_lr_mult`` and ``dcn_offset_lr_mult``
multiply the layer lr.  As in MMEngine, none of them applies to a parameter
that a ``custom_keys`` entry matched, and:

* ``bias_lr_mult``: biases outside norm layers and outside DCN modules;
* ``dcn_offset_lr_mult``: parameters of a ``Conv2d`` named ``...conv_offset``
  directly inside a deformable conv (MMCV's ``DeformConv2dPack`` /
  ``ModulatedDeformConv2dPack``, recognised by class name);
* ``bias_decay_mult``: biases outside DCN modules; ``flat_decay_mult``:
  1-D parameters outside DCN modules; ``dwconv_decay_mult``: parameters of a
  ``Conv2d`` with ``groups == in_channels``.

Norms are recognised as everywhere in this package (by type, RMSNorm
included).  Pure PyTorch.
"""
import functools
from typing import Optional, Tuple

from torch import nn

from .weight_decay import is_norm_module

#: configured-key -> tag used in group names
DECAY_MULT_KEYS = {'norm_decay_mult': 'norm_decay',
                   'bias_decay_mult': 'bias_decay',
                   'dwconv_decay_mult': 'dwconv_decay',
                   'flat_decay_mult': 'flat_decay'}
LR_MULT_KEYS = {'bias_lr_mult': 'bias_lr',
                'dcn_offset_lr_mult': 'dcn_offset_lr'}


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


def decay_multiplier(name: str, ndim: int, owner: Optional[nn.Module],
                     parent_is_dcn: bool,
                     settings) -> Tuple[Optional[float], Optional[str]]:
    """``(mult, tag)`` of the first configured MMEngine decay rule that
    applies, else ``(None, None)``."""
    own = name.rsplit('.', 1)[-1]
    applies = {
        'norm_decay_mult': owner is not None and is_norm_module(owner),
        'bias_decay_mult': own == 'bias' and not parent_is_dcn,
        'dwconv_decay_mult': is_depthwise_conv(owner),
        'flat_decay_mult': ndim == 1 and not parent_is_dcn,
    }
    for key, tag in DECAY_MULT_KEYS.items():
        mult = settings.mmengine_mults.get(key)
        if mult is not None and applies[key]:
            return mult, tag
    return None, None


def lr_multiplier(name: str, owner: Optional[nn.Module], owner_name: str,
                  parent_is_dcn: bool,
                  settings) -> Tuple[float, Optional[str]]:
    """``(mult, tag)`` from ``bias_lr_mult`` / ``dcn_offset_lr_mult``;
    ``(1.0, None)`` when neither is configured or applies."""
    mults = settings.mmengine_mults
    if ('dcn_offset_lr_mult' in mults and parent_is_dcn
            and 'conv_offset' in owner_name
            and isinstance(owner, nn.Conv2d)):
        return mults['dcn_offset_lr_mult'], LR_MULT_KEYS['dcn_offset_lr_mult']
    if ('bias_lr_mult' in mults and name.rsplit('.', 1)[-1] == 'bias'
            and not parent_is_dcn
            and not (owner is not None and is_norm_module(owner))):
        return mults['bias_lr_mult'], LR_MULT_KEYS['bias_lr_mult']
    return 1.0, None
