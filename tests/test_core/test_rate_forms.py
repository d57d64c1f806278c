"""The rate given so that it reads the same at any depth: carried from the
depth it was chosen for, or as the lr ratio between the first block and
the head; the table says what rate and first-block lr resulted."""
import pytest
import torch
from torch import nn

from internvl_optim import param_groups
from internvl_optim.analysis.param_group_report import (describe_settings,
                                                        rate_given_as)
from internvl_optim.core.settings import LayerDecaySettings


def vit(depth):
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
    model.backbone.blocks = nn.ModuleList(nn.Linear(4, 4)
                                          for _ in range(depth))
    model.head = nn.Linear(4, 2)
    return model


def lr_of(groups, layer_id):
    (lr,) = {g['lr'] for g in groups if g['layer_id'] == layer_id}
    return lr


@pytest.mark.parametrize('depth', [12, 24, 48])
def test_a_rate_chosen_at_12_blocks_keeps_the_first_block_lr(depth):
    """BEiT's 0.65 at 12 blocks: the first block at 0.65 ** 12 of the head
    at every depth; block k of N at 0.65 ** (12 * (N + 1 - k) / N)."""
    groups = param_groups(vit(depth), lr=1.0, weight_decay=0.05,
                          layer_decay_rate=0.65,
                          layer_decay_reference_depth=12)
    assert lr_of(groups, 1) == pytest.approx(0.65 ** 12, rel=1e-12)
    assert lr_of(groups, depth) == pytest.approx(0.65 ** (12 / depth),
                                                 rel=1e-12)
    assert lr_of(groups, 0) == pytest.approx(
        0.65 ** (12 * (depth + 1) / depth), rel=1e-12)


@pytest.mark.parametrize('depth', [4, 40])
def test_first_block_lr_ratio(depth):
    groups = param_groups(vit(depth), lr=2.0, weight_decay=0.05,
                          first_block_lr_ratio=0.1)
    assert lr_of(groups, 1) == pytest.approx(0.2, rel=1e-12)
    assert lr_of(groups, depth + 1) == 2.0


@pytest.mark.parametrize('cfg, message', [
    (dict(first_block_lr_ratio=0.1, layer_decay_rate=0.9),
     'paramwise_cfg.first_block_lr_ratio and paramwise_cfg.layer_decay_rate '
     'both set the rate; give one'),
    (dict(first_block_lr_ratio=0.1, layer_decay_reference_depth=12),
     'first_block_lr_ratio needs none'),
    (dict(layer_decay_reference_depth=12),
     'paramwise_cfg.layer_decay_reference_depth is set but layer_decay_rate '
     'is not'),
    (dict(first_block_lr_ratio=0.0), 'paramwise_cfg.first_block_lr_ratio'),
    (dict(first_block_lr_ratio=1.5), 'paramwise_cfg.first_block_lr_ratio'),
    (dict(layer_decay_rate=0.65, layer_decay_reference_depth=0),
     'paramwise_cfg.layer_decay_reference_depth must be a positive int, '
     'got 0'),
])
def test_bad_rate_forms_are_named(cfg, message):
    with pytest.raises((TypeError, ValueError)) as err:
        LayerDecaySettings.from_paramwise_cfg(cfg)
    assert message in str(err.value)


def test_the_table_line_says_the_rate_and_first_block_lr():
    settings = LayerDecaySettings.from_paramwise_cfg(dict(
        layer_decay_rate=0.65, layer_decay_reference_depth=12))
    line = describe_settings(dict(
        layer_rule='ViT rule (backbone.blocks)', num_layers=48,
        layer_decay_rate=0.65, rate_applied=settings.rate_for(48),
        given_as=rate_given_as(settings), base_lr=1e-3, weight_decay=0.05))
    assert line == (
        'layer rule: ViT rule (backbone.blocks), num_layers=48, '
        'layer_decay_rate=0.65 at 12 blocks (rate 0.8979 between layers; '
        'first block lr 5.6880e-06), base lr 0.001, weight decay 0.05')
