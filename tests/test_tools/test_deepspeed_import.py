"""DeepSpeed is imported by the tools only when the config or the
command line uses it (internvl_optim.runtime.deepspeed_import)."""
import os
import subprocess
import sys

import pytest

from internvl_optim.runtime.deepspeed_import import (config_path,
                                                     mentions_deepspeed)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DEMO = os.path.join(ROOT, 'configs/demo/'
                    'internvit_tiny_upernet_synthetic_ade20k.py')
DEEPSPEED_DEMO = DEMO.replace('.py', '_deepspeed.py')
# what DeepSpeed logs when it is imported
DEEPSPEED_LINE = 'Setting ds_accelerator to'


def analyze(*args):
    pytest.importorskip('deepspeed')
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/analyze_param_groups.py'),
         *args, '--compact'], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_a_config_without_deepspeed_never_imports_it():
    log = analyze(DEMO)
    assert DEEPSPEED_LINE not in log
    assert 'backbone.blocks.0' in log or 'block' in log


def test_a_deepspeed_config_still_gets_it():
    assert DEEPSPEED_LINE in analyze(DEEPSPEED_DEMO)


def test_what_counts_as_using_deepspeed():
    from mmengine.config import Config
    assert not mentions_deepspeed(Config.fromfile(
        DEMO, import_custom_modules=False))
    assert mentions_deepspeed(Config.fromfile(
        DEEPSPEED_DEMO, import_custom_modules=False))
    # InternVL's top-level keys, an option, any nesting
    assert mentions_deepspeed({'deepspeed': True})
    assert mentions_deepspeed({'a': [{'type': 'DeepSpeedOptimWrapper'}]})
    assert not mentions_deepspeed({'a': [{'type': 'OptimWrapper'}]})
    assert config_path(['--work-dir', 'w', 'cfg.py']) == 'cfg.py'
    assert config_path(['cfg.py', 'iter_4.pth', '--amp']) == 'cfg.py'
    assert config_path(['--amp']) is None


def decide(*argv):
    """deepspeed_only_if_used in a fresh interpreter (it edits
    sys.modules): whether it kept DeepSpeed out."""
    code = ('import sys\n'
            'from internvl_optim.runtime.deepspeed_import import '
            'deepspeed_only_if_used\n'
            f'print(deepspeed_only_if_used({list(argv)!r}),'
            " sys.modules.get('deepspeed', 'absent'))")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_what_keeps_it_importable(tmp_path):
    # (tmp_path, named after this test, must not contain the word itself)
    checkpoint = tmp_path / 'ck' / 'iter_5.pth'
    assert decide(DEMO, str(tmp_path)) == ['True', 'None']
    # a DeepSpeed checkpoint directory: tools/test.py reads it with
    # DeepSpeed's types, whatever the config
    checkpoint.mkdir(parents=True)
    (checkpoint / 'mp_rank_00_model_states.pt').touch()
    assert decide(DEMO, str(checkpoint)) == ['False', 'absent']
    # a config importing a module of its own (it might use DeepSpeed)
    own = tmp_path / 'own.py'
    own.write_text(f"_base_ = [{DEMO!r}]\n"
                   "custom_imports = dict(imports=['internvl_optim', "
                   "'my_project.hooks'])\n")
    assert decide(str(own)) == ['False', 'absent']
    ours = tmp_path / 'ours.py'
    ours.write_text(f"_base_ = [{DEMO!r}]\n"
                    "custom_imports = dict(imports=['internvl_optim', "
                    "'mmdet.models'])\n")
    assert decide(str(ours)) == ['True', 'None']
    # a config that cannot be read is the tool's to report
    assert decide(str(tmp_path / 'missing.py')) == ['False', 'absent']
    assert decide(DEEPSPEED_DEMO) == ['False', 'absent']
