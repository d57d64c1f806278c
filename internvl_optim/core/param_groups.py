"""The core: named parameters + settings -> optimizer parameter groups.

Pure PyTorch; no MMEngine or MMSeg needed.  Three steps: resolve the layer
rule (:mod:`.layer_rules`), plan every trainable parameter
(:mod:`.param_plan`), merge the plans into groups (:mod:`.group_reduce`).
The core changes nothing: what ``freeze_backbone`` selects is returned in
``GroupPlan.to_freeze`` for the caller to apply
(:func:`internvl_optim.runtime.freezing.apply_freezing`).
"""
from dataclasses import dataclass, field
import dataclasses
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from .backbone_probe import find_block_container
from .freezing import check_wrapper_allows_freezing, select_units
from .fsdp_shapes import fsdp_original_shapes

#: the segment FSDP v1 puts in the names of the parameters it wraps
FSDP_SEGMENT = '_fsdp_wrapped_module'
from .layer_rules import LayerRule, resolve_layer_rule
from .multipliers import is_dcn_module
from .names import clean_named_modules, relative_name, strip_wrapper_prefixes
from .param_plan import (ParamPlan, audit, check_final_numbers,
                         order_custom_keys, unmatched_custom_keys,
                         check_multipliers_match, check_some_lr_is_positive,
                         plan_parameter)
from .group_reduce import reduce_param_groups
from .settings import LayerDecaySettings
from .towers import Tower, recognise_layout
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
    #: the units ``freeze_backbone`` (and towers, InternVL's flags) select:
    #: modules, or single parameters; not frozen yet: the caller applies it
    #: (:func:`internvl_optim.runtime.freezing.apply_freezing`)
    to_freeze: List = field(default_factory=list)
    #: with towers: (name, num_layers) of each
    towers: List[Tuple[str, int]] = field(default_factory=list)


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
        f'backbone {rule.backbone_prefix!r} ({type(backbone).__name__})',
        rule.structure)


def _tower_settings(settings: LayerDecaySettings, tower: Tower
                    ) -> LayerDecaySettings:
    """The settings a tower's own layer rule is resolved with."""
    backbone_keys = tower.takes_backbone_keys
    return dataclasses.replace(
        settings, backbone_name=tower.module,
        layer_decay_rate=tower.layer_decay_rate,
        num_layers=settings.num_layers if backbone_keys else tower.num_layers,
        depths=settings.depths if backbone_keys else None,
        layer_regex=settings.layer_regex if backbone_keys else None,
        decay_type=settings.decay_type if backbone_keys else None,
        freeze_backbone=settings.freeze_backbone if backbone_keys else None,
        towers=())


def _regions(modules, names, settings, warn):
    """``[(tower or None, rule, settings)]``: one region (the backbone rule
    over the whole model) without towers; else one per tower and one for
    the rest of the model (base lr)."""
    towers = settings.towers
    layout = None
    if not towers and settings.backbone_name is None:
        found = recognise_layout(list(modules), settings.layer_decay_rate)
        if found is not None:
            layout, towers = found
    if not towers:
        return [(None, resolve_layer_rule(modules, names, settings, warn),
                 settings)], None
    if settings.freeze_backbone and not any(t.takes_backbone_keys
                                            for t in towers):
        raise ValueError(
            'paramwise_cfg.freeze_backbone with paramwise_cfg.towers: say '
            "which tower to freeze with towers[NAME].freeze=True")
    regions = []
    for tower in towers:
        if tower.module not in modules:
            raise ValueError(
                f'paramwise_cfg.towers[{tower.name!r}].module='
                f'{tower.module!r}: the model has no such sub-module; its '
                'top-level sub-modules are '
                f'{sorted(n for n in modules if n and "." not in n)}')
        tsettings = _tower_settings(settings, tower)
        regions.append((tower, resolve_layer_rule(modules, names, tsettings,
                                                  warn), tsettings))
    rest = LayerRule(0, 'outside the towers: base lr', '', lambda name: 1)
    regions.append((None, rest, dataclasses.replace(
        settings, layer_decay_rate=1.0, towers=(), freeze_backbone=None)))
    return regions, layout


