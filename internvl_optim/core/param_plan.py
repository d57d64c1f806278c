"""What each parameter gets, and why: its layer id, weight decay and lr,
before any grouping.  The lr is computed here and only here::

    lr = base_lr * rate ** (N + 1 - layer_id)        (the layer scale)
              * deformable (dcn_lr_mul, offset_lr_scale)
              * custom key (or MMEngine's *_mult)
              * InternImage's detection keys
              * the tower's (lr_mult, or vision_tower_lr / base_lr, ...)

The factors besides the layer scale are the functions at the end of this
file.

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
import enum
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

from torch import nn

from .algorithms import Algorithm, MatrixView, Role, route
from .layer_rules import LayerRule
from .model_view import ModelView, numel
from .module_kinds import is_depthwise_conv, parent_is_dcn
from .names import relative_name
from .tower_schema import Tower
from .weight_decay import is_norm_module, no_decay_reason


class Placement(enum.Enum):
    """How a parameter got its layer id."""
    #: the layer rule placed it on purpose
    RULE = 'rule'
    #: a backbone parameter the rule did not claim: the heads' layer N + 1,
    #: named by the audit
    UNCLAIMED = 'unclaimed'
    #: outside the backbone (heads, necks): N + 1
    OUTSIDE = 'outside'
    #: outside every tower of a multi-tower model (a VLM's ``lm_head``):
    #: the base lr, grouped as the head
    REST = 'rest'


@dataclass
class ParamPlan:
    """What one parameter gets (also the rows of the JSON plan).

    ``custom_key`` is the ``paramwise_cfg.custom_keys`` entry that matched;
    ``multiplier`` the deformable-layer tag (``'dcn'``, ``'offset'``)."""
    name: str
    layer_id: int
    lr_scale: float
    lr: float
    weight_decay: float
    no_decay_reason: Optional[str]
    custom_key: Optional[str]
    numel: int
    multiplier: Optional[str] = None
    #: which rule placed the parameter (``outside the backbone`` for heads)
    placed_by: str = ''
    #: the ``paramwise_cfg.towers`` entry it belongs to (None: no towers,
    #: or outside them)
    tower: Optional[str] = None
    #: how its layer id was decided (``placed_by`` says it in words)
    placement: Placement = Placement.RULE
    #: the group a reproduced original constructor puts it in (its name
    #: there); None: grouped by our key (:mod:`.group_reduce`)
    group: Optional[str] = None
    #: with ``paramwise_cfg.muon``: the update it takes, how Muon sees it
    #: as matrices, and why (:mod:`.algorithms`); None otherwise
    algorithm: Optional[Algorithm] = None
    matrix_view: Optional[MatrixView] = None
    routed_by: Optional[str] = None
    #: the shape the model defined (recorded with ``muon``: Muon checks it)
    shape: Optional[Tuple[int, ...]] = None


def order_custom_keys(custom_keys: Mapping) -> List[str]:
    """Longest first, then alphabetically (MMEngine's order)."""
    return sorted(custom_keys, key=lambda k: (-len(k), k))


def match_custom_key(name: str, ordered_keys: Sequence[str]) -> Optional[str]:
    """First key occurring in ``name`` (keys in :func:`order_custom_keys`
    order).

    >>> match_custom_key('backbone.pos_embed', ['pos_embed', 'backbone'])
    'pos_embed'
    """
    for key in ordered_keys:
        if key in name:
            return key
    return None


@dataclass(frozen=True)
class PlanBase:
    """What every parameter's plan starts from: the optimizer's ``lr`` and
    ``weight_decay``, and the custom keys in :func:`order_custom_keys`
    order (computed once per build)."""
    lr: float
    weight_decay: float
    ordered_keys: Tuple[str, ...] = ()


def plan_parameter(name: str, param, *, view: ModelView,
                   base: PlanBase) -> ParamPlan:
    """The plan of one trainable parameter, read from the model view (its
    region's rule, settings, skip list and tower; its shape as the model
    defined it; the module holding it).

    Its lr is computed here and only here: ``base.lr`` times the product
    of the layer scale, the deformable-layer, custom-key (or MMEngine) and
    InternImage detection multipliers, and the tower's factor."""
    region = view.region(name)
    rule, settings, tower = region.rule, region.settings, region.tower
    owner = view.owners.get(name)
    ndim = len(view.shape(name, param))
    dcn_parent = view.has_dcn and parent_is_dcn(name, view.modules)
    base_weight_decay = base.weight_decay
    layer_id = rule.layer_id(name)
    # the backbone-relative name, computed once for what follows
    in_backbone = relative_name(name, rule.backbone_prefix)
    reason = no_decay_reason(name, ndim, owner, region.skip_list)
    structural_reason = reason  # before custom keys and multipliers
    weight_decay = 0.0 if reason else base_weight_decay
    key = match_custom_key(name, base.ordered_keys)
    lr_mult, tags = 1.0, []
    if key is not None:  # as in MMEngine, other multipliers do not apply
        mults = settings.custom_keys[key]
        lr_mult = mults.get('lr_mult', 1.0)
        if 'decay_mult' in mults:
            weight_decay = base_weight_decay * mults['decay_mult']
    elif settings.mmengine_mults:  # MMEngine's multipliers, if configured
        owner_name = name.rsplit('.', 1)[0] if '.' in name else ''
        lr_mult, lr_tag = lr_multiplier(name, owner, owner_name,
                                        dcn_parent, settings)
        decay_mult, decay_tag = decay_multiplier(name, ndim, owner,
                                                 dcn_parent, settings)
        if decay_mult is not None:
            weight_decay = base_weight_decay * decay_mult
            reason = f'{decay_tag}_mult=0' if decay_mult == 0 else None
        tags = [t for t in (lr_tag, decay_tag) if t]
    deform_mult, deform_tag = ((1.0, None) if settings.dcn_lr_mul == 1.0
                               and settings.offset_lr_scale == 1.0 else
                               backbone_multiplier(in_backbone, settings))
    rate, n = settings.rate_for(rule.num_layers), rule.num_layers
    layer_scale = rate**(n + 1 - layer_id)
    lr_scale = layer_scale * deform_mult * lr_mult
    if settings.dino_head or settings.backbone_small_lr:
        detection_mult, detection_tag = internimage_multiplier(
            name, in_backbone is not None, layer_scale, settings)
        lr_scale *= detection_mult
        tags.append(detection_tag)
    tag = '_'.join(t for t in [deform_tag] + tags if t) or None
    if weight_decay == 0 and reason is None:
        reason = f'custom_keys[{key!r}].decay_mult=0' if key else 'weight_decay=0'
    tower_lr, tower_decay = tower_factors(tower, base.lr)
    lr_scale *= tower_lr
    if tower_decay != 1.0 and weight_decay:
        weight_decay *= tower_decay
        if weight_decay == 0:
            reason = f'towers[{tower.name!r}].decay_mult=0'
    how, placed_by = placement(name, rule, in_backbone is not None)
    if tower is None and len(view.regions) > 1:
        how, placed_by = Placement.REST, rule.source
    plan = ParamPlan(name, layer_id, lr_scale, base.lr * lr_scale,
                     weight_decay, reason, key, numel(param), tag, placed_by,
                     tower.name if tower else None, how)
    if settings.muon is not None:
        owner_path = name.rsplit('.', 1)[0] if '.' in name else ''
        output = any(owner_path == o or owner_path.startswith(o + '.')
                     for o in view.output_layers)
        role = Role(name, tuple(view.shape(name, param)), owner, layer_id,
                    structural_reason, output)
        (plan.algorithm, plan.matrix_view,
         plan.routed_by) = route(role, settings.muon)
        plan.shape = role.shape
    return plan


def placement(name: str, rule: LayerRule,
              in_backbone: bool) -> Tuple[Placement, str]:
    """What placed ``name`` (the rule, its fallback, or the heads' layer),
    and the same in words."""
    if not in_backbone:
        return (Placement.OUTSIDE,
                f'outside the backbone: N + 1 = {rule.num_layers + 1}')
    if not rule.claimed(name):
        return Placement.UNCLAIMED, f'unclaimed by {rule.source}: N + 1'
    return Placement.RULE, rule.source



# --- the factors of the lr besides the layer scale -------------------------

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


def tower_factors(tower: Optional[Tower],
                  base_lr: float) -> Tuple[float, float]:
    """``(lr factor, weight-decay factor)`` of a tower (1, 1 outside)."""
    if tower is None:
        return 1.0, 1.0
    lr_factor = tower.lr_mult if tower.lr is None else tower.lr / base_lr
    return lr_factor, tower.decay_mult
