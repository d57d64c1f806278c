"""The layer ids checked against the order the modules run in (one forward
pass with hooks)."""
import pytest
import torch
from torch import nn

from internvl_optim.analysis.run_order import check_run_order, run_order

from helpers import build_plan


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.Linear(4, 4)

    def forward(self, x):
        return x + self.attn(x)


class ViT(nn.Module):
    """``extra_norm`` is registered after the blocks (so the rules put it
    with the heads: its name is none of the known pre-block norms) but
    runs before them; ``late_embed`` is registered
    first (layer 0) but runs after the blocks."""

    def __init__(self, misplaced: bool):
        super().__init__()
        self.misplaced = misplaced
        self.patch_embed = nn.Linear(4, 4)
        self.late_embed = nn.Linear(4, 4)
        self.blocks = nn.ModuleList(Block() for _ in range(3))
        self.extra_norm = nn.LayerNorm(4)  # registered last, runs first

    def forward(self, x):
        x = self.patch_embed(x)
        if self.misplaced:
            x = self.extra_norm(x)
        for block in self.blocks:
            x = block(x)
        return self.late_embed(x) if self.misplaced else x


def model(misplaced):
    m = nn.Module()
    m.backbone = ViT(misplaced)
    m.head = nn.Linear(4, 2)
    return m


def forward(m):
    return m.head(m.backbone(torch.zeros(1, 4)))


def test_ids_that_follow_the_run_pass():
    m = model(misplaced=False)
    plan = build_plan(m, layer_decay_rate=0.5)
    assert check_run_order(m, plan.groups, forward) == []
    ranks = run_order(m, forward)
    assert ranks['backbone.patch_embed.weight'] == 0
    assert ranks['head.weight'] == 4  # patch_embed, 3 blocks, head
    assert 'backbone.extra_norm.weight' not in ranks  # never ran


class Detector(nn.Module):
    """``level_embed`` is held by the module that also holds the blocks:
    its hook fires before any block, though it is used after them."""

    def __init__(self):
        super().__init__()
        self.vit = ViT(misplaced=False)
        self.level_embed = nn.Parameter(torch.zeros(4))

    def forward(self, x):
        return self.vit(x) + self.level_embed


def test_a_parameter_of_a_module_holding_others_is_not_placed_by_the_run():
    m = nn.Module()
    m.backbone = Detector()
    m.head = nn.Linear(4, 2)
    ranks = run_order(m, forward)
    assert 'backbone.level_embed' not in ranks
    assert ranks['backbone.vit.patch_embed.weight'] == 1  # after Detector
    plan = build_plan(m, layer_decay_rate=0.5, backbone_name='backbone.vit')
    assert check_run_order(m, plan.groups, forward) == []


def test_ids_that_contradict_the_run_are_named():
    m = model(misplaced=True)
    plan = build_plan(m, layer_decay_rate=0.5)
    m.train()
    assert check_run_order(m, plan.groups, forward) == [
        "backbone.extra_norm.weight is at the heads' layer 4 but runs before "
        'the last block',
        "backbone.extra_norm.bias is at the heads' layer 4 but runs before "
        'the last block',
        'backbone.late_embed.weight is at layer 0 but runs after '
        'backbone.blocks.2.attn.weight (layer 3)',
        'backbone.late_embed.bias is at layer 0 but runs after '
        'backbone.blocks.2.attn.weight (layer 3)']
    assert m.training  # left as it was
    # one lr throughout: the ids change nothing, nothing to report
    assert len({g['lr'] for g in plan.groups}) > 1
    one_lr = [dict(g, lr=1.0) for g in plan.groups]
    assert check_run_order(m, one_lr, forward) == []


def test_a_transformers_encoder_runs_in_the_order_of_its_ids():
    T = pytest.importorskip('transformers')
    m = nn.Module()
    m.backbone = T.ConvNextModel(T.ConvNextConfig(
        depths=[1, 1, 2, 1], hidden_sizes=[4, 8, 8, 8]))
    m.head = nn.Linear(8, 2)
    plan = build_plan(m, layer_decay_rate=0.5)

    def run(model):
        pooled = model.backbone(torch.zeros(1, 3, 32, 32)).pooler_output
        return model.head(pooled)

    assert check_run_order(m, plan.groups, run) == []
