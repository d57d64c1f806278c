"""Per-parameter multipliers composed with layer decay, in one place.

Deformable layers in the backbone (InternImage's recipes):

* ``offset_lr_scale``: backbone names containing ``sampling_offsets`` or
  ``reference_points`` (deformable attention);
* ``dcn_lr_mul``: other backbone names containing ``offset`` (InternImage's
  DCNv3 ``offset``, MMCV's DCN ``conv_offset``), ``attention_weights``,
  ``center_feature_scale_proj`` or ``alpha_beta``.

MMEngine's ``DefaultOptimWrapperConstructor`` multipliers: each configured
``*_decay_mult`` sets ``weight_decay = base_wd * mult`` for its kind of
parameter, overriding this package's default (zero for norms, biases and
1-D parameters), in MMEngine's order of precedence: norm, bias, depthwise
conv, 1-D ("flat").  ``bias_lr_mult`` and ``dcn_offset_lr_mult`` multiply
the layer lr.  As in MMEngine, none of them applies to a parameter that a
``custom_keys`` entry matched, and:

* ``bias_lr_mult``: biases outside norm layers and outside DCN modules;
* ``dcn_offset_lr_mult``: parameters of a ``Conv2d`` named ``...conv_offset``
  directly inside a deformable conv (MMCV's ``DeformConv2dPack`` /
  ``ModulatedDeformConv2dPack``, recognised by class name);
* ``bias_decay_mult``: biases outside DCN modules; ``flat_decay_mult``:
  1-D parameters outside DCN modules; ``dwconv_decay_mult``: parameters of a
  ``Conv2d`` with ``groups == in_channels``.

Which parameters get no weight decay at all is
:mod:`~internvl_optim.core.weight_decay`.  Norms are recognised as
everywhere in this package (by type, RMSNorm included).  Pure PyTorch.
"""
import functools
from typing import Mapping, Optional, Sequence, Tuple

from torch import nn

from .names import relative_name
from .weight_decay import is_norm_module

OFFSET_KEYWORDS = ('sampling_offsets', 'reference_points')
DCN_KEYWORDS = ('offset', 'attention_weights', 'center_feature_scale_proj',
                'alpha_beta')

#: what ``dcn_lr_mul`` / ``offset_lr_scale`` look for, by multiplier tag
MULTIPLIER_KEYWORDS = {'dcn': DCN_KEYWORDS, 'offset': OFFSET_KEYWORDS}




def deformable_lr_multiplier(rel_name: str, dcn_lr_mul: float,
                             offset_lr_scale: float
                             ) -> Tuple[float, Optional[str]]:
    """``(multiplier, tag)`` for a backbone-relative name; tag is
    ``'offset'``, ``'dcn'`` or ``None`` (multiplier 1).

    >>> deformable_lr_multiplier('levels.0.blocks.1.dcn.offset.weight', 0.1, 1.0)
    (0.1, 'dcn')
    >>> deformable_lr_multiplier('levels.0.blocks.1.dcn.input_proj.weight', 0.1, 1.0)
    (1.0, None)
    """
    if offset_lr_scale != 1.0 and any(k in rel_name
                                       for k in OFFSET_KEYWORDS):
        return offset_lr_scale, 'offset'
    if any(k in rel_name for k in OFFSET_KEYWORDS):
        return 1.0, None
    if dcn_lr_mul != 1.0 and any(k in rel_name for k in DCN_KEYWORDS):
        return dcn_lr_mul, 'dcn'
    return 1.0, None


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
    if not settings.mmengine_mults:  # none configured (the common case)
        return None, None
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


def parent_is_dcn(name: str, modules: Mapping[str, nn.Module]) -> bool:
    """Whether the module holding ``name`` sits directly in a deformable
    conv (MMEngine's condition for ``dcn_offset_lr_mult`` and for not
    applying bias/flat multipliers)."""
    parts = name.split('.')
    return len(parts) >= 3 and is_dcn_module(
        modules.get('.'.join(parts[:-2])))


def backbone_multiplier(rel: Optional[str],
                        settings) -> Tuple[float, Optional[str]]:
    """``(multiplier, tag)`` from ``dcn_lr_mul`` / ``offset_lr_scale`` for a
    backbone-relative parameter name (``None``: outside the backbone, which
    they do not affect)."""
    if rel is None:
        return 1.0, None
    return deformable_lr_multiplier(rel, settings.dcn_lr_mul,
                                    settings.offset_lr_scale)


def internimage_multiplier(name: str, in_backbone: bool, layer_scale: float,
                           settings) -> Tuple[float, Optional[str]]:
    """InternImage's detection keys: ``dino_head`` (x0.1 for the head's
    ``sampling_offsets`` / ``reference_points``, tag ``dino_head``) and
    ``backbone_small_lr`` (x0.1 wherever the layer scale is below 1, as
    InternImage's ``scale < 1`` test)."""
    mult, tag = 1.0, None
    if settings.dino_head and not in_backbone and any(
            k in name for k in OFFSET_KEYWORDS):
        mult, tag = 0.1, 'dino_head'
    if settings.backbone_small_lr and layer_scale < 1:
        mult *= 0.1
    return mult, tag


def check_multipliers_match(settings, prefix: str,
                            names: Sequence[str]) -> None:
    """A configured deformable-layer multiplier must apply to something."""
    if settings.dcn_lr_mul == 1.0 and settings.offset_lr_scale == 1.0:
        return  # nothing configured, nothing to check
    tags = {backbone_multiplier(relative_name(nm, prefix), settings)[1]
            for nm in names}
    for key, tag in (('dcn_lr_mul', 'dcn'), ('offset_lr_scale', 'offset')):
        if getattr(settings, key) != 1.0 and tag not in tags:
            raise ValueError(
                f'paramwise_cfg.{key}={getattr(settings, key)} matches no '
                f'backbone parameter (looked for {MULTIPLIER_KEYWORDS[tag]})')
