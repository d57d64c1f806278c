"""Exact lr / weight decay per parameter for ViT namings, on the pure core
(no MMEngine involved).  rate 0.5 and lr 1.0 make every lr an exact power of
two."""
import pytest
import torch
from torch import nn

from internvl_optim import LayerDecaySettings, build_param_groups
from internvl_optim.core.names import strip_wrapper_prefixes

from helpers import layer_by_name, lr_wd_by_name
from toy_models import (HFInternVisionModel, ToyInternViT, ToySegmentor)

WD = 0.1

# Weight decay of each parameter inside an InternViT block, by suffix.
BLOCK_WD = {
    'norm1.weight': 0.0,            # RMSNorm (class name), 1-D
    'attn.qkv.weight': WD,
    'attn.q_norm.weight': 0.0,
    'attn.k_norm.weight': 0.0,
    'attn.proj.weight': WD,
    'attn.proj.bias': 0.0,
    'ls1.gamma': 0.0,               # 1-D
    'norm2.weight': 0.0,
    'mlp.fc1.weight': WD,
    'mlp.fc1.bias': 0.0,
    'mlp.fc2.weight': WD,
    'mlp.fc2.bias': 0.0,
    'ls2.gamma': 0.0,
}


def settings(**cfg):
    return LayerDecaySettings.from_paramwise_cfg(cfg)


def internvit_expected(prefix='backbone.'):
    """Hand-derived plan for ToyInternViT(depth=3) in a segmentor,
    rate 0.5: head 1, block2 1/2, block1 1/4, block0 1/8, embeddings 1/16."""
    expected = {
        f'{prefix}patch_embed.proj.weight': (1 / 16, WD),
        f'{prefix}patch_embed.proj.bias': (1 / 16, 0.0),
        f'{prefix}pos_embed': (1 / 16, 0.0),      # 3-D, skip list/token
        f'{prefix}cls_token': (1 / 16, 0.0),
        f'{prefix}up1.0.weight': (1.0, WD),       # FPN adapter: head lr
        f'{prefix}up1.0.bias': (1.0, 0.0),
        f'{prefix}up1.1.weight': (1.0, 0.0),      # BatchNorm
        f'{prefix}up1.1.bias': (1.0, 0.0),
        f'{prefix}up2.weight': (1.0, WD),
        f'{prefix}up2.bias': (1.0, 0.0),
        'decode_head.layers.0.weight': (1.0, WD),
        'decode_head.layers.0.bias': (1.0, 0.0),
        'decode_head.layers.1.weight': (1.0, WD),  # not block 1!
        'decode_head.layers.1.bias': (1.0, 0.0),
        'decode_head.bn.weight': (1.0, 0.0),
        'decode_head.bn.bias': (1.0, 0.0),
        'decode_head.conv_seg.weight': (1.0, WD),
        'decode_head.conv_seg.bias': (1.0, 0.0),
    }
    for i, lr in enumerate((1 / 8, 1 / 4, 1 / 2)):
        for suffix, wd in BLOCK_WD.items():
            expected[f'{prefix}blocks.{i}.{suffix}'] = (lr, wd)
    return expected


def test_internvit_segmentation_naming_exact():
    model = ToySegmentor(ToyInternViT(depth=3))
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1.0, WD)
    assert plan.num_layers == 3
    assert plan.layer_rule == 'ViT rule (backbone.blocks)'
    assert lr_wd_by_name(plan.groups) == internvit_expected()
    layers = layer_by_name(plan.groups)
    assert layers['backbone.cls_token'] == 0
    assert layers['backbone.blocks.0.attn.qkv.weight'] == 1
    assert layers['backbone.blocks.2.attn.qkv.weight'] == 3
    assert layers['decode_head.layers.1.weight'] == 4
    assert layers['backbone.up1.0.weight'] == 4


def test_pos_embed_and_cls_token_get_zero_decay_without_skip_list():
    # The token rule, not only no_weight_decay(), catches 3-D embeddings.
    model = ToySegmentor(ToyInternViT(depth=3, declare_skip=False))
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1.0, WD)
    assert lr_wd_by_name(plan.groups) == internvit_expected()
    reasons = {p.name: p.no_decay_reason for p in plan.params}
    assert reasons['backbone.pos_embed'] == 'token'
    assert reasons['backbone.blocks.0.norm1.weight'] == 'ndim'
    assert reasons['backbone.blocks.0.attn.proj.bias'] == 'ndim'
    assert reasons['backbone.blocks.0.attn.qkv.weight'] is None


