"""Per-parameter planning: what one parameter gets (layer, lr scale, weight
decay and why), before any grouping.  Pure PyTorch."""
import enum
import math
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from .layer_rules import LayerRule
from .multipliers import (backbone_multiplier, decay_multiplier,
                          internimage_multiplier, lr_multiplier)
from .names import relative_name
from .towers import Tower, tower_factors
from .numbers import MAX_LR
from .weight_decay import SkipList, no_decay_reason

class Placement(enum.Enum):
    """How a parameter got its layer id."""
    #: the layer rule placed it on purpose
    RULE = 'rule'
    #: a backbone parameter the rule did not claim: the heads' layer N + 1,
    #: named by the audit
    UNCLAIMED = 'unclaimed'
    #: outside the backbone (heads, necks): N + 1
    OUTSIDE = 'outside'


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


def plan_parameter(name: str, numel: int, ndim: int, owner, rule: LayerRule,
                   skip_list: SkipList, settings, base_lr: float,
                   base_weight_decay: float,
                   parent_is_dcn: bool = False,
                   ordered_keys: Optional[Sequence[str]] = None,
                   tower: Optional[Tower] = None) -> ParamPlan:
    """The plan of one trainable parameter (``ndim`` as the model defined
    it, ``owner`` the module holding it, ``parent_is_dcn`` whether that
    module sits directly in a deformable conv; ``ordered_keys`` the custom
    keys in :func:`order_custom_keys` order, computed once per build;
    ``tower`` the ``paramwise_cfg.towers`` entry holding it).

    Its lr is computed here and only here: ``base_lr`` times the product of
    the layer scale, the deformable-layer, custom-key (or MMEngine) and
    InternImage detection multipliers, and the tower's ``lr_mult``."""
    layer_id = rule.layer_id(name)
    # the backbone-relative name, computed once for what follows
    in_backbone = relative_name(name, rule.backbone_prefix)
    reason = no_decay_reason(name, ndim, owner, skip_list)
    weight_decay = 0.0 if reason else base_weight_decay
    if ordered_keys is None:
        ordered_keys = order_custom_keys(settings.custom_keys)
    key = match_custom_key(name, ordered_keys)
    lr_mult, tags = 1.0, []
    if key is not None:  # as in MMEngine, other multipliers do not apply
        mults = settings.custom_keys[key]
        lr_mult = mults.get('lr_mult', 1.0)
        if 'decay_mult' in mults:
            weight_decay = base_weight_decay * mults['decay_mult']
    elif settings.mmengine_mults:  # MMEngine's multipliers, if configured
        owner_name = name.rsplit('.', 1)[0] if '.' in name else ''
        lr_mult, lr_tag = lr_multiplier(name, owner, owner_name,
                                        parent_is_dcn, settings)
        decay_mult, decay_tag = decay_multiplier(name, ndim, owner,
                                                 parent_is_dcn, settings)
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
    tower_lr, tower_decay = tower_factors(tower, base_lr)
    lr_scale *= tower_lr
    if tower_decay != 1.0 and weight_decay:
        weight_decay *= tower_decay
        if weight_decay == 0:
            reason = f'towers[{tower.name!r}].decay_mult=0'
    how, placed_by = placement(name, rule, in_backbone is not None)
    return ParamPlan(name, layer_id, lr_scale, base_lr * lr_scale,
                     weight_decay, reason, key, numel, tag, placed_by,
                     tower.name if tower else None, how)


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


def unmatched_custom_keys(settings, names: Sequence[str]) -> List[str]:
    """Custom keys that occur in no parameter name (MMEngine allows them,
    and shipped recipes carry some, e.g. Swin's ``absolute_pos_embed`` with
    ``use_abs_pos_embed=False``)."""
    return [k for k in order_custom_keys(settings.custom_keys)
            if not any(k in nm for nm in names)]


