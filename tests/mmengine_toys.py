"""Toy MMEngine models and data for real ``Runner`` runs."""
import math

import torch
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import Dataset


class TinyViT(BaseModel):
    """``backbone.{patch_embed,cls_token,pos_embed,blocks.i,norm}``, a
    ``head``: the ViT rule's layout, every parameter on the loss path."""

    def __init__(self, depth=3, dim=4):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.patch_embed = nn.Linear(2, dim)
        self.backbone.cls_token = nn.Parameter(torch.zeros(1, dim))
        self.backbone.pos_embed = nn.Parameter(torch.zeros(1, dim))
        self.backbone.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
            for _ in range(depth))
        self.head = nn.Linear(dim, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = self.backbone.patch_embed(inputs) + self.backbone.pos_embed \
            + self.backbone.cls_token
        for block in self.backbone.blocks:
            x = x + block(x)
        out = self.head(x)
        if mode == 'loss':
            return dict(loss=((out - 1) ** 2).mean())
        return [dict(out=o) for o in out]


class ToyData(Dataset):
    def __len__(self):
        return 32

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([math.sin(i), math.cos(i)]))


def toy_loader(batch_size=4):
    """A train dataloader config over :class:`ToyData`, in order."""
    return dict(dataset=ToyData(), batch_size=batch_size, num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'))
