"""What the core sees of a model, built once per build: names without
wrapper prefixes, the shapes the model defined (under FSDP and ZeRO-3
too), the regions (the backbone, or each tower and the rest) with the layer
rule, settings and skip list of each, the module holding each parameter,
and whether deformable convs are present.  Pure PyTorch; reads, never
changes, the model."""
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from .algorithms import output_layer_names
from .backbone_probe import holder_within
from .declared_towers import declared_backbone
from .fsdp_shapes import fsdp_original_shapes
from .layer_rules import LayerRule, resolve_layer_rule
from .module_kinds import is_dcn_module
from .names import clean_named_modules, relative_name, strip_wrapper_prefixes
from .tower_layouts import find_towers
from .tower_schema import Tower, with_tower_lrs
from .weight_decay import SkipList, parameter_owners

#: the segment FSDP v1 puts in the names of the parameters it wraps
FSDP_SEGMENT = '_fsdp_wrapped_module'


@dataclass(frozen=True)
class Region:
    """One region of the model: its tower (None: the backbone rule over
    the whole model, or the rest outside the towers), its layer rule, the
    settings that rule was resolved with, and its skip list."""
    tower: Optional[Tower]
    rule: LayerRule
    settings: object
    skip_list: SkipList


@dataclass(frozen=True)
class ModelView:
    """The model as the core reads it (see the module docstring)."""
    model: nn.Module
    modules: Mapping[str, nn.Module]
    #: (wrapper-free name, parameter), in model order, frozen included
    named: List[Tuple[str, nn.Parameter]]
    shapes: Mapping[str, Sequence[int]]
    regions: List[Region]
    #: the recognised VLM layout (None: none, or towers given)
    layout: Optional[str]
    owners: Dict[str, nn.Module]
    has_dcn: bool
    #: module paths of the model's output layers (read only for a hybrid
    #: optimizer's routing, :mod:`.algorithms`)
    output_layers: frozenset = frozenset()

    @property
    def names(self) -> List[str]:
        return [n for n, _ in self.named]

    @property
    def main_rule(self) -> LayerRule:
        """The rule of the first region (the backbone's, or the first
        tower's)."""
        return self.regions[0].rule

    @property
    def towers(self) -> List[Region]:
        """The regions that are towers."""
        return [r for r in self.regions if r.tower is not None]

    def region(self, name: str) -> Region:
        """The region holding parameter ``name`` (:func:`region_of`)."""
        return self.regions[region_of(name, self.regions)]

    def shape(self, name: str, param) -> Sequence[int]:
        """The shape the model defined: FSDP's recorded one, DeepSpeed
        ZeRO-3's ``ds_shape`` (a partitioned parameter's own shape is
        empty), else the parameter's."""
        if name in self.shapes:
            return self.shapes[name]
        return getattr(param, 'ds_shape', None) or param.shape


def numel(param) -> int:
    """Elements of a parameter (ZeRO-3's ``ds_numel`` when partitioned)."""
    return getattr(param, 'ds_numel', None) or param.numel()


def view_model(model: nn.Module, settings,
               original_shapes: Optional[Mapping[str, Sequence[int]]] = None,
               warn: Callable[[str], None] = lambda msg: None) -> ModelView:
    """Read ``model`` once (``original_shapes``: see
    :func:`~internvl_optim.core.pipeline.build_param_groups`)."""
    modules = clean_named_modules(model)
    raw = list(model.named_parameters())
    named = [(strip_wrapper_prefixes(n), p) for n, p in raw]
    # FSDP v1 flat parameters show in the names; only then look for them
    wrapped = any(FSDP_SEGMENT in n for n, _ in raw)
    shapes = original_shapes or (fsdp_original_shapes(model) if wrapped
                                 else None) or {}
    found, layout = find_regions(modules, [n for n, _ in named], settings,
                                 warn)
    regions = [Region(tower, rule, rsettings,
                      SkipList([('', modules['']),
                                (rule.backbone_prefix,
                                 modules[rule.backbone_prefix])]))
               for tower, rule, rsettings in found]
    return ModelView(model, modules, named, shapes, regions, layout,
                     parameter_owners(modules),
                     # deformable convs change some multipliers; most
                     # models have none
                     any(is_dcn_module(m) for m in modules.values()),
                     output_layer_names(modules) if settings.muon
                     else frozenset())


# --- the regions: one per tower (and the rest), each with its rule ------

def tower_settings(settings, tower: Tower):
    """The settings a tower's own layer rule is resolved with."""
    backbone_keys = tower.takes_backbone_keys
    return replace(
        settings, backbone_name=tower.module,
        layer_decay_rate=tower.layer_decay_rate,
        num_layers=settings.num_layers if backbone_keys else tower.num_layers,
        depths=settings.depths if backbone_keys else None,
        layer_regex=settings.layer_regex if backbone_keys else None,
        decay_type=settings.decay_type if backbone_keys else None,
        freeze_backbone=settings.freeze_backbone if backbone_keys else None,
        layer_decay_reference_depth=settings.layer_decay_reference_depth
        if backbone_keys else None,
        first_block_lr_ratio=settings.first_block_lr_ratio
        if backbone_keys else None,
        towers=())


def find_regions(modules: Mapping, names: List[str], settings,
            warn: Callable[[str], None]
            ) -> Tuple[List[Tuple[Optional[Tower], LayerRule, object]],
                       Optional[str]]:
    """``([(tower or None, rule, settings)], layout)``: one region (the
    backbone rule over the whole model) without towers; else one per tower
    (:func:`~internvl_optim.core.tower_layouts.find_towers`) and one for
    the rest of the model (base lr).  ``layout`` names the recognised
    layout (None: none, or towers given)."""
    towers, layout = find_towers(modules, settings)
    if not towers:
        if settings.tower_lrs:
            key = next(iter(settings.tower_lrs))
            raise ValueError(
                f'paramwise_cfg.{key} sets the lr of a VLM tower, but the '
                'model declares no towers and has no known VLM layout; name '
                'them with paramwise_cfg.towers')
        return [(None, resolve_layer_rule(modules, names, settings, warn),
                 settings)], None
    towers = with_tower_lrs(towers, settings.tower_lrs)
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
        # a tower that only wraps its model (GIT's image_encoder.vision_model,
        # Kosmos-2's vision_model.model) is read inside the wrapper
        # a found tower that declares its own backbone (SAM 2's vision
        # encoder: a Hiera trunk by backbone_config, then its neck) is
        # decayed inside that backbone; the rest of the tower is its head
        inner = (declared_backbone(modules, tower.module)
                 if layout is not None else None) or tower.module
        tsettings = replace(tower_settings(settings, tower),
                            backbone_name=holder_within(modules, inner))
        regions.append((tower, resolve_layer_rule(modules, names, tsettings,
                                                  warn), tsettings))
    rest = LayerRule(0, 'outside the towers: base lr', '',
                     lambda name: 1)
    regions.append((None, rest, replace(
        settings, layer_decay_rate=1.0, towers=(), freeze_backbone=None)))
    return regions, layout


def region_of(name: str, regions) -> int:
    """The index of the region holding parameter ``name``: the innermost
    tower holding it, else the last region (the rest, or the only one)."""
    best, depth = len(regions) - 1, -1
    for index, region in enumerate(regions):
        tower = region.tower
        if tower is None:
            return index if len(regions) == 1 else best
        if relative_name(name, tower.module) is not None and \
                len(tower.module) > depth:
            best, depth = index, len(tower.module)
    return best