def check_some_lr_is_positive(plans: List[ParamPlan],
                              warn: Callable[[str], None]) -> None:
    """An lr of 0 comes from a ``custom_keys`` ``lr_mult=0`` (a choice,
    said in a warning) or from layer decay underflowing (``rate ** (N +
    1)`` below the smallest float); either may stop part of the model, not
    all of it."""
    stopped = [p for p in plans if p.lr == 0]
    if not stopped:
        return
    keys = sorted({p.custom_key for p in stopped if p.custom_key})
    by_key = [p for p in stopped if p.custom_key]
    underflow = [p for p in stopped if not p.custom_key]
    causes = []
    if by_key:
        causes.append(f'{len(by_key)} through paramwise_cfg.custom_keys '
                      f'{keys} (lr_mult=0)')
    if underflow:
        layers = sorted({p.layer_id for p in underflow})
        causes.append(f'{len(underflow)} because layer decay underflows to '
                      f'0 in layers {layers} (layer_decay_rate ** (N + 1 - '
                      'layer) is below the smallest float)')
    if len(stopped) < len(plans):
        warn(f'{len(stopped)} trainable parameter tensors get lr 0: '
             f'{"; ".join(causes)}; they stay in the optimizer but do not '
             'change')
        return
    raise ValueError(
        f'Every trainable parameter ({len(plans)} tensors) gets lr 0: '
        f'{"; ".join(causes)}; nothing would train. Give lr_mult > 0 or '
        'raise paramwise_cfg.layer_decay_rate, and freeze what should not '
        'train (paramwise_cfg.freeze_backbone, requires_grad=False)')


def audit(plans: List[ParamPlan], warn: Callable[[str], None]) -> None:
    """One warning naming the backbone parameters no rule claimed."""
    unclaimed = [p.name for p in plans if p.placement is Placement.UNCLAIMED]
    if unclaimed:
        more = f' and {len(unclaimed) - 5} more' if len(unclaimed) > 5 else ''
        warn(f'{len(unclaimed)} backbone parameters are claimed by no layer '
             f'rule and get the heads\' layer N + 1: '
             f'{", ".join(unclaimed[:5])}{more}. Extend '
             'paramwise_cfg.layer_regex or give the backbone get_layer_id')


#: the largest float32: weights, and ``lr * weight_decay`` (AdamW scales
#: them by ``1 - lr * weight_decay``) must stay below it
FLOAT32_MAX = 3.4028234663852886e38
#: below ``base_lr * LR_FLOOR`` a group's updates vanish against float32
#: weights (float32 resolves about 1e-7 relative; Adam's steps are ~lr)
LR_FLOOR = 1e-12


def check_final_numbers(plans: List[ParamPlan], base_lr: float,
                        warn: Callable[[str], None]) -> None:
    """Every lr and weight decay as the optimizer will see them: finite
    (``lr=1e308`` times ``lr_mult=10`` passes each check alone and
    overflows), and a warning for lrs so small they cannot change a weight
    (``layer_decay_rate=1e-8``)."""
    bad = [p for p in plans
           if not (math.isfinite(p.lr) and math.isfinite(p.weight_decay)
                   and p.lr <= MAX_LR
                   and p.lr * p.weight_decay <= FLOAT32_MAX)]
    if bad:
        first = bad[0]
        raise ValueError(
            f'{len(bad)} parameter(s) get an lr above {MAX_LR:g} or a '
            'non-finite lr or weight decay once the multipliers are '
            f'applied, e.g. {first.name}: lr {first.lr} (base lr '
            f'{base_lr:g} x scale {first.lr_scale:g}), weight decay '
            f'{first.weight_decay}. Lower optim_wrapper.optimizer.lr or the '
            'lr_mult / decay_mult of paramwise_cfg.custom_keys')
    floor = base_lr * LR_FLOOR
    tiny = [p for p in plans if 0 < p.lr < floor]
    if tiny:
        layers = sorted({p.layer_id for p in tiny})
        warn(f'{len(tiny)} parameter tensors (layers {layers}) get an lr '
             f'below {floor:.3g} (base lr x {LR_FLOOR:g}), e.g. '
             f'{tiny[0].name}: {tiny[0].lr:.3g}; their updates vanish in '
             'float32, so they effectively do not train. Raise '
             'paramwise_cfg.layer_decay_rate (layers 0 and 1 get rate ** '
             '(N + 1) and rate ** N), or freeze them on purpose')
