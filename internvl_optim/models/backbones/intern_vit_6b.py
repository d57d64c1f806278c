"""InternViT-6B for MMSegmentation 1.x, in plain PyTorch.

Parameter names follow InternVL's segmentation backbone (``patch_embed``,
``pos_embed``, ``cls_token``, ``blocks.{i}.{norm1,attn,ls1,norm2,mlp,ls2}``,
FPN adapters ``up1..up4``), so InternVL checkpoints load unchanged.
Attention goes through ``F.scaled_dot_product_attention``: no flash-attn
dependency (``use_flash_attn`` is accepted for config compatibility; PyTorch
picks the fastest kernel itself).
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

from ...engine.checkpoint_files import load_state_dict_file
from ...core.layer_rules.vit import vit_layer_id


class RMSNorm(nn.Module):
    """Root-mean-square norm (no bias), computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


NORM_LAYERS = {'rms': RMSNorm, 'RMSNorm': RMSNorm,
               'ln': nn.LayerNorm, 'LayerNorm': nn.LayerNorm}


class DropPath(nn.Module):
    """Stochastic depth per sample."""

    def __init__(self, drop_prob: float = 0.):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1)).bernoulli_(
            keep)
        return x * mask / keep


class PatchEmbed(nn.Module):

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)

    def forward(self, x):
        x = self.proj(x)
        h, w = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), (h, w)


class Attention(nn.Module):

    def __init__(self, dim, num_heads, qkv_bias=False, attn_drop=0.,
                 proj_drop=0., qk_normalization=True, norm_layer=RMSNorm):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dim={dim} must be divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.qk_normalization = qk_normalization
        if qk_normalization:
            self.q_norm = norm_layer(dim)
            self.k_norm = norm_layer(dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, c).unbind(2)
        if self.qk_normalization:  # over all heads at once, as InternViT
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.reshape(b, n, self.num_heads, -1).transpose(1, 2)
                   for t in (q, k, v))
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class LayerScale(nn.Module):

    def __init__(self, dim, init_values=0.1):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):

    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):

    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=False,
                 drop_path=0., init_values=0.1, qk_normalization=True,
                 norm_layer=RMSNorm):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias,
                              qk_normalization=qk_normalization,
                              norm_layer=norm_layer)
        self.ls1 = LayerScale(dim, init_values) if init_values else \
            nn.Identity()
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values) if init_values else \
            nn.Identity()
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def resize_pos_embed(pos_embed: torch.Tensor, new_grid: Sequence[int],
                     mode: str = 'bicubic') -> torch.Tensor:
    """Resize a ``(1, 1 + H*W, C)`` position embedding (class position
    first, square source grid) to ``new_grid``."""
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


