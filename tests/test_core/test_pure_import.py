"""the pure PyTorch API imports neither MMEngine nor DeepSpeed;
an MMEngine program still gets everything registered."""
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
HEAVY = ('mmengine', 'deepspeed', 'mmseg', 'mmdet', 'mmcv', 'transformers')


def run(code: str) -> str:
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_core_and_torch_api_import_nothing_heavy():
    code = ('import sys\n'
            'import internvl_optim.core\n'
            'from internvl_optim import param_groups, LayerDecaySettings\n'
            'from torch import nn\n'
            'model = nn.Sequential(nn.Linear(2, 2))\n'
            'groups = param_groups(model, lr=1.0, weight_decay=0.1)\n'
            f'print(sorted(m for m in {HEAVY!r} if m in sys.modules),'
            ' len(groups))')
    assert run(code) == '[] 2'


def test_mmengine_program_gets_the_registrations():
    # MMEngine imported first (as in a config's custom_imports)
    code = ('import mmengine\n'
            'import internvl_optim\n'
            'from mmengine.registry import (HOOKS, OPTIM_WRAPPER_CONSTRUCTORS,'
            ' STRATEGIES)\n'
            "print(OPTIM_WRAPPER_CONSTRUCTORS.get("
            "'LayerDecayOptimizerConstructor').__module__,"
            " HOOKS.get('CheckpointTrustHook').__name__,"
            " STRATEGIES.get('SafeResumeDeepSpeedStrategy').__name__)")
    assert run(code) == ('internvl_optim.engine.optimizers.'
                         'layer_decay_constructor CheckpointTrustHook '
                         'SafeResumeDeepSpeedStrategy')


def test_constructor_name_registers_on_first_use():
    # the package imported before MMEngine: asking for the constructor
    # (or importing internvl_optim.engine) registers everything
    code = ('import sys\n'
            'import internvl_optim\n'
            "before = 'mmengine' in sys.modules\n"
            'from internvl_optim import LayerDecayOptimizerConstructor as C\n'
            'from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as R\n'
            "print(before, R.get('CustomLayerDecayOptimizerConstructor') is C)")
    assert run(code) == 'False True'


def test_a_blocked_mmengine_is_absent():
    # sys.modules['mmengine'] = None is the standard way to block an import
    code = ('import sys\n'
            "sys.modules['mmengine'] = None\n"
            'import internvl_optim.core\n'
            'from internvl_optim import param_groups\n'
            'from torch import nn\n'
            'model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))\n'
            'groups = param_groups(model, lr=1.0, weight_decay=0.1,\n'
            '                      layer_decay_rate=1.0)\n'
            'print(sorted((g["lr"], g["weight_decay"]) for g in groups))')
    # every layer at the base lr: one group per weight decay (the Linear's
    # weight; its bias and the LayerNorm)
    assert run(code) == '[(1.0, 0.0), (1.0, 0.1)]'


def test_star_import_with_and_without_mmengine():
    star = ('from internvl_optim import *\n'
            'print(sorted(k for k in dir()\n'
            '             if not k.startswith("_") and k not in ("sys", "mmengine")))')
    names = "['GroupPlan', 'LayerDecaySettings', 'LayerDecayWarning', " \
        "'ParamPlan', 'build_param_groups', 'param_groups']"
    assert run("import sys\nsys.modules['mmengine'] = None\n" + star) == \
        names
    assert run('import mmengine\n' + star) == names
    # the constructors stay attributes, registered on first use
    assert run('import internvl_optim\n'
               'print(internvl_optim.LayerDecayOptimizerConstructor'
               '.__name__)') == 'LayerDecayOptimizerConstructor'
