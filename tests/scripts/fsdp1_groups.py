"""Run under torchrun: the demo InternViT + UperNet sharded by MMEngine's
FSDP strategy (FSDP v1, use_orig_params=True, gloo on CPU), optimizer
built from the config's ``optim_wrapper`` (our constructor), compared with
the same model's groups in one unwrapped process.  Strategy types on the
command line; one JSON line per rank and strategy."""
import copy
import json
import os
import sys

import torch
import torch.distributed as dist

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
sys.path[:0] = [os.path.join(ROOT, 'tests'), ROOT]

from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import STRATEGIES, init_default_scope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402

import internvl_optim  # noqa: E402,F401  (registers our constructor)
from internvl_optim.core.names import strip_wrapper_prefixes  # noqa: E402
from helpers import run_leaving_together  # noqa: E402

CONFIG = os.path.join(
    ROOT, 'configs/demo/internvit_tiny_upernet_synthetic_ade20k_fsdp.py')


def by_name(groups):
    return {name: (g['lr'], g['weight_decay'], g['group_name'])
            for g in groups for name in g['param_names']}


def sharded_groups(cfg, strategy_type):
    # MMEngine's FSDP wrapper pops keys from the config it is given
    strategy_cfg = copy.deepcopy(cfg.strategy)
    strategy_cfg.type = strategy_type
    if strategy_type == 'FSDPStrategy':  # MMEngine's own, on CPU
        strategy_cfg.model_wrapper.device_id = 'cpu'
    strategy = STRATEGIES.build(strategy_cfg)
    torch.manual_seed(0)
    model, optim_wrapper = strategy.prepare(
        MODELS.build(cfg.model), optim_wrapper=copy.deepcopy(cfg.optim_wrapper))
    names = [n for n, _ in model.named_parameters()]
    shapes = {strip_wrapper_prefixes(n): tuple(p.shape)
              for n, p in model.named_parameters()}
    # one FSDP unit per block (the config's wrap policy) besides the root
    units = sum(n.endswith('.attn.qkv.weight') and n.count(
        '_fsdp_wrapped_module') == 2 for n in names)
    return optim_wrapper.optimizer.param_groups, shapes, units


def main():
    dist.init_process_group('gloo')
    init_default_scope('mmseg')
    cfg = Config.fromfile(CONFIG)
    torch.manual_seed(0)
    single = build_optim_wrapper(MODELS.build(cfg.model),
                                 copy.deepcopy(cfg.optim_wrapper))
    assert type(single.optimizer).__name__ == 'AdamW'
    expected = by_name(single.optimizer.param_groups)
    for strategy_type in sys.argv[1:]:
        groups, shapes, units = sharded_groups(cfg, strategy_type)
        got = by_name(groups)
        sys.stdout.write(json.dumps(dict(
            rank=dist.get_rank(), strategy=strategy_type,
            equal=got == expected, params=len(got),
            differing=sorted(n for n in expected
                             if got.get(n) != expected[n])[:5],
            all_1d=all(len(s) == 1 for s in shapes.values()),
            some_empty=any(s == (0, ) for s in shapes.values()),
            block_units=units,
            qkv_shape=shapes['backbone.blocks.0.attn.qkv.weight'],
            qkv_wd=got['backbone.blocks.0.attn.qkv.weight'][1])) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    run_leaving_together(main)
