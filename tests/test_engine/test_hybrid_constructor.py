"""The hybrid optimizer through MMEngine: ``optimizer.type='MuonAdamW'``
with our constructor routes every parameter (``paramwise_cfg.muon`` not
needed), the optimizer keeps the planned lr and weight decay per group, the
table says each group's update; routing asked for another optimizer,
ZeroRedundancyOptimizer around MuonAdamW, and a sharding strategy are
refused before anything is built, naming the keys."""
import pytest
import torch
from mmengine.config import Config

from internvl_optim import LayerDecayOptimizerConstructor
from internvl_optim.engine.config_checks import check_hybrid_strategy
from internvl_optim.optim import MuonAdamW

from helpers import lr_wd_by_name
from toy_models import ToyInternViT, ToySegmentor

HYBRID = dict(type='MuonAdamW', lr=1.0, weight_decay=0.1)


def build(optimizer, paramwise_cfg=None):
    constructor = LayerDecayOptimizerConstructor(
        dict(type='OptimWrapper', optimizer=optimizer),
        paramwise_cfg or dict(layer_decay_rate=0.5))
    return constructor(ToySegmentor(ToyInternViT(depth=2)))


def test_muon_adamw_by_name_routes_every_parameter():
    wrapper = build(dict(HYBRID, momentum=0.9))
    optimizer = wrapper.optimizer
    assert isinstance(optimizer, MuonAdamW)
    updates = {n: g['algorithm'] for g in optimizer.param_groups
               for n in g['param_names']}
    assert updates['backbone.blocks.1.attn.qkv.weight'] == 'muon'
    assert updates['backbone.blocks.1.norm1.weight'] == 'adamw'
    assert updates['backbone.pos_embed'] == 'adamw'
    assert updates['decode_head.conv_seg.weight'] == 'adamw'
    got = lr_wd_by_name(optimizer.param_groups)
    assert got['backbone.blocks.1.attn.qkv.weight'] == (0.5, 0.1)
    assert got['backbone.blocks.0.attn.qkv.weight'] == (0.25, 0.1)
    assert got['backbone.pos_embed'] == (0.125, 0.0)
    assert {g['momentum'] for g in optimizer.param_groups} == {0.9}
    # one step through MMEngine's wrapper moves every trainable parameter
    model_params = [p for g in optimizer.param_groups for p in g['params']]
    before = [p.detach().clone() for p in model_params]
    loss = sum((p.float() ** 2).sum() for p in model_params)
    wrapper.update_params(loss)
    assert all(not torch.equal(a, b) for a, b in zip(before, model_params)
               if a.abs().sum() > 0)


def test_routing_keys_without_the_hybrid_are_refused():
    with pytest.raises(ValueError, match=(
            r"paramwise_cfg.muon routes each parameter to Muon or AdamW for "
            r"the hybrid optimizer, but optim_wrapper.optimizer.type is "
            r"'AdamW': set type='MuonAdamW', or remove paramwise_cfg.muon")):
        build(dict(type='AdamW', lr=1.0),
              dict(layer_decay_rate=0.5, muon=True))


def test_zero_redundancy_around_the_hybrid_is_refused():
    with pytest.raises(ValueError, match=(
            r"ZeroRedundancyOptimizer partitions parameters across ranks, "
            r"and Muon needs each matrix whole")):
        build(dict(type='ZeroRedundancyOptimizer', optimizer_type='MuonAdamW',
                   lr=1.0))


def test_the_table_says_each_groups_update(tmp_path):
    from mmengine.logging import MMLogger
    logger = MMLogger.get_instance('hybrid_table', log_file=str(
        tmp_path / 'log.txt'))
    constructor = LayerDecayOptimizerConstructor(
        dict(type='OptimWrapper', optimizer=HYBRID),
        dict(layer_decay_rate=0.5))
    constructor(ToySegmentor(ToyInternViT(depth=2)))
    text = (tmp_path / 'log.txt').read_text()
    assert 'layer_2_decay_muon' in text and 'muon (flatten)' in text
    assert 'Muon: 12 tensors, 1,664 elements; AdamW: 32 tensors, ' \
        '421 elements' in text
    del logger


@pytest.mark.parametrize('strategy', ['DeepSpeedStrategy', 'FSDPStrategy'])
def test_sharding_strategies_are_refused(strategy):
    cfg = Config(dict(optim_wrapper=dict(optimizer=HYBRID),
                      strategy=dict(type=strategy)))
    with pytest.raises(ValueError) as err:
        check_hybrid_strategy(cfg)
    assert str(err.value).startswith(
        f"optim_wrapper.optimizer.type='MuonAdamW' with strategy {strategy}:"
        ' the strategy flattens or shards the parameters')
    check_hybrid_strategy(Config(dict(optim_wrapper=dict(optimizer=HYBRID))))
