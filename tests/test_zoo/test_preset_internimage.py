"""``paramwise_cfg.reproduce='internimage_segmentation'`` /
``'internimage_detection'`` give exactly the groups of InternImage's
constructors on InternImage-shaped models with ``post_norms``,
``levels.3.norm``, a Mask2Former-style head and a DINO-style head.

Facts (OpenGVLab/InternImage ``segmentation/mmcv_custom/
custom_layer_decay_optimizer_constructor.py`` @2071d4c and
``detection/...`` @41b18fd; mmcv 1.x, restated here as expected values):
see ``internvl_optim/core/presets/internimage.py``.  With depths
(1, 2, 1, 1), ``num_layers=5``, rate 0.5: ``levels.{s}.blocks.{b}`` ->
``b + 1 + sum(depths[:s])``; ``levels.{s}.{norm,downsample}`` ->
``1 + sum(depths[:s + 1])``, capped at 5 for level 3 (ours: N + 1 = 6);
``post_norms.{k}`` of level s -> ``k + 1 + sum(depths[:s])``."""
import pytest
import torch
from torch import nn

from internvl_optim import LayerDecayOptimizerConstructor

from hierarchical_models import InternImage

OPTIMIZER = dict(type='AdamW', lr=1.0, weight_decay=0.05)


class Mask2FormerLikeHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.query_embed = nn.Embedding(3, 4)
        self.query_feat = nn.Embedding(3, 4)
        self.level_embed = nn.Embedding(2, 4)
        self.cls_embed = nn.Linear(4, 2)
        self.mask_embed = nn.Sequential(nn.Linear(4, 4))
        self.conv = nn.Conv2d(4, 4, 1)


class DinoLikeHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.Module()
        self.attn.sampling_offsets = nn.Linear(4, 8)
        self.reference_points = nn.Linear(4, 2)
        self.fc = nn.Linear(4, 4)


