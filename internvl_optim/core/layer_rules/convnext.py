"""ConvNeXt (mmpretrain names ``downsample_layers.{s}``, ``stages.{s}.{b}``)
exactly as MMSeg's ``LearningRateDecayOptimizerConstructor``.

``layer_wise``: stage 0 at 1, stage 1 at 2, block b of stage 2 at
``3 + b // 3``, stage 3 at ``N = 4 + (depths[2] - 1) // 3``; downsample
layers 0, 2, 3, N.  ``stage_wise``: stage s at ``s + 1``, every downsample
layer at 0, heads at ``N + 1`` with N from the config (MMSeg's say 12).

Two rows of the table: with ``decay_type`` given (MMSeg's configs give it)
these rules win over everything, also over a model's own
``get_layer_depth``; without it, ``layer_wise`` applies after the other
rules.
"""
from __future__ import annotations
from typing import TYPE_CHECKING, Sequence

from ..names import is_embedding_name
from .common import check_depths, check_num_layers

if TYPE_CHECKING:  # the types live with the table
    from . import Built, RuleContext


def convnext_num_layers(depths: Sequence[int]) -> int:
    """The N of MMSeg's ``layer_wise`` rule: stage 3 must come after the
    last stage-2 id ``3 + (depths[2] - 1) // 3``.

    >>> convnext_num_layers([3, 3, 27, 3])
    12
    """
    return 4 + (depths[2] - 1) // 3


def _index(rel_name: str, position: int) -> int:
    return int(rel_name.split('.')[position])


def convnext_layer_id(rel_name: str, num_layers: int) -> int:
    """MMSeg's ``layer_wise`` ConvNeXt rule on a backbone-relative name.

    >>> [convnext_layer_id(n, 12) for n in ('downsample_layers.0.0.weight',
    ...  'stages.1.0.gamma', 'stages.2.7.pointwise_conv1.weight',
    ...  'stages.3.2.norm.weight', 'norm3.weight')]
    [0, 2, 5, 12, 13]
    """
    if is_embedding_name(rel_name):
        return 0
    if rel_name.startswith('downsample_layers.'):
        return {0: 0, 1: 2, 2: 3, 3: num_layers}[_index(rel_name, 1)]
    if rel_name.startswith('stages.'):
        stage = _index(rel_name, 1)
        if stage == 2:
            return 3 + _index(rel_name, 2) // 3
        return {0: 1, 1: 2, 3: num_layers}[stage]
    return num_layers + 1


def convnext_stage_id(rel_name: str, num_layers: int) -> int:
    """MMSeg's ``stage_wise`` ConvNeXt rule on a backbone-relative name.

    >>> [convnext_stage_id(n, 12) for n in ('downsample_layers.2.1.weight',
    ...  'stages.2.7.gamma', 'norm3.weight')]
    [0, 3, 13]
    """
    if is_embedding_name(rel_name) or \
            rel_name.startswith('downsample_layers.'):
        return 0
    if rel_name.startswith('stages.'):
        return _index(rel_name, 1) + 1
    return num_layers + 1


def claims_explicit(ctx: RuleContext) -> bool:
    return (ctx.structure.convnext is not None
            and ctx.settings.decay_type is not None)


def claims(ctx: RuleContext) -> bool:
    return ctx.structure.convnext is not None


def build(ctx: RuleContext) -> Built:
    depths = ctx.structure.convnext
    check_depths(ctx.settings.depths, depths, ctx.desc)
    decay_type = ctx.settings.decay_type or 'layer_wise'
    used = frozenset({'depths', 'decay_type'})
    if decay_type == 'stage_wise':
        n = 4 if ctx.settings.num_layers is None else ctx.settings.num_layers
        if n < 4:
            raise ValueError(
                f"paramwise_cfg.num_layers={n} with decay_type='stage_wise' "
                f'must be >= 4: {ctx.desc} has 4 stages (ids 1..4)')
        return ctx.make_rule(
            n, f'MMSeg ConvNeXt stage_wise rule (depths {depths})',
            lambda rel: convnext_stage_id(rel, n)), used
    n = check_num_layers(ctx.settings.num_layers, convnext_num_layers(depths),
                         f"{ctx.desc} with depths {depths} under MMSeg's "
                         'layer_wise ConvNeXt rule')
    return ctx.make_rule(
        n, f'MMSeg ConvNeXt layer_wise rule (depths {depths})',
        lambda rel: convnext_layer_id(rel, n)), used
