"""ZeroRedundancyOptimizer checkpoints under MMEngine 0.10.7's Runner.

MMEngine's ``ZeroRedundancyOptimizer.state_dict()`` consolidates the
sharded optimizer state to rank 0 -- a collective call -- but the Runner's
``save_checkpoint`` runs on rank 0 only, so saving a checkpoint hangs.

:class:`ZeroConsolidateHook` fixes this: at every iteration or epoch where
the CheckpointHook is about to save, it runs the consolidation on *all*
ranks first (it has a higher priority than CheckpointHook); the rank-0 save
then reuses the consolidated state instead of starting a collective alone.
``tools/train.py`` adds the hook automatically when the optimizer is a
ZeroRedundancyOptimizer; with your own training script add
``custom_hooks=[dict(type='ZeroConsolidateHook')]``.

The consolidated state holds every parameter's state under global indices
and the groups' ``param_names``, so it loads on any number of ranks.
"""
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS
from torch.distributed.optim import ZeroRedundancyOptimizer as TorchZero


def install_reusable_state_dict(optimizer) -> None:
    """Let ``optimizer.state_dict()`` reuse a consolidation done on all
    ranks by :class:`ZeroConsolidateHook` (falls back to the collective
    consolidation otherwise)."""
    if not isinstance(optimizer, TorchZero) or getattr(
            optimizer, '_internvl_reusable_state_dict', False):
        return
    collective_state_dict = optimizer.state_dict
    optimizer._internvl_consolidated = False

    def state_dict():
        if optimizer._internvl_consolidated:
            optimizer._internvl_consolidated = False
            return TorchZero.state_dict(optimizer) if is_main_process() \
                else {}
        return collective_state_dict()

    optimizer.state_dict = state_dict
    optimizer._internvl_reusable_state_dict = True


def _zero_optimizers(runner):
    wrapper = getattr(runner, 'optim_wrapper', None)
    if wrapper is None:
        return []
    wrappers = wrapper.values() if hasattr(wrapper, 'values') else [wrapper]
    return [w.optimizer for w in wrappers
            if isinstance(getattr(w, 'optimizer', None), TorchZero)]


@HOOKS.register_module()
class ZeroConsolidateHook(Hook):
    """Consolidate ZeroRedundancyOptimizer state on all ranks right before
    the CheckpointHook saves (see the module docstring)."""
    priority = 'LOW'  # before CheckpointHook ('VERY_LOW')

    def _consolidate(self, runner):
        for optimizer in _zero_optimizers(runner):
            install_reusable_state_dict(optimizer)
            optimizer.consolidate_state_dict(to=0)
            optimizer._internvl_consolidated = True

    def _checkpoint_hooks(self, runner):
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        for hook in self._checkpoint_hooks(runner):
            if not hook.by_epoch and (
                    hook.every_n_train_iters(runner, hook.interval,
                                             hook.save_begin)
                    or (hook.save_last and hook.is_last_train_iter(runner))):
                self._consolidate(runner)
                return

    def after_train_epoch(self, runner):
        for hook in self._checkpoint_hooks(runner):
            if hook.by_epoch and (
                    hook.every_n_epochs(runner, hook.interval,
                                        hook.save_begin)
                    or (hook.save_last and hook.is_last_train_epoch(runner))):
                self._consolidate(runner)
                return