class Model(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.backbone = InternImage(depths=(1, 2, 1, 1))
        level = self.backbone.levels[2]
        level.post_norms = nn.ModuleList([nn.LayerNorm(4)])  # H/G
        self.backbone.levels[3].blocks[0].attn = nn.Module()
        self.backbone.levels[3].blocks[0].attn.sampling_offsets = \
            nn.Linear(4, 8)
        self.decode_head = head


def build(preset, head, **paramwise):
    groups = LayerDecayOptimizerConstructor(
        dict(optimizer=OPTIMIZER),
        dict(reproduce=preset, num_layers=5, layer_decay_rate=0.5,
             depths=[1, 2, 1, 1], **paramwise))(Model(head)).optimizer \
        .param_groups
    return {n: (g['group_name'], g['lr'], g['weight_decay'])
            for g in groups for n in g['param_names']}, groups


def test_segmentation_preset_with_a_mask2former_head():
    got, groups = build('internimage_segmentation', Mask2FormerLikeHead())
    b = 'backbone.'
    assert got[b + 'patch_embed.conv1.weight'] == ('layer_0_decay', 0.015625,
                                                   0.05)
    assert got[b + 'levels.0.blocks.0.mlp.0.weight'] == ('layer_1_decay',
                                                         0.03125, 0.05)
    assert got[b + 'levels.1.blocks.1.mlp.0.weight'] == ('layer_3_decay',
                                                         0.125, 0.05)
    # levels.{s}.norm: 1 + sum(depths[:s + 1]); level 3 capped at 5
    assert got[b + 'levels.1.norm.weight'][:2] == ('layer_4_no_decay', 0.25)
    assert got[b + 'levels.3.norm.weight'][:2] == ('layer_5_no_decay', 0.5)
    assert got[b + 'levels.0.downsample.conv.weight'] == (
        'layer_2_decay', 0.0625, 0.05)
    # post_norms.{k} of level 2: k + 1 + sum(depths[:2]) = 4, and 'norm'
    # in the name: no weight decay
    assert got[b + 'levels.2.post_norms.0.weight'][:2] == (
        'layer_4_no_decay', 0.25)
    # sampling_offsets in the backbone: offset group, no weight decay
    assert got[b + 'levels.3.blocks.0.attn.sampling_offsets.weight'] == (
        'layer_5_no_decay_offset_lr_scale', 0.5, 0.0)
    # the Mask2Former embeddings at layer 0 (ours: the head's lr)
    for name in ('query_embed.weight', 'query_feat.weight',
                 'level_embed.weight', 'cls_embed.weight',
                 'mask_embed.0.weight'):
        assert got['decode_head.' + name][:2] == ('layer_0_decay', 0.015625)
    assert got['decode_head.conv.weight'] == ('layer_6_decay', 1.0, 0.05)
    # groups in order of first appearance
    assert groups[0]['group_name'] == 'layer_0_decay'


def test_detection_preset_with_a_dino_head():
    got, _ = build('internimage_detection', DinoLikeHead(), dino_head=True,
                   offset_lr_scale=0.01)
    # the head's sampling_offsets: x0.1 group, no weight decay (ours: decay)
    assert got['decode_head.attn.sampling_offsets.weight'] == (
        'layer_6_no_decay_0.1x', pytest.approx(0.1), 0.0)
    assert got['decode_head.reference_points.weight'] == (
        'layer_6_decay_0.1x', pytest.approx(0.1), 0.05)
    assert got['backbone.levels.3.blocks.0.attn.sampling_offsets.weight'] \
        == ('layer_5_no_decay_offset_lr_scale', pytest.approx(0.005), 0.0)
    assert got['decode_head.fc.weight'] == ('layer_6_decay', 1.0, 0.05)
    # without dino_head the detection version scales every offset
    got, _ = build('internimage_detection', DinoLikeHead(),
                   offset_lr_scale=0.01)
    assert got['decode_head.attn.sampling_offsets.weight'] == (
        'layer_6_no_decay_offset_lr_scale', pytest.approx(0.01), 0.0)
    # the segmentation version only the backbone's
    got, _ = build('internimage_segmentation', DinoLikeHead(),
                   offset_lr_scale=0.01)
    assert got['decode_head.attn.sampling_offsets.weight'] == (
        'layer_6_no_decay', 1.0, 0.0)


def test_backbone_small_lr_scales_every_decayed_group():
    got, _ = build('internimage_detection', DinoLikeHead(),
                   backbone_small_lr=True)
    assert got['backbone.patch_embed.conv1.weight'][1] == pytest.approx(
        0.0015625)
    assert got['decode_head.fc.weight'][1] == 1.0


def test_depths_are_needed():
    with pytest.raises(ValueError, match="needs paramwise_cfg.depths"):
        LayerDecayOptimizerConstructor(
            dict(optimizer=OPTIMIZER),
            dict(reproduce='internimage_detection', num_layers=5,
                 layer_decay_rate=0.5))(Model(DinoLikeHead()))


class ClassifierWithKeywords(nn.Module):
    """A classifier exposing InternImage's classification hooks:
    ``lr_decay_keywards(ratio)`` (sic; keyword -> lr ratio, first match in
    dict order wins), ``no_weight_decay()`` and
    ``no_weight_decay_keywords()``."""

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 4, 1)
        self.levels = nn.ModuleList()
        for _ in range(2):
            level = nn.Module()
            level.dcn = nn.Module()
            level.dcn.offset = nn.Linear(4, 4)
            level.mlp = nn.Linear(4, 4)
            self.levels.append(level)
        self.head = nn.Linear(4, 2)
        self.pos = nn.Parameter(torch.zeros(1, 4, 4))

    def lr_decay_keywards(self, ratio):
        return {'levels.0.': ratio ** 2, 'levels.1.': ratio,
                'patch_embed': ratio ** 3}

    def no_weight_decay(self):
        return {'pos'}

    def no_weight_decay_keywords(self):
        return ('mlp.weight', )


