"""Swin and InternImage: stages (``stages``/``levels``) of ``blocks``.

Blocks are numbered across stages, ``layer_id = sum(depths[:s]) + b + 1``; a
stage's ``downsample`` and ``norm`` take the id of the next stage's first
block, ``sum(depths[:s + 1]) + 1`` (InternImage's convention), which for the
last stage is ``N + 1``; ``N = sum(depths)``.  Patch embedding, absolute
position embedding and ``level_embeds`` are layer 0.
"""
import re
from typing import Sequence

from ..name_patterns import is_embedding_name
from ..names import join_name
from .base import Built, RuleContext, check_depths, check_num_layers

_STAGE_BLOCK = re.compile(r'^(?P<stage>\d+)\.blocks\.(?P<block>\d+)\.')
_STAGE_OTHER = re.compile(r'^(?P<stage>\d+)\.(downsample|norm)\b')


def stage_layer_id(rel_name: str, container: str,
                   depths: Sequence[int]) -> int:
    """Layer id in a Swin/InternImage-style backbone.

    >>> stage_layer_id('levels.1.blocks.0.dcn.offset.weight', 'levels', [2, 2, 6, 2])
    3
    >>> stage_layer_id('levels.1.downsample.conv.weight', 'levels', [2, 2, 6, 2])
    5
    """
    num_layers = sum(depths)
    prefix = container + '.'
    if rel_name.startswith(prefix):
        rest = rel_name[len(prefix):]
        match = _STAGE_BLOCK.match(rest)
        if match:
            stage, block = int(match['stage']), int(match['block'])
            return sum(depths[:stage]) + block + 1
        match = _STAGE_OTHER.match(rest)
        if match:
            return min(sum(depths[:int(match['stage']) + 1]) + 1,
                       num_layers + 1)
    if is_embedding_name(rel_name):
        return 0
    return num_layers + 1


def claims(ctx: RuleContext) -> bool:
    return ctx.structure.stages is not None


def build(ctx: RuleContext) -> Built:
    container, depths = ctx.structure.stages
    check_depths(ctx.settings.depths, depths, ctx.desc)
    n = check_num_layers(ctx.settings.num_layers, sum(depths),
                         f'{ctx.desc}.{container} (depths {depths})')
    rule = ctx.make_rule(
        n, f'stage rule ({join_name(ctx.prefix, container)}, depths '
        f'{depths})', lambda rel: stage_layer_id(rel, container, depths))
    return rule, frozenset({'depths'})