def _region_of(name: str, regions) -> int:
    for index, (tower, _, _) in enumerate(regions):
        if tower is None or relative_name(name, tower.module) is not None:
            return index
    return len(regions) - 1


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
    modules = clean_named_modules(model)
    raw = list(model.named_parameters())
    named = [(strip_wrapper_prefixes(n), p) for n, p in raw]
    names = [n for n, _ in named]
    # FSDP v1 flat parameters show in the names; only then look for them
    wrapped = any(FSDP_SEGMENT in n for n, _ in raw)
    shapes = original_shapes or (fsdp_original_shapes(model) if wrapped
                                 else None) or {}
    regions, layout = _regions(modules, names, settings, warn)
    units = []
    for tower, rule, rsettings in regions:
        units += _units_to_freeze(model, modules, rule, rsettings)
        if tower is not None and tower.freeze:
            check_wrapper_allows_freezing(model)
            units.append(modules[tower.module])
    units = internvl_flag_units(settings, regions, modules, units)
    unmatched = unmatched_custom_keys(settings, names)
    if unmatched:
        warn(f'paramwise_cfg.custom_keys {unmatched} match no parameter name '
             f'(ignored, as MMEngine does); names look like: '
             f'{", ".join(names[:3])}, ...')
    main_rule = regions[0][1]
    check_multipliers_match(settings, main_rule.backbone_prefix, names)
    to_freeze = {id(p) for unit in units for p in _params_of(unit)}
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
    # deformable convs change some multipliers; most models have none
    has_dcn = any(is_dcn_module(m) for m in modules.values())
    ordered_keys = order_custom_keys(settings.custom_keys)
    skip_lists = [SkipList([('', modules['']),
                            (rule.backbone_prefix,
                             modules[rule.backbone_prefix])])
                  for _, rule, _ in regions]
    plans = []
    for nm, p in trainable:
        index = _region_of(nm, regions)
        tower, rule, rsettings = regions[index]
        plan = plan_parameter(nm, _numel(p), len(_shape(nm, p, shapes)),
                              owners.get(nm), rule, skip_lists[index],
                              rsettings, base_lr, base_weight_decay,
                              has_dcn and parent_is_dcn(nm, modules),
                              ordered_keys)
        if tower is not None:
            apply_tower(plan, tower, base_lr)
        plans.append(plan)
    check_final_numbers(plans, base_lr, warn)
    check_some_lr_is_positive(plans, warn)
    audit(plans, warn)
    groups = reduce_param_groups(plans, [p for _, p in trainable])
    frozen_numel = sum(_numel(p) for _, p in named
                       if not p.requires_grad or id(p) in to_freeze)
    if frozen:
        warn(f'{len(frozen)} frozen parameter tensors ({frozen_numel:,} '
             'elements) are left out of the optimizer')
    if len(regions) == 1:
        return GroupPlan(groups, plans, main_rule.num_layers,
                         main_rule.source, frozen, frozen_numel,
                         main_rule.backbone_prefix, units)
    source = (f'towers ({layout}): ' if layout else 'towers: ') + '; '.join(
        f'{tower.name} = {tower.module}, {rule.source}, rate '
        f'{tower.layer_decay_rate:g}'
        + (f', lr x{tower.lr_mult:g}' if tower.lr_mult != 1 else '')
        + (', frozen' if tower.freeze else '')
        for tower, rule, _ in regions if tower is not None)
    return GroupPlan(groups, plans, main_rule.num_layers, source, frozen,
                     frozen_numel, main_rule.backbone_prefix, units,
                     towers=[(tower.name, rule.num_layers)
                             for tower, rule, _ in regions
                             if tower is not None])


def _reproduce(model, settings, base_lr, base_weight_decay) -> 'GroupPlan':
    """The groups of the original constructor ``settings.reproduce``
    names (:mod:`internvl_optim.core.presets`)."""
    from .presets import PRESETS
    what, builder = PRESETS[settings.reproduce]
    named = [(strip_wrapper_prefixes(n), p)
             for n, p in model.named_parameters()]
    trainable = [(n, p) for n, p in named if p.requires_grad]
    frozen = [n for n, p in named if not p.requires_grad]
    plans, groups, to_freeze = builder(model, trainable, settings, base_lr,
                                       base_weight_decay)
    return GroupPlan(groups, plans, settings.num_layers, what, frozen,
                     sum(p.numel() for _, p in named if not p.requires_grad),
                     'backbone', to_freeze)


def _shape(name: str, param, shapes) -> Sequence[int]:
    """The shape the model defined: FSDP's recorded one, DeepSpeed ZeRO-3's
    ``ds_shape`` (a partitioned parameter's own shape is empty), else the
    parameter's."""
    if name in shapes:
        return shapes[name]
    return getattr(param, 'ds_shape', None) or param.shape


