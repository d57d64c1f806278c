"""Run under torchrun (gloo) or alone: MuonAdamW on a small ViT-shaped
model wrapped in DDP, each rank on its own half of a fixed batch; 4 steps.
Writes the initial and final weights of rank 0 to the file named by
argv[1]; alone (no
torchrun), the whole batch on one process, to the same kind of file."""
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

sys.path[:0] = [os.path.join(os.path.dirname(__file__), '..'),
                os.path.join(os.path.dirname(__file__), '..', '..')]

from helpers import run_leaving_together  # noqa: E402
from internvl_optim import param_groups  # noqa: E402
from internvl_optim.optim import MuonAdamW  # noqa: E402

STEPS, BATCH = 4, 8


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Module()
        self.backbone.cls_token = nn.Parameter(torch.zeros(1, 8))
        self.backbone.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
            for _ in range(3))
        self.backbone.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = x + self.backbone.cls_token
        for block in self.backbone.blocks:
            x = x + block(x)
        return self.head(self.backbone.norm(x))


def main(out):
    distributed = 'RANK' in os.environ
    if distributed:
        dist.init_process_group('gloo')
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    net = Net()
    initial = {n: p.detach().clone() for n, p in net.named_parameters()}
    optimizer = MuonAdamW(param_groups(net, lr=1e-2, weight_decay=0.05,
                                       layer_decay_rate=0.7, muon=True),
                          lr=1e-2)
    model = nn.parallel.DistributedDataParallel(net) if distributed else net
    for step in range(STEPS):
        torch.manual_seed(1000 + step)
        x, y = torch.randn(BATCH, 8), torch.randn(BATCH, 2)
        part = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        loss = ((model(x[part]) - y[part]) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if rank == 0:
        torch.save(dict(initial=initial, final={
            n: p.detach() for n, p in net.named_parameters()}), out)
    print('OK', rank, sorted({g['algorithm'] for g in
                              optimizer.param_groups}))


if __name__ == '__main__':
    run_leaving_together(main, sys.argv[1])
