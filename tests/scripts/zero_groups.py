"""Run under torchrun: our layer-decay groups in MMEngine's
ZeroRedundancyOptimizer.  Prints one JSON line per rank."""
import json
import os
import sys

import torch
import torch.distributed as dist

sys.path[:0] = [os.path.join(os.path.dirname(__file__), '..'),
                os.path.join(os.path.dirname(__file__), '..', '..')]

from mmengine.model import MMDistributedDataParallel  # noqa: E402

from internvl_optim import LayerDecayOptimizerConstructor  # noqa: E402
from toy_models import ToyInternViT, ToySegmentor  # noqa: E402
from helpers import run_leaving_together  # noqa: E402


def state_bytes(optimizer):
    return sum(t.numel() * t.element_size()
               for state in optimizer.optim.state.values()
               for t in state.values() if torch.is_tensor(t) and t.ndim)


def main():
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = ToySegmentor(ToyInternViT(depth=6, dim=32))
    ddp = MMDistributedDataParallel(model, find_unused_parameters=True)
    wrapper = LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='ZeroRedundancyOptimizer',
                            optimizer_type='AdamW', lr=1e-2,
                            weight_decay=0.05)),
        dict(layer_decay_rate=0.5))(ddp)
    torch.manual_seed(rank)
    for _ in range(3):
        loss = sum(p.pow(2).sum() * torch.rand(()) for p in model.parameters())
        wrapper.update_params(loss)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    same = all(torch.equal(gathered[0], g) for g in gathered)
    total = sum(p.numel() * 4 * 2 for p in model.parameters())
    state = wrapper.optimizer.state_dict()
    out = dict(rank=rank, state_bytes=state_bytes(wrapper.optimizer),
               ideal_total=total, identical=same,
               groups=len(wrapper.optimizer.param_groups),
               saved_groups=len(state.get('param_groups', [])),
               saved_states=len(state.get('state', {})))
    if state:
        out['first_names'] = state['param_groups'][0]['param_names'][:2]
    sys.stdout.write(json.dumps(out) + '\n')
    sys.stdout.flush()


if __name__ == '__main__':
    run_leaving_together(main)
