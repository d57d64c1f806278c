"""The core: named parameters + settings -> optimizer parameter groups.

Pure PyTorch; no MMEngine or MMSeg needed.  One straight pipeline:

1. settings (:mod:`.settings`: ``paramwise_cfg``, validated once);
2. the model view (:mod:`.model_view`: names, shapes, regions and their
   layer rules from :mod:`.layer_rules`, built once);
3. one record per trainable parameter (:mod:`.param_plan`: layer id, lr
   and weight decay with every factor, computed once, the factors from
   :mod:`.multipliers` and :mod:`.towers`);
4. the reduction into groups (:mod:`.group_reduce`).

The core changes nothing: what ``freeze_backbone`` selects is returned in
``GroupPlan.to_freeze`` for the caller to apply
(:func:`internvl_optim.runtime.freezing.apply_freezing`).
"""
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from .freezing import params_of, units_to_freeze
from .group_reduce import reduce_as_original, reduce_param_groups
from .layer_phases import annotate_groups
from .model_view import ModelView, numel, view_model
from .multipliers import check_multipliers_match, parent_is_dcn
from .names import strip_wrapper_prefixes
from .param_plan import (ParamPlan, audit, check_final_numbers,
                         check_some_lr_is_positive, order_custom_keys,
                         plan_parameter, unmatched_custom_keys)
