"""What the model declares wins; what is guessed checks itself.

Facts relied on (read from the real files):

* timm 1.0.31 ``timm/models/_manipulate.py`` ``group_with_matcher``: a dict
  entry's ordinal is (entry position, captured groups, suffix); unmatched
  names get ``(inf,)``; an ordinal ending in ``MATCH_PREV_GROUP = (99999,)``
  joins the previous id.  ``timm/optim/_param_groups.py``
  ``param_groups_layer_decay``: scale ``layer_decay ** (layer_max - id)``;
  no weight decay for ``ndim <= 1`` and names ``fnmatch``-ing an entry of
  ``no_weight_decay()``.
* MMSegmentation ``tests/test_engine/test_layer_decay_optimizer_constructor.py``
  (commit c746a86): ``ToyBEiT`` holds ``cls_token`` and ``patch_embed`` as
  bare 1-element parameters and ``layers`` = 3 ``Conv2d(3, 3, 1)``; with
  ``decay_rate=2``, ``num_layers=3`` its expected lr scales are 16 for the
  embeddings (layer 0), 8/4/2 for the layers and 1 for the decode head.
* transformers 5.24 ``InternVLForConditionalGeneration``:
  ``model.vision_tower.encoder.layer.{i}``, ``model.multi_modal_projector``,
  ``model.language_model.layers.{i}``, ``lm_head`` (tied).
"""
import re

import pytest
import torch
from torch import nn

from internvl_optim import LayerDecaySettings, build_param_groups
from internvl_optim.core.layer_rules.declared_groups import group_ids

from helpers import build_plan, layer_by_name, lr_wd_by_name
from toy_models import ToyBEiT


plan = build_plan


# --- a declared group_matcher -------------------------------------------------

class DeclaringViT(nn.Module):
    """A ViT that declares its grouping the timm way."""

    def __init__(self, depth=3, head=True):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.patch_embed = nn.Conv2d(3, 4, 2)
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(depth))
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2) if head else nn.Identity()

    def group_matcher(self, coarse=False):
        return dict(stem=r'^cls_token|pos_embed|patch_embed',
                    blocks=[(r'^blocks\.(\d+)', None),
                            (r'^norm', (99999, ))])

    def no_weight_decay(self):
        return {'pos_embed', 'cls_token'}


def test_group_ids_follow_timms_algorithm():
    names = ['cls_token', 'patch_embed.weight', 'blocks.0.weight',
             'blocks.10.weight', 'blocks.2.weight', 'norm.weight',
             'head.weight']
    ids = group_ids(names, DeclaringViT().group_matcher())
    # numeric sort (2 before 10), the norm joins the last block, the
    # unmatched head is last
    assert ids == {'cls_token': 0, 'patch_embed.weight': 0,
                   'blocks.0.weight': 1, 'blocks.2.weight': 2,
                   'blocks.10.weight': 3, 'norm.weight': 3,
                   'head.weight': 4}
    assert group_ids(['a', 'b.1', 'c'], lambda n: {'a': 0, 'b.1': (1, 2),
                                                  'c': 5}[n]) == \
        {'a': 0, 'b.1': 1, 'c': 2}


def test_a_declared_grouping_wins_and_is_followed_exactly():
    model = DeclaringViT(depth=3)
    p = plan(model, layer_decay_rate=0.5)
    assert p.layer_rule == ('DeclaringViT.group_matcher (declared by the '
                            'model)')
    assert p.num_layers == 3  # timm's layer_max 4 = N + 1
    lrs = lr_wd_by_name(p.groups)
    assert lrs == {
        'cls_token': (0.0625, 0.0), 'pos_embed': (0.0625, 0.0),
        'patch_embed.weight': (0.0625, 0.05),
        'patch_embed.bias': (0.0625, 0.0),
        'blocks.0.weight': (0.125, 0.05), 'blocks.0.bias': (0.125, 0.0),
        'blocks.1.weight': (0.25, 0.05), 'blocks.1.bias': (0.25, 0.0),
        'blocks.2.weight': (0.5, 0.05), 'blocks.2.bias': (0.5, 0.0),
        'norm.weight': (0.5, 0.0), 'norm.bias': (0.5, 0.0),  # timm's
        'head.weight': (1.0, 0.05), 'head.bias': (1.0, 0.0)}


