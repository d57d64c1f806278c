"""Memory per rank: the accounting on a small model with exact
numbers, the strategies read from our real configs, and the 6B report of
tools/analyze_param_groups.py against the ZeRO paper's formula."""
import json
import os
import re

import pytest
import torch
from mmengine.config import Config

from helpers import load_tool
from internvl_optim.analysis.memory_per_rank import (ParamCounts,
                                                     bytes_per_rank,
                                                     count_params,
                                                     describe_strategy,
                                                     optimizer_states)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
FULL = 'configs/intern_vit_6b/full_tuning/' \
       'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5'


def test_count_params_uses_stored_dtype_and_skips_tied():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4),
                                torch.nn.Linear(4, 2, bias=False))
    model[1].to(torch.bfloat16).weight.requires_grad_(False)
    model.tied = model[0]  # the same tensors again
    assert count_params(model.named_parameters()) == ParamCounts(
        all_elements=28, trainable_elements=20, all_bytes=20 * 4 + 8 * 2,
        trainable_bytes=80)


COUNTS = ParamCounts(all_elements=1000, trainable_elements=600,
                     all_bytes=4000, trainable_bytes=2400)


@pytest.mark.parametrize('strategy_cfg,n,want', [
    (dict(), 4, (4000, 2400, 4800)),
    (dict(optim_wrapper=dict(optimizer=dict(
        type='ZeroRedundancyOptimizer', optimizer_type='AdamW'))), 4,
     (4000, 2400, 1200)),
    (dict(strategy=dict(type='FSDPStrategy')), 4, (1000, 600, 1200)),
    (dict(strategy=dict(type='ResumableFSDPStrategy', model_wrapper=dict(
        sharding_strategy='SHARD_GRAD_OP'))), 4, (4000, 600, 1200)),
    (dict(strategy=dict(type='DeepSpeedStrategy', bf16=dict(enabled=True),
                        zero_optimization=dict(stage=1))), 4,
     (2000, 1200, 600 * 12 / 4)),
    (dict(strategy=dict(type='DeepSpeedStrategy', bf16=dict(enabled=True),
                        zero_optimization=dict(stage=2))), 4,
     (2000, 300, 600 * 12 / 4)),
    (dict(strategy=dict(type='DeepSpeedStrategy', bf16=dict(enabled=True),
                        zero_optimization=dict(stage=3))), 4,
     (500, 300, 600 * 12 / 4)),
    (dict(strategy=dict(type='DeepSpeedStrategy')), 4, (4000, 2400, 4800)),
])
def test_bytes_per_rank(strategy_cfg, n, want):
    got = bytes_per_rank(COUNTS, describe_strategy(strategy_cfg), 2, n)
    assert (got['parameters'], got['gradients'], got['optimizer']) == want
    assert got['total'] == sum(want)


def test_optimizer_states_and_unknown_optimizer():
    assert optimizer_states(dict(type='AdamW')) == (2, 'AdamW')
    assert optimizer_states(dict(type='SGD', momentum=0.9)) == (1, 'SGD')
    assert optimizer_states(dict(type='SGD')) == (0, 'SGD')
    assert optimizer_states(dict(type='ZeroRedundancyOptimizer',
                                 optimizer_type='Adam')) == (2, 'Adam')
    with pytest.raises(ValueError, match="optimizer 'Shampoo': state size "
                       'unknown; known: '):
        optimizer_states(dict(type='Shampoo'))


@pytest.mark.parametrize('suffix,name', [
    ('', 'DDP'), ('_fsdp', 'FSDP FULL_SHARD'),
    ('_deepspeed', 'DeepSpeed ZeRO-1, bf16/fp16 + fp32 master')])
def test_strategies_of_our_6b_configs(suffix, name):
    cfg = Config.fromfile(os.path.join(ROOT, FULL + suffix + '.py'))
    assert describe_strategy(cfg.to_dict()).name == name


