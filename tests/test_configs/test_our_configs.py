"""Every shipped config loads, builds its model on the meta device (the 6B
model never allocates memory) and builds its optimizer with our constructor.
"""
import glob
import os
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from internvl_optim.analysis.meta_device import meta_device
from internvl_optim.engine.config_checks import (check_our_import,
                                          check_schedulers_keep_ratios)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
CONFIGS = sorted(
    os.path.relpath(p, ROOT)
    for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'),
                       recursive=True) if '_base_' not in p)
FULL = 'configs/intern_vit_6b/full_tuning/' \
       'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5.py'


def build(config):
    from mmseg.registry import MODELS
    cfg = Config.fromfile(os.path.join(ROOT, config))
    init_default_scope(cfg.default_scope)
    with meta_device():
        model = MODELS.build(cfg.model)
    assert all(p.is_meta for p in model.parameters())
    return cfg, model, build_optim_wrapper(model, cfg.optim_wrapper)


def lrs(wrapper):
    return {n: (g['lr'], g['weight_decay'])
            for g in wrapper.optimizer.param_groups
            for n in g['param_names']}


def test_the_configs_are_all_found():
    # 16 + 300M full and head tuning, 6B from the 448px weights;
    # + the tiny VLM and the 6B-ViT + 70B-LLM planning recipe; the LP-FT
    # demo and the hybrid-optimizer demo; transformers' DINOv3 and ConvNeXt
    # encoders
    assert len(CONFIGS) == 25, CONFIGS
    assert 'configs/demo/internvit_tiny_lp_ft_synthetic_ade20k.py' in CONFIGS
    assert 'configs/multimodal/internvl_tiny_vlm_synthetic.py' in CONFIGS


FSDP_CONFIGS = [c for c in CONFIGS if c.endswith('_fsdp.py')]


@pytest.mark.parametrize('config', FSDP_CONFIGS)
def test_fsdp_configs_name_a_wrap_policy_mmengine_can_call(config):
    # MMEngine builds functools.partial(type, **kwargs) and calls it with
    # module=, recurse=, nonwrapped_numel= (a policy class fails there)
    import functools

    from mmengine.registry import FUNCTIONS
    from internvl_optim.models.backbones.intern_vit_6b import Block
    cfg = Config.fromfile(os.path.join(ROOT, config))
    assert cfg.strategy.type == 'ResumableFSDPStrategy'
    assert cfg.strategy.model_wrapper.use_orig_params is True
    policy_cfg = dict(cfg.strategy.model_wrapper.auto_wrap_policy)
    with FUNCTIONS.switch_scope_and_registry(None):
        policy = functools.partial(FUNCTIONS.get(policy_cfg.pop('type')),
                                   **policy_cfg)
    block = Block(dim=8, num_heads=2)
    assert policy(module=block, recurse=False, nonwrapped_numel=10) is True
    assert policy(module=block.attn, recurse=False,
                  nonwrapped_numel=10) is False


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_model_and_optimizer(config):
    cfg, model, wrapper = build(config)
    check_our_import(cfg)
    check_schedulers_keep_ratios(cfg)
    groups = wrapper.optimizer.param_groups
    assert groups[0]['lr'] == cfg.optim_wrapper.optimizer.lr
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(len(g['params']) for g in groups) == len(trainable)


def expected_6b_lr(name, base=4e-5, rate=0.95, n=48):
    """The rule written out for InternViT-6B names (N = 48)."""
    block = re.match(r'backbone\.blocks\.(\d+)\.', name)
    if block:
        return base * rate**(n - int(block.group(1)))
    if name in ('backbone.pos_embed', 'backbone.cls_token') or \
            name.startswith('backbone.patch_embed.'):
        return base * rate**(n + 1)
    return base  # heads, FPN adapters