class Segmentor(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.decode_head = nn.Linear(4, 2)


def test_a_headless_declaring_backbone_inside_a_segmentor():
    model = Segmentor(DeclaringViT(depth=3, head=False))
    p = plan(model, layer_decay_rate=0.5)
    layers = layer_by_name(p.groups)
    # timm's layer_max is the last block's group: it and the decode head
    # get the base lr, the embeddings 0.5 ** 3
    assert p.num_layers == 2
    assert layers['backbone.blocks.2.weight'] == layers[
        'decode_head.weight'] == 3
    assert lr_wd_by_name(p.groups)['backbone.cls_token'] == (0.125, 0.0)


class TIMMBackboneLike(nn.Module):
    """MMSeg's/mmpretrain's TIMMBackbone keeps the timm model as
    ``timm_model``."""

    def __init__(self):
        super().__init__()
        self.timm_model = DeclaringViT(depth=2, head=False)


def test_a_wrapped_declaring_model_is_found():
    p = plan(Segmentor(TIMMBackboneLike()), layer_decay_rate=0.5)
    assert p.layer_rule.startswith('DeclaringViT.group_matcher')
    layers = layer_by_name(p.groups)
    assert layers['backbone.timm_model.pos_embed'] == 0
    assert layers['backbone.timm_model.blocks.0.weight'] == 1
    assert layers['backbone.timm_model.blocks.1.weight'] == 2


def test_num_layers_is_checked_against_the_declaration():
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.num_layers=12 disagrees with the model: backbone '
            "'' (DeclaringViT) (DeclaringViT.group_matcher (declared by the "
            'model): 5 groups) has 3 layers')):
        plan(DeclaringViT(), layer_decay_rate=0.5, num_layers=12)


class WildcardSkip(DeclaringViT):
    def no_weight_decay(self):
        return {'pos_embed.*', 'cls_token'}

    def __init__(self):
        super().__init__()
        del self.pos_embed
        self.pos_embed = nn.Module()
        self.pos_embed.proj = nn.Linear(4, 4)  # XCiT's positional encoder


def test_no_weight_decay_wildcards_match_as_in_timm():
    lrs = lr_wd_by_name(plan(WildcardSkip(), layer_decay_rate=0.5).groups)
    assert lrs['pos_embed.proj.weight'][1] == 0.0
    assert lrs['blocks.0.weight'][1] == 0.05


# --- inference that checks itself --------------------------------------------

def test_mmseg_toy_beit_patch_embed_is_layer_0():
    model = nn.Module()
    model.backbone = ToyBEiT()
    model.decode_head = nn.Conv2d(2, 2, kernel_size=1, groups=2)
    # rate 0.5 (MMSeg's test uses 2, which is outside (0, 1] here): the
    # scales are MMSeg's expected 16/8/4/2/1 divided by 16
    p = plan(model, layer_decay_rate=0.5, num_layers=3)
    lrs = lr_wd_by_name(p.groups)
    assert lrs['backbone.cls_token'] == (0.0625, 0.0)
    assert lrs['backbone.patch_embed'] == (0.0625, 0.0)
    assert lrs['backbone.layers.0.weight'] == (0.125, 0.05)
    assert lrs['backbone.layers.2.weight'] == (0.5, 0.05)
    assert lrs['decode_head.weight'] == (1.0, 0.05)


@pytest.mark.parametrize('key, value', [('num_layers', 4),
                                        ('depths', [1, 1]),
                                        ('layer_regex', dict(embed='^x',
                                                             blocks=r'(\d)'))])
