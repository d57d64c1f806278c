"""The checks of the finished plans, all together, before any group is
made: every lr and weight decay finite and within range, some lr positive,
the backbone parameters no rule claimed named, configured keys that apply
to nothing said or refused."""
import math
from typing import Callable, List, Sequence

from .names import relative_name
from .numbers import MAX_LR
from .param_plan import (MULTIPLIER_KEYWORDS, ParamPlan, Placement,
                         backbone_multiplier, order_custom_keys)


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


def audit(plans: List[ParamPlan], warn: Callable[[str], None],
          layers_matter: bool = False) -> None:
    """One warning naming the backbone parameters no rule claimed, unless
    their layer changes nothing: every parameter of their tower (or of the
    model, without towers) at one lr scale, as at rate 1.0, and no phases
    (``layers_matter``) that would make them join with the heads."""
    scales: dict = {}
    for p in plans:
        scales.setdefault(p.tower, set()).add(p.lr_scale)
    unclaimed = [p.name for p in plans if p.placement is Placement.UNCLAIMED
                 and (layers_matter or len(scales[p.tower]) > 1)]
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
