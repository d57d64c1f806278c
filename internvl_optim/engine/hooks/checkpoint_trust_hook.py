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
from ...checkpoint.errors import CheckpointError
from ...checkpoint.state_by_name import (StateMatchError,
                                         optimizer_state_fields,
                                         adapt_scheduler_state,
                                         continue_schedule,
                                         match_state_by_name)
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
        context = self.context(runner)
        source = _source(checkpoint, runner)
        check_resume_state(checkpoint, context, source)
        if context.resuming:
            carry_state_by_name(runner, checkpoint, source)

    def check_extra_state(self, runner, extra: dict, source: str) -> None:
        """What DeepSpeed's resume returns besides the weights and optimizer
        it loaded itself: meta, message hub, schedulers."""
        context = self.context(runner)
        check_meta(extra, context, source)
        check_message_hub(extra, context, source)
        check_schedulers(extra, context, source)


def carry_state_by_name(runner, checkpoint: dict, source: str) -> None:
    """When the groups changed since the checkpoint (and both name their
    parameters), rewrite its optimizer and scheduler state for the live
    groups (:mod:`internvl_optim.checkpoint.state_by_name`) and log the
    change table; unchanged, the checkpoint is left as it is."""
    optimizer = getattr(getattr(runner, 'optim_wrapper', None), 'optimizer',
                        None)
    saved = checkpoint.get('optimizer')
    if optimizer is None or not isinstance(saved, dict) or \
            'param_groups' not in saved:
        return  # OptimWrapperDict, or nothing to resume
    try:
        match = match_state_by_name(saved, optimizer.param_groups,
                                    optimizer_state_fields(optimizer))
    except StateMatchError as err:
        raise CheckpointError(f'{source}: {err}') from None
    if match is None:
        try:
            config_values_win(saved, optimizer.param_groups)
        except StateMatchError as err:
            raise CheckpointError(f'{source}: {err}') from None
        return
    if not match.changed:
        return
    # MMEngine's OptimWrapper shows schedulers one more group (its
    # ``base_param_settings``, the base lr it logs); it continues its
    # schedule like the others
    groups = list(match.state_dict['param_groups'])
    saved_count = len(saved['param_groups'])
    live_extra = getattr(runner.optim_wrapper, 'base_param_settings', None)
    if isinstance(live_extra, dict):
        extra = continue_schedule(live_extra,
                                  saved.get('base_param_settings'))
        match.state_dict['base_param_settings'] = extra
        groups.append(extra)
        saved_count += isinstance(saved.get('base_param_settings'), dict)
    schedulers = getattr(runner, 'param_schedulers', None)
    states = checkpoint.get('param_schedulers')
    if isinstance(schedulers, list) and isinstance(states, list):
        try:
            states = [adapt_scheduler_state(
                state, scheduler.state_dict(), groups, saved_count)
                for scheduler, state in zip(schedulers, states)]
        except StateMatchError as err:
            raise CheckpointError(f'{source}: {err}') from None
        checkpoint['param_schedulers'] = states
    checkpoint['optimizer'] = match.state_dict
    runner.logger.warning(f'{source}: {match.table()}')


def config_values_win(saved: dict, live_groups) -> None:
    """A state without parameter names (stripped, or another tool's) is
    loaded by position; its groups' hyperparameters still come from the
    config (a scheduled one at the point of its schedule the checkpoint
    reached), as with names: a file never sets ``maximize``, ``eps``,
    ``betas`` or a weight decay the config does not have."""
    groups = saved.get('param_groups')
    if not isinstance(groups, list) or len(groups) != len(live_groups):
        return  # the layout guard names the difference
    rewritten = []
    for i, (old, live) in enumerate(zip(groups, live_groups)):
        if not isinstance(old, dict) or len(old.get('params', ())) != \
                len(live['params']):
            return
        values = {k: v for k, v in live.items() if k != 'params'}
        label = live.get('group_name', f'optimizer.param_groups[{i}]')
        rewritten.append(dict(continue_schedule(values, old, label),
                              params=old['params']))
    saved['param_groups'] = rewritten


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
