"""Two of MMSeg's own shipped configs, a CNN (MobileNetV2 + DeepLabV3) and
a hierarchical transformer (SegFormer MiT-B0), train through tools/train.py
with our constructor switched on and their recipes' custom keys kept
.  Only what CPU needs is overridden: 64x64 crops on the project's
synthetic ADE20K, no pretrained download, 20 iterations, a PolyLR without
the shipped absolute eta_min (which train.py refuses under layer decay)."""
import os
import re
import subprocess
import sys

import pytest

from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
pytestmark = pytest.mark.slow

OVERLAY = '''_base_ = [{config!r}]
custom_imports = dict(imports=['internvl_optim'], allow_failed_imports=False)
crop_size = (64, 64)
model = dict(data_preprocessor=dict(size=crop_size), pretrained=None,
             backbone=dict(init_cfg=None))
optim_wrapper = dict(constructor='LayerDecayOptimizerConstructor',
                     paramwise_cfg=dict(layer_decay_rate=0.9))
pipeline = [dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', reduce_zero_label=True),
            dict(type='PackSegInputs')]
loader = dict(batch_size=2, num_workers=0, persistent_workers=False,
              dataset=dict(data_root={data!r}, pipeline=pipeline))
train_dataloader = loader
val_dataloader = dict(loader, batch_size=1)
test_dataloader = val_dataloader
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0,
                        end=20, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=20, val_interval=20)
default_hooks = dict(logger=dict(interval=5),
                     checkpoint=dict(by_epoch=False, interval=20))
'''


def shipped(rel):
    import mmseg
    return os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs',
                        rel)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_synthetic_ade20k(str(tmp_path_factory.mktemp('ade')),
                                 num_train=8, num_val=2)


def train(rel, data, tmp_path):
    config = tmp_path / 'overlay.py'
    config.write_text(OVERLAY.format(config=shipped(rel), data=data))
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/train.py'), str(config),
         '--work-dir', str(tmp_path / 'work')],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    losses = [float(x) for x in re.findall(r'Iter\(train\).*?\sloss: ([\d.]+)',
                                           log)]
    assert len(losses) >= 4 and all(loss == loss for loss in losses)
    assert losses[-1] < losses[0]
    assert 'Iter(val) [2/2]' in log and 'mIoU' in log
    assert (tmp_path / 'work' / 'iter_20.pth').exists()
    return log


def test_cnn_mobilenet_v2_deeplabv3(data, tmp_path):
    log = train('mobilenet_v2/mobilenet-v2-d8_deeplabv3_4xb4-160k_ade20k-'
                '512x512.py', data, tmp_path)
    assert 'module order rule (backbone.*: 8 units), num_layers=7, ' \
        'layer_decay_rate=0.9' in log
    # the stem (unit 0) at 0.9 ** 8 of the base lr 0.01, heads at base
    assert re.search(r'layer_0_decay\s+0\s+0\.4305\s+4\.3047e-03', log)
    assert re.search(r'layer_8_decay\s+8\s+1\s+1\.0000e-02', log)


def test_hierarchical_segformer_mit_b0(data, tmp_path):
    log = train('segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
                data, tmp_path)
    assert 'stage rule (backbone.layers, depths [2, 2, 2, 2]), ' \
        'num_layers=8, layer_decay_rate=0.9' in log
    # the recipe's custom keys are applied: norms and pos_block without
    # weight decay, the head at 10x
    assert re.search(r'layer_9_head_decay\s+9\s+10\s+6\.0000e-04\s+0\.01',
                     log)
    assert re.search(r'layer_1_norm_no_decay\s+1\s+0\.4305', log)
