"""Every check before anything is built: tools/train.py stops
with one short message, no traceback, a non-zero exit code, and builds no
model and no dataloader (the log would say 'Iter(train)' or the table of
groups; the synthetic data is never read: its directory does not exist
where it is not the subject)."""
import os
import subprocess
import sys

import pytest


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DEMO = os.path.join(ROOT, 'configs/demo/'
                    'internvit_tiny_upernet_synthetic_ade20k.py')

pytestmark = pytest.mark.slow


def train(tmp_path, data_root, *options):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/train.py'), DEMO,
         '--work-dir', str(tmp_path / 'w'), '--cfg-options',
         f'train_dataloader.dataset.data_root={data_root}',
         f'val_dataloader.dataset.data_root={data_root}', *options],
        capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    return result


@pytest.mark.parametrize('option, message', [
    ('optim_wrapper.paramwise_cfg.layer_decay_rat=0.9',
     "ValueError: Unknown key paramwise_cfg.layer_decay_rat. Did you mean "
     "'layer_decay_rate'?"),
    ('optim_wrapper.paramwise_cfg.layer_decay_rate=2.0',
     'ValueError: paramwise_cfg.layer_decay_rate must be in (0, 1], got '
     '2.0'),
    ('optim_wrapper.optimizer.amsgrad=yes',
     "TypeError: optim_wrapper.optimizer.amsgrad must be True or False "
     "(AdamW's default is False), got 'yes'"),
    ('param_scheduler.0.start_factor=0.0',
     'ValueError: param_scheduler[0] (LinearLR).start_factor must be in '
     '(0, 1], got 0.0'),
    ('train_cfg.max_iters=-1',
     'ValueError: train_cfg.max_iters must be an int > 0, got -1'),
    ('model.backbone.pretrained=missing/vit.pth',
     "FileNotFoundError: model.backbone.pretrained='missing/vit.pth' does "
     'not exist (relative to the working directory {cwd})'),
    ('load_from=nowhere.pth',
     "FileNotFoundError: load_from='nowhere.pth' does not exist (relative "
     'to the working directory {cwd})'),
])
def test_config_errors_stop_before_anything_is_built(tmp_path, data_root,
                                                     option, message):
    result = train(tmp_path, data_root, option)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert 'Traceback' not in result.stderr
    assert lines[-1].startswith(f'tools/train.py {DEMO}: '
                                + message.format(cwd=tmp_path))
    log = result.stdout + result.stderr
    assert 'LayerDecayOptimizerConstructor:' not in log  # no groups built
    assert 'Iter(train)' not in log
    # MMSeg warns about build_loss while it builds the demo's decode head:
    # absent, no model was built
    assert 'build_loss' not in log
    assert not (tmp_path / 'w').exists() or not any(
        p.suffix == '.pth' for p in (tmp_path / 'w').iterdir())


@pytest.mark.parametrize('option, message', [
    ('optim_wrapper.paramwise_cfg.layer_decay_rat=0.9',
     "ValueError: Unknown key paramwise_cfg.layer_decay_rat. Did you mean "
     "'layer_decay_rate'?"),
    ('param_scheduler.0.start_factor=0.0',
     'ValueError: param_scheduler[0] (LinearLR).start_factor must be in '
     '(0, 1], got 0.0'),
])
def test_the_analyser_stops_before_building_the_model(tmp_path, option,
                                                      message):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/analyze_param_groups.py'),
         DEMO, '--cfg-options', option],
        capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f'tools/analyze_param_groups.py {DEMO}: {message}')
    assert 'building the model' not in result.stderr
    assert 'build_loss' not in result.stderr  # (see above)


def test_test_tool_stops_on_a_missing_checkpoint(tmp_path, data_root):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/test.py'), DEMO,
         str(tmp_path / 'nope.pth'), '--work-dir', str(tmp_path / 'w'),
         '--cfg-options', f'test_dataloader.dataset.data_root={data_root}'],
        capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"tools/test.py {DEMO}: FileNotFoundError: checkpoint "
        f"'{tmp_path / 'nope.pth'}' not found")
    assert 'build_loss' not in result.stderr  # no model was built
