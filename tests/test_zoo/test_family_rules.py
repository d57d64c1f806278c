"""Layer ids for every backbone family MMSeg ships, on the real
MMSeg classes where they build here, exact per parameter.  Facts relied on
(read in MMSeg 1.2.2 and InternImage's sources):

- MiT (``mit.py``): ``layers.{i} = ModuleList([PatchEmbed, ModuleList(blocks),
  norm])``, run in that order.
- Twins (``twins.py``): ``patch_embeds.{i}``, ``layers.{i}.{b}``,
  ``position_encodings.{i}`` applied after block 0 of stage i,
  ``norm_list.{i}`` after the stage.
- InternImage-H/G (``InternImageBlock``): ``post_norms[k]`` runs after block
  ``post_norm_block_ids[k]``; children registered ``blocks, norm,
  post_norms, downsample``.
- torchvision's ViT: ``encoder.layers.encoder_layer_{i}`` (a named
  Sequential); timm's Swin: ``layers.{s}`` with ``downsample`` registered
  before ``blocks`` (it runs first); HF Swin: ``encoder.layers.{s}.blocks``
  with ``downsample`` after.
"""
import pytest
import torch
from torch import nn

from internvl_optim import LayerDecaySettings, build_param_groups

from helpers import layer_by_name


def plan(backbone, rate=0.5, **cfg):
    model = nn.Module()
    model.backbone = backbone
    model.head = nn.Linear(2, 2)
    return build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
        dict(layer_decay_rate=rate, **cfg)), 1.0, 0.1)


def mmseg(**cfg):
    import mmseg.models  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    return MODELS.build(cfg)


def test_mit_numbered_per_block_with_each_stage_patch_embedding():
    p = plan(mmseg(type='MixVisionTransformer', in_channels=3, embed_dims=8,
                   num_stages=4, num_layers=[1, 2, 1, 1],
                   num_heads=[1, 1, 1, 1], patch_sizes=[7, 3, 3, 3],
                   sr_ratios=[8, 4, 2, 1]))
    assert p.layer_rule == 'stage rule (backbone.layers, depths [1, 2, 1, 1])'
    assert p.num_layers == 5  # blocks, not stages
    ids = layer_by_name(p.groups)
    assert ids['backbone.layers.0.0.projection.weight'] == 0
    assert ids['backbone.layers.0.1.0.norm1.weight'] == 1
    assert ids['backbone.layers.1.0.projection.weight'] == 2  # with stage 1
    assert ids['backbone.layers.1.1.1.ffn.layers.0.weight'] == 3
    assert ids['backbone.layers.1.2.weight'] == 4  # stage norm: next stage
    assert ids['backbone.layers.3.2.weight'] == 6  # last: N + 1
    assert ids['head.weight'] == 6


@pytest.mark.parametrize('kind', ['PCPVT', 'SVT'])
def test_twins_per_stage_lists_with_their_stage(kind):
    extra = dict(windiow_sizes=[7, 7, 7, 7]) if kind == 'SVT' else {}
    p = plan(mmseg(type=kind, in_channels=3, embed_dims=[8, 8, 8, 8],
                   num_heads=[1, 1, 1, 1], mlp_ratios=[1, 1, 1, 1],
                   depths=[1, 2, 1, 1], sr_ratios=[8, 4, 2, 1],
                   norm_after_stage=True, **extra))
    assert p.num_layers == 5
    ids = layer_by_name(p.groups)
    assert ids['backbone.patch_embeds.0.projection.weight'] == 0
    assert ids['backbone.patch_embeds.2.projection.weight'] == 4
    assert ids['backbone.position_encodings.0.proj.weight'] == 1
    assert ids['backbone.layers.1.1.norm1.weight'] == 3
    assert ids['backbone.norm_list.1.weight'] == 4
    assert ids['backbone.norm_list.3.weight'] == 6


def test_cnn_units_in_registration_order():
    p = plan(mmseg(type='ResNetV1c', depth=18, stem_channels=8,
                   base_channels=4))
    assert p.layer_rule == 'module order rule (backbone.*: 5 units)'
    ids = layer_by_name(p.groups)
    assert ids['backbone.stem.0.weight'] == 0
    assert ids['backbone.layer1.0.conv1.weight'] == 1
    assert ids['backbone.layer4.1.bn2.weight'] == 4
    assert ids['head.weight'] == 5
    lrs = {x.name: x.lr for x in p.params}
    assert lrs['backbone.stem.0.weight'] == 0.5**5


def test_pre_norm_before_the_blocks_is_layer_zero():
    class ClipLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 2)
            self.class_embedding = nn.Parameter(torch.zeros(4))
            self.ln_pre = nn.LayerNorm(4)
            self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
            self.ln_post = nn.LayerNorm(4)
            self.level_embed = nn.Parameter(torch.zeros(3, 4))

    ids = layer_by_name(plan(ClipLike()).groups)
    assert ids['backbone.ln_pre.weight'] == 0
    assert ids['backbone.conv1.weight'] == 0
    assert ids['backbone.class_embedding'] == 0
    assert ids['backbone.blocks.1.weight'] == 2
    assert ids['backbone.ln_post.weight'] == 3
    # ViT-Adapter's level_embed is no position embedding: N + 1, as the
    # reference rules give it
    assert ids['backbone.level_embed'] == 3


