"""Run under torchrun: groups of a model whose parameters DeepSpeed ZeRO-3
partitions at construction (``zero.Init``: ``p.shape`` is empty, the real
shape is ``p.ds_shape``) against the same model built unpartitioned.
Prints one JSON line per rank."""
import json
import os
import sys

import torch
import torch.distributed as dist

sys.path[:0] = [os.path.join(os.path.dirname(__file__), '..'),
                os.path.join(os.path.dirname(__file__), '..', '..')]

from internvl_optim import param_groups  # noqa: E402
from helpers import run_leaving_together  # noqa: E402
from toy_models import ToyInternViT, ToySegmentor  # noqa: E402


def groups_by_name(model):
    groups = param_groups(model, lr=1.0, weight_decay=0.05,
                          layer_decay_rate=0.5)
    return {n: (g['lr'], g['weight_decay'], g['layer_id'], g['group_name'])
            for g in groups for n in g['param_names']}


def main():
    import deepspeed
    dist.init_process_group('gloo')
    config = dict(train_batch_size=2, zero_optimization=dict(stage=3))
    with deepspeed.zero.Init(config_dict_or_path=config):
        partitioned = ToySegmentor(ToyInternViT(depth=3))
    plain = ToySegmentor(ToyInternViT(depth=3))
    qkv = dict(partitioned.named_parameters())[
        'backbone.blocks.0.attn.qkv.weight']
    ours, reference = groups_by_name(partitioned), groups_by_name(plain)
    line = json.dumps(dict(
        rank=dist.get_rank(), shape=list(qkv.shape),
        ds_shape=list(qkv.ds_shape), identical=ours == reference,
        tensors=len(ours),
        qkv=ours['backbone.blocks.0.attn.qkv.weight'][:2],
        cls=ours['backbone.cls_token'][:2]))
    for rank in range(dist.get_world_size()):  # one line at a time
        if rank == dist.get_rank():
            print(line, flush=True)
        dist.barrier()


if __name__ == '__main__':
    run_leaving_together(main)