def test_groups_structure_and_order():
    model = ToySegmentor(ToyInternViT(depth=3))
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1.0, WD)
    names = [g['group_name'] for g in plan.groups]
    assert names == [
        'layer_4_decay', 'layer_4_no_decay', 'layer_3_decay',
        'layer_3_no_decay', 'layer_2_decay', 'layer_2_no_decay',
        'layer_1_decay', 'layer_1_no_decay', 'layer_0_decay',
        'layer_0_no_decay'
    ]
    first = plan.groups[0]
    assert first['lr'] == 1.0 and first['lr_scale'] == 1.0
    assert set(first) == {'params', 'param_names', 'lr', 'weight_decay',
                          'layer_id', 'lr_scale', 'group_name'}
    assert plan.groups[-1]['lr_scale'] == 1 / 16
    assert plan.groups[-1]['param_names'] == [
        'backbone.pos_embed', 'backbone.cls_token',
        'backbone.patch_embed.proj.bias']  # model order
    # every trainable parameter exactly once
    all_params = [p for g in plan.groups for p in g['params']]
    assert len(all_params) == len({id(p) for p in all_params})
    assert len(all_params) == len(list(model.parameters()))
    # group count grows with layers, not parameters
    deep = build_param_groups(ToySegmentor(ToyInternViT(depth=12)),
                              settings(layer_decay_rate=0.5), 1.0, WD)
    assert len(deep.groups) == 2 * (12 + 2)


def test_groups_are_deterministic():
    torch.manual_seed(0)
    a = build_param_groups(ToySegmentor(ToyInternViT()), settings(), 1.0, WD)
    b = build_param_groups(ToySegmentor(ToyInternViT()), settings(), 1.0, WD)
    assert [g['param_names'] for g in a.groups] == \
        [g['param_names'] for g in b.groups]


def test_groups_feed_torch_adamw_and_step():
    model = ToySegmentor(ToyInternViT(depth=3))
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1e-3, WD)
    opt = torch.optim.AdamW(plan.groups, lr=1e-3, foreach=True)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    assert [g['lr'] for g in opt.param_groups] == [
        g['lr'] for g in plan.groups]
    assert opt.state_dict()['param_groups'][0]['param_names'] == \
        plan.groups[0]['param_names']


def test_hf_naming_bare_vision_model():
    model = HFInternVisionModel(depth=2)
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1.0, WD)
    assert plan.num_layers == 2
    assert plan.layer_rule == 'ViT rule (encoder.layers)'
    expected = {
        'embeddings.class_embedding': (1 / 8, 0.0),
        'embeddings.patch_embedding.weight': (1 / 8, WD),
        'embeddings.patch_embedding.bias': (1 / 8, 0.0),
        'embeddings.position_embedding': (1 / 8, 0.0),
    }
    for i, lr in enumerate((1 / 4, 1 / 2)):
        for suffix, wd in {
                'attn.qkv.weight': WD, 'attn.q_norm.weight': 0.0,
                'attn.k_norm.weight': 0.0, 'attn.proj.weight': WD,
                'attn.proj.bias': 0.0, 'mlp.fc1.weight': WD,
                'mlp.fc1.bias': 0.0, 'mlp.fc2.weight': WD,
                'mlp.fc2.bias': 0.0, 'norm1.weight': 0.0, 'norm1.bias': 0.0,
                'norm2.weight': 0.0, 'norm2.bias': 0.0, 'ls1': 0.0,
                'ls2': 0.0}.items():
            expected[f'encoder.layers.{i}.{suffix}'] = (lr, wd)
    assert lr_wd_by_name(plan.groups) == expected


def test_hf_naming_under_custom_backbone_name():
    model = ToySegmentor(HFInternVisionModel(depth=2), 'img_backbone')
    plan = build_param_groups(
        model, settings(layer_decay_rate=0.5, backbone_name='img_backbone'),
        1.0, WD)
    got = lr_wd_by_name(plan.groups)
    assert got['img_backbone.embeddings.position_embedding'] == (1 / 8, 0.0)
    assert got['img_backbone.encoder.layers.1.attn.qkv.weight'] == (1 / 2, WD)
    assert got['decode_head.layers.1.weight'] == (1.0, WD)


