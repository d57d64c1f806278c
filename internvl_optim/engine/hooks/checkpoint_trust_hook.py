"""Check what a loaded checkpoint would make the run do, before MMEngine
acts on it (:mod:`internvl_optim.checkpoint.resume_state`).

MMEngine calls ``after_load_checkpoint`` between reading a file and using
it, for ``load_from`` and for ``--resume`` (``Runner`` and the
``FlexibleRunner`` strategies that read files themselves); DeepSpeed reads
its own files, and :class:`~internvl_optim.engine.strategies.
SafeResumeDeepSpeedStrategy` asks this hook to check what it returns.
``tools/train.py`` and ``tools/test.py`` add the hook; with your own script
add ``custom_hooks=[dict(type='CheckpointTrustHook')]``.
"""
import os.path as osp
from typing import List

from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ...core.names import strip_wrapper_prefixes
from ...checkpoint.resume_state import (ResumeContext, check_message_hub,
                                        check_meta, check_resume_state,
                                        check_schedulers)


@HOOKS.register_module()
class CheckpointTrustHook(Hook):
    """Validate every checkpoint the runner loads.

    Args:
        allow_nonfinite_weights (bool): load weights holding NaN or Inf
            instead of stopping. Default: False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_nonfinite_weights: bool = False):
        if not isinstance(allow_nonfinite_weights, bool):
            raise TypeError('CheckpointTrustHook.allow_nonfinite_weights must '
                            f'be True or False, got {allow_nonfinite_weights!r}')
        self.allow_nonfinite_weights = allow_nonfinite_weights

    # --- what the run is --------------------------------------------------
    @staticmethod
    def checkpoint_dirs(runner) -> List[str]:
        """The work dir and every ``CheckpointHook(out_dir=...)`` of the run
        (as ``CheckpointHook`` completes it: ``out_dir/<work dir name>``)."""
        dirs = [runner.work_dir]
        for hook in getattr(runner, 'hooks', []):
            out_dir = getattr(hook, 'out_dir', None)
            if isinstance(hook, CheckpointHook) and isinstance(out_dir, str):
                dirs += [out_dir, osp.join(
                    out_dir, osp.basename(runner.work_dir.rstrip(osp.sep)))]
        return dirs

    def context(self, runner) -> ResumeContext:
        loop = getattr(runner, '_train_loop', None)
        built = loop is not None and not isinstance(loop, dict)
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        optim_wrapper = getattr(runner, 'optim_wrapper', None)
        groups = getattr(getattr(optim_wrapper, 'optimizer', None),
                         'param_groups', None)
        schedulers = getattr(runner, 'param_schedulers', None)
        states = None
        if isinstance(schedulers, list) and all(
                hasattr(s, 'state_dict') for s in schedulers):
            states = [s.state_dict() for s in schedulers]
        # FlexibleRunner's strategies (FSDP) shard the model: its state_dict
        # must not be asked for here (FSDP initialises lazily); the names
        # and dtypes of its parameters and buffers are enough for the dtype
        # check, and keys are not compared
        flexible = hasattr(runner, 'strategy')
        model_state = (dict(_named_tensors(model)) if flexible
                       else model.state_dict())
        return ResumeContext(
            checkpoint_dirs=self.checkpoint_dirs(runner),
            resuming=bool(getattr(runner, '_resume', False)),
            max_iters=getattr(loop, 'max_iters', None) if built else None,
            max_epochs=getattr(loop, 'max_epochs', None) if built else None,
            model_state=model_state,
            strict_keys=not flexible,
            optimizer_groups=groups, scheduler_states=states,
            allow_nonfinite_weights=self.allow_nonfinite_weights,
            warn=runner.logger.warning)

    # --- MMEngine's hook points ---------------------------------------------
    def before_run(self, runner) -> None:
        strategy = getattr(runner, 'strategy', None)
        if strategy is not None and hasattr(strategy, 'checkpoint_trust'):
            strategy.checkpoint_trust = lambda extra, source: \
                self.check_extra_state(runner, extra, source)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        check_resume_state(checkpoint, self.context(runner),
                           _source(checkpoint, runner))

    def check_extra_state(self, runner, extra: dict, source: str) -> None:
        """What DeepSpeed's resume returns besides the weights and optimizer
        it loaded itself: meta, message hub, schedulers."""
        context = self.context(runner)
        check_meta(extra, context, source)
        check_message_hub(extra, context, source)
        check_schedulers(extra, context, source)


def _named_tensors(model):
    """Wrapper-free names of the parameters and buffers, without calling
    ``state_dict()``."""
    for name, tensor in model.named_parameters():
        yield strip_wrapper_prefixes(name), tensor
    for name, tensor in model.named_buffers():
        yield strip_wrapper_prefixes(name), tensor


def _source(checkpoint, runner) -> str:
    """How messages name the file: MMEngine does not pass the file name to
    the hook, so the run's ``load_from`` (resume or weights) is used."""
    name = getattr(runner, '_load_from', None)
    return f'checkpoint {name!r}' if name else 'the loaded checkpoint'