def test_classification_preset_one_group_per_parameter():
    from internvl_optim.runtime.freezing import apply_freezing
    from internvl_optim import LayerDecaySettings, build_param_groups
    model = ClassifierWithKeywords()
    plan = build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
        dict(reproduce='internimage_classification', layer_decay_rate=0.5,
             dcn_lr_mul=0.1, freeze_backbone=[1])), 1.0, 0.05)
    got = {g['name']: (g['lr'], g['weight_decay']) for g in plan.groups}
    assert len(plan.groups) == len(list(model.parameters()))
    assert got['patch_embed.weight'] == (0.125, 0.05)
    assert got['levels.0.mlp.weight'] == (0.25, 0.0)  # keyword: no decay
    assert got['levels.0.dcn.offset.weight'] == (pytest.approx(0.025), 0.05)
    assert got['levels.1.mlp.bias'] == (0.5, 0.0)
    assert got['head.weight'] == (1.0, 0.05)
    assert got['pos'] == (1.0, 0.0)  # in no_weight_decay()
    # FREEZE_BACKBONE freezes levels.1 but keeps it in the optimizer
    apply_freezing(plan)
    assert not model.levels[1].mlp.weight.requires_grad
    assert 'levels.1.mlp.weight' in got
    with pytest.raises(ValueError, match=r"asks the model for "
                       r"lr_decay_keywards\(ratio\) \(sic\), which Linear "
                       'does not have'):
        build_param_groups(nn.Linear(2, 2), LayerDecaySettings.from_paramwise_cfg(
            dict(reproduce='internimage_classification',
                 layer_decay_rate=0.5)), 1.0, 0.05)


def test_a_backbone_without_levels_is_refused():
    model = nn.Module()
    model.backbone = nn.Conv2d(3, 4, 1)
    with pytest.raises(ValueError, match=r"numbers blocks under "
                       r"backbone\.levels\.\{s\} / backbone\.layers\.\{s\}; "
                       'this model has none'):
        LayerDecayOptimizerConstructor(
            dict(optimizer=OPTIMIZER),
            dict(reproduce='internimage_segmentation', num_layers=2,
                 layer_decay_rate=0.5, depths=[1, 1]))(model)


#: the facts for depths (1, 2, 1, 1), num_layers=5, as tables
BLOCK_IDS = {(0, 0): 1, (1, 0): 2, (1, 1): 3, (2, 0): 4, (3, 0): 5}
END_OF_LEVEL_IDS = {0: 2, 1: 4, 2: 5, 3: 5}  # level 3 capped at 1 + 4


def test_segmentation_preset_every_parameter():
    got, _ = build('internimage_segmentation', Mask2FormerLikeHead())
    model = Model(Mask2FormerLikeHead())
    for name, param in model.named_parameters():
        parts = name.split('.')
        if name.startswith('backbone.patch_embed') or (
                parts[0] == 'decode_head' and parts[1] in (
                    'query_embed', 'query_feat', 'level_embed', 'cls_embed',
                    'mask_embed')):
            layer = 0
        elif name.startswith('backbone.levels.'):
            level = int(parts[2])
            if parts[3] in ('norm', 'downsample'):
                layer = END_OF_LEVEL_IDS[level]
            else:  # blocks.{b}, and post_norms.{k} numbered the same way
                layer = BLOCK_IDS[(level, int(parts[4]))]
        else:
            layer = 6
        no_decay = (param.ndim == 1 or name.endswith('.bias')
                    or 'norm' in name or 'sampling_offsets' in name
                    or 'relative_position' in name)
        group, lr, wd = got[name]
        assert lr == 0.5 ** (6 - layer), name
        assert wd == (0.0 if no_decay else 0.05), name
        assert group.startswith(f'layer_{layer}_'), name
