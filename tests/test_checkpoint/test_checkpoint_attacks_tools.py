"""Crafted checkpoints through the real tools: tools/test.py,
tools/train.py --resume and a backbone's pretrained= refuse the code-running
payload and run nothing; a resumed checkpoint's meta.config is never
executed and the run goes on.  (DeepSpeed's resume: test_distributed.py.)"""
import os
import subprocess
import sys

import pytest
import torch


import malicious_checkpoints as evil
from internvl_optim.checkpoint.safe_loading import load_checkpoint_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DEMO = os.path.join(ROOT, 'configs/demo/'
                    'internvit_tiny_upernet_synthetic_ade20k.py')

pytestmark = pytest.mark.slow


def run_tool(tool, *args, data_root, options=()):
    loaders = (['test_dataloader'] if tool == 'test' else
               ['train_dataloader', 'val_dataloader'])
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', f'{tool}.py'), DEMO,
         *args, '--cfg-options',
         *[f'{loader}.dataset.data_root={data_root}' for loader in loaders],
         *options],
        capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.fixture
def widening_checkpoint(tmp_path):
    marker, path = tmp_path / 'ran', tmp_path / 'evil.pth'
    evil.save_payload(evil.statistics_widening_payload(marker), path)
    return marker, path


def test_test_tool_refuses_the_payload(widening_checkpoint, data_root,
                                       tmp_path):
    marker, path = widening_checkpoint
    result = run_tool('test', str(path), '--work-dir', str(tmp_path / 'w'),
                      data_root=data_root)
    assert result.returncode != 0
    # one line naming the tool and the config, no traceback
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('tools/test.py ')
    assert (": CheckpointError: checkpoint '" f"{path}' was refused by safe "
            'loading: internvl_optim: refusing getattr(') in last
    assert not marker.exists()


def test_train_resume_refuses_the_payload(widening_checkpoint, data_root,
                                          tmp_path):
    marker, path = widening_checkpoint
    result = run_tool('train', '--resume', str(path), '--work-dir',
                      str(tmp_path / 'w'), data_root=data_root)
    assert result.returncode != 0
    assert f"checkpoint '{path}' was refused by safe loading" in \
        result.stderr.strip().splitlines()[-1]
    assert 'Iter(train)' not in result.stdout + result.stderr
    assert not marker.exists()


def test_pretrained_refuses_the_payload(widening_checkpoint):
    from internvl_optim.checkpoint.safe_loading import CheckpointError
    from internvl_optim.models.backbones.intern_vit_6b import InternViT6B
    marker, path = widening_checkpoint
    backbone = InternViT6B(img_size=32, pretrain_size=32, patch_size=8,
                           embed_dim=32, depth=1, num_heads=2, out_indices=[0],
                           pretrained=str(path))
    with pytest.raises(CheckpointError, match='refused by safe loading'):
        backbone.init_weights()
    assert not marker.exists()


def train_four_iterations(work_dir, data_root, *extra):
    result = run_tool('train', '--work-dir', str(work_dir), *extra,
                      data_root=data_root, options=[
                          'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                          'default_hooks.checkpoint.interval=2'])
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_resume_never_executes_meta_config(data_root, tmp_path):
    train_four_iterations(tmp_path / 'w', data_root)
    marker = tmp_path / 'config_ran'
    checkpoint = tmp_path / 'w' / 'iter_2.pth'
    torch.save(evil.with_config_payload(
        load_checkpoint_file(str(checkpoint)), marker), checkpoint)
    log = train_four_iterations(tmp_path / 'r', data_root, '--resume',
                                str(checkpoint))
    assert 'resumed epoch: 0, iter: 2' in log
    assert f'{checkpoint}: ignored meta.config (a config stored in a ' \
        'checkpoint is never executed)' in log
    assert not marker.exists()
    assert os.path.exists(tmp_path / 'r' / 'iter_4.pth')