def test_internimage_post_norms_follow_their_block():
    from hierarchical_models import InternImage
    backbone = InternImage(depths=(1, 1, 6, 1))
    level = backbone.levels[2]
    level.post_norm_block_ids = [2, 5]
    level.post_norms = nn.ModuleList(nn.LayerNorm(4) for _ in range(2))
    ids = layer_by_name(plan(backbone).groups)
    assert ids['backbone.levels.2.post_norms.0.weight'] == 2 + 2 + 1
    assert ids['backbone.levels.2.post_norms.1.weight'] == 2 + 5 + 1
    assert ids['backbone.levels.2.blocks.5.dcn.offset.weight'] == 8
    assert ids['backbone.levels.2.downsample.conv.weight'] == 9


def test_named_sequential_blocks_as_torchvision_vit():
    from collections import OrderedDict
    vit = nn.Module()
    vit.conv_proj = nn.Conv2d(3, 4, 2)
    vit.encoder = nn.Module()
    vit.encoder.layers = nn.Sequential(OrderedDict(
        (f'encoder_layer_{i}', nn.Linear(4, 4)) for i in range(3)))
    vit.encoder.ln = nn.LayerNorm(4)
    p = plan(vit)
    assert p.num_layers == 3
    ids = layer_by_name(p.groups)
    assert [ids[f'backbone.encoder.layers.encoder_layer_{i}.weight']
            for i in range(3)] == [1, 2, 3]
    assert ids['backbone.conv_proj.weight'] == 0
    assert ids['backbone.encoder.ln.weight'] == 4


def _swin_stage(depth, downsample_first):
    stage = nn.Module()
    if downsample_first:
        stage.downsample = nn.Linear(4, 4)
    stage.blocks = nn.Sequential(*(nn.Linear(4, 4) for _ in range(depth)))
    if not downsample_first:
        stage.downsample = nn.Linear(4, 4)
    return stage


def test_timm_swin_layers_with_downsample_first():
    swin = nn.Module()
    swin.patch_embed = nn.Conv2d(3, 4, 2)
    swin.layers = nn.Sequential(*(_swin_stage(d, True) for d in (2, 2, 3)))
    swin.norm = nn.LayerNorm(4)
    p = plan(swin, depths=[2, 2, 3])  # depths is used and checked
    assert p.num_layers == 7
    ids = layer_by_name(p.groups)
    assert ids['backbone.layers.0.downsample.weight'] == 0
    assert ids['backbone.layers.1.downsample.weight'] == 3
    assert ids['backbone.layers.2.blocks.2.weight'] == 7
    assert ids['backbone.norm.weight'] == 8


def test_hf_swin_encoder_layers_with_downsample_after():
    swin = nn.Module()
    swin.embeddings = nn.Conv2d(3, 4, 2)
    swin.encoder = nn.Module()
    swin.encoder.layers = nn.ModuleList(_swin_stage(d, False)
                                        for d in (1, 2))
    ids = layer_by_name(plan(swin).groups)
    assert ids['backbone.embeddings.weight'] == 0
    assert ids['backbone.encoder.layers.0.downsample.weight'] == 2
    assert ids['backbone.encoder.layers.1.blocks.1.weight'] == 3
    assert ids['backbone.encoder.layers.1.downsample.weight'] == 4


def test_unclaimed_backbone_parameters_are_named_once():
    # a regex that leaves part of the backbone out
    backbone = nn.Module()
    backbone.stem = nn.Conv2d(3, 4, 2)
    backbone.trunk = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
    backbone.extra = nn.Linear(4, 4)
    warnings = []
    model = nn.Module()
    model.backbone, model.head = backbone, nn.Linear(2, 2)
    p = build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
        dict(layer_decay_rate=0.5, layer_regex=dict(
            embed=r'^stem', blocks=r'^trunk\.(\d+)\.'))), 1.0, 0.1,
        warn=warnings.append)
    assert warnings == [
        "2 backbone parameters are claimed by no layer rule and get the "
        "heads' layer N + 1: backbone.extra.weight, backbone.extra.bias. "
        'Extend paramwise_cfg.layer_regex or give the backbone get_layer_id']
    by_name = {x.name: x for x in p.params}
    assert by_name['backbone.extra.weight'].placed_by == \
        'unclaimed by paramwise_cfg.layer_regex: N + 1'
    assert by_name['backbone.trunk.1.weight'].placed_by == \
        'paramwise_cfg.layer_regex'
    assert by_name['head.weight'].placed_by == \
        'outside the backbone: N + 1 = 3'
    assert by_name['backbone.stem.bias'].no_decay_reason == 'ndim'


def test_regex_counting_blocks_from_one_is_said():
    backbone = nn.Module()
    backbone.stem = nn.Conv2d(3, 4, 2)
    backbone.block1 = nn.Linear(4, 4)
    backbone.block2 = nn.Linear(4, 4)
    model = nn.Module()
    model.backbone, model.head = backbone, nn.Linear(2, 2)
    warnings = []
    build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
        dict(layer_decay_rate=0.5, layer_regex=dict(
            embed=r'^stem', blocks=r'^block(\d+)\.'))), 1.0, 0.1,
        warn=warnings.append)
    assert warnings == [
        'paramwise_cfg.layer_regex.blocks captures block indices from 1: '
        'layers 1..1 hold no block (indices count from 0, block i is layer '
        'i + 1)']
