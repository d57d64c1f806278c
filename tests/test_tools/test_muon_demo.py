"""The hybrid demo config under ``tools/train.py`` (one process): the
table logs each group's update and the halves' totals, training runs and
validates, and the checkpoint holds Muon's and AdamW's state."""
import os
import subprocess
import sys

import pytest
import torch

from internvl_optim.checkpoint.safe_loading import load_checkpoint_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
CONFIG = os.path.join(ROOT, 'configs/demo/'
                      'internvit_tiny_upernet_synthetic_ade20k_muon.py')
pytestmark = pytest.mark.slow


def test_hybrid_demo_trains(data_root, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')}
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/train.py'), CONFIG,
         '--work-dir', str(tmp_path), '--cfg-options',
         'train_cfg.max_iters=8', 'train_cfg.val_interval=8',
         'default_hooks.checkpoint.interval=8',
         f'train_dataloader.dataset.data_root={data_root}',
         f'val_dataloader.dataset.data_root={data_root}'],
        capture_output=True, text=True, timeout=400, cwd=ROOT, env=env)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert 'layer_4_decay_muon' in log and 'muon (flatten)' in log
    assert 'Muon: 32 tensors, 323,584 elements; AdamW: 75 tensors, ' \
        '20,456 elements' in log
    assert 'Iter(val) [4/4]' in log
    checkpoint = load_checkpoint_file(str(tmp_path / 'iter_8.pth'))
    optimizer = checkpoint['optimizer']
    kinds = {frozenset(s) for s in optimizer['state'].values()}
    assert kinds == {frozenset({'momentum_buffer'}),
                     frozenset({'step', 'exp_avg', 'exp_avg_sq'})}
    assert {g['algorithm'] for g in optimizer['param_groups']} == {
        'muon', 'adamw'}
    assert all(torch.isfinite(t).all() for s in optimizer['state'].values()
               for t in s.values())