def _numel(param) -> int:
    return getattr(param, 'ds_numel', None) or param.numel()


def _params_of(unit):
    """A unit to freeze: a module (all its parameters) or one parameter."""
    return unit.parameters() if isinstance(unit, nn.Module) else [unit]


#: where an ``lm_head`` lives: transformers' VLMs, InternVL chat's LLMs
#: (``language_model.lm_head``; InternLM2: ``language_model.output``)
LM_HEADS = ('lm_head', '{language}.lm_head', '{language}.output')


def internvl_flag_units(settings, regions, modules, units) -> list:
    """InternVL chat's flags on a VLM layout: ``freeze_mlp`` and
    ``freeze_llm`` freeze the projector and the language model;
    ``unfreeze_vit_layers=N`` keeps the vision blocks ``[N:]`` trainable
    (InternVL: ``encoder.layers[N:]``, from N on); ``unfreeze_lm_head``
    keeps ``lm_head`` trainable.  Units holding a kept parameter are
    frozen parameter by parameter."""
    if not (settings.freeze_mlp or settings.freeze_llm
            or settings.unfreeze_vit_layers or settings.unfreeze_lm_head):
        return units
    towers = {t.name: t for t, _, _ in regions if t is not None}
    missing = [n for n in ('vision', 'projector', 'language')
               if n not in towers]
    if missing:
        raise ValueError(
            'paramwise_cfg.freeze_mlp / freeze_llm / unfreeze_vit_layers / '
            "unfreeze_lm_head are InternVL chat's flags for a VLM, but the "
            f'model has no tower named {missing}: it is no known VLM layout '
            "and paramwise_cfg.towers names no 'vision', 'projector' and "
            "'language'")
    units = list(units)
    if settings.freeze_mlp:
        units.append(modules[towers['projector'].module])
    if settings.freeze_llm:
        units.append(modules[towers['language'].module])
    keep = set()
    if settings.unfreeze_vit_layers:
        vision = modules[towers['vision'].module]
        found = find_block_container(vision)
        if found is None:
            raise ValueError(
                'paramwise_cfg.unfreeze_vit_layers: the vision tower '
                f'{towers["vision"].module!r} has no block list')
        blocks = vision.get_submodule(found[0])
        n = settings.unfreeze_vit_layers
        if not settings.freeze_backbone:
            raise ValueError(
                f'paramwise_cfg.unfreeze_vit_layers={n} keeps vision blocks '
                'trainable inside a frozen vision tower, but nothing freezes '
                'it: add paramwise_cfg.freeze_backbone=True, or remove '
                'unfreeze_vit_layers')
        if not -len(blocks) < n < len(blocks):
            raise ValueError(
                f'paramwise_cfg.unfreeze_vit_layers={n}: the vision tower '
                f'{towers["vision"].module!r} has {len(blocks)} blocks, so '
                f'[{n}:] keeps {"none" if n >= len(blocks) else "all"} of '
                f'them; valid: 1..{len(blocks) - 1} (blocks from N on) or '
                f'-{len(blocks) - 1}..-1 (the last -N)')
        layers = blocks[n:]
        keep |= {id(p) for p in layers.parameters()}
    if settings.unfreeze_lm_head:
        names = [n.format(language=towers['language'].module)
                 for n in LM_HEADS]
        heads = [modules[n] for n in names if n in modules]
        if not heads:
            raise ValueError('paramwise_cfg.unfreeze_lm_head: the model has '
                             f'none of {names}')
        keep |= {id(p) for p in heads[0].parameters()}
    if not keep:
        return units
    split = []
    for unit in units:
        params = list(_params_of(unit))
        if any(id(p) in keep for p in params):
            split += [p for p in params if id(p) not in keep]
        else:
            split.append(unit)
    return split


def apply_tower(plan: ParamPlan, tower: Tower, base_lr: float) -> None:
    """A tower's multipliers on a parameter's plan (in place)."""
    plan.tower = tower.name
    if tower.lr_mult != 1.0:
        plan.lr_scale *= tower.lr_mult
        plan.lr = base_lr * plan.lr_scale
    if tower.decay_mult != 1.0 and plan.weight_decay:
        plan.weight_decay *= tower.decay_mult
        if plan.weight_decay == 0:
            plan.no_decay_reason = f'towers[{tower.name!r}].decay_mult=0'
