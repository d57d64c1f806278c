"""Detection through the tools: MMDetection's RetinaNet
R-18 config with our constructor trains 40 CPU iterations on the synthetic
COCO-layout dataset the project generates, saves, resumes bit-identical to
an uninterrupted run, and tools/test.py evaluates it with CocoMetric."""
import os
import re
import subprocess
import sys

import pytest
import torch

from internvl_optim.checkpoint.safe_loading import load_checkpoint_file

from internvl_optim.datasets.synthetic_coco import make_synthetic_coco

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
CONFIG = os.path.join(ROOT, 'configs/demo/retinanet_r18_synthetic_coco.py')
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    return make_synthetic_coco(str(tmp_path_factory.mktemp('coco'))) + '/'


def data_options(coco, loaders=('train', 'val', 'test')):
    ann = f'{coco}annotations/instances_val2017.json'
    return ([f'{loader}_dataloader.dataset.data_root={coco}'
             for loader in loaders] +
            [f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}'])


def run(tool, *args, coco, options=()):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', tool), CONFIG, *args,
         '--cfg-options', *data_options(coco), *options],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


def test_train_resume_evaluate(coco, tmp_path):
    full = tmp_path / 'full'
    log = run('train.py', '--work-dir', str(full), coco=coco)
    assert 'LayerDecayOptimizerConstructor: module order rule (backbone.*: ' \
        '6 units), num_layers=5, layer_decay_rate=0.9, base lr=0.01' in log
    losses = [float(x) for x in re.findall(r'Iter\(train\).*?\sloss: ([\d.]+)',
                                           log)]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert 'coco/bbox_mAP:' in log

    split = tmp_path / 'split'
    run('train.py', '--work-dir', str(split), coco=coco,
        options=['train_cfg.max_iters=20'])
    log = run('train.py', '--work-dir', str(split), '--resume', coco=coco)
    assert 'resumed epoch: 0, iter: 20' in log
    a = load_checkpoint_file(str(full / 'iter_40.pth'))
    b = load_checkpoint_file(str(split / 'iter_40.pth'))
    assert [k for k in a['state_dict']
            if not torch.equal(a['state_dict'][k], b['state_dict'][k])] == []
    assert [g['lr'] for g in a['optimizer']['param_groups']] == \
        [g['lr'] for g in b['optimizer']['param_groups']]

    log = run('test.py', str(full / 'iter_40.pth'), '--work-dir',
              str(tmp_path / 'eval'), coco=coco)
    found = re.search(r'coco/bbox_mAP: ([\d.]+)', log)
    assert found and float(found.group(1)) > 0
