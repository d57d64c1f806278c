"""The building blocks of InternViT, with InternVL's parameter names.

Facts from InternVL's ``segmentation/mmseg_custom/models/backbones/
intern_vit_6b.py`` (OpenGVLab/InternVL, MIT) and the HuggingFace
``modeling_intern_vit.py`` they rely on:

* block norms are RMSNorm (eps 1e-6, statistics in float32, the weight
  multiplies the result cast back to the input dtype); InternViT-300M uses
  ``nn.LayerNorm`` (``norm_type='layer_norm'``); the query/key norms are
  always RMSNorm, over all heads at once (width ``C``, not ``C / heads``);
* attention: ``qkv`` is one Linear whose output splits as ``(3, heads,
  head_dim)``, scale ``head_dim ** -0.5``, then ``proj``;
* ``ls1``/``ls2`` are LayerScale modules with a ``gamma``; with
  ``force_fp32`` the product is taken in float32;
* the FPN adapters are ``Sequential``s: ``up1 = (ConvTranspose2d,
  LayerNorm, GELU, ConvTranspose2d, LayerNorm | Identity)``, ``up2 =
  (ConvTranspose2d, LayerNorm | Identity)``, ``up3 = (Identity, LayerNorm |
  Identity)``, ``up4 = (MaxPool2d, LayerNorm | Identity)``; the LayerNorm is
  channels-first, eps 1e-6, computed in float32; the last one of each exists
  only with ``with_final_norm``.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm without bias, statistics in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map, in float32."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        mean = x32.mean(1, keepdim=True)
        var = (x32 - mean).pow(2).mean(1, keepdim=True)
        x32 = (x32 - mean) / torch.sqrt(var + self.eps)
        x32 = (self.weight.float()[:, None, None] * x32 +
               self.bias.float()[:, None, None])
        return x32.to(x.dtype)


def block_norm(norm_type: str, dim: int, eps: float) -> nn.Module:
    """The norm of a block: ``'rms_norm'`` (6B) or ``'layer_norm'`` (300M)."""
    if norm_type == 'rms_norm':
        return RMSNorm(dim, eps)
    return nn.LayerNorm(dim, eps=eps)


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
    """Non-overlapping patches through one strided convolution ``proj``."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)

    def forward(self, x):
        x = self.proj(x)
        h, w = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), (h, w)


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``
    (PyTorch picks the flash or memory-efficient kernel where it can)."""

    def __init__(self, dim, num_heads, qkv_bias=False, attn_drop=0.,
                 qk_normalization=True, eps=1e-6):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dim={dim} must be divisible by '
                             f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)  # before q_norm, as InternVL
        self.qk_normalization = qk_normalization
        if qk_normalization:
            self.q_norm = RMSNorm(dim, eps)
            self.k_norm = RMSNorm(dim, eps)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, c).unbind(2)
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.reshape(b, n, self.num_heads, -1).transpose(1, 2)
                   for t in (q, k, v))
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class LayerScale(nn.Module):
    """``x * gamma``; in float32 when ``force_fp32``."""

    def __init__(self, dim, init_values=0.1, force_fp32=False):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))
        self.force_fp32 = force_fp32

    def forward(self, x):
        if self.force_fp32:
            return (x.float() * self.gamma.float()).to(x.dtype)
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
    """Pre-norm transformer block with layer scale and drop path."""

    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=False,
                 drop_path=0., init_values=0.1, qk_normalization=True,
                 norm_type='rms_norm', eps=1e-6, layerscale_force_fp32=False):
        super().__init__()
        self.norm1 = block_norm(norm_type, dim, eps)
        self.attn = Attention(dim, num_heads, qkv_bias,
                              qk_normalization=qk_normalization, eps=eps)
        self.ls1 = LayerScale(dim, init_values, layerscale_force_fp32) \
            if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = block_norm(norm_type, dim, eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values, layerscale_force_fp32) \
            if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


def fpn_adapters(dim: int, with_final_norm: bool) -> nn.ModuleDict:
    """InternVL's ``up1..up4``: stride-14 maps to strides 3.5/7/14/28
    (4x, 2x, 1x, 0.5x), each ending in an optional channels-first norm."""

    def final():
        return ChannelsFirstLayerNorm(dim) if with_final_norm else \
            nn.Identity()

    adapters = nn.ModuleDict(dict(
        up1=nn.Sequential(nn.ConvTranspose2d(dim, dim, 2, 2),
                          ChannelsFirstLayerNorm(dim), nn.GELU(),
                          nn.ConvTranspose2d(dim, dim, 2, 2), final()),
        up2=nn.Sequential(nn.ConvTranspose2d(dim, dim, 2, 2), final()),
        up3=nn.Sequential(nn.Identity(), final()),
        up4=nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2), final())))
    for module in adapters.modules():
        if isinstance(module, nn.ConvTranspose2d):  # InternVL's fan-out init
            fan_out = module.kernel_size[0] * module.kernel_size[1] * \
                module.out_channels // module.groups
            nn.init.normal_(module.weight, 0, math.sqrt(2.0 / fan_out))
            nn.init.zeros_(module.bias)
    return adapters
