"""The LP-FT demo config: the analyser's lr-over-time (the run's own
schedulers stepped on the built groups, times each layer's phase factor)
and a real tools/train.py run in which each layer's weights move only
once it has joined."""
import os
import subprocess
import sys

import pytest
import torch

from helpers import load_tool
from internvl_optim.checkpoint.safe_loading import load_checkpoint_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
LP_FT = os.path.join(ROOT, 'configs/demo/'
                     'internvit_tiny_lp_ft_synthetic_ade20k.py')


def test_lr_over_time_follows_the_phases(tmp_path, capsys):
    """head_only=10, unfreeze_every=4, warmup=4, rate 0.9, 4 blocks:
    layer 4 joins at 10, layer 3 at 14, ..., the embeddings (0) at 26;
    while warming up a layer is at (step - join + 1) / 4 of its lr."""
    png = tmp_path / 'lr.png'
    report = load_tool().main([LP_FT, '--plot-schedule', str(png)])
    assert png.stat().st_size > 10_000
    lr = report['lr_over_time']
    assert sorted(lr) == [0, 1, 2, 3, 4, 5] and len(lr[5]) == 40
    for layer, join in ((4, 10), (3, 14), (2, 18), (1, 22), (0, 26)):
        assert lr[layer][join - 1] == 0.0
        for k in range(5):  # warm-up over 4 iterations, then the plan
            assert lr[layer][join + k] == pytest.approx(
                lr[5][join + k] * 0.9 ** (5 - layer) * min(1, (k + 1) / 4),
                rel=1e-12), (layer, k)
    assert lr[5][0] == pytest.approx(1e-2 * 5e-3, rel=1e-12)  # warm-up


@pytest.mark.slow
def test_a_layer_moves_only_once_it_has_joined(data_root, tmp_path):
    cmd = [sys.executable, os.path.join(ROOT, 'tools/train.py'), LP_FT,
           '--work-dir', str(tmp_path), '--cfg-options',
           f'train_dataloader.dataset.data_root={data_root}',
           f'val_dataloader.dataset.data_root={data_root}',
           'train_cfg.max_iters=20', 'train_cfg.val_interval=100',
           'default_hooks.checkpoint.interval=10']
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    at10, at20 = (load_checkpoint_file(str(tmp_path / f'iter_{i}.pth'),
                                       map_location='cpu')['state_dict']
                  for i in (10, 20))
    # iterations 10-19: blocks 3 and 2 (layers 4, 3 joining at 10 and 14)
    # and block 1 (layer 2, at 18) move; block 0 (22) and the patch
    # embedding (26) do not
    moved = {name for name in at10 if not torch.equal(at10[name],
                                                      at20[name])}
    blocks = {name.split('.')[2] for name in moved
              if name.startswith('backbone.blocks.')}
    assert blocks == {'1', '2', '3'}
    assert not any(n.startswith('backbone.patch_embed') for n in moved)
    assert any(n.startswith('decode_head') for n in moved)
