"""A hung rank ends a distributed run within the configured collective
timeout, with a message naming it."""
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from mmengine.config import Config
from torch import distributed as dist

from internvl_optim.engine.collective_timeout import (DEFAULT_TIMEOUT_S,
                                               HEARTBEAT_KEY, Heartbeat,
                                               configure_timeout,
                                               explain_timeout, is_timeout,
                                               read_heartbeats, silent_ranks)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DEMO = os.path.abspath(os.path.join(
    ROOT, 'configs/demo/internvit_tiny_upernet_synthetic_ade20k.py'))


def test_timeout_defaults_to_ten_minutes_and_keeps_the_configured_one():
    cfg = Config(dict())
    assert configure_timeout(cfg) == DEFAULT_TIMEOUT_S == 600
    assert cfg.env_cfg.dist_cfg.timeout == 600
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='gloo',
                                                 timeout=90))))
    assert configure_timeout(cfg) == 90.0
    assert cfg.env_cfg.dist_cfg == dict(backend='gloo', timeout=90.0)


@pytest.mark.parametrize('value, exc, message', [
    ('60', TypeError, 'env_cfg.dist_cfg.timeout must be a number in (0, '
     "2592000] seconds, got '60' (a string: write 60 without quotes)"),
    (0, ValueError, 'env_cfg.dist_cfg.timeout must be in (0, 2592000] '
     'seconds, got 0'),
    (10 ** 12, ValueError, 'env_cfg.dist_cfg.timeout must be in (0, '
     '2592000] seconds, got 1000000000000'),
    (math.inf, ValueError,
     'env_cfg.dist_cfg.timeout must be a finite number, got inf'),
])
def test_bad_timeouts(value, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        configure_timeout(Config(dict(env_cfg=dict(dist_cfg=dict(
            timeout=value)))))


def test_silent_ranks():
    assert silent_ranks({0: 100.0, 1: 90.0, 2: None}, now=101.0,
                        stale_after=6) == [(1, 11.0), (2, None)]
    assert silent_ranks({0: 100.0, 1: 99.0}, now=101.0, stale_after=6) == []


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_heartbeats_through_a_real_store():
    store = dist.TCPStore('127.0.0.1', free_port(), is_master=True,
                          wait_for_workers=False)
    beat = Heartbeat(rank=0, interval=0.05, store=store).start()
    time.sleep(0.2)
    beat.stop()
    store.set(HEARTBEAT_KEY.format(rank=1), repr(time.time() - 40))
    beats = read_heartbeats(store, world_size=3)
    assert time.time() - beats[0] < 1 and beats[2] is None
    message = explain_timeout(20, rank=0, world_size=3,
                              store_factory=lambda: store)
    assert re.fullmatch(
        r'rank 0: a collective operation timed out after 20 s '
        r'\(env_cfg.dist_cfg.timeout\)\. rank 1 has been silent for 4\d s, '
        r'rank 2 never sent a heartbeat: stopped or hung \(not dead, or '
        r'torchrun would have ended the job\)\. Ending the run\.', message)
    assert is_timeout(RuntimeError('[gloo] Timed out waiting 20000ms for '
                                   'recv operation to complete'))


@pytest.mark.slow
def test_a_stopped_rank_ends_the_job_and_is_named(tmp_path):
    from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k
    data = make_synthetic_ade20k(str(tmp_path / 'ade'), num_train=8,
                                 num_val=2)
    pid_file = tmp_path / 'stopped.pid'
    config = tmp_path / 'hang.py'
    config.write_text(f'''_base_ = [{DEMO!r}]
custom_imports = dict(imports=['internvl_optim', 'stop_rank_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='StopRankHook', rank=1, after_iter=3,
                     pid_file={str(pid_file)!r})]
env_cfg = dict(dist_cfg=dict(timeout=10))
''')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(ROOT, 'tests/scripts'), ROOT]))
    start = time.time()
    try:
        result = subprocess.run(
            [sys.executable, '-m', 'torch.distributed.run', '--standalone',
             '--nproc_per_node=2', os.path.join(ROOT, 'tools/train.py'),
             str(config), '--launcher', 'pytorch', '--work-dir',
             str(tmp_path / 'work'), '--cfg-options',
             f'train_dataloader.dataset.data_root={data}',
             f'val_dataloader.dataset.data_root={data}'],
            capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    finally:
        if pid_file.exists():  # never leave the stopped process behind
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    elapsed = time.time() - start
    assert pid_file.exists(), result.stderr[-3000:]
    assert result.returncode != 0
    assert re.search(
        r'CollectiveTimeoutError: rank 0: a collective operation timed out '
        r'after 10 s \(env_cfg.dist_cfg.timeout\)\. rank 1 has been silent '
        r'for \d+ s: stopped or hung', result.stderr), result.stderr[-3000:]
    assert elapsed < 200
    print(f'stopped rank named, job ended after {elapsed:.0f} s')
