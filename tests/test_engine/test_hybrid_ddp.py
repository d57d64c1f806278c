"""MuonAdamW under DDP (2 gloo processes, each on half of the batch)
ends at the weights of one process on the whole batch: DDP averages the
gradients before the step, and each rank orthogonalizes the same whole
matrices (float tolerance: the ranks sum in another order)."""
import os
import subprocess
import sys

import pytest
import torch

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                      'scripts', 'ddp_muon.py')
pytestmark = pytest.mark.slow


def test_two_ranks_equal_one_process(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                        'MASTER_PORT', 'LOCAL_WORLD_SIZE')}
    one = subprocess.run([sys.executable, SCRIPT, str(tmp_path / 'one.pt')],
                         capture_output=True, text=True, timeout=120,
                         env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         '--nproc_per_node=2', SCRIPT, str(tmp_path / 'two.pt')],
        capture_output=True, text=True, timeout=180, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    # (the two ranks' lines may interleave)
    assert two.stdout.count("['adamw', 'muon']") == 2
    a = torch.load(tmp_path / 'one.pt')
    b = torch.load(tmp_path / 'two.pt')
    assert a['final'].keys() == b['final'].keys()
    for name in a['final']:
        torch.testing.assert_close(b['final'][name], a['final'][name],
                                   rtol=1e-5, atol=1e-6, msg=name)
        # every parameter moved in 4 steps (the cls token from zeros too)
        assert not torch.equal(a['final'][name], a['initial'][name]), name
