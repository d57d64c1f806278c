"""The core's pipeline: named parameters + settings -> optimizer groups.

Pure PyTorch; no MMEngine or MMSeg needed.  The steps, in the order data
flows (this module imports nothing else of the core):

1. settings (:mod:`.settings`: ``paramwise_cfg``, validated once; the
   caller builds them);
2. the model view (:mod:`.model_view`: names, shapes, regions and their
   layer rules from :mod:`.layer_rules`, built once);
3. what to freeze (:mod:`.freeze_selection`), selected, not applied;
4. one record per trainable parameter (:mod:`.param_plan`: layer id, lr
   and weight decay with every factor, computed once);
5. the checks of the finished plans (:mod:`.plan_checks`);
6. the reduction into groups (:mod:`.group_reduce`);
7. with ``layer_phases``, when each group joins (:mod:`.phase_schedule`).

``paramwise_cfg.reproduce``: a preset (:mod:`.presets`) replaces steps 2
to 7 with the original constructor's groups.

The core changes nothing: what ``freeze_backbone`` selects is returned in
``GroupPlan.to_freeze`` for the caller to apply
(:func:`internvl_optim.runtime.freezing.apply_freezing`).
"""
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from .freeze_selection import params_of, units_to_freeze
from .group_reduce import reduce_param_groups
from .model_view import ModelView, numel, view_model
from .param_plan import ParamPlan, PlanBase, order_custom_keys, plan_parameter
from .phase_schedule import annotate_groups
from .plan_checks import (audit, check_final_numbers, check_multipliers_match,
                          check_some_lr_is_positive, unmatched_custom_keys)
from .presets import reproduce
from .settings import LayerDecaySettings


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
    base = PlanBase(base_lr, base_weight_decay,
                    tuple(order_custom_keys(settings.custom_keys)))
    plans = [plan_parameter(name, param, view=view, base=base)
             for name, param in trainable]
    check_final_numbers(plans, base_lr, warn)
    check_some_lr_is_positive(plans, warn)
    audit(plans, warn, layers_matter=settings.layer_phases is not None)
    groups = reduce_param_groups(plans, [p for _, p in trainable],
                                 merge_layers=settings.layer_phases is None)
    towers = [(r.tower, r.rule) for r in view.towers]
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
    done = reproduce(model, settings, base_lr, base_weight_decay)
    return GroupPlan(done.groups, done.plans, settings.num_layers, done.what,
                     done.frozen, done.frozen_numel, 'backbone',
                     done.to_freeze)
