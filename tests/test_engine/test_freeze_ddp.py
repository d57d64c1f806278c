"""freeze_backbone on a model that MMEngine already wrapped in DDP: a clear
error without find_unused_parameters, a working run with it (2 real
processes, gloo)."""
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                      'scripts', 'ddp_freeze.py')
pytestmark = pytest.mark.slow


def torchrun(*args, nproc=2):
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         f'--nproc_per_node={nproc}', SCRIPT, *args],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return [line for line in result.stdout.splitlines()
            if line.startswith(('OK', 'ERROR'))]


def test_ddp_without_find_unused_gets_a_clear_error():
    lines = torchrun('strict')
    assert len(lines) == 2
    assert all(line.startswith(
        'ERROR paramwise_cfg.freeze_backbone freezes parameters after the '
        'model was wrapped in DistributedDataParallel') for line in lines)
    assert "find_unused_parameters=True" in lines[0]


def test_ddp_with_find_unused_trains_and_frozen_weights_stay():
    lines = torchrun('find_unused')
    # level 0 of InternImage(depths=(1, 1, 1, 1)): 27 tensors frozen
    assert lines == ['OK 27 True', 'OK 27 True']
