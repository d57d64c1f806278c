"""Hierarchical backbones: stages of blocks, numbered per block across
stages, ``layer_id = sum(depths[:s]) + b + 1``, ``N = sum(depths)``.

Within a stage, the modules registered before its blocks run at its start
and take the id of its first block (stage 0: layer 0, they run before any
block: MiT's and timm Swin's patch embedding / downsample); the ones
registered after run at its end and take the id of the next stage's first
block, ``sum(depths[:s + 1]) + 1``, ``N + 1`` after the last stage (MMSeg
Swin's downsample, InternImage's norm and downsample, MiT's norm).
Beside a nested stage list, a module registered before it is layer 0
(PP-LCNet's stem ``encoder.convolution`` beside ``encoder.blocks``), one
registered after it ``N + 1``.  Where a declared block is a group of
consecutive items (LeViT: an attention and an MLP residual layer), item
``i`` is block ``i // k``; items after the last block run at the stage's
end.
InternImage-H/G's ``post_norms.{k}`` take the id of the block they follow
(``post_norm_block_ids[k]``).  Twins keeps per-stage modules in parallel
lists: ``patch_embeds.{s}`` at the start of stage s (``patch_embeds.0`` is
layer 0), ``position_encodings.{s}`` after its first block (that block's
id), ``norm_list.{s}`` at its end.  Outside
the stages, :func:`~.base.outside_placement`.

Covers MMSeg Swin (``stages.{s}.blocks``), InternImage
(``levels.{s}.blocks``), MiT / SegFormer (``layers.{s}.{0,1,2}``), timm
Swin (``layers.{s}.blocks``), HuggingFace Swin (``encoder.layers.{s}``) and
Twins PCPVT/SVT (``layers.{s}.{b}``).
"""
from __future__ import annotations
from typing import TYPE_CHECKING, Optional

from ..backbone_probe import StageLayout, composite_backbones
from ..names import is_token_or_position, join_name
from .common import (ancestors_of, check_depths, check_num_layers,
                     outside_placement, registered_before)

if TYPE_CHECKING:  # the types live with the table
    from . import Built, RuleContext


#: modules of a stage that run before its blocks although registered after
#: them, by the names their models give them: GroupViT's
#: ``group_projector`` (the previous stage's group tokens projected into
#: this stage, concatenated before its first layer)
STAGE_START = frozenset(('group_projector', ))


def _first_block(layout: StageLayout, stage: int) -> int:
    return sum(layout.depths[:stage]) + 1


def _end_of_stage(layout: StageLayout, stage: int) -> int:
    return min(sum(layout.depths[:stage + 1]) + 1, sum(layout.depths) + 1)


def _in_stage(layout: StageLayout, stage: int, parts) -> int:
    child = parts[0] if parts else ''
    if layout.block_child[stage] == '':  # the stage is its list of blocks
        if child.isdigit():
            return sum(layout.depths[:stage]) + int(child) + 1
        return _end_of_stage(layout, stage)
    if child == layout.block_child[stage] and len(parts) > 1 and \
            parts[1].isdigit():
        block = int(parts[1]) // layout.items_per_block
        if block >= layout.depths[stage]:  # after the blocks (LeViT's
            return _end_of_stage(layout, stage)  # subsampling)
        return sum(layout.depths[:stage]) + block + 1
    ids = layout.post_norm_ids[stage]
    if child == 'post_norms' and len(parts) > 1 and parts[1].isdigit():
        k = int(parts[1])
        # without the ids, after the stage's last block
        after = ids[k] if ids and k < len(ids) else layout.depths[stage] - 1
        return sum(layout.depths[:stage]) + after + 1
    if child in layout.before[stage] or child in STAGE_START or (
            len(parts) == 1 and is_token_or_position(child)):
        # before the blocks, or a token / position table the stage holds
        # itself (CvT's stage-2 cls_token joins the sequence there)
        return 0 if stage == 0 else _first_block(layout, stage)
    return _end_of_stage(layout, stage)


