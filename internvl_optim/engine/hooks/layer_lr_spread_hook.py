"""Log the layer spread of the learning rate, not only the head's; judge
every absolute ``eta_min`` against the real groups before the first step.

MMEngine logs ``lr``, the first param group's, which with our groups
(heads first) is always the base lr's schedule.  This hook adds
``min_lr``, the smallest group lr (the embeddings' under layer decay), to
every training log line.  ``tools/train.py`` adds it when the config uses
our constructor; with your own script add
``custom_hooks=[dict(type='LayerLrSpreadHook')]``.
"""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...core.schedule_floor import judge_floor


@HOOKS.register_module()
class LayerLrSpreadHook(Hook):
    """Puts ``train/min_lr`` into the message hub before every iteration
    (after MMEngine's RuntimeInfoHook has put ``train/lr``)."""

    priority = 'HIGH'

    def before_train(self, runner) -> None:
        """An ``eta_min`` at or above some group's starting lr is an error
        naming the group; a lower one a warning saying from when the layer
        ratios flatten (:mod:`internvl_optim.core.schedule_floor`)."""
        schedulers = getattr(runner, 'param_schedulers', None)
        if not isinstance(schedulers, list):
            return
        groups = _param_groups(runner.optim_wrapper)
        start = {g.get('group_name', f'group {i}'): g.get('initial_lr',
                                                          g['lr'])
                 for i, g in enumerate(groups)}
        if len(set(start.values())) < 2:
            return  # one lr: no ratios to keep
        for i, scheduler in enumerate(schedulers):
            floor = getattr(scheduler, 'eta_min', None)
            if not floor or getattr(scheduler, 'param_name', 'lr') != 'lr':
                continue
            error, warning = judge_floor(
                f'param_scheduler[{i}] ({type(scheduler).__name__})',
                type(scheduler).__name__, floor, start,
                getattr(scheduler, 'power', 1.0),
                (scheduler.begin, scheduler.end)
                if scheduler.end < 10**8 else None)
            if error:
                raise ValueError(error)
            runner.logger.warning(warning)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        groups = _param_groups(runner.optim_wrapper)
        if groups:
            runner.message_hub.update_scalar(
                'train/min_lr', min(g['lr'] for g in groups))


def _param_groups(optim_wrapper):
    """The param groups of a wrapper (or of every wrapper of a dict)."""
    wrappers = getattr(optim_wrapper, 'optim_wrappers', None)
    if wrappers:
        return [g for w in wrappers.values()
                for g in w.optimizer.param_groups]
    optimizer = getattr(optim_wrapper, 'optimizer', None)
    return list(getattr(optimizer, 'param_groups', []) or [])
