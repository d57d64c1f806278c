"""CNNs and other backbones without blocks or stages: the backbone's
top-level sub-modules that hold parameters are its units, in registration
order (the order ``__init__`` builds them, which is the order they run in
every MMSeg CNN backbone: ResNet's stem then ``layer1..4``, HRNet's
``conv1, bn1, ..., stage4``, MobileNet's ``conv1, layer1..7``); with
fewer than three such units, the items of top-level lists are the units
(UNet's and ERFNet's ``encoder.{i}``, ``decoder.{i}``).  Unit ``j``
is layer ``j``; ``N`` is the number of units minus one, so the first unit
(the stem) is layer 0 and the heads ``N + 1``.  Parameters held by the
backbone itself are layer 0.  Needs at least two units.
"""
from __future__ import annotations
from typing import TYPE_CHECKING, Dict

from torch import nn

from ..backbone_probe import (composite_backbones, declared_depths,
                              transformer_towers)
from ..declared_towers import towers_example
from ..names import join_name
from .common import check_num_layers

if TYPE_CHECKING:  # the types live with the table
    from . import Built, RuleContext


def _with_parameters(pairs):
    return [name for name, module in pairs
            if next(module.parameters(), None) is not None]


def units(ctx: RuleContext) -> Dict[str, int]:
    """Unit name -> index: the top-level children with parameters; with
    fewer than three of them, the items of top-level lists instead (UNet's
    and ERFNet's ``encoder.{i}`` / ``decoder.{i}``)."""
    inner = composite_backbones(ctx.backbone)[0]
    names = _with_parameters(inner.named_children())
    if len(names) < 3:
        expanded = []
        for name, child in inner.named_children():
            items = (list(child.named_children()) if isinstance(
                child, (nn.ModuleList, nn.Sequential)) else [])
            expanded += _with_parameters(
                [(f'{name}.{i}', m) for i, m in items] or [(name, child)])
        names = expanded
    return {name: index for index, name in enumerate(names)}


def unit_of(rel_name: str, order: Dict[str, int]) -> int:
    """The unit a backbone-relative name belongs to (0 if none).

    >>> unit_of('encoder.1.conv.weight', {'encoder.0': 0, 'encoder.1': 1})
    1
    """
    parts = rel_name.split('.')
    for key in ('.'.join(parts[:2]), parts[0]):
        if key in order:
            return order[key]
    return 0


def claims(ctx: RuleContext) -> bool:
    return len(units(ctx)) >= 2


def tower_root(block_list: str) -> str:
    """The module a block list belongs to: ``model.vision_tower`` for
    ``model.vision_tower.encoder.layer``."""
    parts = block_list.split('.')[:-1]
    if parts and parts[-1] in ('encoder', 'transformer'):
        parts = parts[:-1]
    return '.'.join(parts) or block_list


def check_single_tower(ctx: RuleContext) -> None:
    """The module order suits one CNN-like trunk; a model holding several
    transformer towers (a VLM's vision tower and language model) would get
    one id per tower, silently.  Refused, naming the towers."""
    if ctx.settings.layer_decay_rate == 1.0:
        return  # every id gets the base lr: nothing can be wrong
    towers = transformer_towers(ctx.backbone)
    if len(towers) < 2:
        return
    shown = ', '.join(f'{tower_root(join_name(ctx.prefix, path))} ({n} '
                      f'blocks at {join_name(ctx.prefix, path)})'
                      for path, n in towers)
    first = tower_root(join_name(ctx.prefix, towers[0][0]))
    example = towers_example({
        f'tower{i}': tower_root(join_name(ctx.prefix, path))
        for i, (path, _) in enumerate(towers)})
    raise ValueError(
        f'{ctx.desc} holds {len(towers)} transformer towers: {shown}. Layer '
        'decay over the whole model would give each tower one layer id. Say '
        f"which tower to decay, e.g. paramwise_cfg.backbone_name='{first}' "
        '(the other towers then get the base lr), or give each tower its '
        f'settings with paramwise_cfg.{example}, or use '
        'layer_decay_rate=1.0')


def declared_structure(module: nn.Module) -> str:
    """What a transformers model declares about its blocks (its config's
    depths, its ``_no_split_modules`` block classes), as text; '' for a
    model that declares nothing (an MMSeg CNN)."""
    depths = declared_depths(module)
    blocks = sorted(getattr(module, '_no_split_modules', None) or ())
    parts = []
    if depths:
        parts.append(f'depths {depths}' if len(depths) > 1 else
                     f'{depths[0]} layers')
    if blocks:
        parts.append(f'block classes {blocks}')
    config = getattr(module, 'config', None)
    if not parts and isinstance(getattr(config, 'model_type', None), str):
        parts.append(f'a {config.model_type} config')
    return ' and '.join(parts)


def build(ctx: RuleContext) -> Built:
    check_single_tower(ctx)
    order = units(ctx)
    declared = declared_structure(composite_backbones(ctx.backbone)[0])
    if declared and ctx.settings.layer_decay_rate != 1.0:
        ctx.warn(
            f'{ctx.desc} declares {declared}, but no list of blocks or '
            'stages of blocks matching it was found: its layer ids follow '
            f'the order of its {len(order)} top-level modules instead, each '
            'module one id. Check the placement with '
            'tools/analyze_param_groups.py --check-order, or set '
            'paramwise_cfg.layer_regex')
    n = check_num_layers(ctx.settings.num_layers, len(order) - 1,
                         f'{ctx.desc} ({len(order)} units)')
    return ctx.make_rule(
        n, f'module order rule ({join_name(ctx.prefix, "*")}: '
        f'{len(order)} units)',
        lambda rel: unit_of(rel, order), units=True), frozenset()