def _parallel(layout: StageLayout, rel_name: str) -> Optional[int]:
    where, rest = None, []
    for path, kind in layout.parallel.items():
        if rel_name.startswith(path + '.'):
            where, rest = kind, rel_name[len(path) + 1:].split('.')
            break
    if where is None or not rest or not rest[0].isdigit():
        return None
    stage = int(rest[0])
    if where == 'end':
        return _end_of_stage(layout, stage)
    if where == 'start' and stage == 0:
        return 0
    return _first_block(layout, stage)


def stage_layer_id(rel_name: str, layout: StageLayout,
                   top_level=(), ancestors=None) -> int:
    """Layer id in a hierarchical backbone (see the module docstring).

    >>> swin = StageLayout('levels', [2, 2, 6, 2], ['blocks'] * 4,
    ...                    [frozenset()] * 4, [None] * 4)
    >>> stage_layer_id('levels.1.blocks.0.dcn.offset.weight', swin)
    3
    >>> stage_layer_id('levels.1.downsample.conv.weight', swin)
    5
    >>> mit = StageLayout('layers', [2, 2, 2, 2], ['1'] * 4,
    ...                   [frozenset({'0'})] * 4, [None] * 4)
    >>> [stage_layer_id(n, mit) for n in ('layers.0.0.proj.weight',
    ...  'layers.2.0.proj.weight', 'layers.2.1.1.ffn.0.weight',
    ...  'layers.2.2.weight', 'layers.3.2.weight')]
    [0, 5, 6, 7, 9]
    >>> csp = StageLayout('stages', [2, 3], [''] * 2, [frozenset()] * 2,
    ...                   [None] * 2)  # nn.Sequential stages of blocks
    >>> [stage_layer_id(n, csp) for n in ('stages.0.1.conv.weight',
    ...  'stages.1.0.conv.weight', 'stages.1.2.bn.weight')]
    [2, 3, 5]
    """
    container = layout.container + '.'
    if rel_name.startswith(container):
        parts = rel_name[len(container):].split('.')
        index = int(parts[0])
        if layout.stage_items is None:
            return _in_stage(layout, index, parts[1:])
        if index in layout.stage_items:
            return _in_stage(layout, layout.stage_items.index(index),
                             parts[1:])
        # an item between stages (a downsampling layer) runs before the
        # next stage: that stage's first block, N + 1 after the last
        following = sum(1 for i in layout.stage_items if i < index)
        if following >= len(layout.depths):
            return sum(layout.depths) + 1
        return 0 if following == 0 else _first_block(layout, following)
    found = _parallel(layout, rel_name)
    if found is not None:
        return found
    before = registered_before(rel_name, layout.container, ancestors or {})
    if before is not None and '.' in rel_name:
        return 0 if before else sum(layout.depths) + 1
    return outside_placement(rel_name, layout.container, top_level,
                             sum(layout.depths))


def claims(ctx: RuleContext) -> bool:
    return ctx.structure.stages is not None


def build(ctx: RuleContext) -> Built:
    layout, top = ctx.structure.stages, ctx.structure.top_level
    check_depths(ctx.settings.depths, layout.depths, ctx.desc)
    n = check_num_layers(ctx.settings.num_layers, sum(layout.depths),
                         f'{ctx.desc}.{layout.container} (depths '
                         f'{layout.depths})')
    kind = 'parallel ' if layout.parallel else ''
    ancestors = ancestors_of(composite_backbones(ctx.backbone)[0],
                             layout.container)
    rule = ctx.make_rule(
        n, f'{kind}stage rule ({join_name(ctx.prefix, layout.container)}, '
        f'depths {layout.depths})',
        lambda rel: stage_layer_id(rel, layout, top, ancestors))
    return rule, frozenset({'depths'})