def test_6b_deepspeed_report_matches_the_zero_formula(capsys):
    tool = load_tool()
    report = tool.main([os.path.join(ROOT, FULL + '_deepspeed.py'),
                        '--world-size', '1', '8', '16'])
    captured = capsys.readouterr()
    out = captured.out
    psi = 6_385_968_940  # every parameter trains in full tuning
    assert f'{psi:,} parameters, {psi:,} trainable' in out
    for row, n in zip(report['memory'], (1, 8, 16)):
        # ZeRO-1 with mixed-precision Adam: (2 + 2 + 12 / N) bytes each
        assert row['total'] == pytest.approx((2 + 2 + 12 / n) * psi)
    lines = out.splitlines()
    assert lines[lines.index(next(line for line in lines if line.startswith(
        ' ranks'))) + 1].split() == ['1', '11.9', '11.9', '71.4', '95.2', '>',
                                     '80', 'GiB']
    assert '     8        11.9       11.9        8.9       32.7' in out
    # DeepSpeed keeps float32 masters: no low-precision warning
    assert 'not float32' not in out + captured.err
    report = tool.main([os.path.join(ROOT, FULL + '_deepspeed.py'),
                        '--cfg-options', "optim_wrapper.type=OptimWrapper"])
    assert 'trainable parameters are not float32 and OptimWrapper' in \
        ''.join(capsys.readouterr())


def test_internvl_deepspeed_keys_are_read_like_train(tmp_path, capsys):
    """InternVL's deepspeed=True + deepspeed_config JSON (bf16, ZeRO-1):
    the analyser describes what train.py will run."""
    ds_json = tmp_path / 'adam_zero1_bf16.json'
    ds_json.write_text(json.dumps({'bf16': {'enabled': True},
                                   'zero_optimization': {'stage': 1}}))
    tool = load_tool()
    report = tool.main([
        os.path.join(ROOT, 'configs/demo/'
                     'internvit_tiny_upernet_synthetic_ade20k.py'),
        '--world-size', '2', '--cfg-options', 'deepspeed=True',
        f'deepspeed_config={ds_json}'])
    out = capsys.readouterr().out
    assert 'memory per rank: DeepSpeed ZeRO-1, bf16/fp16 + fp32 master' in out
    psi = int(re.search(r'; ([\d,]+) parameters', out).group(1)
              .replace(',', ''))
    assert report['memory'][0]['total'] == pytest.approx((2 + 2 + 6) * psi)


def test_ddp_recipe_that_never_fits_points_to_the_sharded_variants(capsys):
    """the DDP float32 6B recipe needs 95.2 GiB per rank at any
    world size; the analyser says which variants shard it."""
    tool = load_tool()
    report = tool.main([os.path.join(ROOT, FULL + '.py'),
                        '--world-size', '1', '8'])
    out = capsys.readouterr().out
    assert all(r['total'] / 2**30 == pytest.approx(95.2, abs=0.05)
               for r in report['memory'])
    assert ('no world size fits 80 GiB with every rank holding the whole '
            'model: shard it. ZeRO/DeepSpeed '
            '(configs/intern_vit_6b/full_tuning/*_deepspeed.py) shards '
            'optimizer state, FSDP (*_fsdp.py) shards parameters, gradients '
            'and state; rerun with those configs to compare') in out
    # the DeepSpeed variant fits at 8 ranks: no hint there
    tool.main([os.path.join(ROOT, FULL + '_deepspeed.py'),
               '--world-size', '1', '8'])
    assert 'no world size fits' not in capsys.readouterr().out


def test_vlm_recipe_memory_per_rank_with_and_without_the_llm(capsys):
    """a 6B vision tower + 70B-class LLM on the meta device under
    ZeRO-3 bf16: (2 P + 2 T + 12 T) / N bytes per rank, P all parameters,
    T trainable ones; freeze_llm leaves the vision tower and projector."""
    tool = load_tool()
    config = os.path.join(ROOT, 'configs/multimodal/'
                          'internvl_6b_vit_70b_llm_zero3.py')
    psi = 75_211_537_792
    report = tool.main([config, '--compact', '--world-size', '8', '64'])
    out = capsys.readouterr().out
    assert f'{psi:,} parameters, {psi:,} trainable' in out
    assert 'DeepSpeed ZeRO-3, bf16/fp16 + fp32 master' in out
    for row, n in zip(report['memory'], (8, 64)):
        assert row['total'] == pytest.approx(16 * psi / n)
    report = tool.main([config, '--world-size', '8', '--cfg-options',
                        'optim_wrapper.paramwise_cfg.freeze_llm=True'])
    trainable = 5_708_504_448  # vision tower + projector
    assert f'{psi:,} parameters, {trainable:,} trainable' in \
        capsys.readouterr().out
    assert report['memory'][0]['total'] == pytest.approx(
        (2 * psi + 14 * trainable) / 8)

