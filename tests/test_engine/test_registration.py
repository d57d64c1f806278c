"""`constructor='LayerDecayOptimizerConstructor'` builds ours under MMSeg's
default scope, without breaking MMSeg's own constructors.  Import-order cases
run in fresh interpreters because registries are process-global."""
import os
import subprocess
import sys
import textwrap

import pytest
from mmengine.optim import build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, init_default_scope

import internvl_optim
from internvl_optim import LayerDecayOptimizerConstructor

from mmseg_models import tiny_segmentor

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
OPTIM_WRAPPER = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.1))


@pytest.mark.parametrize('name', ['LayerDecayOptimizerConstructor',
                                  'CustomLayerDecayOptimizerConstructor'])
@pytest.mark.parametrize('scope', ['mmseg', 'mmengine'])
def test_name_builds_ours_in_both_scopes(name, scope):
    init_default_scope(scope)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=name, optim_wrapper_cfg=OPTIM_WRAPPER,
             paramwise_cfg=dict(layer_decay_rate=0.5)))
    assert type(constructor) is LayerDecayOptimizerConstructor
    init_default_scope('mmseg')


def test_package_attributes():
    assert internvl_optim.CustomLayerDecayOptimizerConstructor is \
        LayerDecayOptimizerConstructor


def test_build_optim_wrapper_under_mmseg_scope_uses_our_groups():
    model = tiny_segmentor('BEiT')
    init_default_scope('mmseg')
    wrapper = build_optim_wrapper(model, dict(
        OPTIM_WRAPPER, constructor='LayerDecayOptimizerConstructor',
        paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.5)))
    groups = wrapper.optimizer.param_groups
    assert groups[0]['group_name'] == 'layer_3_decay'
    cls_group = next(g for g in groups
                     if 'backbone.cls_token' in g['param_names'])
    assert (cls_group['lr'], cls_group['weight_decay']) == (1 / 8, 0.0)


def run_python(code):
    result = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


CHECK = '''
from mmengine.registry import init_default_scope
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as SEG
init_default_scope('mmseg')
ours = SEG.get('LayerDecayOptimizerConstructor')
theirs = SEG.get('LearningRateDecayOptimizerConstructor')
print('RESULT', ours.__module__, theirs.__module__)
'''


def result(out):
    # DeepSpeed, when installed, prints its accelerator choice on import
    return next(line.split()[1:] for line in out.splitlines()
                if line.startswith('RESULT '))


@pytest.mark.parametrize('first', [
    # before MMEngine: the engine package registers (the top-level package
    # alone imports no MMEngine, see test_pure_import.py)
    'import internvl_optim.engine',
    # after MMEngine (a config's custom_imports): the package registers
    'import mmengine\nimport internvl_optim'])
def test_import_ours_first_then_mmseg_lazy_import(first):
    out = run_python(first + '\n' + CHECK)
    assert result(out) == ['internvl_optim.engine.optimizers.layer_decay_constructor',
                           'mmseg.engine.optimizers.layer_decay_optimizer_'
                           'constructor']


def test_import_mmseg_first_then_ours():
    out = run_python('import mmseg.engine.optimizers\nimport internvl_optim\n'
                     + CHECK)
    assert result(out)[0] == 'internvl_optim.engine.optimizers.layer_decay_constructor'


def test_without_our_import_mmseg_class_wins():
    # documents why configs need custom_imports=dict(imports=['internvl_optim'])
    out = run_python(CHECK)
    assert result(out)[0] == ('mmseg.engine.optimizers.layer_decay_'
                              'optimizer_constructor')


def test_config_custom_imports_then_mmseg_constructor_still_works():
    out = run_python('''
    import warnings
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    cfg = Config(dict(custom_imports=dict(imports=['internvl_optim'])))
    Config.fromstring(cfg.pretty_text, '.py')  # imports internvl_optim
    import sys
    sys.path.insert(0, 'tests')
    from mmseg_models import tiny_segmentor
    model = tiny_segmentor('BEiT')
    init_default_scope('mmseg')
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0),
        constructor='LearningRateDecayOptimizerConstructor',
        paramwise_cfg=dict(num_layers=2, decay_rate=0.5,
                           decay_type='layer_wise')))
    print(len(wrapper.optimizer.param_groups), 'internvl_optim' in sys.modules)
    ''')
    assert out.split()[-2:] == ['8', 'True']


