"""Run under torchrun: freeze_backbone by the constructor on a model already
wrapped in DDP (as MMEngine's Runner does). Prints one result line."""
import os
import sys

import torch
import torch.distributed as dist

sys.path[:0] = [os.path.join(os.path.dirname(__file__), '..'),
                os.path.join(os.path.dirname(__file__), '..', '..')]

from mmengine.model import MMDistributedDataParallel  # noqa: E402

from hierarchical_models import InternImage  # noqa: E402
from internvl_optim import LayerDecayOptimizerConstructor  # noqa: E402
from helpers import run_leaving_together  # noqa: E402


def main(find_unused):
    dist.init_process_group('gloo')
    torch.manual_seed(0)
    model = MMDistributedDataParallel(
        InternImage(depths=(1, 1, 1, 1)),
        find_unused_parameters=find_unused)
    constructor = LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='AdamW', lr=0.1, weight_decay=0.05)),
        dict(layer_decay_rate=0.5, freeze_backbone=[0]))
    try:
        wrapper = constructor(model)
    except ValueError as err:
        sys.stdout.write(f'ERROR {err}\n')
        sys.stdout.flush()
        return
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()
              if not p.requires_grad}
    torch.manual_seed(dist.get_rank())
    for _ in range(2):
        loss = model(torch.randn(2, 3, 16, 16)).pow(2).mean()
        wrapper.update_params(loss)
    unchanged = all(torch.equal(p, frozen[n])
                    for n, p in model.named_parameters() if n in frozen)
    sys.stdout.write(f'OK {len(frozen)} {unchanged}\n')
    sys.stdout.flush()


if __name__ == '__main__':
    run_leaving_together(main, sys.argv[1] == 'find_unused')