def test_6b_full_tuning_every_lr_follows_the_rule():
    cfg, model, wrapper = build(FULL)
    assert sum(p.numel() for p in model.backbone.parameters()) > 6.0e9
    got = lrs(wrapper)
    assert len(got) == len(list(model.parameters()))
    for name, (lr, _) in got.items():
        assert lr == pytest.approx(expected_6b_lr(name), rel=1e-12), name
    assert got['backbone.pos_embed'] == pytest.approx((4e-5 * 0.95**49, 0.0))
    assert got['backbone.cls_token'][1] == 0.0
    assert got['backbone.blocks.47.mlp.fc1.weight'] == pytest.approx(
        (4e-5 * 0.95, 0.05))
    assert got['backbone.blocks.0.attn.qkv.weight'] == pytest.approx(
        (4e-5 * 0.95**48, 0.05))
    assert got['decode_head.conv_seg.weight'] == (4e-5, 0.05)
    assert got['auxiliary_head.conv_seg.weight'] == (4e-5, 0.05)
    assert got['backbone.up1.0.weight'] == (4e-5, 0.05)
    assert len(wrapper.optimizer.param_groups) == 2 * 50


def test_head_tuning_trains_only_heads_and_fpn():
    _, _, wrapper = build('configs/intern_vit_6b/head_tuning/'
                          'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_'
                          'frozen.py')
    got = lrs(wrapper)
    assert {n.split('.')[0] for n in got} == {'backbone', 'decode_head',
                                             'auxiliary_head'}
    assert all(n.startswith('backbone.up') for n in got
               if n.startswith('backbone.'))
    assert {lr for lr, _ in got.values()} == {4e-5}


def test_linear_probing_trains_one_linear_layer():
    _, _, wrapper = build('configs/intern_vit_6b/linear_probing/'
                          'linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_'
                          'frozen.py')
    assert lrs(wrapper) == {'decode_head.conv_seg.weight': (4e-5, 0.0),
                            'decode_head.conv_seg.bias': (4e-5, 0.0)}


@pytest.mark.parametrize('k, iters', [(16, 5000), (8, 10000), (4, 20000),
                                      (2, 40000), (1, 80000)])
def test_few_shot_configs(k, iters):
    path = glob.glob(os.path.join(ROOT, 'configs/intern_vit_6b/few_shot',
                                  f'*_1of{k}.py'))[0]
    cfg = Config.fromfile(path)
    assert cfg.train_dataloader.dataset.ann_file == f'splits/train_1of{k}.txt'
    assert cfg.train_cfg.max_iters == iters
    assert cfg.param_scheduler[1].end == iters
    assert cfg.model.backbone.freeze_vit


# --- InternVL's settings, bf16, 300M, 448px weights ---------------

def test_6b_recipes_keep_internvl_backbone_settings_and_bf16():
    full = Config.fromfile(os.path.join(ROOT, FULL)).model.backbone
    # InternVL's full-tuning recipe, argument by argument
    assert {k: full[k] for k in (
        'pretrain_size', 'img_size', 'patch_size', 'embed_dim', 'depth',
        'num_heads', 'mlp_ratio', 'qkv_bias', 'drop_path_rate',
        'init_values', 'with_cp', 'use_flash_attn', 'qk_normalization',
        'layerscale_no_force_fp32', 'with_fpn', 'freeze_vit',
        'out_indices')} == dict(
            pretrain_size=224, img_size=504, patch_size=14, embed_dim=3200,
            depth=48, num_heads=25, mlp_ratio=4., qkv_bias=False,
            drop_path_rate=0.4, init_values=0.1, with_cp=True,
            use_flash_attn=True, qk_normalization=True,
            layerscale_no_force_fp32=True, with_fpn=True, freeze_vit=False,
            out_indices=[11, 23, 35, 47])
    dtypes = {}
    for config in CONFIGS:
        if 'intern_vit' in config:
            cfg = Config.fromfile(os.path.join(ROOT, config))
            dtypes[os.path.basename(config)] = cfg.model.backbone.get(
                'param_dtype', 'float32')
    assert dtypes == {
        'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5.py': 'float32',
        'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_fsdp.py': 'float32',
        'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_deepspeed.py':
        'bfloat16',
        'upernet_intern_vit_6b_448px_v1_5_504_80k_ade20k_bs16_lr4e-5_'
        'deepspeed.py': 'bfloat16',
        'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_frozen.py':
        'bfloat16',
        'linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_frozen.py':
        'bfloat16',
        **{os.path.basename(c): 'bfloat16' for c in CONFIGS
           if '/few_shot/' in c},
        'upernet_intern_vit_300m_504_80k_ade20k_bs16_lr4e-5.py': 'float32',
        'upernet_intern_vit_300m_504_80k_ade20k_bs16_lr4e-5_frozen.py':
        'bfloat16',
    }


