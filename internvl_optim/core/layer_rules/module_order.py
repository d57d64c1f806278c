"""CNNs and other backbones without blocks or stages: the backbone's
top-level sub-modules that hold parameters are its units, in registration
order (the order ``__init__`` builds them, which is the order they run in
every MMSeg CNN backbone: ResNet's stem then ``layer1..4``, HRNet's
``conv1, bn1, ..., stage4``, MobileNet's ``conv1, layer1..7``).  Unit ``j``
is layer ``j``; ``N`` is the number of units minus one, so the first unit
(the stem) is layer 0 and the heads ``N + 1``.  Parameters held by the
backbone itself are layer 0.  Needs at least two units.
"""
from typing import Dict

from ..names import join_name
from .base import Built, RuleContext, check_num_layers


def units(ctx: RuleContext) -> Dict[str, int]:
    """Top-level child name -> unit index, children with parameters only."""
    inner = ctx.backbone
    cb_modules = getattr(inner, 'cb_modules', None)
    if cb_modules is not None and len(cb_modules):
        inner = cb_modules[0]
    names = [n for n, child in inner.named_children()
             if next(child.parameters(), None) is not None]
    return {name: index for index, name in enumerate(names)}


def claims(ctx: RuleContext) -> bool:
    return len(units(ctx)) >= 2


def build(ctx: RuleContext) -> Built:
    order = units(ctx)
    n = check_num_layers(ctx.settings.num_layers, len(order) - 1,
                         f'{ctx.desc} ({len(order)} units)')
    return ctx.make_rule(
        n, f'module order rule ({join_name(ctx.prefix, "*")}: '
        f'{len(order)} units)',
        lambda rel: order.get(rel.split('.', 1)[0], 0)), frozenset()