def test_every_token_kind_is_an_embedding_without_decay():
    backbone = ToyInternViT(depth=2, declare_skip=False)
    backbone.reg_token = nn.Parameter(torch.zeros(1, 4, 8))
    backbone.register_tokens = nn.Parameter(torch.zeros(1, 2, 8))
    backbone.mask_token = nn.Parameter(torch.zeros(1, 1, 8))
    backbone.dist_token = nn.Parameter(torch.zeros(1, 1, 8))
    plan = build_param_groups(ToySegmentor(backbone),
                              settings(layer_decay_rate=0.5), 1.0, WD)
    got = lr_wd_by_name(plan.groups)
    for token in ('reg_token', 'register_tokens', 'mask_token', 'dist_token',
                  'cls_token', 'pos_embed'):
        assert got[f'backbone.{token}'] == (1 / 8, 0.0), token


def test_rmsnorm_2d_parameter_zero_decay_by_module_type():
    backbone = ToyInternViT(depth=1)
    from toy_models import ScaleNorm2d
    backbone.blocks[0].extra_norm = ScaleNorm2d(8)
    plan = build_param_groups(ToySegmentor(backbone),
                              settings(layer_decay_rate=0.5), 1.0, WD)
    got = lr_wd_by_name(plan.groups)
    assert got['backbone.blocks.0.extra_norm.scale'] == (1 / 2, 0.0)
    reasons = {p.name: p.no_decay_reason for p in plan.params}
    assert reasons['backbone.blocks.0.extra_norm.scale'] == 'norm'


def test_torch_rmsnorm_and_layernorm_without_bias_count_as_norms():
    backbone = ToyInternViT(depth=1)
    backbone.blocks[0].norm1 = nn.RMSNorm(8)
    plan = build_param_groups(ToySegmentor(backbone), settings(), 1.0, WD)
    reasons = {p.name: p.no_decay_reason for p in plan.params}
    assert reasons['backbone.blocks.0.norm1.weight'] == 'ndim'
    from internvl_optim.core.weight_decay import is_norm_module
    assert is_norm_module(nn.RMSNorm(8))
    assert is_norm_module(nn.LayerNorm(8, bias=False))
    assert is_norm_module(nn.GroupNorm(2, 8))
    assert not is_norm_module(nn.Conv2d(2, 2, 1))


def test_skip_list_matches_full_names_and_keywords():
    backbone = ToyInternViT(depth=2, declare_skip=False)
    backbone.no_weight_decay = lambda: {'blocks.0.attn.qkv', 'up2.weight'}
    backbone.no_weight_decay_keywords = lambda: {'fc2.weight'}
    plan = build_param_groups(ToySegmentor(backbone), settings(), 1.0, WD)
    got = lr_wd_by_name(plan.groups)
    assert got['backbone.blocks.0.attn.qkv.weight'] == (1.0, 0.0)
    assert got['backbone.blocks.1.attn.qkv.weight'] == (1.0, WD)
    assert got['backbone.up2.weight'] == (1.0, 0.0)
    assert got['backbone.blocks.1.mlp.fc2.weight'] == (1.0, 0.0)
    assert got['backbone.blocks.1.mlp.fc1.weight'] == (1.0, WD)


def test_frozen_parameters_do_not_shift_layer_ids():
    model = ToySegmentor(ToyInternViT(depth=3))
    for p in model.backbone.blocks[0].parameters():
        p.requires_grad = False
    model.backbone.cls_token.requires_grad = False
    messages = []
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1.0, WD,
                              warn=messages.append)
    got = lr_wd_by_name(plan.groups)
    expected = {n: v for n, v in internvit_expected().items()
                if not n.startswith('backbone.blocks.0.')
                and n != 'backbone.cls_token'}
    assert got == expected
    assert len(plan.frozen) == 14
    assert messages == [
        '14 frozen parameter tensors (600 elements) are left out of the '
        'optimizer'
    ]


def test_tied_parameters_appear_once():
    model = ToySegmentor(ToyInternViT(depth=2))
    model.decode_head.conv_tied = nn.Conv2d(3, 8, 2, 2)
    model.decode_head.conv_tied.weight = model.backbone.patch_embed.proj.weight
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1.0, WD)
    names = [n for g in plan.groups for n in g['param_names']]
    assert names.count('backbone.patch_embed.proj.weight') == 1
    assert 'decode_head.conv_tied.weight' not in names
    torch.optim.AdamW(plan.groups)  # no "more than one group" error