MMDET_CHECK = '''
import torch
from torch import nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
init_default_scope('mmdet')
model = nn.Module()
model.backbone = nn.Module()
model.backbone.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))
model.bbox_head = nn.Linear(2, 2)
wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0,
                                                   weight_decay=0.1))
built = []
for name in ('LayerDecayOptimizerConstructor',
             'CustomLayerDecayOptimizerConstructor'):
    groups = build_optim_wrapper(model, dict(
        wrapper, constructor=name, paramwise_cfg=dict(
            layer_decay_rate=0.5))).optimizer.param_groups
    built.append(groups[-1].get('group_name'))
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as DET
theirs = DET.get('LearningRateDecayOptimizerConstructor')
print('RESULT', *built, theirs.__module__)
'''


@pytest.mark.parametrize('first', [
    'import internvl_optim.engine',
    'import mmdet.engine.optimizers; import internvl_optim',
    'import mmseg.engine.optimizers; import mmdet.models; '
    'import internvl_optim',
    # MMDetection without MMSeg: mmseg cannot be imported at all
    'import sys\n'
    'from importlib.abc import MetaPathFinder\n'
    'class NoMMSeg(MetaPathFinder):\n'
    '    def find_spec(self, name, path=None, target=None):\n'
    '        if name.split(".")[0] == "mmseg":\n'
    '            raise ImportError("mmseg blocked")\n'
    'sys.meta_path.insert(0, NoMMSeg())\n'
    'import internvl_optim.engine\n'
    'assert not any(m.startswith("mmseg") for m in sys.modules)',
])
def test_mmdet_scope_builds_ours_and_keeps_mmdets_own(first):
    # default_scope='mmdet' configs name our constructor; MMDet's
    # LearningRateDecayOptimizerConstructor (ConvNeXt) stays its own
    out = run_python(first + '\n' + MMDET_CHECK)
    assert result(out) == [
        'layer_1_no_decay', 'layer_1_no_decay',  # block 0's bias
        'mmdet.engine.optimizers.layer_decay_optimizer_constructor']


#: a training script as isort orders it: ``internvl_optim`` before the
#: ``mmengine`` / ``mmseg`` imports, nothing else registering
ISORT_SCRIPT = '''
import sys
import internvl_optim
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
sys.path.insert(0, 'tests')
from mmseg_models import tiny_segmentor
before = 'mmengine' in sys.modules
model = tiny_segmentor('BEiT')
init_default_scope('mmseg')
wrapper = build_optim_wrapper(model, dict(
    type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0,
                                        weight_decay=0.1),
    constructor='{name}',
    paramwise_cfg=dict(num_layers=2, layer_decay_rate=0.5)))
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS as R
groups = wrapper.optimizer.param_groups
cls_group = next(g for g in groups if 'backbone.cls_token' in g['param_names'])
print(R.get('{name}').__module__, groups[0]['group_name'],
      'layer_id' in groups[0], cls_group['lr'], cls_group['weight_decay'])
'''


@pytest.mark.parametrize('name', ['LayerDecayOptimizerConstructor',
                                  'CustomLayerDecayOptimizerConstructor'])
def test_script_in_isort_order_builds_ours_on_mmsegs_beit(name):
    # MMSeg's deprecated class of the same name would build MMSeg's groups
    # (no layer_id, 134 printed lines) under default_scope='mmseg'
    out = run_python(ISORT_SCRIPT.replace('{name}', name))
    assert out.strip().splitlines()[-1].split() == [
        'internvl_optim.engine.optimizers.layer_decay_constructor',
        'layer_3_decay', 'True', '0.125', '0.0']
    assert 'Note: the `LayerDecayOptimizerConstructor` is deprecated' \
        not in out


def test_script_in_isort_order_gets_every_registration():
    # hooks and strategies too, once MMEngine's optimizers are imported
    out = run_python('''
    import internvl_optim
    import sys
    assert 'mmengine' not in sys.modules
    from mmengine.runner import Runner
    from mmengine.registry import HOOKS, STRATEGIES
    print(HOOKS.get('CheckpointTrustHook').__name__,
          STRATEGIES.get('SafeResumeDeepSpeedStrategy').__name__,
          any(type(f).__name__ == 'RegistrationWatch' for f in sys.meta_path),
          type(sys.modules['mmengine.optim'].__loader__).__name__)
    ''')
    assert out.split()[-4:] == ['CheckpointTrustHook',
                                'SafeResumeDeepSpeedStrategy', 'False',
                                'SourceFileLoader']
