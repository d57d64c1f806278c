"""Fitting pretrained embeddings to another input size or patch size, as
InternVL does (bicubic, ``align_corners=False``, computed in float32)."""
import math
from typing import Sequence

import torch
import torch.nn.functional as F


def resize_pos_embed(pos_embed: torch.Tensor, new_grid: Sequence[int],
                     mode: str = 'bicubic') -> torch.Tensor:
    """Resize a ``(1, 1 + H*W, C)`` position embedding (class position
    first, square source grid) to ``new_grid``; the class position is kept."""
    cls_pos, grid = pos_embed[:, :1], pos_embed[:, 1:]
    side = math.isqrt(grid.shape[1])
    if side * side != grid.shape[1]:
        raise ValueError(f'pos_embed with {grid.shape[1]} patch positions is '
                         'not a square grid')
    if (side, side) == tuple(new_grid):
        return pos_embed
    grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=tuple(new_grid), mode=mode,
                         align_corners=False)
    grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)
    return torch.cat([cls_pos, grid], dim=1)


def resize_patch_kernel(weight: torch.Tensor, patch_size: int
                        ) -> torch.Tensor:
    """A ``(C, in, p, p)`` patch-embedding kernel resized to ``patch_size``."""
    if tuple(weight.shape[-2:]) == (patch_size, patch_size):
        return weight
    return F.interpolate(weight.float(), size=(patch_size, patch_size),
                         mode='bicubic', align_corners=False).to(weight.dtype)
