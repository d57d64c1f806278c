"""Tiny module trees with the parameter names of real backbones.

They are shaped like the real thing (same attribute names, same parameter
kinds) but narrow, so tests can assert the lr and weight decay of every
parameter.
"""
import torch
from torch import nn


class InternRMSNorm(nn.Module):
    """InternViT's RMSNorm: not an nn.LayerNorm subclass; recognized by its
    class name."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * \
            self.weight


class ScaleNorm2d(nn.Module):
    """A norm whose parameter is 2-D and not called weight/bias: only the
    module-type rule can give it zero weight decay."""

    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim, 1))


class LayerScale(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, ), 0.1))


class Attention(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_norm = InternRMSNorm(dim)
        self.k_norm = InternRMSNorm(dim)
        self.proj = nn.Linear(dim, dim)


class Mlp(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * 2)
        self.fc2 = nn.Linear(dim * 2, dim)


class InternViTBlock(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.norm1 = InternRMSNorm(dim)
        self.attn = Attention(dim)
        self.ls1 = LayerScale(dim)
        self.norm2 = InternRMSNorm(dim)
        self.mlp = Mlp(dim)
        self.ls2 = LayerScale(dim)


class ToyInternViT(nn.Module):
    """InternViT-6B segmentation naming: patch_embed, pos_embed, cls_token,
    blocks.{i}, FPN adapters up1..up4."""

    def __init__(self, depth=3, dim=8, num_patches=4, declare_skip=True):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, 2, 2)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(InternViTBlock(dim) for _ in range(depth))
        self.up1 = nn.Sequential(nn.ConvTranspose2d(dim, dim, 2, 2),
                                 nn.BatchNorm2d(dim))
        self.up2 = nn.ConvTranspose2d(dim, dim, 2, 2)
        self.up3 = nn.Identity()
        self.up4 = nn.MaxPool2d(2)
        self.declare_skip = declare_skip

    def no_weight_decay(self):
        return {'pos_embed', 'cls_token'} if self.declare_skip else set()


class DecodeHead(nn.Module):
    """Has ``layers.1.*`` names that a substring rule takes for block 1."""

    def __init__(self, dim=8, num_classes=5):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv2d(dim, dim, 1) for _ in range(2))
        self.bn = nn.BatchNorm2d(dim)
        self.conv_seg = nn.Conv2d(dim, num_classes, 1)


class ToySegmentor(nn.Module):

    def __init__(self, backbone, backbone_name='backbone'):
        super().__init__()
        setattr(self, backbone_name, backbone)
        self.decode_head = DecodeHead()


class HFEmbeddings(nn.Module):

    def __init__(self, dim, num_patches):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_embedding = nn.Conv2d(3, dim, 2, 2)
        self.position_embedding = nn.Parameter(
            torch.zeros(1, num_patches + 1, dim))


class HFEncoderLayer(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.attn = Attention(dim)
        self.mlp = Mlp(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ls1 = nn.Parameter(torch.ones(dim))
        self.ls2 = nn.Parameter(torch.ones(dim))


class HFInternVisionModel(nn.Module):
    """InternViT HuggingFace naming (InternVL 1.5+ vision towers)."""

    def __init__(self, depth=2, dim=8, num_patches=4):
        super().__init__()
        self.embeddings = HFEmbeddings(dim, num_patches)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(
            HFEncoderLayer(dim) for _ in range(depth))


class ToyBEiT(nn.Module):
    """MMSeg's own unit-test model (``tests/test_engine/
    test_layer_decay_optimizer_constructor.py`` at MMSeg commit c746a86):
    ``cls_token`` and ``patch_embed`` are bare parameters beside the three
    blocks at ``layers``."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.ones(1))
        self.patch_embed = nn.Parameter(torch.ones(1))
        self.layers = nn.ModuleList(nn.Conv2d(3, 3, 1) for _ in range(3))
