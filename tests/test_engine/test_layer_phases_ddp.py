"""Phases over layers under DDP on 2 gloo ranks: every parameter keeps
``requires_grad`` (DDP without ``find_unused_parameters`` accepts it), the
layers join on every rank alike, and a resume inside a warm-up is bit
identical to the straight run."""
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                      'scripts', 'ddp_phases.py')
pytestmark = pytest.mark.slow


def test_two_ranks_resume_bit_identical():
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         '--nproc_per_node=2', SCRIPT], capture_output=True, text=True,
        timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines()
             if line.startswith('OK')]
    # head_only=2, unfreeze_every=2: block 2 joins at 2, block 1 at 4,
    # block 0 at 6: after 3 steps only block 2 has moved, after 8 all,
    # alike on both ranks
    assert lines == ['OK True 2 0,1,2', 'OK True 2 0,1,2']
