"""``paramwise_cfg.reproduce='internvl_segmentation'`` gives exactly the
groups of InternVL's segmentation constructor.

Facts (OpenGVLab/InternVL, ``segmentation/mmcv_custom/
layer_decay_optimizer_constructor.py`` at commit 749a4c3; mmcv 1.x, so it
cannot run beside MMEngine: its rules are restated here as expected
values): layer 0 = ``backbone.{cls_token, mask_token, pos_embed}`` and
``backbone.patch_embed*``; ``backbone.blocks.{i}`` -> i + 1; else
``num_layers + 1``; scale ``rate ** (num_layers + 1 - id)``; weight decay 0
for 1-D and ``.bias`` only (the 3-D tokens are decayed); ``cb_modules.{0,1}.``
dropped and ``levels.`` read as ``layers.``; groups in order of first
appearance."""
import re

import pytest
import torch
from torch import nn

from internvl_optim.models.backbones.intern_vit_6b import InternViT6B

from helpers import build_plan

OPTIMIZER = dict(type='AdamW', lr=1.0, weight_decay=0.05)


class Segmentor(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.decode_head = nn.Conv2d(8, 2, 1)


def groups(model, **paramwise):
    return build_plan(model, lr=OPTIMIZER['lr'],
                      weight_decay=OPTIMIZER['weight_decay'],
                      reproduce='internvl_segmentation', **paramwise).groups


def test_internvit_every_parameter_as_internvl():
    model = Segmentor(InternViT6B(depth=2, embed_dim=8, num_heads=2,
                                  patch_size=4, img_size=16, pretrain_size=16,
                                  out_indices=(0, 1), with_cp=False,
                                  with_fpn=False))
    got = groups(model, num_layers=2, layer_decay_rate=0.5)
    by_name = {n: (g['lr'], g['weight_decay'])
               for g in got for n in g['param_names']}
    expected = {}
    for name, p in model.named_parameters():
        rel = name
        if rel in ('backbone.cls_token', 'backbone.pos_embed') or \
                rel.startswith('backbone.patch_embed'):
            layer = 0
        elif rel.startswith('backbone.blocks.'):
            layer = int(rel.split('.')[2]) + 1
        else:
            layer = 3
        decays = not (p.ndim == 1 or name.endswith('.bias'))
        expected[name] = (0.5 ** (3 - layer), 0.05 if decays else 0.0)
    assert by_name == expected
    # the quirk kept: the 3-D tokens decay; the norms are 1-D here
    assert by_name['backbone.cls_token'] == (0.125, 0.05)
    assert by_name['backbone.pos_embed'] == (0.125, 0.05)
    assert by_name['backbone.blocks.1.ls1.gamma'] == (0.5, 0.0)
    assert by_name['decode_head.weight'] == (1.0, 0.05)
    # groups in order of first appearance: the embeddings' first
    assert [g['group_name'] for g in got][:2] == ['layer_0_decay',
                                                  'layer_0_no_decay']


class LevelsAndCB(nn.Module):
    """An InternImage-like backbone inside CBNet: names are rewritten
    before the rule (cb_modules.{0,1}. dropped, levels. -> layers.)."""

    def __init__(self):
        super().__init__()
        self.cb_modules = nn.ModuleList()
        for _ in range(2):
            inner = nn.Module()
            inner.patch_embed = nn.Conv2d(3, 4, 1)
            inner.levels = nn.ModuleList(nn.Conv2d(4, 4, 1)
                                         for _ in range(3))
            self.cb_modules.append(inner)


def test_levels_and_cbnet_names_are_rewritten_as_internvl():
    got = groups(Segmentor(LevelsAndCB()), num_layers=3,
                 layer_decay_rate=0.5)
    by_name = {n: g['lr'] for g in got for n in g['param_names']}
    assert by_name['backbone.cb_modules.0.patch_embed.weight'] == 0.0625
    assert by_name['backbone.cb_modules.1.levels.0.weight'] == 0.125
    assert by_name['backbone.cb_modules.1.levels.2.weight'] == 0.5
    assert by_name['decode_head.weight'] == 1.0


def test_a_backbone_without_blocks_is_refused():
    with pytest.raises(ValueError, match=re.escape(
            "paramwise_cfg.reproduce='internvl_segmentation': InternVL's "
            'constructor numbers blocks under backbone.blocks.{i} or '
            'backbone.layers.{i} (levels.{i}); Conv2d has none')):
        groups(Segmentor(nn.Conv2d(3, 8, 1)), num_layers=2,
               layer_decay_rate=0.9)


def internvl_expected_groups(model, num_layers, rate, base_wd):
    """InternVL's constructor restated: trainable parameters in model
    order, grouped ``layer_{id}_{decay|no_decay}`` by first appearance."""
    expected = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name in ('backbone.cls_token', 'backbone.pos_embed') or \
                name.startswith('backbone.patch_embed'):
            layer = 0
        elif name.startswith('backbone.blocks.'):
            layer = int(name.split('.')[2]) + 1
        else:
            layer = num_layers + 1
        decays = not (p.ndim == 1 or name.endswith('.bias'))
        key = f'layer_{layer}_{"decay" if decays else "no_decay"}'
        group = expected.setdefault(key, dict(
            lr=rate ** (num_layers + 1 - layer),
            weight_decay=base_wd if decays else 0.0, param_names=[]))
        group['param_names'].append(name)
    return expected


@pytest.mark.parametrize('recipe, with_fpn, base_wd', [
    # segmentation/configs/intern_vit_6b/head_tuning/
    # upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_frozen.py (commit
    # 345ce5d): freeze_vit=True, with_fpn=True, num_layers=48,
    # layer_decay_rate=1.0, AdamW weight_decay=0.05
    ('head tuning', True, 0.05),
    # .../linear_probing/linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_
    # frozen.py: freeze_vit=True, no FPN, weight_decay=0.0
    ('linear probing', False, 0.0),
])
def test_frozen_vit_recipes_group_the_heads_as_internvl(recipe, with_fpn,
                                                        base_wd):
    model = Segmentor(InternViT6B(depth=4, embed_dim=8, num_heads=2,
                                  patch_size=4, img_size=16, pretrain_size=16,
                                  out_indices=(0, 1, 2, 3), with_cp=False,
                                  with_fpn=with_fpn, freeze_vit=True))
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if n.startswith('backbone.blocks.'))
    got = build_plan(model, weight_decay=base_wd,
                     reproduce='internvl_segmentation', num_layers=4,
                     layer_decay_rate=1.0).groups
    expected = internvl_expected_groups(model, 4, 1.0, base_wd)
    assert [g['group_name'] for g in got] == list(expected)
    for group in got:
        want = expected[group['group_name']]
        assert (group['lr'], group['weight_decay'], group['param_names']) \
            == (want['lr'], want['weight_decay'], want['param_names'])
    names = [n for g in got for n in g['param_names']]
    assert ('backbone.up1.0.weight' in names) == with_fpn
    assert 'decode_head.weight' in names
