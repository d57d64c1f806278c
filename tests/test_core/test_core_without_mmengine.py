"""The core is pure PyTorch: with MMEngine, MMCV and MMSeg
blocked from importing, ``internvl_optim`` imports and builds groups; and
the core's doctests run."""
import doctest
import importlib
import os
import pkgutil
import subprocess
import sys

import internvl_optim.checkpoint
import internvl_optim.core

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')

BLOCKED_RUN = r'''
import sys
from importlib.abc import MetaPathFinder

class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmengine', 'mmcv', 'mmseg', 'mmdet',
                                  'deepspeed'):
            raise ImportError(f'{name} is blocked for this test')

sys.meta_path.insert(0, Block())
import torch
from torch import nn
import internvl_optim
from internvl_optim.core import LayerDecaySettings, build_param_groups
from internvl_optim.checkpoint.state_by_name import load_state_by_name

model = nn.Module()
model.backbone = nn.Module()
model.backbone.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
model.backbone.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
model.head = nn.Linear(4, 2)
plan = build_param_groups(model, LayerDecaySettings.from_paramwise_cfg(
    dict(layer_decay_rate=0.5)), 1.0, 0.05)
print(plan.layer_rule)
for g in plan.groups:
    print(g['group_name'], g['lr'], g['weight_decay'], g['param_names'])
print('mmengine loaded:', any(m.split('.')[0] == 'mmengine'
                              for m in sys.modules))
print('constructor exported:',
      hasattr(internvl_optim, 'LayerDecayOptimizerConstructor'))
'''


def test_core_imports_and_builds_groups_with_mmengine_blocked():
    result = subprocess.run([sys.executable, '-c', BLOCKED_RUN], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        'ViT rule (backbone.blocks)',
        "layer_3_decay 1.0 0.05 ['head.weight']",
        "layer_3_no_decay 1.0 0.0 ['head.bias']",
        "layer_2_decay 0.5 0.05 ['backbone.blocks.1.weight']",
        "layer_2_no_decay 0.5 0.0 ['backbone.blocks.1.bias']",
        "layer_1_decay 0.25 0.05 ['backbone.blocks.0.weight']",
        "layer_1_no_decay 0.25 0.0 ['backbone.blocks.0.bias']",
        "layer_0_no_decay 0.125 0.0 ['backbone.cls_token']",
        'mmengine loaded: False',
        'constructor exported: False',
    ]


def test_core_doctests():
    """Every doctest in ``internvl_optim.core`` and ``.checkpoint``
    (examples in docstrings)."""
    attempted = 0
    modules = [internvl_optim.core, internvl_optim.checkpoint] + [
        importlib.import_module(info.name)
        for package in (internvl_optim.core, internvl_optim.checkpoint)
        for info in pkgutil.walk_packages(
            package.__path__, package.__name__ + '.')]
    for module in modules:
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        attempted += result.attempted
    assert attempted >= 15, attempted
