"""Run under torchrun (gloo): phases over layers on a model wrapped in DDP
(find_unused_parameters=False: every parameter keeps requires_grad and
receives gradients), AdamW through the constructor and LayerPhaseScheduler
stepped by hand; 8 steps straight, and 3 + save + resume + 5. Prints one
line per rank: OK, whether the resumed weights equal the straight ones bit
for bit, and which blocks the straight run had moved after 3 and 8
steps."""
import copy
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

sys.path[:0] = [os.path.join(os.path.dirname(__file__), '..'),
                os.path.join(os.path.dirname(__file__), '..', '..')]

from mmengine.model import MMDistributedDataParallel  # noqa: E402

from helpers import run_leaving_together  # noqa: E402
from internvl_optim import LayerDecayOptimizerConstructor  # noqa: E402
from internvl_optim.engine.schedulers import LayerPhaseScheduler  # noqa

PHASES = dict(head_only=2, unfreeze_every=2, warmup=2)


class Net(nn.Module):
    """``backbone.{cls_token,blocks.i}`` and ``head``: the ViT rule."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Module()
        self.backbone.cls_token = nn.Parameter(torch.zeros(1, 4))
        self.backbone.blocks = nn.ModuleList(nn.Linear(4, 4)
                                             for _ in range(3))
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        x = x + self.backbone.cls_token
        for block in self.backbone.blocks:
            x = block(x)
        return self.head(x)


def build(state=None):
    net = Net()
    model = MMDistributedDataParallel(net)
    wrapper = LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='AdamW', lr=0.1, weight_decay=0.05)),
        dict(layer_decay_rate=0.5, layer_phases=PHASES))(model)
    scheduler = LayerPhaseScheduler(wrapper)
    if state is not None:
        net.load_state_dict(state[0])
        wrapper.load_state_dict(copy.deepcopy(state[1]))
        scheduler.load_state_dict(state[2])
    return net, model, wrapper, scheduler


def train(model, wrapper, scheduler, steps, start):
    for step in range(start, start + steps):
        gen = torch.Generator().manual_seed(100 * step + dist.get_rank())
        loss = model(torch.randn(2, 4, generator=gen)).pow(2).mean()
        wrapper.update_params(loss)
        scheduler.step()


def main():
    dist.init_process_group('gloo')
    net, model, wrapper, scheduler = build()
    start = {n: p.detach().clone() for n, p in net.named_parameters()}

    def moved():
        return ','.join(sorted({
            n.split('.')[2] for n, p in net.named_parameters()
            if n.startswith('backbone.blocks.')
            and not torch.equal(p, start[n])}))
    train(model, wrapper, scheduler, 3, 0)
    early = moved()
    train(model, wrapper, scheduler, 5, 3)
    late = moved()
    straight = {n: p.detach().clone() for n, p in net.named_parameters()}

    net, model, wrapper, scheduler = build()
    train(model, wrapper, scheduler, 3, 0)
    state = (copy.deepcopy(net.state_dict()), wrapper.state_dict(),
             scheduler.state_dict())
    net, model, wrapper, scheduler = build(state)
    train(model, wrapper, scheduler, 5, 3)
    same = all(torch.equal(p, straight[n]) for n, p in net.named_parameters())
    sys.stdout.write(f'OK {same} {early} {late}\n')
    sys.stdout.flush()


if __name__ == '__main__':
    run_leaving_together(main)
