#!/usr/bin/env python
"""Group count and ``torch.optim`` set-up time on very deep models.

``torch.optim`` takes each new param group in time proportional to all the
groups before it, so thousands of groups cost minutes; groups whose lr and
weight decay are equal share one.  Prints, per depth and rate: the groups
built, the time of ``param_groups`` and of ``torch.optim.AdamW(groups)``.

    python benchmarks/many_groups.py [--blocks 1000 10000]
"""
import argparse
import os.path as osp
import sys
import time

import torch
from torch import nn

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

from internvl_optim import param_groups  # noqa: E402


class DeepViT(nn.Module):
    """``blocks`` tiny ViT blocks (a weight and a bias each) behind a patch
    embedding, and a head."""

    def __init__(self, blocks: int):
        super().__init__()
        self.patch_embed = nn.Linear(2, 2)
        self.blocks = nn.ModuleList(nn.Linear(2, 2) for _ in range(blocks))
        self.head = nn.Linear(2, 2)


def measure(blocks: int, rate: float):
    model = DeepViT(blocks)
    start = time.perf_counter()
    groups = param_groups(model, lr=1e-3, weight_decay=0.05,
                          layer_decay_rate=rate)
    built = time.perf_counter() - start
    start = time.perf_counter()
    torch.optim.AdamW(groups)
    taken = time.perf_counter() - start
    return len(groups), built, taken


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--blocks', type=int, nargs='+',
                        default=[1000, 10000])
    parser.add_argument('--rates', type=float, nargs='+', default=[1.0])
    args = parser.parse_args()
    print(f'{"blocks":>7} {"rate":>5} {"groups":>7} {"param_groups":>13} '
          f'{"AdamW(groups)":>14}')
    for blocks in args.blocks:
        for rate in args.rates:
            n, built, taken = measure(blocks, rate)
            print(f'{blocks:>7} {rate:>5g} {n:>7} {built:>12.2f}s '
                  f'{taken:>13.2f}s')


if __name__ == '__main__':
    main()