@pytest.mark.parametrize('wrap', ['ddp_like', 'compile_like', 'nested'])
def test_wrapper_prefixes_never_reach_rules(wrap):
    inner = ToySegmentor(ToyInternViT(depth=3))

    class Wrapper(nn.Module):

        def __init__(self, attr, module):
            super().__init__()
            setattr(self, attr, module)

    if wrap == 'ddp_like':
        model = Wrapper('module', inner)
    elif wrap == 'compile_like':
        model = Wrapper('_orig_mod', inner)
    else:
        inner.backbone.blocks[1] = Wrapper('_checkpoint_wrapped_module',
                                           inner.backbone.blocks[1])
        model = Wrapper('module', Wrapper('_fsdp_wrapped_module', inner))
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1.0, WD)
    assert lr_wd_by_name(plan.groups) == internvit_expected()


def test_strip_wrapper_prefixes():
    assert strip_wrapper_prefixes(
        'module._fsdp_wrapped_module.backbone.blocks.0.'
        '_checkpoint_wrapped_module.attn.qkv.weight') == \
        'backbone.blocks.0.attn.qkv.weight'
    assert strip_wrapper_prefixes('_orig_mod.module.decode_head.w') == \
        'decode_head.w'
    # `module` deeper down is a real attribute, kept
    assert strip_wrapper_prefixes('head.module.weight') == 'head.module.weight'


def test_custom_keys_multiply_lr_and_set_decay():
    model = ToySegmentor(ToyInternViT(depth=3))
    plan = build_param_groups(
        model,
        settings(layer_decay_rate=0.5,
                 custom_keys={'decode_head': dict(lr_mult=10.0),
                              'pos_embed': dict(decay_mult=1.0)}),
        1.0, WD)
    got = lr_wd_by_name(plan.groups)
    assert got['decode_head.conv_seg.weight'] == (10.0, WD)
    assert got['decode_head.conv_seg.bias'] == (10.0, 0.0)
    assert got['backbone.pos_embed'] == (1 / 16, WD)  # override the no-decay
    assert got['backbone.cls_token'] == (1 / 16, 0.0)
    names = [g['group_name'] for g in plan.groups]
    assert names[:4] == ['layer_4_decay', 'layer_4_no_decay',
                         'layer_4_decode_head_decay',
                         'layer_4_decode_head_no_decay']
    assert 'layer_0_pos_embed_decay' in names


def test_regex_spec_for_custom_backbone():

    class Trunk(nn.Module):

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 2)
            self.trunk = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
            self.final = nn.Linear(4, 4)

    model = ToySegmentor(Trunk())
    plan = build_param_groups(
        model,
        settings(layer_decay_rate=0.5,
                 layer_regex=dict(embed=r'^stem\.', blocks=r'^trunk\.(\d+)\.')),
        1.0, WD)
    assert plan.num_layers == 2
    got = lr_wd_by_name(plan.groups)
    assert got['backbone.stem.weight'] == (1 / 8, WD)
    assert got['backbone.trunk.0.weight'] == (1 / 4, WD)
    assert got['backbone.trunk.1.bias'] == (1 / 2, 0.0)
    assert got['backbone.final.weight'] == (1.0, WD)
    assert got['decode_head.layers.1.weight'] == (1.0, WD)


def test_model_get_layer_depth_wins():

    class WithDepth(ToyInternViT):

        def get_layer_depth(self, name, prefix=''):
            # everything in layer 1 of 2 blocks (num_layers + 2 = 4)
            assert name.startswith(prefix)
            return 1, 4

    model = ToySegmentor(WithDepth(depth=3))
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1.0, WD)
    assert plan.num_layers == 2
    assert plan.layer_rule == 'WithDepth.get_layer_depth'
    got = lr_wd_by_name(plan.groups)
    assert got['backbone.blocks.2.mlp.fc1.weight'] == (1 / 4, WD)
    assert got['decode_head.conv_seg.weight'] == (1.0, WD)


def test_backbone_get_layer_id():

    class WithId(ToyInternViT):

        def get_layer_id(self, rel_name):
            return 0 if rel_name.startswith('blocks.0.') else 2

    model = ToySegmentor(WithId(depth=3))
    plan = build_param_groups(model, settings(layer_decay_rate=0.5), 1.0, WD)
    got = lr_wd_by_name(plan.groups)
    assert got['backbone.blocks.0.mlp.fc1.weight'] == (1 / 16, WD)
    assert got['backbone.blocks.1.mlp.fc1.weight'] == (1 / 4, WD)
    assert got['decode_head.conv_seg.weight'] == (1.0, WD)
