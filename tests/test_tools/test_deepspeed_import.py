"""Issue 20: DeepSpeed is imported by the tools only when the config or the
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
