"""Which layer each parameter belongs to.

Resolution order, first match wins:

1. the model's own ``get_layer_depth(name)`` (mmpretrain convention, returns
   ``(layer_id, num_layers + 2)``), else the backbone's
   ``get_layer_depth(name, prefix)``, else the backbone's
   ``get_layer_id(rel_name)``;
2. ``paramwise_cfg.layer_regex`` (see :mod:`internvl_optim.regex_layers`);
3. the built-in rule chosen by the backbone's structure: a block list
   (:mod:`internvl_optim.vit_layers`), ConvNeXt, or stages/levels of blocks
   (:mod:`internvl_optim.hierarchical_layers`).

With ``decay_type`` given explicitly (MMSeg's key), a ConvNeXt-shaped
backbone follows MMSeg's ConvNeXt rules before anything else, so MMSeg's
ConvNeXt configs give MMSeg's learning rates.  CBNet backbones
(``cb_modules.{k}.``) are ruled by their first composite backbone.

Layer ids run from 0 (embeddings) to ``num_layers + 1`` (heads, necks and
everything else outside the blocks).  Ids depend only on names and structure,
never on which parameters are trainable, so freezing does not shift them.
"""
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional

from torch import nn

from .hierarchical_layers import (convnext_layer_id, convnext_num_layers,
                                  convnext_stage_id, is_convnext,
                                  stage_depths, stage_layer_id)
from .names import join_name, relative_name
from .regex_layers import RegexLayerRule
from .vit_layers import find_block_container, vit_layer_id


_CB_PREFIX = re.compile(r'^cb_modules\.\d+\.(.*)$')


@dataclass
class LayerRule:
    """A resolved rule: ``layer_id(full_name)`` for every parameter."""
    num_layers: int
    source: str
    backbone_prefix: str
    _layer_id: Callable[[str], int]

    def layer_id(self, name: str) -> int:
        layer_id = self._layer_id(name)
        if (not isinstance(layer_id, int) or isinstance(layer_id, bool)
                or not 0 <= layer_id <= self.num_layers + 1):
            raise ValueError(
                f'{self.source} gave layer id {layer_id!r} to parameter '
                f'{name!r}; valid ids are integers 0..{self.num_layers + 1} '
                f'(num_layers={self.num_layers})')
        return layer_id


def find_backbone(modules: Mapping[str, nn.Module],
                  backbone_name: Optional[str]):
    """Return ``(prefix, backbone)``.

    ``backbone_name=None`` means ``'backbone'`` if the model has such a
    sub-module, else the whole model (a bare ViT or vision tower).
    """
    if backbone_name is None:
        backbone_name = 'backbone' if 'backbone' in modules else ''
    if backbone_name not in modules:
        children = sorted(n for n in modules if n and '.' not in n)
        raise ValueError(
            f'paramwise_cfg.backbone_name={backbone_name!r}: the model has no '
            f'such sub-module; its top-level sub-modules are {children} '
            "(use '' for the whole model)")
    return backbone_name, modules[backbone_name]


def _check_num_layers(given: Optional[int], found: int, where: str) -> int:
    if given is not None and given != found:
        raise ValueError(
            f'paramwise_cfg.num_layers={given} disagrees with the model: '
            f'{where} has {found} layers. Remove num_layers to infer it, or '
            f'set num_layers={found}')
    return found


def _check_depths(given, found, where):
    if given is not None and list(given) != list(found):
        raise ValueError(
            f'paramwise_cfg.depths={list(given)} disagrees with the model: '
            f'{where} has depths {list(found)}. Remove depths to infer them')


