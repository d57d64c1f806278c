"""Layer rules for hierarchical backbones (several stages of blocks).

* Swin (MMSeg ``SwinTransformer``: ``stages.{s}.blocks.{b}``,
  ``stages.{s}.downsample``) and InternImage (``levels.{s}.blocks.{b}``,
  ``levels.{s}.downsample``, ``levels.{s}.norm``): blocks are numbered across
  stages, ``layer_id = sum(depths[:s]) + b + 1``; a stage's downsample and
  norm take the id of the next stage's first block,
  ``sum(depths[:s + 1]) + 1`` (InternImage's convention), which for the last
  stage is ``N + 1``; ``N = sum(depths)``.  Patch embedding, absolute position
  embedding and ``level_embeds`` are layer 0.
* ConvNeXt (mmpretrain naming ``downsample_layers.{s}``, ``stages.{s}.{b}``),
  exactly as MMSeg's ``LearningRateDecayOptimizerConstructor``:
  ``layer_wise`` puts stage 0 at 1, stage 1 at 2, block b of stage 2 at
  ``3 + b // 3`` and stage 3 at ``N``; ``stage_wise`` puts stage s at
  ``s + 1`` and every downsample layer at 0.

All functions take names relative to the backbone.
"""
import re
from typing import List, Optional, Sequence, Tuple

from torch import nn

from .vit_layers import is_embedding_name

_STAGE_BLOCK = re.compile(r'^(?P<stage>\d+)\.blocks\.(?P<block>\d+)\.')
_STAGE_OTHER = re.compile(r'^(?P<stage>\d+)\.(downsample|norm)\b')


def stage_depths(backbone: nn.Module) -> Optional[Tuple[str, List[int]]]:
    """``(container, depths)`` for Swin/InternImage-style backbones: a
    ``stages`` or ``levels`` ModuleList whose items have a ``blocks`` list."""
    for path in ('levels', 'stages', 'layers'):
        container = getattr(backbone, path, None)
        if not isinstance(container, nn.ModuleList) or not len(container):
            continue
        blocks = [getattr(stage, 'blocks', None) for stage in container]
        if all(isinstance(b, (nn.ModuleList, nn.Sequential)) for b in blocks):
            return path, [len(b) for b in blocks]
    return None


def stage_layer_id(rel_name: str, container: str,
                   depths: Sequence[int]) -> int:
    """Layer id in a Swin/InternImage-style backbone (see module docstring).

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
    if is_embedding_name(rel_name) or rel_name.startswith('level_embeds'):
        return 0
    return num_layers + 1


def is_convnext(backbone: nn.Module) -> Optional[List[int]]:
    """Stage depths of a ConvNeXt-style backbone (``downsample_layers`` and
    ``stages`` of plain blocks), else ``None``."""
    downsample = getattr(backbone, 'downsample_layers', None)
    stages = getattr(backbone, 'stages', None)
    if isinstance(downsample, nn.ModuleList) and isinstance(
            stages, nn.ModuleList) and len(stages) == 4:
        return [len(s) if isinstance(s, (nn.Sequential, nn.ModuleList)) else 1
                for s in stages]
    return None


def convnext_num_layers(depths: Sequence[int]) -> int:
    """The ``num_layers`` MMSeg's layer-wise rule needs: stage 3 at N must
    come after the last stage-2 id ``3 + (depths[2] - 1) // 3``."""
    return 4 + (depths[2] - 1) // 3


def _index(rel_name: str, position: int) -> int:
    return int(rel_name.split('.')[position])


def convnext_layer_id(rel_name: str, num_layers: int) -> int:
    """MMSeg's ``layer_wise`` ConvNeXt rule on a backbone-relative name."""
    if rel_name in ('cls_token', 'mask_token', 'pos_embed'):
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
    """MMSeg's ``stage_wise`` ConvNeXt rule on a backbone-relative name."""
    if rel_name in ('cls_token', 'mask_token', 'pos_embed') or \
            rel_name.startswith('downsample_layers.'):
        return 0
    if rel_name.startswith('stages.'):
        return _index(rel_name, 1) + 1
    return num_layers + 1
