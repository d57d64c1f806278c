"""A VLM trained by MMEngine through tools/train.py: a
tiny transformers InternVL on synthetic image-text batches (nothing
downloaded), layouts recognised by the constructor; the loss goes down,
and a run stopped at iteration 4 and resumed ends bit-identical to an
uninterrupted one."""
import os
import re
import subprocess
import sys

import pytest
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
CONFIG = os.path.join(ROOT, 'configs/multimodal/'
                      'internvl_tiny_vlm_synthetic.py')

pytestmark = pytest.mark.slow
pytest.importorskip('transformers')


def train(work_dir, *extra):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/train.py'), CONFIG,
         '--work-dir', str(work_dir), *extra],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_vlm_trains_and_resumes_bit_identically(tmp_path):
    log = train(tmp_path / 'full')
    assert ('towers (InternVLForConditionalGeneration: sub-configs): '
            'vision = '
            'vlm.model.vision_tower, ViT rule (vlm.model.vision_tower.'
            'encoder.layer), rate 0.9') in log
    losses = [float(x) for x in re.findall(r'Iter\(train\).*?loss: ([\d.]+)',
                                           log)]
    assert len(losses) == 6 and losses[-1] < losses[0]
    # the logged lr is the base lr (projector, language model); min_lr the
    # vision tower's embeddings: 0.9 ** 3 of it
    last = [line for line in log.splitlines() if 'Iter(train) [6/6]' in line]
    assert ' lr: 1.0000e-03 ' in last[0] and 'min_lr: 7.2900e-04' in last[0]

    train(tmp_path / 'part', '--cfg-options', 'train_cfg.max_iters=4')
    train(tmp_path / 'part', '--resume')
    from internvl_optim.checkpoint.safe_loading import \
        load_checkpoint_file
    full = load_checkpoint_file(str(tmp_path / 'full' / 'iter_6.pth'))
    resumed = load_checkpoint_file(str(tmp_path / 'part' / 'iter_6.pth'))
    assert full['state_dict'].keys() == resumed['state_dict'].keys()
    for key, value in full['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key
    groups = {g['group_name']: g for g in full['optimizer']['param_groups']}
    assert groups['vision_layer_0_decay']['lr'] == pytest.approx(
        1e-3 * 0.9 ** 3)
    language = [g for name, g in groups.items()
                if name.startswith('language_')]
    # the language model at the base lr: one group per weight decay
    assert [g['lr'] for g in language] == pytest.approx([1e-3, 1e-3])
    assert sorted(g['weight_decay'] > 0 for g in language) == [False, True]
