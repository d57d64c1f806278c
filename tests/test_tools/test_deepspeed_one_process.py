"""``python tools/train.py`` on a DeepSpeed config (the command the README
gives for any config), without a launcher: one process of a process group
set up by the tool, as ``tools/dist_train.sh CONFIG 1`` (DeepSpeed 0.15.4
would otherwise look for MPI, ``from mpi4py import MPI``, after the model is
built).  A process that says it is one of several but was not launched is
refused before anything is built."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
CONFIG = os.path.join(ROOT, 'configs/demo/'
                      'internvit_tiny_upernet_synthetic_ade20k_deepspeed.py')
LAUNCHER_VARIABLES = ('LOCAL_RANK', 'RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE',
                      'MASTER_ADDR', 'MASTER_PORT')


def train(data_root, work_dir, env=None, config=CONFIG, options=()):
    clean = {k: v for k, v in os.environ.items()
             if k not in LAUNCHER_VARIABLES}
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/train.py'), config,
         '--work-dir', str(work_dir), '--cfg-options', *options,
         'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
         f'train_dataloader.dataset.data_root={data_root}',
         f'val_dataloader.dataset.data_root={data_root}'],
        capture_output=True, text=True, timeout=400, cwd=ROOT,
        env={**clean, **(env or {})})


def assert_refused_as_one_of_two(result, config):
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f'tools/train.py {config}: ValueError: RANK=1, WORLD_SIZE=2 is set '
        'but tools/train.py was started with --launcher none: start each '
        'process with --launcher pytorch (tools/dist_train.sh CONFIG NPROC '
        'does)')


@pytest.mark.slow
def test_a_deepspeed_config_trains_on_one_process(data_root, tmp_path):
    pytest.importorskip('deepspeed')
    result = train(data_root, tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert ('strategy: DeepSpeedStrategy without a launcher: one process '
            '(as tools/dist_train.sh CONFIG 1)') in log
    assert 'mpi4py' not in log
    assert 'Iter(val) [4/4]' in log
    assert (tmp_path / 'last_checkpoint').read_text().endswith(
        'iter_4.pth')
    assert sorted(os.listdir(tmp_path / 'iter_4.pth')) == [
        'mp_rank_00_model_states.pt', 'state_by_name_rank0.pth',
        'zero_pp_rank_0_mp_rank_00_optim_states.pt']


def test_a_process_of_several_without_a_launcher_is_refused(data_root,
                                                           tmp_path):
    pytest.importorskip('deepspeed')
    result = train(data_root, tmp_path, env=dict(RANK='1', WORLD_SIZE='2'))
    assert_refused_as_one_of_two(result, CONFIG)
    assert not os.path.exists(tmp_path / 'iter_4.pth')


def test_internvl_deepspeed_keys_are_seen_without_a_launcher(data_root,
                                                            tmp_path):
    """InternVL's deepspeed=True / deepspeed_config become the DeepSpeed
    strategy before the launch is decided: a process of several without a
    launcher is refused for them too, before anything is built."""
    pytest.importorskip('deepspeed')
    ds_json = tmp_path / 'zero1.json'
    ds_json.write_text('{"zero_optimization": {"stage": 1}}')
    demo = os.path.join(ROOT, 'configs/demo/'
                        'internvit_tiny_upernet_synthetic_ade20k.py')
    result = train(data_root, tmp_path / 'work',
                   env=dict(RANK='1', WORLD_SIZE='2'), config=demo,
                   options=['deepspeed=True', f'deepspeed_config={ds_json}'])
    assert_refused_as_one_of_two(result, demo)
