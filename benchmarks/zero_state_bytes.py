#!/usr/bin/env python
"""Per-rank optimizer-state bytes with ZeroRedundancyOptimizer and our
layer-decay groups, against the ideal total / world_size, for world sizes
1, 2 and 4 (torchrun, gloo on CPU), on MMSeg's ViT-S/16 with UperNet-free
linear head.

    python benchmarks/zero_state_bytes.py
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, '..')


def worker():
    import torch
    import torch.distributed as dist
    sys.path.insert(0, ROOT)
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from internvl_optim import LayerDecayOptimizerConstructor
    dist.init_process_group('gloo')
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.backbone = MODELS.build(dict(
        type='VisionTransformer', img_size=(224, 224), embed_dims=384,
        num_layers=12, num_heads=6, final_norm=True))
    model.decode_head = torch.nn.Conv2d(384, 150, 1)
    wrapper = LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='ZeroRedundancyOptimizer',
                            optimizer_type='AdamW', lr=1e-4,
                            weight_decay=0.05)),
        dict(layer_decay_rate=0.65))(model)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    wrapper.step()
    state = sum(t.numel() * t.element_size()
                for s in wrapper.optimizer.optim.state.values()
                for t in s.values() if torch.is_tensor(t) and t.ndim)
    ideal = sum(p.numel() * p.element_size() * 2 for p in model.parameters())
    print(json.dumps(dict(rank=dist.get_rank(), world=dist.get_world_size(),
                          state=state, ideal_total=ideal,
                          groups=len(wrapper.optimizer.param_groups))),
          flush=True)


def main():
    rows = []
    for world in (1, 2, 4):
        out = subprocess.run(
            [sys.executable, '-m', 'torch.distributed.run', '--standalone',
             f'--nproc_per_node={world}', __file__, '--worker'],
            capture_output=True, text=True, check=True).stdout
        ranks = [json.loads(line) for line in out.splitlines()
                 if line.startswith('{')]
        ideal = ranks[0]['ideal_total'] / world
        worst = max(r['state'] for r in ranks)
        rows.append((world, ranks[0]['groups'], worst, ideal, worst / ideal))
    print('world_size  groups  max_rank_state_MB  ideal_MB  max/ideal')
    for world, groups, worst, ideal, ratio in rows:
        print(f'{world:10d}  {groups:6d}  {worst / 2**20:17.2f}  '
              f'{ideal / 2**20:8.2f}  {ratio:9.3f}')


if __name__ == '__main__':
    if '--worker' in sys.argv:
        worker()
    else:
        main()