from .settings import LayerDecaySettings
from .towers import region_of


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
    #: the units ``freeze_backbone`` (and towers, InternVL's flags) select:
    #: modules, or single parameters; not frozen yet: the caller applies it
    #: (:func:`internvl_optim.runtime.freezing.apply_freezing`)
    to_freeze: List = field(default_factory=list)
    #: with towers: (name, num_layers) of each
    towers: List[Tuple[str, int]] = field(default_factory=list)
    #: the layers are CNN units in module order (see ``LayerRule.units``)
    units: bool = False
    #: the rate applied between layers of the main rule (``layer_decay_
    #: rate`` carried to this depth, or from ``first_block_lr_ratio``)
    rate: float = 1.0


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
            v1 flat parameters record, DeepSpeed ZeRO-3's ``ds_shape``, else
            the parameters' own shapes.
        warn: called with a message for anything the user should know.

    Returns:
        GroupPlan: ``groups`` carry ``params``, ``param_names``, ``lr``,
        ``weight_decay``, ``layer_id``, ``lr_scale``, ``group_name``.
    """
    if settings.reproduce:
        return _reproduce(model, settings, base_lr, base_weight_decay)
    view = view_model(model, settings, original_shapes, warn)
    units = units_to_freeze(view, settings)
    _check_keys_apply(view, settings, warn)
    to_freeze = {id(p) for unit in units for p in params_of(unit)}
    trainable = [(n, p) for n, p in view.named
                 if p.requires_grad and id(p) not in to_freeze]
    frozen = [(n, p) for n, p in view.named
              if not p.requires_grad or id(p) in to_freeze]
    if not trainable:
        raise ValueError(
            f'{type(model).__name__} has no trainable parameters '
            f'({len(frozen)} frozen): nothing to optimize. Unfreeze part of '
            'the model (e.g. the decode head)')
    plans = _plan_parameters(view, trainable, settings, base_lr,
                             base_weight_decay)
    check_final_numbers(plans, base_lr, warn)
    check_some_lr_is_positive(plans, warn)
    audit(plans, warn)
    groups = reduce_param_groups(plans, [p for _, p in trainable],
                                 merge_layers=settings.layer_phases is None)
    towers = [(t, rule) for t, rule, _ in view.regions if t is not None]
    if settings.layer_phases is not None:
        if settings.layer_phases.unit == 'tower' and not towers:
            raise ValueError(
                "paramwise_cfg.layer_phases.unit='tower' lets whole towers "
                'join, but the model has no towers (no VLM layout found, '
                "no paramwise_cfg.towers); use unit='layer'")
        if settings.layer_phases.unit == 'tower' and \
                settings.layer_phases.head_only and \
                all(g.get('tower') for g in groups):
            raise ValueError(
                'paramwise_cfg.layer_phases.head_only trains the parameters '
                'outside the towers first, but every trainable parameter is '
                f'in a tower ({", ".join(t.name for t, _ in towers)}): '
                'nothing would train. Set head_only=0 (the last tower joins '
                'first), or name fewer towers')
        annotate_groups(groups, settings.layer_phases,
                        {t.name: rule.num_layers + 1 for t, rule in towers},
                        view.main_rule.num_layers + 1)
    frozen_numel = sum(numel(p) for _, p in frozen)
    if frozen:
        warn(f'{len(frozen)} frozen parameter tensors ({frozen_numel:,} '
             'elements) are left out of the optimizer')
    return GroupPlan(groups, plans, view.main_rule.num_layers,
                     _source(view, towers), [n for n, _ in frozen],
                     frozen_numel, view.main_rule.backbone_prefix, units,
                     towers=[(t.name, rule.num_layers) for t, rule in towers],
                     units=view.main_rule.units and not towers,
                     rate=settings.rate_for(view.main_rule.num_layers))


def _check_keys_apply(view: ModelView, settings, warn) -> None:
    """Custom keys matching nothing are said (MMEngine ignores them); a
    configured deformable-layer multiplier must apply."""
    names = view.names
    unmatched = unmatched_custom_keys(settings, names)
    if unmatched:
        warn(f'paramwise_cfg.custom_keys {unmatched} match no parameter name '
             f'(ignored, as MMEngine does); names look like: '
             f'{", ".join(names[:3])}, ...')
    check_multipliers_match(settings, view.main_rule.backbone_prefix, names)


def _plan_parameters(view: ModelView, trainable, settings, base_lr: float,
                     base_weight_decay: float) -> List[ParamPlan]:
    """One :class:`ParamPlan` per trainable parameter, in model order."""
    ordered_keys = order_custom_keys(settings.custom_keys)
    plans = []
    for name, param in trainable:
        index = region_of(name, view.regions)
        tower, rule, rsettings = view.regions[index]
        plans.append(plan_parameter(
            name, numel(param), len(view.shape(name, param)),
            view.owners.get(name), rule, view.skip_lists[index], rsettings,
            base_lr, base_weight_decay,
            view.has_dcn and parent_is_dcn(name, view.modules),
            ordered_keys, tower))
    return plans


def _source(view: ModelView, towers) -> str:
    """What decided the layers, for the table's title."""
    if not towers:
        return view.main_rule.source
    return (f'towers ({view.layout}): ' if view.layout else 'towers: ') + \
        '; '.join(
            f'{tower.name} = {tower.module}, {rule.source}, rate '
            f'{tower.layer_decay_rate:g}'
            + (f', lr x{tower.lr_mult:g}' if tower.lr_mult != 1 else '')
            + (f', lr {tower.lr:g}' if tower.lr is not None else '')
            + (', frozen' if tower.freeze else '')
            for tower, rule in towers)


def _reproduce(model, settings, base_lr, base_weight_decay) -> 'GroupPlan':
    """The groups of the original constructor ``settings.reproduce``
    names (:mod:`internvl_optim.core.presets`)."""
    from .presets import PRESETS
    preset = PRESETS[settings.reproduce]
    named = [(strip_wrapper_prefixes(n), p)
             for n, p in model.named_parameters()]
    trainable = [(n, p) for n, p in named if p.requires_grad]
    frozen = [n for n, p in named if not p.requires_grad]
    plans, to_freeze = preset.plans(model, trainable, settings, base_lr,
                                    base_weight_decay)
    groups = reduce_as_original(plans, [p for _, p in trainable])
    if preset.extra_keys is not None:
        for group in groups:
            group.update(preset.extra_keys(group))
    return GroupPlan(groups, plans, settings.num_layers, preset.what, frozen,
                     sum(p.numel() for _, p in named if not p.requires_grad),
                     'backbone', to_freeze)
