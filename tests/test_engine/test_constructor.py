"""The MMEngine adapter: config handling, optimizer kinds, the logged table."""
import re

import pytest
from mmengine.logging import MMLogger

from internvl_optim import LayerDecayOptimizerConstructor

from helpers import lr_wd_by_name
from toy_models import ToyInternViT, ToySegmentor


def build(optimizer=None, paramwise_cfg=None, model=None, **wrapper):
    optimizer = optimizer or dict(type='AdamW', lr=1.0, weight_decay=0.1)
    constructor = LayerDecayOptimizerConstructor(
        dict(type='OptimWrapper', optimizer=optimizer, **wrapper),
        paramwise_cfg)
    model = model or ToySegmentor(ToyInternViT(depth=3))
    return constructor, constructor(model)


def test_empty_paramwise_cfg_still_builds_decay_groups():
    # MMEngine's default __call__ would put everything in one plain group.
    _, wrapper = build(paramwise_cfg=None)
    got = lr_wd_by_name(wrapper.optimizer.param_groups)
    assert got['backbone.pos_embed'] == (1.0, 0.0)
    assert got['backbone.blocks.0.attn.qkv.weight'] == (1.0, 0.1)
    # every layer at the base lr: one group per weight decay, over all of
    # them (layers 0 to N + 1 = 4)
    assert [(g['group_name'], g['layer_ids'], g['weight_decay'])
            for g in wrapper.optimizer.param_groups] == [
        ('layers_0-4_decay', [0, 1, 2, 3, 4], 0.1),
        ('layers_0-4_no_decay', [0, 1, 2, 3, 4], 0.0)]


def test_weight_decay_default_comes_from_the_optimizer():
    _, wrapper = build(optimizer=dict(type='AdamW', lr=1.0),
                       paramwise_cfg=dict(layer_decay_rate=0.5))
    got = lr_wd_by_name(wrapper.optimizer.param_groups)
    assert got['backbone.blocks.2.attn.qkv.weight'] == (0.5, 0.01)
    assert got['backbone.blocks.2.attn.proj.bias'] == (0.5, 0.0)


def test_sgd_and_logged_lr_is_base_lr():
    _, wrapper = build(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
        paramwise_cfg=dict(layer_decay_rate=0.5))
    assert wrapper.get_lr()['lr'][0] == 0.1
    got = lr_wd_by_name(wrapper.optimizer.param_groups)
    assert got['backbone.cls_token'] == (0.1 / 16, 0.0)
    assert got['decode_head.conv_seg.weight'] == (0.1, 1e-4)


def test_groups_carry_their_keys_through_the_optimizer():
    _, wrapper = build(paramwise_cfg=dict(layer_decay_rate=0.5))
    group = wrapper.optimizer.param_groups[2]
    assert group['group_name'] == 'layer_3_decay'
    assert group['layer_id'] == 3 and group['lr_scale'] == 0.5
    assert group['param_names'][0] == 'backbone.blocks.2.attn.qkv.weight'


def test_optimizer_without_lr():
    with pytest.raises(ValueError, match=re.escape(
            'optim_wrapper.optimizer.lr is required by '
            'LayerDecayOptimizerConstructor')):
        build(optimizer=dict(type='AdamW'))


def test_unknown_optimizer_type():
    with pytest.raises(ValueError, match=re.escape(
            "optim_wrapper.optimizer.type='AdamX' is not a registered "
            'optimizer')):
        build(optimizer=dict(type='AdamX', lr=1.0))


def test_bad_paramwise_cfg_fails_in_init_before_any_model_work():
    with pytest.raises(ValueError, match='Did you mean'):
        LayerDecayOptimizerConstructor(
            dict(optimizer=dict(type='AdamW', lr=1.0)),
            dict(layer_decay=0.9))


def test_one_compact_table_is_logged(tmp_path):
    log_file = tmp_path / 'log.txt'
    MMLogger.get_instance('table_test', log_file=str(log_file))
    model = ToySegmentor(ToyInternViT(depth=3))
    model.backbone.cls_token.requires_grad = False
    build(paramwise_cfg=dict(layer_decay_rate=0.5), model=model)
    text = log_file.read_text()
    assert '1 frozen parameter tensors (8 elements) are left out' in text
    assert 'ViT rule (backbone.blocks), num_layers=3, layer_decay_rate=0.5' \
        in text
    rows = [line.split() for line in text.splitlines()
            if re.match(r'layer_\d+_', line)]
    assert len(rows) == 10  # one per group, not one per parameter
    assert rows[0] == ['layer_4_decay', '4', '1', '1.0000e+00', '0.1', '5',
                       '680', 'heads,', 'necks']
    assert rows[-1] == ['layer_0_no_decay', '0', '0.0625', '6.2500e-02', '0',
                        '2', '48', 'embeddings']
    layer_2 = next(r for r in rows if r[0] == 'layer_2_decay')
    assert layer_2[:5] + layer_2[-2:] == ['layer_2_decay', '2', '0.25',
                                          '2.5000e-01', '0.1', 'block', '1']
    total = next(line.split() for line in text.splitlines()
                 if line.startswith('total'))
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total == ['total', '56', f'{n_params:,}']
    assert 'backbone.blocks.0.attn.qkv.weight' not in text


def test_zero_redundancy_optimizer_type_reads_inner_default_weight_decay():
    constructor = LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='ZeroRedundancyOptimizer',
                            optimizer_type='AdamW', lr=1.0)))
    assert constructor.base_weight_decay == 0.01