def vit_params(width, depth, grid, patch=14, qkv_bias=True, qk_norm=False,
               layer_norm=True):
    """InternViT's parameter count written out from its layer shapes."""
    block = (3 * width * width + (3 * width if qkv_bias else 0)  # qkv
             + width * width + width                            # proj
             + 2 * (width * 4 * width) + 4 * width + width      # fc1, fc2
             + (4 if layer_norm else 2) * width                 # norm1, norm2
             + (2 * width if qk_norm else 0) + 2 * width)       # q/k norm, ls
    embed = width * 3 * patch * patch + width + (grid * grid + 1) * width \
        + width
    return depth * block + embed


def test_300m_full_tuning_every_lr_follows_the_rule():
    _, model, wrapper = build('configs/intern_vit_300m/'
                              'upernet_intern_vit_300m_504_80k_ade20k_bs16_'
                              'lr4e-5.py')
    vit = sum(p.numel() for n, p in model.backbone.named_parameters()
              if not n.startswith('up'))
    assert vit == vit_params(1024, 24, 36)
    assert round(vit / 1e6) == 304  # 'InternViT-300M'
    assert isinstance(model.backbone.blocks[0].norm1, torch.nn.LayerNorm)
    got = lrs(wrapper)
    for name, (lr, _) in got.items():
        want = expected_6b_lr(name, rate=0.9, n=24)
        assert lr == pytest.approx(want, rel=1e-12), name
    assert got['backbone.blocks.0.attn.qkv.bias'] == pytest.approx(
        (4e-5 * 0.9**24, 0.0))
    assert got['backbone.blocks.23.norm1.weight'] == pytest.approx(
        (4e-5 * 0.9, 0.0))


def test_300m_head_tuning_is_frozen_bf16_vit():
    _, model, wrapper = build('configs/intern_vit_300m/'
                              'upernet_intern_vit_300m_504_80k_ade20k_bs16_'
                              'lr4e-5_frozen.py')
    assert model.backbone.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert model.backbone.up1[0].weight.dtype == torch.float32
    assert all(n.startswith('backbone.up') for n in lrs(wrapper)
               if n.startswith('backbone.'))


def test_6b_from_448px_v1_5_weights():
    cfg, model, wrapper = build('configs/intern_vit_6b/full_tuning/'
                                'upernet_intern_vit_6b_448px_v1_5_504_80k_'
                                'ade20k_bs16_lr4e-5_deepspeed.py')
    assert cfg.optim_wrapper.type == 'DeepSpeedOptimWrapper'
    assert len(model.backbone.blocks) == 45
    assert model.backbone.pos_embed.shape == (1, 36 * 36 + 1, 3200)
    vit = sum(p.numel() for n, p in model.backbone.named_parameters()
              if not n.startswith('up'))
    assert vit == vit_params(3200, 45, 36, qkv_bias=False, qk_norm=True,
                             layer_norm=False)
    got = lrs(wrapper)
    for name, (lr, _) in got.items():
        assert lr == pytest.approx(expected_6b_lr(name, n=45),
                                   rel=1e-12), name
