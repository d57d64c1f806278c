"""A hook that stops (SIGSTOP, not kills) one rank after an iteration, as a
hung process would; for test_collective_timeout.py.  It writes its pid
first so the test can kill it afterwards."""
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class StopRankHook(Hook):

    def __init__(self, rank: int, after_iter: int, pid_file: str):
        self.rank, self.after_iter, self.pid_file = rank, after_iter, pid_file

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.rank == self.rank and runner.iter + 1 == self.after_iter:
            with open(self.pid_file, 'w') as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGSTOP)