class InternViT6B(BaseModule):
    """InternViT-6B backbone (defaults: the 6B model, 48 blocks of width 3200).

    Args:
        in_chans (int): input channels. Default: 3.
        patch_size (int): patch size. Default: 14.
        img_size (int): training crop; sets the position-embedding grid.
            Default: 224.
        pretrain_size (int): image size of the pretrained checkpoint; its
            position embedding is resized to ``img_size`` on load.
            Default: 224.
        embed_dim, depth, num_heads, mlp_ratio: width, blocks, heads, MLP
            ratio. Defaults: 3200, 48, 25, 4.
        qkv_bias (bool): bias in the qkv projection. Default: False.
        qk_normalization (bool): RMSNorm on queries and keys. Default: True.
        init_values (float): layer-scale init; 0 disables layer scale.
            Default: 0.1.
        drop_path_rate (float): stochastic depth, linear over blocks.
            Default: 0.
        norm_type (str): ``'rms'`` or ``'ln'``. Default: ``'rms'``.
        out_indices (sequence[int]): blocks whose outputs are returned as
            ``(B, C, H/14, W/14)`` maps. Default: (11, 23, 35, 47).
        with_fpn (bool): map the four outputs to strides 4/8/16/32 with
            ``up1..up4`` (needs four ``out_indices``). Default: False.
        fpn_norm_cfg (dict): norm inside ``up1``. Default: SyncBN (use BN
            on CPU, where SyncBN cannot synchronize).
        freeze_vit (bool): freeze embeddings and blocks (not the FPN), and
            keep them in eval mode. Default: False.
        with_cp (bool): activation checkpointing per block while training.
            Default: False.
        pretrained (str, optional): checkpoint to load in ``init_weights``.
        use_flash_attn, layerscale_no_force_fp32, output_dtype: accepted for
            InternVL config compatibility; no effect.
    """

    def __init__(self, in_chans=3, patch_size=14, img_size=224,
                 pretrain_size=224, embed_dim=3200, depth=48, num_heads=25,
                 mlp_ratio=4., qkv_bias=False, qk_normalization=True,
                 init_values=0.1, drop_path_rate=0., norm_type='rms',
                 out_indices=(11, 23, 35, 47), with_fpn=False,
                 fpn_norm_cfg=dict(type='SyncBN'), freeze_vit=False,
                 with_cp=False, pretrained: Optional[str] = None, use_flash_attn=None,
                 layerscale_no_force_fp32=None, output_dtype=None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if norm_type not in NORM_LAYERS:
            raise ValueError(f'norm_type={norm_type!r}; valid: '
                             f'{sorted(NORM_LAYERS)}')
        out_indices = tuple(out_indices)
        bad = [i for i in out_indices if not 0 <= i < depth]
        if bad:
            raise ValueError(f'out_indices {bad} out of range for depth='
                             f'{depth} (valid 0..{depth - 1})')
        if with_fpn and len(out_indices) != 4:
            raise ValueError('with_fpn=True needs exactly 4 out_indices, got '
                             f'{list(out_indices)}')
        norm_layer = NORM_LAYERS[norm_type]
        self.patch_size = patch_size
        self.img_size = img_size
        self.pretrain_size = pretrain_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.out_indices = out_indices
        self.with_fpn = with_fpn
        self.freeze_vit = freeze_vit
        self.with_cp = with_cp
        self.pretrained = pretrained

        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1,
                                                  embed_dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # plain Python: torch.linspace(...).item() fails on the meta device
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, dpr[i],
                  init_values, qk_normalization, norm_layer)
            for i in range(depth))
        if with_fpn:
            self.up1 = nn.Sequential(
                nn.ConvTranspose2d(embed_dim, embed_dim, 2, 2),
                build_norm_layer(fpn_norm_cfg, embed_dim)[1], nn.GELU(),
                nn.ConvTranspose2d(embed_dim, embed_dim, 2, 2))
            self.up2 = nn.ConvTranspose2d(embed_dim, embed_dim, 2, 2)
            self.up3 = nn.Identity()
            self.up4 = nn.MaxPool2d(2, 2)
        nn.init.trunc_normal_(self.pos_embed, std=.02)
        nn.init.trunc_normal_(self.cls_token, std=.02)
        self.apply(self._init_linear)
        if freeze_vit:
            for module in self.vit_modules():
                module.requires_grad_(False)
            self.pos_embed.requires_grad_(False)
            self.cls_token.requires_grad_(False)

    @staticmethod
    def _init_linear(module):
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def vit_modules(self):
        return [self.patch_embed, self.blocks]

    # --- what the optimizer constructor asks -------------------------------
    def no_weight_decay(self):
        return {'pos_embed', 'cls_token'}

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """mmpretrain convention: ``(layer_id, depth + 2)``; embeddings 0,
        block i -> i + 1, the rest (FPN) and non-backbone names depth + 1."""
        num_layers = self.depth + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        top_level = tuple(name for name, _ in self.named_children())
        return vit_layer_id(param_name[len(prefix):], 'blocks', self.depth,
                            top_level=top_level), num_layers

    # --- training mode / checkpoints ---------------------------------------
    def train(self, mode=True):
        super().train(mode)
        if self.freeze_vit:
            for module in self.vit_modules():
                module.eval()
        return self

    def init_weights(self):
        if self.pretrained is None:
            return super().init_weights()
        self.load_pretrained(self.pretrained)

    def load_pretrained(self, path: str):
        """Load an InternViT checkpoint; resize ``pos_embed`` from the
        pretraining grid to ``img_size``."""
        state = {(k[len('backbone.'):] if k.startswith('backbone.') else k): v
                 for k, v in load_state_dict_file(path).items()}
        own = self.state_dict()
        matched = [k for k in state if k in own]
        if not matched:
            raise ValueError(
                f'Checkpoint {path} has no key of InternViT6B: its keys look '
                f'like {list(state)[:3]}, expected e.g. {list(own)[:3]}')
        if 'pos_embed' in state:
            grid = self.img_size // self.patch_size
            state['pos_embed'] = resize_pos_embed(state['pos_embed'],
                                                  (grid, grid))
        mismatched = [k for k in matched if state[k].shape != own[k].shape]
        if mismatched:
            raise ValueError(
                f'Checkpoint {path}: shapes differ for '
                + ', '.join(f'{k} {tuple(state[k].shape)} vs '
                            f'{tuple(own[k].shape)}' for k in mismatched[:5])
                + '; check embed_dim / depth / patch_size')
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith('up')]
        if missing or result.unexpected_keys:
            print_log(f'InternViT6B load {path}: missing {missing}, '
                      f'unexpected {result.unexpected_keys}', level=30)

    # --- forward ------------------------------------------------------------
    def _pos_embed(self, h, w):
        grid = self.img_size // self.patch_size
        if (h, w) == (grid, grid):
            return self.pos_embed
        return resize_pos_embed(self.pos_embed, (h, w))

    def forward(self, x):
        x, (h, w) = self.patch_embed(x)
        b, _, c = x.shape
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        x = x + self._pos_embed(h, w)
        outs = []
        for i, block in enumerate(self.blocks):
            if self.with_cp and self.training and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if i in self.out_indices:
                outs.append(x[:, 1:].transpose(1, 2).reshape(b, c, h, w))
        if self.with_fpn:
            outs = [self.up1(outs[0]), self.up2(outs[1]), self.up3(outs[2]),
                    self.up4(outs[3])]
        return tuple(outs)
