"""Rules the model brings itself: the model's ``get_layer_depth(name)``
(mmpretrain convention: ``(layer_id, num_layers + 2)``), the backbone's
``get_layer_depth(name, prefix)``, or the backbone's
``get_layer_id(rel_name)`` (BEiT/InternImage convention).

A configured ``layer_regex`` is then not used (said in a warning), and
configured ``depths`` are checked against the stages the probe found.
"""
from __future__ import annotations
from typing import TYPE_CHECKING, Callable, Optional, Tuple

from .common import check_depths, check_num_layers

if TYPE_CHECKING:  # the types live with the table
    from . import Built, RuleContext


def _used_settings(ctx: RuleContext, source: str) -> frozenset:
    used = set()
    if ctx.settings.layer_regex is not None:
        ctx.warn(f'paramwise_cfg.layer_regex is not used: {source} decides '
                 'the layer ids')
        used.add('layer_regex')
    found = ctx.structure.stages.depths if ctx.structure.stages else \
        ctx.structure.convnext
    if ctx.settings.depths is not None and found is not None:
        check_depths(ctx.settings.depths, found, ctx.desc)
        used.add('depths')
    return frozenset(used)


def _from_depths(ctx: RuleContext, source: str,
                 depth_of: Callable[[str], Optional[Tuple[int, int]]]
                 ) -> Built:
    layer_depths, max_depth = {}, None
    for name in ctx.param_names:
        result = depth_of(name)
        if result is None:
            continue
        layer_depths[name], this_max = result
        if max_depth is not None and this_max != max_depth:
            raise ValueError(f'{source} returned inconsistent depths '
                             f'{max_depth} and {this_max}')
        max_depth = this_max
    n = check_num_layers(ctx.settings.num_layers, max_depth - 2,
                         f'{source} (num_layers + 2 = {max_depth})')
    rule = ctx.rule_by_full_name(n, source,
                                 lambda name: layer_depths.get(name, n + 1))
    return rule, _used_settings(ctx, source)


def claims_model_depth(ctx: RuleContext) -> bool:
    return callable(getattr(ctx.model, 'get_layer_depth', None))


def build_model_depth(ctx: RuleContext) -> Built:
    return _from_depths(ctx, f'{type(ctx.model).__name__}.get_layer_depth',
                        ctx.model.get_layer_depth)


def claims_backbone_depth(ctx: RuleContext) -> bool:
    return callable(getattr(ctx.backbone, 'get_layer_depth', None))


def build_backbone_depth(ctx: RuleContext) -> Built:
    prefix = f'{ctx.prefix}.' if ctx.prefix else ''
    return _from_depths(
        ctx, f'{type(ctx.backbone).__name__}.get_layer_depth',
        lambda name: (ctx.backbone.get_layer_depth(name, prefix=prefix)
                      if name in ctx.in_backbone else None))


def claims_backbone_id(ctx: RuleContext) -> bool:
    return callable(getattr(ctx.backbone, 'get_layer_id', None))


def build_backbone_id(ctx: RuleContext) -> Built:
    source = f'{type(ctx.backbone).__name__}.get_layer_id'
    blocks = ctx.structure.blocks
    if blocks is not None:
        n = check_num_layers(ctx.settings.num_layers, blocks[1],
                             f'{ctx.desc}.{blocks[0]}')
    elif ctx.settings.num_layers is not None:
        n = ctx.settings.num_layers
    else:
        raise ValueError(
            f'{ctx.desc} has get_layer_id but no block list this package '
            'can count; set paramwise_cfg.num_layers')
    return (ctx.make_rule(n, source, ctx.backbone.get_layer_id),
            _used_settings(ctx, source))
