#!/usr/bin/env python
"""The hybrid optimizer on a ViT-B layout (timm's ``vit_base_patch16_224``,
86 M parameters, layer decay 0.75), measured side by side in one run; one
table of ratios.

    python benchmarks/muon_hybrid.py [--steps 3] [--device cpu|cuda]

1. step time: ``MuonAdamW`` on our groups vs ``torch.optim.Muon`` +
   ``torch.optim.AdamW`` built by hand on the same split vs timm's ``Muon``
   (its own routing by ``ndim``, AdamW fallback) vs ``torch.optim.AdamW``
   alone on our groups;
2. the Newton-Schulz share of the hybrid's step (the orthogonalizations
   alone, timed on the same matrices);
3. optimizer-state bytes (after one step, so every state exists) against
   AdamW, with the analyser's figure (state tensors per element).

Each optimizer steps on the same random gradients; the median of
``--steps`` timed steps after one warm-up step.
"""
import argparse
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

import torch  # noqa: E402

from internvl_optim import param_groups  # noqa: E402
from internvl_optim.analysis.memory_per_rank import hybrid_states  # noqa
from internvl_optim.analysis.timm_oracle import import_timm  # noqa: E402
from internvl_optim.optim import MuonAdamW  # noqa: E402
from internvl_optim.optim.muon_adamw import (  # noqa: E402
    NS_COEFFICIENTS, orthogonalized)

LR, WD, RATE = 1e-4, 0.05, 0.75


def build(device):
    timm = import_timm()
    torch.manual_seed(0)
    return timm.create_model('vit_base_patch16_224', pretrained=False,
                             num_classes=1000).to(device)


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def time_steps(optimizers, model, steps, device):
    """Median seconds of one step of all ``optimizers`` together."""
    params = list(model.parameters())
    gen = torch.Generator(device=device).manual_seed(1)
    grads = [torch.randn(p.shape, generator=gen, device=device) * 1e-3
             for p in params]
    times = []
    for i in range(steps + 1):
        for p, g in zip(params, grads):
            p.grad = g.clone()
        sync(device)
        start = time.perf_counter()
        for optimizer in optimizers:
            optimizer.step()
        sync(device)
        if i:  # the first step builds the state
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def state_bytes(optimizers) -> int:
    return sum(t.numel() * t.element_size() for o in optimizers
               for s in o.state.values() for t in s.values()
               if torch.is_tensor(t) and t.dim())


def hybrid(model):
    groups = param_groups(model, lr=LR, weight_decay=WD,
                          layer_decay_rate=RATE, muon=True)
    return [MuonAdamW(groups, lr=LR, weight_decay=WD)], groups


def by_hand(model):
    groups = param_groups(model, lr=LR, weight_decay=WD,
                          layer_decay_rate=RATE, muon=True)
    muon = [dict(params=g['params'], lr=g['lr'],
                 weight_decay=g['weight_decay'])
            for g in groups if g['algorithm'] == 'muon']
    adamw = [dict(params=g['params'], lr=g['lr'],
                  weight_decay=g['weight_decay'])
             for g in groups if g['algorithm'] == 'adamw']
    return [torch.optim.Muon(muon, adjust_lr_fn='match_rms_adamw'),
            torch.optim.AdamW(adamw)]


def timm_muon(model):
    import_timm()
    from timm.optim.muon import Muon
    return [Muon(model.parameters(), lr=LR, weight_decay=WD,
                 adjust_lr_fn='match_rms_adamw')]


def adamw(model):
    return [torch.optim.AdamW(param_groups(model, lr=LR, weight_decay=WD,
                                           layer_decay_rate=RATE))]


def newton_schulz_time(groups, steps, device):
    """Seconds of the orthogonalizations of one hybrid step alone."""
    updates = [(torch.randn(p.shape, device=device), g['matrix_view'])
               for g in groups if g['algorithm'] == 'muon'
               for p in g['params']]
    times = []
    for i in range(steps + 1):
        sync(device)
        start = time.perf_counter()
        for update, view in updates:
            orthogonalized(update, view, NS_COEFFICIENTS, 5, 1e-7)
        sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times), len(updates)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda
                        .is_available() else 'cpu')
    args = parser.parse_args(argv)
    device = args.device
    rows = []
    reference = None
    for label, make in (('AdamW alone (our groups)', adamw),
                        ('MuonAdamW (our groups)', lambda m: hybrid(m)[0]),
                        ('torch Muon + AdamW by hand, same split', by_hand),
                        ("timm Muon (its ndim routing)", timm_muon)):
        model = build(device)
        optimizers = make(model)
        seconds = time_steps(optimizers, model, args.steps, device)
        size = state_bytes(optimizers)
        if reference is None:
            reference = (seconds, size)
        rows.append((label, seconds, seconds / reference[0], size,
                     size / reference[1]))
    model = build(device)
    _, groups = hybrid(model)
    ns_seconds, matrices = newton_schulz_time(groups, args.steps, device)
    hybrid_seconds = rows[1][1]
    n = sum(p.numel() for p in model.parameters())
    print(f'ViT-B layout ({n / 1e6:.1f} M parameters), device {device}, '
          f'torch {torch.__version__}, median of {args.steps} steps')
    print(f'{"optimizer":<42} {"step s":>8} {"x AdamW":>8} '
          f'{"state MB":>9} {"x AdamW":>8}')
    for label, seconds, ratio, size, size_ratio in rows:
        print(f'{label:<42} {seconds:>8.3f} {ratio:>8.2f} '
              f'{size / 2**20:>9.1f} {size_ratio:>8.2f}')
    print(f'Newton-Schulz alone ({matrices} matrices): {ns_seconds:.3f} s, '
          f'{ns_seconds / hybrid_seconds:.0%} of the MuonAdamW step')
    print(f'analyser figure: {hybrid_states(groups):.3f} state tensors per '
          'element (AdamW: 2)')


if __name__ == '__main__':
    main()
