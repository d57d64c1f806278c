#!/usr/bin/env python
"""Resume time of the optimizer state, matched by parameter name, against
loading it as PyTorch does, on InternViT-6B's layout (48 blocks, every
parameter name of the 6B model) at reduced width (the state is real, on
CPU):

    python benchmarks/resume_by_name.py [--width 128] [--repeat 20]

Rows (best of ``--repeat``):

* ``load_state_dict``: PyTorch's load into the same layout;
* ``unchanged: match + load``: what a resume does now when nothing changed:
  the name match finds no change, then the same load;
* ``changed rate: match + load``: a resume with another
  ``layer_decay_rate``: the state rebuilt for the new groups by name, then
  loaded.
"""
import argparse
import copy
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

from internvl_optim import param_groups  # noqa: E402
from internvl_optim.checkpoint.state_by_name import \
    match_state_by_name  # noqa: E402
from internvl_optim.models.backbones.intern_vit_6b import \
    InternViT6B  # noqa: E402
from run_benchmarks import best_of  # noqa: E402  (this folder)


def optimizer_for(model, rate):
    return torch.optim.AdamW(param_groups(model, lr=1e-4, weight_decay=0.05,
                                          layer_decay_rate=rate))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--width', type=int, default=128)
    parser.add_argument('--repeat', type=int, default=20)
    args = parser.parse_args()
    model = InternViT6B(embed_dim=args.width, num_heads=args.width // 64 or 1,
                        depth=48, use_flash_attn=False, with_cp=False,
                        out_indices=(47,))
    optimizer = optimizer_for(model, 0.9)
    for p in model.parameters():  # one real step: moments for all
        p.grad = torch.randn_like(p)
    optimizer.step()
    saved = copy.deepcopy(optimizer.state_dict())
    same, other = optimizer_for(model, 0.9), optimizer_for(model, 0.8)

    def plain():
        same.load_state_dict(saved)

    def unchanged():
        match = match_state_by_name(saved, same.param_groups)
        assert not match.changed
        same.load_state_dict(saved)

    def changed():
        match = match_state_by_name(saved, other.param_groups)
        assert match.changed
        other.load_state_dict(match.state_dict)

    params = sum(p.numel() for p in model.parameters())
    print(f'InternViT-6B layout, width {args.width}: {len(saved["state"])} '
          f'tensors, {params:,} parameters, {len(saved["param_groups"])} '
          'groups')
    base = best_of(plain, args.repeat)
    print(f'{"resume of the optimizer state":32s} {"ms":>8s} {"ratio":>7s}')
    for name, fn in (('load_state_dict', plain),
                     ('unchanged: match + load', unchanged),
                     ('changed rate: match + load', changed)):
        seconds = base if fn is plain else best_of(fn, args.repeat)
        print(f'{name:32s} {seconds * 1e3:8.2f} {seconds / base:7.3f}')


if __name__ == '__main__':
    main()