def test_a_structural_key_without_a_rate_is_an_error(key, value):
    with pytest.raises(ValueError) as err:
        LayerDecaySettings.from_paramwise_cfg({key: value})
    assert str(err.value) == (
        f'paramwise_cfg.{key} is set but layer_decay_rate is not: without a '
        f'rate below 1 every layer trains at the base lr and {key} changes '
        'nothing. Add layer_decay_rate (e.g. 0.9), or layer_decay_rate=1.0 '
        'to say that no decay is meant')
    # InternVL's head-tuning configs say rate 1.0 explicitly: accepted
    LayerDecaySettings.from_paramwise_cfg({key: value,
                                           'layer_decay_rate': 1.0})


class ClipLikeEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, 4, 2)
        self.position_embedding = nn.Embedding(5, 4)
        self.class_embedding = nn.Parameter(torch.zeros(4))


def test_position_embedding_held_in_nn_embedding_gets_no_weight_decay():
    model = nn.Module()
    model.embeddings = ClipLikeEmbeddings()
    model.encoder = nn.Module()
    model.encoder.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
    lrs = lr_wd_by_name(plan(model, layer_decay_rate=0.5).groups)
    assert lrs['embeddings.position_embedding.weight'] == (0.125, 0.0)
    assert lrs['embeddings.patch_embedding.weight'] == (0.125, 0.05)
    assert lrs['encoder.layers.0.weight'] == (0.25, 0.05)


def test_numbered_tokens_get_no_weight_decay_and_layer_0():
    model = nn.Module()
    model.pos_embed_0 = nn.Parameter(torch.zeros(1, 5, 4))
    model.cls_token_1 = nn.Parameter(torch.zeros(1, 1, 4))
    model.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
    lrs = lr_wd_by_name(plan(model, layer_decay_rate=0.5).groups)
    assert lrs['pos_embed_0'] == (0.125, 0.0)
    assert lrs['cls_token_1'] == (0.125, 0.0)


# --- a VLM is refused, not silently flattened --------------------------------

def tiny_internvl():
    transformers = pytest.importorskip('transformers')
    config = transformers.InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64,
                           image_size=32, patch_size=8),
        text_config=dict(model_type='qwen2', hidden_size=32,
                         num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64,
                         vocab_size=100),
        image_token_id=99)
    return transformers.InternVLForConditionalGeneration(config)


class TwoTowers(nn.Module):
    """An unknown multi-tower model: an image encoder and a text encoder."""

    def __init__(self):
        super().__init__()
        self.image = nn.Module()
        self.image.blocks = nn.ModuleList(Block() for _ in range(2))
        self.text = nn.Module()
        self.text.transformer = nn.Module()
        self.text.transformer.layers = nn.ModuleList(Block() for _ in range(3))
        self.logit_scale = nn.Parameter(torch.ones(()))


def test_an_unknown_multi_tower_model_is_refused_naming_its_towers():
    with pytest.raises(ValueError) as err:
        plan(TwoTowers(), layer_decay_rate=0.9)
    assert str(err.value) == (
        "backbone '' (TwoTowers) holds 2 transformer towers: image (2 blocks "
        'at image.blocks), text (3 blocks at text.transformer.layers). Layer '
        'decay over the whole model would give each tower one layer id. Say '
        "which tower to decay, e.g. paramwise_cfg.backbone_name='image' (the "
        'other towers then get the base lr), or give each tower its settings '
        "with paramwise_cfg.towers=dict(tower0=dict(module='image', "
        "layer_decay_rate=0.9), tower1=dict(module='text')), or use "
        'layer_decay_rate=1.0')


