r"""A grouping the model declares as data: timm's ``group_matcher``.

Every timm model declares how its parameters group into layers with
``group_matcher(coarse=False)``: a dict of group name -> regex, or -> a list
of ``(regex, suffix)`` pairs, or a callable from name to ordinal.  timm's
``group_with_matcher`` (``timm/models/_manipulate.py``, timm 1.0.31) turns
it into consecutive ids, and ``param_groups_layer_decay``
(``timm/optim/_param_groups.py``) scales group ``i`` by
``layer_decay ** (layer_max - i)``.  The facts this module follows:

* a dict entry's ordinal is ``(position of the entry, *captured groups as
  floats, *suffix)``; the first entry whose regex ``re.match``\ es wins;
* a name no entry matches gets ``(inf,)``: the head, the largest ordinal;
* a callable's result is the ordinal (an int, or a tuple);
* ordinals are sorted; each distinct ordinal starts a new id, except one
  ending in ``MATCH_PREV_GROUP`` (99999), which joins the previous id (the
  final norm joins the last block);
* ``layer_max`` is the largest id.

Our ids are timm's and ``num_layers + 1`` is timm's ``layer_max``, so every
parameter of the model gets exactly timm's lr scale.  Heads outside the
backbone (a segmentor's decode head) get ``num_layers + 1`` too: with a
classifier that is the classifier's group; for a headless timm model
(``num_classes=0``) it is the group of its last block and final norm,
which then train at the base lr, as timm trains them.
"""
from __future__ import annotations
import math
import re
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from torch import nn

from ..backbone_probe import sole_holder
from ..names import join_name
from .common import check_num_layers

if TYPE_CHECKING:  # the types live with the table
    from . import Built, RuleContext

#: timm's ``MATCH_PREV_GROUP`` suffix: the ordinal joins the previous group
MATCH_PREV_GROUP = 99999.0


def _compile(spec) -> List[Tuple[re.Pattern, Tuple[float, ...],
                                 Optional[Tuple[float, ...]]]]:
    compiled = []
    for ordinal, (group, entry) in enumerate(spec.items()):
        if entry is None:
            continue
        if isinstance(entry, (tuple, list)):
            for sub in entry:
                compiled.append((re.compile(sub[0]), (float(ordinal), ),
                                 None if sub[1] is None else
                                 tuple(map(float, sub[1]))))
        else:
            compiled.append((re.compile(entry), (float(ordinal), ), None))
    return compiled


def group_ordinals(names: Sequence[str], spec) -> Dict[str, Tuple[float, ...]]:
    """The ordinal timm's matcher gives each name."""
    if isinstance(spec, dict):
        compiled = _compile(spec)

        def ordinal(name):
            for pattern, prefix, suffix in compiled:
                found = pattern.match(name)
                if found:
                    captured = tuple(float(g) for g in found.groups()
                                     if g is not None)
                    return prefix + captured + (suffix or ())
            return (math.inf, )
    else:
        def ordinal(name):
            value = spec(name)
            if isinstance(value, (tuple, list)):
                return tuple(float(v) for v in value)
            return (float(value), )
    return {name: ordinal(name) for name in names}


def group_ids(names: Sequence[str], spec) -> Dict[str, int]:
    """Name -> consecutive id, as timm's ``group_with_matcher``."""
    ordinals = group_ordinals(names, spec)
    ids, current, by_ordinal = {}, -1, {}
    for key in sorted(set(ordinals.values())):
        if current < 0 or key[-1] != MATCH_PREV_GROUP:
            current += 1
        by_ordinal[key] = current
    for name, key in ordinals.items():
        ids[name] = by_ordinal[key]
    return ids


def declarer(backbone: nn.Module) -> Optional[Tuple[str, nn.Module]]:
    """``(path, module)`` of the module declaring ``group_matcher``: the
    backbone itself, or the one child that holds all its parameters (MMSeg's
    and mmpretrain's ``TIMMBackbone`` keep the timm model as
    ``timm_model``; :func:`~internvl_optim.core.backbone_probe.sole_holder`),
    followed down."""
    path, module = '', backbone
    while not callable(getattr(module, 'group_matcher', None)):
        child = sole_holder(module)
        if child is None:
            return None
        path, module = join_name(path, child), module.get_submodule(child)
    return path, module


def claims(ctx: RuleContext) -> bool:
    return declarer(ctx.backbone) is not None


def build(ctx: RuleContext) -> Built:
    path, module = declarer(ctx.backbone)
    source = (f'{type(module).__name__}.group_matcher (declared by the '
              'model)')
    spec = module.group_matcher(coarse=False)
    own = [n for n, _ in module.named_parameters()]
    ids = group_ids(own, spec)
    top = max(ids.values())
    n = top - 1  # timm's layer_max is N + 1: its top group gets base lr
    if n < 0:
        raise ValueError(
            f'{source} puts every parameter of {ctx.desc} in one group: '
            'layer decay has nothing to decay. Use layer_decay_rate=1.0, or '
            'paramwise_cfg.layer_regex to give the layers')
    n = check_num_layers(ctx.settings.num_layers, n,
                         f'{ctx.desc} ({source}: {top + 1} groups)')
    strip = f'{path}.' if path else ''

    def layer_of(rel: str) -> int:
        inner = rel[len(strip):] if rel.startswith(strip) else None
        return ids.get(inner, n + 1)

    def claimed(name: str) -> bool:
        rel = ctx.in_backbone.get(name)
        return rel is None or (rel.startswith(strip)
                               and rel[len(strip):] in ids)

    return ctx.make_rule(n, source, layer_of, claimed), frozenset()
