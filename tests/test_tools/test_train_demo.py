"""The demo, run as a user runs it: tools/train.py on the synthetic dataset.
Loss decreases, validation mIoU and the per-layer lr table reach the log,
and a resumed run ends bit-identical to an uninterrupted one."""
import os
import re
import subprocess
import sys

import pytest
import torch

from internvl_optim.checkpoint.safe_loading import load_checkpoint_file


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DEMO = os.path.join(ROOT, 'configs/demo/'
                    'internvit_tiny_upernet_synthetic_ade20k.py')

pytestmark = pytest.mark.slow


def train(data_root, work_dir, *extra):
    cmd = [sys.executable, os.path.join(ROOT, 'tools/train.py'), DEMO,
           '--work-dir', str(work_dir), '--cfg-options',
           f'train_dataloader.dataset.data_root={data_root}',
           f'val_dataloader.dataset.data_root={data_root}', *extra]
    result = subprocess.run(cmd, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


@pytest.fixture(scope='module')
def full_run(data_root, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('full')
    return work_dir, train(data_root, work_dir)


def test_loss_decreases_and_log_has_miou_and_lr_table(full_run):
    _, log = full_run
    losses = [float(x) for x in re.findall(r'Iter\(train\).*?\sloss: ([\d.]+)',
                                           log)]
    assert len(losses) == 8
    assert losses[-1] < 0.75 * losses[0]
    miou = [float(x) for x in re.findall(r'Iter\(val\).*?mIoU: ([\d.]+)', log)]
    assert len(miou) == 2 and miou[-1] > 50
    assert 'InternViT6B.get_layer_depth, num_layers=4, layer_decay_rate=0.9' \
        in log
    assert re.search(r'layer_0_decay\s+0\s+0\.5905\s+2\.9525e-03\s+0\.05', log)
    # no DeepSpeed import (its accelerator line) and no MMSeg
    # reduce_zero_label deprecation in the demo's log
    assert 'ds_accelerator' not in log
    assert 'reduce_zero_label' not in log
    # every line shows the layer spread, min_lr = lr * 0.9 ** 5
    lines = [line for line in log.splitlines() if 'Iter(train)' in line]
    pairs = [(re.search(r'\slr: ([\d.e+-]+)', line).group(1),
              re.search(r'\smin_lr: ([\d.e+-]+)', line).group(1))
             for line in lines]
    assert len(pairs) == 8
    for lr, min_lr in pairs:
        assert float(min_lr) == pytest.approx(float(lr) * 0.9**5, rel=1e-3)


def test_resume_continues_to_the_same_result(full_run, data_root,
                                             tmp_path):
    full_dir, _ = full_run
    train(data_root, tmp_path, 'train_cfg.max_iters=20')
    log = train(data_root, tmp_path, '--resume')
    assert 'Auto resumed from the latest checkpoint' in log
    assert 'Weights only load failed' not in log
    a = load_checkpoint_file(str(full_dir / 'iter_40.pth'))
    b = load_checkpoint_file(str(tmp_path / 'iter_40.pth'))
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    groups_a = a['optimizer']['param_groups']
    assert [g['lr'] for g in groups_a] == \
        [g['lr'] for g in b['optimizer']['param_groups']]
    assert groups_a[0]['group_name'] == 'layer_5_decay'
    assert 'decode_head.conv_seg.weight' in groups_a[0]['param_names']


def test_resume_with_empty_last_checkpoint_falls_back(full_run, data_root,
                                                      tmp_path):
    """A kill while MMEngine rewrites last_checkpoint leaves it empty, and
    one during a save leaves a truncated file: --resume takes the newest
    complete checkpoint, says so, and ends bit-identical."""
    full_dir, _ = full_run
    train(data_root, tmp_path, 'train_cfg.max_iters=20')
    (tmp_path / 'last_checkpoint').write_text('')
    complete = (tmp_path / 'iter_20.pth').read_bytes()
    (tmp_path / 'iter_30.pth').write_bytes(complete[:len(complete) // 3])
    log = train(data_root, tmp_path, '--resume')
    assert (f'{tmp_path}/last_checkpoint is empty; resuming from the newest '
            f'complete checkpoint in the work dir, {tmp_path}/iter_20.pth'
            in log)
    assert 'resumed epoch: 0, iter: 20' in log
    a = load_checkpoint_file(str(full_dir / 'iter_40.pth'))['state_dict']
    b = load_checkpoint_file(str(tmp_path / 'iter_40.pth'))['state_dict']
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def evaluate(data_root, checkpoint, work_dir):
    cmd = [sys.executable, os.path.join(ROOT, 'tools/test.py'), DEMO,
           str(checkpoint), '--work-dir', str(work_dir), '--cfg-options',
           f'test_dataloader.dataset.data_root={data_root}']
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stdout + result.stderr
    return float(re.findall(r'mIoU: ([\d.]+)', log)[-1]), log


def test_internvl_mmcv1_checkpoint_evaluates(full_run, data_root, tmp_path):
    """An InternVL segmentation checkpoint as mmcv 1.x wrote it: ``meta``
    (config text, CLASSES, PALETTE, versions) + ``state_dict`` with the
    backbone in bfloat16 (InternVL casts it) + ``optimizer``, in InternVL's
    key layout (checked against the reference in
    tests/internvit_references.py)."""
    from collections import OrderedDict

    from internvit_references import InternVLSegmentationReference
    full_dir, _ = full_run
    trained = load_checkpoint_file(str(full_dir / 'iter_40.pth'))['state_dict']
    reference = InternVLSegmentationReference(dim=64, depth=4, heads=4,
                                              patch=8, img=64,
                                              with_final_norm=False)
    backbone = [k[len('backbone.'):] for k in trained
                if k.startswith('backbone.')]
    assert backbone == list(reference.state_dict())
    state = OrderedDict(
        (k, v.to(torch.bfloat16) if k.startswith('backbone.') else v)
        for k, v in trained.items())
    checkpoint = {
        'meta': {'env_info': 'sys.platform: linux', 'seed': 0,
                 'exp_name': 'upernet_intern_vit_6b_504_80k.py',
                 'mmseg_version': '0.27.0+', 'mmcv_version': '1.7.0',
                 'config': f"open({str(tmp_path / 'PWNED')!r}, 'w')\n",
                 'CLASSES': ('wall', 'building', 'sky', 'floor'),
                 'PALETTE': [[120, 120, 120], [180, 120, 120],
                             [6, 230, 230], [80, 50, 50]],
                 'time': 'Thu Dec 14 10:00:00 2023', 'epoch': 1,
                 'iter': 40, 'hook_msgs': {'last_ckpt': 'iter_40.pth'}},
        'state_dict': state,
        'optimizer': {'state': {}, 'param_groups': [{'lr': 0.0}]}}
    path = tmp_path / 'internvl_mmcv1.pth'
    torch.save(checkpoint, path)
    original, _ = evaluate(data_root, full_dir / 'iter_40.pth',
                           tmp_path / 'a')
    converted, log = evaluate(data_root, path, tmp_path / 'b')
    assert 'meta.config' in log  # dropped, never run
    assert not (tmp_path / 'PWNED').exists()
    assert original > 50
    # bfloat16 rounding of the backbone moves a few pixels at most
    assert converted == pytest.approx(original, abs=2.0)
