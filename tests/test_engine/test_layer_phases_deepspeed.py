"""Phases over layers under DeepSpeed ZeRO-2 on 2 gloo ranks (CPU), with
tools/train.py: a layer not joined yet does not move, and a resume at a
layer's join step ends bit-identical to the uninterrupted run.

Facts relied on (DeepSpeed 0.15.4, ``runtime/zero/stage_1_and_2.py``):
``_optimizer_step`` steps the basic optimizer (the one our constructor
built) one group at a time, with ``param_groups`` swapped for that group;
the groups keep every key but ``params`` (a flat fp32 partition)."""
import os

import pytest
import torch

from internvl_optim.checkpoint.safe_loading import (
    allow_deepspeed_checkpoints, load_checkpoint_file)
from test_distributed import ROOT, resume_dir, train

pytestmark = pytest.mark.slow
CONFIG = os.path.join(ROOT, 'configs/demo/'
                      'internvit_tiny_upernet_synthetic_ade20k_deepspeed.py')
#: the demo's 4 blocks: block 3 (layer 4) joins at 3, block 2 at 5, block
#: 1 at 7, block 0 at 9, the embeddings at 11 (after this run)
OPTIONS = ['strategy.zero_optimization.stage=2', 'train_cfg.max_iters=8',
           'default_hooks.checkpoint.interval=5',
           'train_cfg.val_interval=100',
           'optim_wrapper.paramwise_cfg.layer_phases.head_only=3',
           'optim_wrapper.paramwise_cfg.layer_phases.unfreeze_every=2',
           'optim_wrapper.paramwise_cfg.layer_phases.warmup=2']


def module_weights(checkpoint_dir):
    allow_deepspeed_checkpoints()
    return load_checkpoint_file(
        str(checkpoint_dir / 'mp_rank_00_model_states.pt'))['module']


def test_zero2_phases_resume_bit_identical(data_root, tmp_path):
    straight = tmp_path / 'straight'
    train(2, data_root, straight, *OPTIONS, config=CONFIG)
    at5, at8 = (module_weights(straight / f'iter_{i}.pth') for i in (5, 8))
    moved = {n.split('.')[2] for n in at5 if n.startswith('backbone.blocks.')
             and not torch.equal(at5[n], at8[n])}
    # iterations 5-7: blocks 3 and 2 (joined at 3 and 5) and block 1
    # (joined at 7) move; block 0 (9) does not, nor the patch embedding
    assert moved == {'1', '2', '3'}
    assert all(torch.equal(at5[n], at8[n]) for n in at5
               if n.startswith('backbone.patch_embed'))
    resumed = resume_dir(tmp_path, 'resumed', straight / 'iter_5.pth')
    log = train(2, data_root, resumed, *OPTIONS, config=CONFIG, resume=True)
    assert 'resumed epoch: 0, iter: 5' in log
    end = module_weights(resumed / 'iter_8.pth')
    assert [n for n in at8 if not torch.equal(at8[n], end[n])] == []
