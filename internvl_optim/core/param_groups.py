"""The core: named parameters + settings -> optimizer parameter groups.

Pure PyTorch; no MMEngine or MMSeg needed.  Three steps: resolve the layer
rule (:mod:`.layer_rules`), plan every trainable parameter
(:mod:`.param_plan`), merge the plans into groups (:mod:`.group_reduce`).
The core changes nothing: what ``freeze_backbone`` selects is returned in
``GroupPlan.to_freeze`` for the caller to apply
(:func:`internvl_optim.runtime.freezing.apply_freezing`).
"""
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Sequence

from torch import nn

from .freezing import check_wrapper_allows_freezing, select_units
from .fsdp_shapes import fsdp_original_shapes
from .layer_rules import resolve_layer_rule
from .mmengine_multipliers import is_dcn_module
from .names import clean_named_modules, clean_named_parameters
from .param_plan import (ParamPlan, audit, check_final_numbers,
                         order_custom_keys, unmatched_custom_keys,
                         check_multipliers_match, check_some_lr_is_positive,
                         plan_parameter)
from .group_reduce import reduce_param_groups
from .settings import LayerDecaySettings
from .weight_decay import SkipList, parameter_owners


@dataclass
class GroupPlan:
    """Groups ready for ``torch.optim`` plus what went into them."""
    groups: List[dict]
    params: List[ParamPlan]
    num_layers: int
    layer_rule: str
    frozen: List[str] = field(default_factory=list)
    frozen_numel: int = 0
    #: where the backbone is in the model ('' for the whole model)
    backbone_prefix: str = ''
    #: the units ``freeze_backbone`` selects; not frozen yet: the caller
    #: applies it (:func:`internvl_optim.runtime.freezing.apply_freezing`)
    to_freeze: List[nn.Module] = field(default_factory=list)


def parent_is_dcn(name: str, modules: Mapping[str, nn.Module]) -> bool:
    """Whether the module holding ``name`` sits directly in a deformable
    conv (MMEngine's condition for ``dcn_offset_lr_mult`` and for not
    applying bias/flat multipliers)."""
    parts = name.split('.')
    return len(parts) >= 3 and is_dcn_module(
        modules.get('.'.join(parts[:-2])))


def _units_to_freeze(model, modules, rule, settings) -> List[nn.Module]:
    if not settings.freeze_backbone:
        return []
    check_wrapper_allows_freezing(model)
    backbone = modules[rule.backbone_prefix]
    return select_units(
        backbone, settings.freeze_backbone,
        f'backbone {rule.backbone_prefix!r} ({type(backbone).__name__})')


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
    names = [n for n, _ in named]
    shapes = original_shapes or fsdp_original_shapes(model) or {}
    rule = resolve_layer_rule(modules, names, settings, warn)
    units = _units_to_freeze(model, modules, rule, settings)
    unmatched = unmatched_custom_keys(settings, names)
    if unmatched:
        warn(f'paramwise_cfg.custom_keys {unmatched} match no parameter name '
             f'(ignored, as MMEngine does); names look like: '
             f'{", ".join(names[:3])}, ...')
    check_multipliers_match(settings, rule.backbone_prefix, names)
    to_freeze = {id(p) for unit in units for p in unit.parameters()}
    trainable = [(nm, p) for nm, p in named
                 if p.requires_grad and id(p) not in to_freeze]
    frozen = [nm for nm, p in named
              if not p.requires_grad or id(p) in to_freeze]
    if not trainable:
        raise ValueError(
            f'{type(model).__name__} has no trainable parameters '
            f'({len(frozen)} frozen): nothing to optimize. Unfreeze part of '
            'the model (e.g. the decode head)')
    owners = parameter_owners(modules)
    skip_list = SkipList([('', modules['']),
                          (rule.backbone_prefix, modules[rule.backbone_prefix])])
    ordered_keys = order_custom_keys(settings.custom_keys)
    plans = [plan_parameter(nm, p.numel(), len(shapes.get(nm, p.shape)),
                            owners.get(nm), rule, skip_list, settings,
                            base_lr, base_weight_decay,
                            parent_is_dcn(nm, modules), ordered_keys)
             for nm, p in trainable]
    check_final_numbers(plans, base_lr, warn)
    check_some_lr_is_positive(plans, warn)
    audit(plans, warn)
    groups = reduce_param_groups(plans, [p for _, p in trainable])
    frozen_numel = sum(p.numel() for _, p in named
                       if not p.requires_grad or id(p) in to_freeze)
    if frozen:
        warn(f'{len(frozen)} frozen parameter tensors ({frozen_numel:,} '
             'elements) are left out of the optimizer')
    return GroupPlan(groups, plans, rule.num_layers, rule.source, frozen,
                     frozen_numel, rule.backbone_prefix, units)
