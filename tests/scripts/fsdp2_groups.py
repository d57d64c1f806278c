"""Run under torchrun: our groups for a model sharded with PyTorch's FSDP2
(``fully_shard``, gloo on CPU) vs. the same model unsharded.  Prints one
JSON line per rank."""
import json
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

sys.path[:0] = [os.path.join(os.path.dirname(__file__), '..'),
                os.path.join(os.path.dirname(__file__), '..', '..')]

from internvl_optim import LayerDecaySettings, build_param_groups  # noqa
from toy_models import ToyInternViT, ToySegmentor  # noqa: E402
from helpers import run_leaving_together  # noqa: E402


def plan(model):
    groups = build_param_groups(
        model, LayerDecaySettings.from_paramwise_cfg(
            dict(layer_decay_rate=0.5)), 1.0, 0.1).groups
    return [(g['group_name'], g['lr'], g['weight_decay'], g['param_names'])
            for g in groups]


def main():
    dist.init_process_group('gloo')
    torch.manual_seed(0)
    single = plan(ToySegmentor(ToyInternViT(depth=3, dim=16)))
    model = ToySegmentor(ToyInternViT(depth=3, dim=16))
    for block in model.backbone.blocks:
        fully_shard(block)
    fully_shard(model)
    local = [tuple(p.to_local().shape) for p in model.parameters()]
    sharded = plan(model)
    sys.stdout.write(json.dumps(dict(
        rank=dist.get_rank(), equal=sharded == single, groups=len(sharded),
        some_local_shard_empty=any(0 in s for s in local))) + '\n')
    sys.stdout.flush()


if __name__ == '__main__':
    run_leaving_together(main)