def resolve_layer_rule(modules: Mapping[str, nn.Module],
                       param_names: List[str],
                       backbone_name: Optional[str] = None,
                       num_layers: Optional[int] = None,
                       layer_regex: Optional[Mapping] = None,
                       decay_type: Optional[str] = None,
                       depths: Optional[List[int]] = None,
                       warn: Callable[[str], None] = lambda msg: None
                       ) -> LayerRule:
    """Pick the layer rule for a model (see the module docstring).

    Args:
        modules: wrapper-free module names to modules
            (:func:`internvl_optim.names.clean_named_modules`).
        param_names: wrapper-free names of all parameters, frozen included.
        backbone_name: attribute holding the backbone; see
            :func:`find_backbone`.
        num_layers: the configured number of layers, checked against the
            model when the model tells its depth; ``None`` to infer it.
        layer_regex: the ``paramwise_cfg.layer_regex`` spec, if any.
        decay_type: MMSeg's ``decay_type`` if configured.  Given explicitly
            on a ConvNeXt backbone, MMSeg's ConvNeXt rules apply.
        depths: configured stage depths of a hierarchical backbone, checked
            against the model.
        warn: called with a message when a configured rule is overridden.
    """
    model = modules['']
    prefix, backbone = find_backbone(modules, backbone_name)
    backbone_desc = f'backbone {prefix!r} ({type(backbone).__name__})'
    in_backbone: Dict[str, str] = {}
    for name in param_names:
        rel = relative_name(name, prefix)
        if rel is not None:
            in_backbone[name] = rel
    if not in_backbone:
        raise ValueError(f'{backbone_desc} has no parameters')

    # CBNet: the rules see the names of the first composite backbone, with
    # the `cb_modules.{k}.` prefix removed; other CBNet parts are N + 1.
    inner, rule_names = backbone, dict(in_backbone)
    cb_modules = getattr(backbone, 'cb_modules', None)
    if isinstance(cb_modules, nn.ModuleList) and len(cb_modules):
        inner = cb_modules[0]
        rule_names = {}
        for name, rel in in_backbone.items():
            match = _CB_PREFIX.match(rel)
            rule_names[name] = match.group(1) if match else None
        backbone_desc += ' via cb_modules'

    def make_rule(n, source, rel_rule):
        def layer_id(name):
            rel = rule_names.get(name)
            return n + 1 if rel is None else rel_rule(rel)
        return LayerRule(n, source, prefix, layer_id)

    convnext_depths = is_convnext(inner)
    if convnext_depths is not None:
        _check_depths(depths, convnext_depths, backbone_desc)
    if convnext_depths is not None and decay_type is not None:
        return _convnext_rule(make_rule, decay_type, num_layers,
                              convnext_depths, backbone_desc)
    if decay_type == 'stage_wise':
        raise ValueError(
            "paramwise_cfg.decay_type='stage_wise' is MMSeg's ConvNeXt rule, "
            f'but {backbone_desc} is not ConvNeXt-shaped (downsample_layers '
            "+ 4 stages); use decay_type='layer_wise' or leave it out")

    own = None
    if callable(getattr(model, 'get_layer_depth', None)):
        own = (f'{type(model).__name__}.get_layer_depth',
               lambda name: model.get_layer_depth(name))
    elif callable(getattr(backbone, 'get_layer_depth', None)):
        own = (f'{type(backbone).__name__}.get_layer_depth',
               lambda name: (backbone.get_layer_depth(
                   name, prefix=f'{prefix}.' if prefix else '')
                             if name in in_backbone else None))
    if own is not None:
        if layer_regex is not None:
            warn(f'paramwise_cfg.layer_regex is not used: {own[0]} decides '
                 'the layer ids')
        source, depth_of = own
        layer_depths = {}
        max_depth = None
        for name in param_names:
            result = depth_of(name)
            if result is None:
                continue
            layer_depths[name], this_max = result
            if max_depth is None:
                max_depth = this_max
            elif this_max != max_depth:
                raise ValueError(f'{source} returned inconsistent depths '
                                 f'{max_depth} and {this_max}')
        n = _check_num_layers(num_layers, max_depth - 2,
                              f'{source} (num_layers + 2 = {max_depth})')
        return LayerRule(n, source, prefix,
                         lambda name: layer_depths.get(name, n + 1))

    if callable(getattr(backbone, 'get_layer_id', None)):
        if layer_regex is not None:
            warn('paramwise_cfg.layer_regex is not used: '
                 f'{type(backbone).__name__}.get_layer_id decides the layer '
                 'ids')
        found = find_block_container(backbone)
        if found is not None:
            n = _check_num_layers(num_layers, found[1],
                                  f'{backbone_desc}.{found[0]}')
        elif num_layers is not None:
            n = num_layers
        else:
            raise ValueError(
                f'{backbone_desc} has get_layer_id but no block list this '
                'package can count; set paramwise_cfg.num_layers')
        return make_rule(n, f'{type(backbone).__name__}.get_layer_id',
                         backbone.get_layer_id)

    if layer_regex is not None:
        rule = RegexLayerRule(layer_regex)
        n = _check_num_layers(
            num_layers,
            rule.infer_num_layers(r for r in rule_names.values() if r),
            f'paramwise_cfg.layer_regex.blocks on {backbone_desc}')
        return make_rule(n, 'paramwise_cfg.layer_regex',
                         lambda rel: rule.layer_id(rel, n))

    found = find_block_container(inner)
    if found is not None:
        block_path, count = found
        n = _check_num_layers(num_layers, count,
                              f'{backbone_desc}.{block_path}')
        return make_rule(n, f'ViT rule ({join_name(prefix, block_path)})',
                         lambda rel: vit_layer_id(rel, block_path, n))

    if convnext_depths is not None:
        return _convnext_rule(make_rule, 'layer_wise', num_layers,
                              convnext_depths, backbone_desc)

    found = stage_depths(inner)
    if found is not None:
        container, found_depths = found
        _check_depths(depths, found_depths, backbone_desc)
        n = _check_num_layers(num_layers, sum(found_depths),
                              f'{backbone_desc}.{container} (depths '
                              f'{found_depths})')
        return make_rule(
            n, f'stage rule ({join_name(prefix, container)}, depths '
            f'{found_depths})',
            lambda rel: stage_layer_id(rel, container, found_depths))

    raise ValueError(
        f'Cannot tell the layers of {backbone_desc}: it has no '
        'get_layer_depth/get_layer_id method, no block list at any of '
        f'{", ".join(("blocks", "layers", "encoder.layers"))} and no '
        'stages/levels of blocks. Set '
        "paramwise_cfg.layer_regex=dict(embed=..., blocks=r'...(\\d+)...'), "
        'or paramwise_cfg.backbone_name if the backbone lives elsewhere')


def _convnext_rule(make_rule, decay_type, num_layers, depths, desc):
    if decay_type == 'stage_wise':
        # MMSeg: stage s -> s + 1, heads -> num_layers + 1 (configs use 12)
        n = 4 if num_layers is None else num_layers
        if n < 4:
            raise ValueError(
                f"paramwise_cfg.num_layers={n} with decay_type='stage_wise' "
                f'must be >= 4: {desc} has 4 stages (ids 1..4)')
        return make_rule(n, f'MMSeg ConvNeXt stage_wise rule (depths '
                         f'{depths})', lambda rel: convnext_stage_id(rel, n))
    n = _check_num_layers(num_layers, convnext_num_layers(depths),
                          f"{desc} with depths {depths} under MMSeg's "
                          'layer_wise ConvNeXt rule')
    return make_rule(n, f'MMSeg ConvNeXt layer_wise rule (depths {depths})',
                     lambda rel: convnext_layer_id(rel, n))
