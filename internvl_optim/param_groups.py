"""The core: named parameters + settings -> optimizer parameter groups.

Pure PyTorch; no MMEngine or MMSeg needed.  Every trainable parameter lands in
exactly one group; parameters with the same layer, weight decay and custom
key share a group, so the group count grows with the number of layers, not
the number of parameters (multi-tensor ``foreach``/``fused`` optimizers stay
fast).
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from .fsdp import fsdp_original_shapes
from .freezing import check_wrapper_allows_freezing, freeze, select_units
from .layer_ids import LayerRule, resolve_layer_rule
from .lr_multipliers import (DCN_KEYWORDS, OFFSET_KEYWORDS,
                             deformable_lr_multiplier)
from .names import clean_named_modules, clean_named_parameters, relative_name
from .settings import LayerDecaySettings
from .weight_decay import SkipList, no_decay_reason, parameter_owners


KEYWORDS = {'dcn': DCN_KEYWORDS, 'offset': OFFSET_KEYWORDS}


@dataclass
class ParamPlan:
    """What one parameter gets (also the rows of the JSON plan)."""
    name: str
    layer_id: int
    lr_scale: float
    lr: float
    weight_decay: float
    no_decay_reason: Optional[str]
    custom_key: Optional[str]
    numel: int


@dataclass
class GroupPlan:
    """Groups ready for ``torch.optim`` plus what went into them."""
    groups: List[dict]
    params: List[ParamPlan]
    num_layers: int
    layer_rule: str
    frozen: List[str] = field(default_factory=list)
    frozen_numel: int = 0


def match_custom_key(name: str, ordered_keys: Sequence[str]) -> Optional[str]:
    """First key occurring in ``name``; keys are tried longest first, then
    alphabetically (MMEngine's order)."""
    for key in ordered_keys:
        if key in name:
            return key
    return None


def _check_custom_keys_match(ordered_keys, names) -> None:
    unmatched = [k for k in ordered_keys if not any(k in nm for nm in names)]
    if unmatched:
        raise ValueError(
            f'paramwise_cfg.custom_keys {unmatched} match no parameter name; '
            f'names look like: {", ".join(names[:3])}, ...')


def _check_multipliers_match(settings, tags) -> None:
    """A configured deformable-layer multiplier must apply to something."""
    for key, tag in (('dcn_lr_mul', 'dcn'), ('offset_lr_scale', 'offset')):
        if getattr(settings, key) != 1.0 and tag not in tags:
            raise ValueError(
                f'paramwise_cfg.{key}={getattr(settings, key)} matches no '
                f'backbone parameter (looked for {KEYWORDS[tag]})')


def _check_some_lr_is_positive(plans: List[ParamPlan], warn) -> None:
    """Custom keys with ``lr_mult=0`` may stop part of the model (said in a
    warning), not all of it."""
    stopped = [p for p in plans if p.lr == 0]
    keys = sorted({p.custom_key for p in stopped if p.custom_key})
    if stopped and len(stopped) < len(plans):
        warn(f'{len(stopped)} trainable parameter tensors get lr 0 through '
             f'paramwise_cfg.custom_keys {keys}; they stay in the optimizer '
             'but do not change')
    if len(stopped) < len(plans):
        return
    raise ValueError(
        f'Every trainable parameter ({len(plans)} tensors) gets lr 0 through '
        f'paramwise_cfg.custom_keys {keys} (lr_mult=0): nothing would train. '
        'Give lr_mult > 0, or freeze what should not train '
        '(paramwise_cfg.freeze_backbone, requires_grad=False)')


def group_sort_key(group: dict) -> Tuple:
    """Heads first (so MMEngine's logged ``lr`` is the base lr), then layers
    downwards; within a layer plain before custom keys, decay before
    no-decay."""
    custom = group['custom_key']
    return (-group['layer_id'], bool(custom), custom,
            group['weight_decay'] == 0)


def build_param_groups(model: nn.Module,
                       settings: LayerDecaySettings,
                       base_lr: float,
                       base_weight_decay: float,
                       original_shapes: Optional[Mapping[str, Sequence[int]]] = None,
                       warn: Callable[[str], None] = lambda msg: None
                       ) -> GroupPlan:
    """Build layer-decay parameter groups for ``model``.

    Args:
        model: the model, possibly wrapped (DDP, FSDP, ``torch.compile``).
        settings: validated ``paramwise_cfg``.
        base_lr: the optimizer's ``lr``; heads get exactly this.
        base_weight_decay: the optimizer's ``weight_decay``.
        original_shapes: wrapper-free name -> shape as the model defined it,
            for wrappers that flatten parameters; defaults to the shapes FSDP
            v1 flat parameters record, else the parameters' own shapes.
        warn: called with a message for anything the user should know.

    Returns:
        GroupPlan: ``groups`` carry ``params``, ``param_names``, ``lr``,
        ``weight_decay``, ``layer_id``, ``lr_scale``, ``group_name``.
    """
    modules = clean_named_modules(model)
    named = list(clean_named_parameters(model))
    if original_shapes is None:
        original_shapes = fsdp_original_shapes(model)
    names = [n for n, _ in named]
    rule: LayerRule = resolve_layer_rule(
        modules, names, settings.backbone_name, settings.num_layers,
        settings.layer_regex, settings.decay_type, settings.depths, warn)
    n = rule.num_layers
    backbone = modules[rule.backbone_prefix]
    units_to_freeze = []
    if settings.freeze_backbone:
        check_wrapper_allows_freezing(model)
        units_to_freeze = select_units(
            backbone, settings.freeze_backbone,
            f'backbone {rule.backbone_prefix!r} ({type(backbone).__name__})')
    # validate everything before freezing: a bad config changes nothing
    to_freeze = {id(p) for unit in units_to_freeze for p in unit.parameters()}
    owners = parameter_owners(modules)
    skip_list = SkipList([('', modules['']),
                          (rule.backbone_prefix,
                           modules[rule.backbone_prefix])])

    ordered_keys = sorted(settings.custom_keys, key=lambda k: (-len(k), k))
    _check_custom_keys_match(ordered_keys, names)

    def is_trainable(param):
        return param.requires_grad and id(param) not in to_freeze

    trainable = [(nm, p) for nm, p in named if is_trainable(p)]
    frozen = [nm for nm, p in named if not is_trainable(p)]
    if not trainable:
        raise ValueError(
            f'{type(model).__name__} has no trainable parameters '
            f'({len(frozen)} frozen): nothing to optimize. Unfreeze part of '
            'the model (e.g. the decode head)')

    def backbone_multiplier(name):
        rel = relative_name(name, rule.backbone_prefix)
        if rel is None:
            return 1.0, None
        return deformable_lr_multiplier(rel, settings.dcn_lr_mul,
                                        settings.offset_lr_scale)

    _check_multipliers_match(settings, [backbone_multiplier(nm)[1]
                                        for nm in names])

    rate = settings.layer_decay_rate
    groups: Dict[Tuple, dict] = {}
    plans: List[ParamPlan] = []
    for name, param in trainable:
        layer_id = rule.layer_id(name)
        shape = (original_shapes or {}).get(name, param.shape)
        reason = no_decay_reason(name, len(shape), owners.get(name),
                                 skip_list)
        weight_decay = 0.0 if reason else base_weight_decay
        key = match_custom_key(name, ordered_keys)
        lr_mult = 1.0
        if key is not None:
            lr_mult = settings.custom_keys[key].get('lr_mult', 1.0)
            if 'decay_mult' in settings.custom_keys[key]:
                weight_decay = (base_weight_decay *
                                settings.custom_keys[key]['decay_mult'])
        deform_mult, deform_tag = backbone_multiplier(name)
        lr_scale = rate**(n + 1 - layer_id) * deform_mult * lr_mult
        decays = weight_decay != 0
        group_key = (layer_id, deform_tag, key, decays)
        if group_key not in groups:
            suffix = 'decay' if decays else 'no_decay'
            tags = ''.join(f'_{t}' for t in (deform_tag, key) if t)
            groups[group_key] = dict(
                params=[], param_names=[], lr=base_lr * lr_scale,
                weight_decay=weight_decay, layer_id=layer_id,
                lr_scale=lr_scale,
                group_name=f'layer_{layer_id}{tags}_{suffix}',
                custom_key=(deform_tag or '') + (key or ''))
        groups[group_key]['params'].append(param)
        groups[group_key]['param_names'].append(name)
        plans.append(
            ParamPlan(name, layer_id, lr_scale, base_lr * lr_scale,
                      weight_decay, reason, key, param.numel()))

    _check_some_lr_is_positive(plans, warn)
    freeze(units_to_freeze)
    ordered = sorted(groups.values(), key=group_sort_key)
    for group in ordered:
        del group['custom_key']
    grouped = sum(len(g['params']) for g in ordered)
    assert grouped == len(trainable), (grouped, len(trainable))
    frozen_numel = sum(p.numel() for _, p in named if not p.requires_grad)
    if frozen:
        warn(f'{len(frozen)} frozen parameter tensors ({frozen_numel:,} '
             'elements) are left out of the optimizer')
    return GroupPlan(ordered, plans, n, rule.source, frozen, frozen_numel)
