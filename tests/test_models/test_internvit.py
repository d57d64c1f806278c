"""The InternViT6B backbone: shapes, freezing, checkpointing, pretrained
loading with position-embedding resize, and what it tells the constructor."""
import re

import pytest
import torch
import torch.nn.functional as F

from internvl_optim import LayerDecaySettings, build_param_groups
from internvl_optim.models import InternViT6B
from internvl_optim.models.backbones.intern_vit_6b import resize_pos_embed

from helpers import lr_wd_by_name


def tiny(**kw):
    args = dict(depth=4, embed_dim=32, num_heads=4, patch_size=8,
                img_size=64, pretrain_size=64, out_indices=(0, 1, 2, 3))
    args.update(kw)
    return InternViT6B(**args)


def test_forward_shapes_with_and_without_fpn():
    x = torch.randn(2, 3, 64, 64)
    assert [o.shape for o in tiny()(x)] == [(2, 32, 8, 8)] * 4
    outs = tiny(with_fpn=True)(x)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 32, 32),
                                              (2, 32, 16, 16),
                                              (2, 32, 8, 8), (2, 32, 4, 4)]
    # other input sizes interpolate the position embedding
    assert tiny(out_indices=(3, ))(torch.randn(1, 3, 40, 56))[0].shape == \
        (1, 32, 5, 7)


def test_parameter_names_follow_internvl():
    names = [n for n, _ in tiny(with_fpn=True).named_parameters()]
    assert names[:4] == ['pos_embed', 'cls_token', 'patch_embed.proj.weight',
                         'patch_embed.proj.bias']
    assert 'blocks.0.attn.q_norm.weight' in names
    assert 'blocks.3.ls2.gamma' in names
    assert 'up1.1.weight' in names and 'up2.0.weight' in names
    assert not any(n.startswith(('up3', 'up4')) for n in names)
    final = [n for n, _ in tiny(with_fpn=True, with_final_norm=True)
             .named_parameters() if n.startswith(('up3', 'up4'))]
    assert final == ['up3.1.weight', 'up3.1.bias', 'up4.1.weight',
                     'up4.1.bias']


def test_activation_checkpointing_gives_same_output_and_grads():
    torch.manual_seed(0)
    plain = tiny()
    ckpt = tiny(with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    outs = [sum(o.sum() for o in m.train()(x)) for m in (plain, ckpt)]
    assert torch.allclose(outs[0], outs[1])
    for out in outs:
        out.backward()
    for (n, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), n


def test_freeze_vit_freezes_embeddings_and_blocks_not_fpn():
    model = tiny(with_fpn=True, freeze_vit=True, drop_path_rate=0.1).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'up1.0.weight', 'up1.0.bias', 'up1.1.weight',
                         'up1.1.bias', 'up1.3.weight', 'up1.3.bias',
                         'up2.0.weight', 'up2.0.bias'}
    assert not model.blocks.training and model.up1.training
    model = tiny(with_fpn=True, freeze_vit=True, unfreeze_pos_embed=True)
    assert model.pos_embed.requires_grad
    assert not model.cls_token.requires_grad


def test_layer_depth_and_no_weight_decay():
    model = tiny()
    assert model.get_layer_depth('backbone.pos_embed', 'backbone.') == (0, 6)
    assert model.get_layer_depth('backbone.blocks.2.mlp.fc1.weight',
                                 'backbone.') == (3, 6)
    assert model.get_layer_depth('decode_head.conv_seg.weight',
                                 'backbone.') == (5, 6)
    assert model.no_weight_decay() == {'pos_embed', 'cls_token'}


def test_constructor_uses_the_backbone_method():
    plan = build_param_groups(
        tiny(with_fpn=True),
        LayerDecaySettings.from_paramwise_cfg(dict(layer_decay_rate=0.5)),
        1.0, 0.1)
    assert plan.layer_rule == 'InternViT6B.get_layer_depth'
    got = lr_wd_by_name(plan.groups)
    assert got['pos_embed'] == (1 / 32, 0.0)
    assert got['patch_embed.proj.weight'] == (1 / 32, 0.1)
    assert got['blocks.0.attn.qkv.weight'] == (1 / 16, 0.1)
    assert got['blocks.3.attn.q_norm.weight'] == (1 / 2, 0.0)
    assert got['up1.0.weight'] == (1.0, 0.1)


def test_bad_arguments():
    with pytest.raises(ValueError, match=re.escape(
            'out_indices [4] out of range for depth=4 (valid 0..3)')):
        tiny(out_indices=(0, 4))
    with pytest.raises(ValueError, match=re.escape(
            'with_fpn=True needs exactly 4 out_indices, got [3]')):
        tiny(with_fpn=True, out_indices=(3, ))
    with pytest.raises(ValueError, match=re.escape(
            "norm_type='bn'; valid: ['rms_norm', 'layer_norm']")):
        tiny(norm_type='bn')
    with pytest.raises(ValueError, match=re.escape(
            "norm_type='rms'; valid: ['rms_norm', 'layer_norm'] ('rms' is "
            "now 'rms_norm')")):
        tiny(norm_type='rms')
    with pytest.raises(ValueError, match=re.escape(
            "param_dtype='float16'; valid: ['float32', 'bfloat16']")):
        tiny(param_dtype='float16')
    with pytest.raises(ValueError, match=re.escape(
            'InternViT6B drop_path_rate must be in [0, 1), got 1.5')):
        tiny(drop_path_rate=1.5)
    with pytest.raises(ValueError, match=re.escape(
            'InternViT6B layer_norm_eps must be a finite number, got nan')):
        tiny(layer_norm_eps=float('nan'))
    with pytest.raises(TypeError, match=re.escape(
            "InternViT6B init_values must be a number >= 0, got '0.1' (a "
            'string: write 0.1 without quotes)')):
        tiny(init_values='0.1')
    with pytest.raises(TypeError, match=re.escape(
            'InternViT6B: fpn_norm_cfg was removed: up1 now uses '
            "InternVL's channels-first LayerNorm")):
        tiny(fpn_norm_cfg=dict(type='BN'))


def test_pretrained_pos_embed_resized_from_pretrain_grid(tmp_path):
    torch.manual_seed(0)
    source = tiny(img_size=32)  # 4x4 grid, like 224 -> 16x16 for 6B
    path = tmp_path / 'pretrained.pth'
    torch.save({'module': {f'module.{k}': v
                           for k, v in source.state_dict().items()}}, path)
    target = tiny(img_size=64, pretrained=str(path))  # 8x8 grid
    target.init_weights()
    assert target.pos_embed.shape == (1, 65, 32)
    expected = resize_pos_embed(source.pos_embed.detach(), (8, 8))
    assert torch.equal(target.pos_embed.detach(), expected)
    assert torch.equal(target.pos_embed[:, 0], source.pos_embed[:, 0])
    grid = source.pos_embed[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    direct = F.interpolate(grid, size=(8, 8), mode='bicubic',
                           align_corners=False).flatten(2).transpose(1, 2)
    assert torch.allclose(target.pos_embed[:, 1:], direct)
    assert torch.equal(target.blocks[1].mlp.fc1.weight,
                       source.blocks[1].mlp.fc1.weight)


def test_6b_on_meta_device_is_the_real_size():
    with torch.device('meta'):
        model = InternViT6B(img_size=504, with_fpn=True)
    assert model.pos_embed.shape == (1, 36 * 36 + 1, 3200)
    vit = sum(p.numel() for n, p in model.named_parameters()
              if not n.startswith('up'))
    assert round(vit / 1e9, 2) == 5.91
