"""What the core sees of a model, built once per build: names without
wrapper prefixes, the shapes the model defined (under FSDP and ZeRO-3
too), the regions (the backbone, or each tower and the rest) with the layer
rule of each, the module holding each parameter, the skip lists, and
whether deformable convs are present.  Pure PyTorch; reads, never changes,
the model."""
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from .fsdp_shapes import fsdp_original_shapes
from .layer_rules import LayerRule
from .multipliers import is_dcn_module
from .names import clean_named_modules, strip_wrapper_prefixes
from .towers import Tower, regions as find_regions
from .weight_decay import SkipList, parameter_owners

#: the segment FSDP v1 puts in the names of the parameters it wraps
FSDP_SEGMENT = '_fsdp_wrapped_module'

#: one region of the model: its tower (None: the backbone rule over the
#: whole model, or the rest outside the towers), its layer rule, and the
#: settings that rule was resolved with
Region = Tuple[Optional[Tower], LayerRule, object]


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
    skip_lists: List[SkipList]
    has_dcn: bool

    @property
    def names(self) -> List[str]:
        return [n for n, _ in self.named]

    @property
    def main_rule(self) -> LayerRule:
        """The rule of the first region (the backbone's, or the first
        tower's)."""
        return self.regions[0][1]

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
    :func:`~internvl_optim.core.param_groups.build_param_groups`)."""
    modules = clean_named_modules(model)
    raw = list(model.named_parameters())
    named = [(strip_wrapper_prefixes(n), p) for n, p in raw]
    # FSDP v1 flat parameters show in the names; only then look for them
    wrapped = any(FSDP_SEGMENT in n for n, _ in raw)
    shapes = original_shapes or (fsdp_original_shapes(model) if wrapped
                                 else None) or {}
    regions, layout = find_regions(modules, [n for n, _ in named], settings,
                                   warn)
    skip_lists = [SkipList([('', modules['']),
                            (rule.backbone_prefix,
                             modules[rule.backbone_prefix])])
                  for _, rule, _ in regions]
    return ModelView(model, modules, named, shapes, regions, layout,
                     parameter_owners(modules), skip_lists,
                     # deformable convs change some multipliers; most
                     # models have none
                     any(is_dcn_module(m) for m in modules.values()))
