"""Stand-ins for hierarchical backbones that cannot be built here.

``ConvNeXt`` reproduces mmpretrain 1.x ConvNeXt's module tree and parameter
names (``downsample_layers.{s}``, ``stages.{s}.{b}.{depthwise_conv, norm,
pointwise_conv1, pointwise_conv2, gamma}``, ``norm{i}``): the real one
cannot be imported on this machine because ``mmpretrain.models`` imports
torchvision, whose only build for torch 2.13.0 fails on the CPU torch.
``InternImage`` reproduces InternImage's naming (``patch_embed``,
``levels.{s}.blocks.{b}.dcn.*``, ``levels.{s}.downsample``, ``levels.{s}.norm``)
and uses MMCV's real ``ModulatedDeformConv2dPack`` where the recipe's DCNv3
op (a CUDA extension) would be.
"""
import torch
from mmcv.ops import ModulatedDeformConv2dPack
from torch import nn

CONVNEXT_ARCHS = {
    'tiny': ([3, 3, 9, 3], [96, 192, 384, 768]),
    'small': ([3, 3, 27, 3], [96, 192, 384, 768]),
    'base': ([3, 3, 27, 3], [128, 256, 512, 1024]),
    'large': ([3, 3, 27, 3], [192, 384, 768, 1536]),
    'xlarge': ([3, 3, 27, 3], [256, 512, 1024, 2048]),
}


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an NCHW map (as mmpretrain's)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):

    def __init__(self, channels, layer_scale_init_value=1e-6):
        super().__init__()
        self.depthwise_conv = nn.Conv2d(channels, channels, 7, padding=3,
                                        groups=channels)
        self.norm = LayerNorm2d(channels, eps=1e-6)
        self.pointwise_conv1 = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU()
        self.pointwise_conv2 = nn.Linear(4 * channels, channels)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(channels))


class ConvNeXt(nn.Module):
    """mmpretrain ConvNeXt's parameter tree (no forward needed here)."""

    def __init__(self, arch='tiny', in_channels=3, out_indices=(0, 1, 2, 3),
                 layer_scale_init_value=1e-6, **unused):
        super().__init__()
        depths, channels = (CONVNEXT_ARCHS[arch]
                            if isinstance(arch, str) else arch)
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_channels, channels[0], 4, 4),
                          LayerNorm2d(channels[0], eps=1e-6))
        ])
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            if i:
                self.downsample_layers.append(
                    nn.Sequential(LayerNorm2d(channels[i - 1], eps=1e-6),
                                  nn.Conv2d(channels[i - 1], channels[i], 2,
                                            2)))
            self.stages.append(
                nn.Sequential(*[
                    ConvNeXtBlock(channels[i], layer_scale_init_value)
                    for _ in range(depth)
                ]))
            if i in out_indices:
                self.add_module(f'norm{i}', LayerNorm2d(channels[i]))


class DCNBlock(nn.Module):

    def __init__(self, channels):
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.dcn = nn.Module()
        self.dcn.input_proj = nn.Linear(channels, channels)
        self.dcn.offset = nn.Linear(channels, 18)
        self.dcn.mask = nn.Linear(channels, 9)
        self.dcn.center_feature_scale_proj_weight = nn.Parameter(
            torch.zeros(2, channels))
        self.dcn.output_proj = nn.Linear(channels, channels)
        self.dcn_pack = ModulatedDeformConv2dPack(channels, channels, 3,
                                                  padding=1)
        self.norm2 = nn.BatchNorm2d(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels),
                                 nn.Linear(2 * channels, channels))

    def forward(self, x):
        return x + self.dcn_pack(self.norm2(x))


class InternImage(nn.Module):
    """InternImage's naming with depths per level."""

    def __init__(self, depths=(1, 2, 1, 1), channels=4):
        super().__init__()
        self.depths = list(depths)
        self.patch_embed = nn.Module()
        self.patch_embed.conv1 = nn.Conv2d(3, channels, 3, 2, 1)
        self.patch_embed.norm1 = nn.BatchNorm2d(channels)
        self.levels = nn.ModuleList()
        for i, depth in enumerate(depths):
            level = nn.Module()
            level.blocks = nn.ModuleList(
                DCNBlock(channels) for _ in range(depth))
            level.norm = nn.LayerNorm(channels)
            if i < len(depths) - 1:
                level.downsample = nn.Module()
                level.downsample.conv = nn.Conv2d(channels, channels, 3, 1, 1)
                level.downsample.norm = nn.BatchNorm2d(channels)
            self.levels.append(level)

    def forward(self, x):
        x = self.patch_embed.norm1(self.patch_embed.conv1(x))
        for level in self.levels:
            for block in level.blocks:
                x = block(x)
            if hasattr(level, 'downsample'):
                x = level.downsample.norm(level.downsample.conv(x))
        return x


class CBNet(nn.Module):
    """CBNet composite backbone: ``cb_modules.{k}`` plus linking layers."""

    def __init__(self, depths=(1, 2, 1, 1)):
        super().__init__()
        self.cb_modules = nn.ModuleList(InternImage(depths) for _ in range(2))
        self.cb_linears = nn.ModuleList([nn.Conv2d(4, 4, 1)])