def test_naming_the_vision_tower_decays_inside_it():
    model = tiny_internvl()
    p = plan(model, layer_decay_rate=0.5,
             backbone_name='model.vision_tower')
    lrs = lr_wd_by_name(p.groups)
    tower = 'model.vision_tower.'
    assert lrs[tower + 'embeddings.cls_token'] == (0.125, 0.0)
    assert lrs[tower + 'embeddings.position_embeddings'] == (0.125, 0.0)
    assert lrs[tower + 'encoder.layer.0.attention.q_proj.weight'] == \
        (0.25, 0.05)
    assert lrs[tower + 'encoder.layer.1.mlp.fc1.weight'] == (0.5, 0.05)
    assert lrs['model.multi_modal_projector.linear_1.weight'] == (1.0, 0.05)
    assert lrs['model.language_model.layers.1.mlp.up_proj.weight'] == \
        (1.0, 0.05)
    # at rate 1.0 the whole model trains at the base lr, without refusal
    assert {lr for lr, _ in lr_wd_by_name(plan(model).groups).values()} == \
        {1.0}


# --- undeclared structures that used to be guessed wrong -------------------

class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(4, 12)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = Attention()


class XCiTLike(nn.Module):
    """Blocks, then class-attention blocks (XCiT's ``cls_attn_blocks``,
    CaiT's ``blocks_token_only``), no declaration."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.blocks = nn.ModuleList(Block() for _ in range(2))
        self.cls_attn_blocks = nn.ModuleList(Block() for _ in range(2))
        self.gamma = nn.Parameter(torch.ones(4, 4))  # bare, not a token


def test_a_second_block_list_and_bare_parameters_are_named():
    messages = []
    p = plan(Segmentor(XCiTLike()), warn=messages.append,
             layer_decay_rate=0.5)
    layers = layer_by_name(p.groups)
    assert layers['backbone.cls_attn_blocks.0.attn.qkv.weight'] == 3
    assert messages == [
        '5 backbone parameters are claimed by no layer rule and get the '
        "heads' layer N + 1: backbone.gamma, "
        'backbone.cls_attn_blocks.0.attn.qkv.weight, '
        'backbone.cls_attn_blocks.0.attn.qkv.bias, '
        'backbone.cls_attn_blocks.1.attn.qkv.weight, '
        'backbone.cls_attn_blocks.1.attn.qkv.bias. Extend '
        'paramwise_cfg.layer_regex or give the backbone get_layer_id']


class EncoderBlocks(nn.Module):
    """qwen3_vit / deepseek_vit layout without a declaration."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.patch_embed = nn.Conv2d(3, 4, 2)
        self.encoder.blocks = nn.ModuleList(Block() for _ in range(3))


def test_blocks_under_encoder_blocks_are_a_vit():
    p = plan(Segmentor(EncoderBlocks()), layer_decay_rate=0.5)
    assert p.layer_rule == 'ViT rule (backbone.encoder.blocks)'
    layers = layer_by_name(p.groups)
    assert layers['backbone.encoder.patch_embed.weight'] == 0
    assert layers['backbone.encoder.blocks.2.attn.qkv.weight'] == 3
    assert layers['decode_head.weight'] == 4


class SequentialStages(nn.Module):
    """timm ByobNet/NFNet/CSP: stages are plain Sequentials of blocks; a
    StarNet stage starts with a Sequential (ConvBN) downsample."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        down = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
        self.stages = nn.Sequential(
            nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)),
            nn.Sequential(down, nn.Conv2d(4, 4, 1)))
        self.final_conv = nn.Conv2d(4, 4, 1)


def test_sequential_stages_number_their_blocks():
    p = plan(Segmentor(SequentialStages()), layer_decay_rate=0.5)
    layers = layer_by_name(p.groups)
    assert p.num_layers == 4
    assert layers['backbone.stem.weight'] == 0
    assert layers['backbone.stages.0.0.weight'] == 1
    assert layers['backbone.stages.0.1.weight'] == 2
    assert layers['backbone.stages.1.0.0.weight'] == 3  # the downsample
    assert layers['backbone.stages.1.0.1.weight'] == 3
    assert layers['backbone.stages.1.1.weight'] == 4  # last block: not N+1
    assert layers['backbone.final_conv.weight'] == 5
