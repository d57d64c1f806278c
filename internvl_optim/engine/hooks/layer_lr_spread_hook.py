"""Log the layer spread of the learning rate, not only the head's; judge
every absolute ``eta_min`` against the real groups before the first step;
at the first iteration and every logging interval, check that the live
lrs keep the plan's ratios.

MMEngine logs ``lr``, the first param group's, which with our groups
(heads first) is always the base lr's schedule.  This hook adds
``min_lr``, the smallest group lr (the embeddings' under layer decay), to
every training log line.  ``tools/train.py`` adds it when the config uses
our constructor; with your own script add
``custom_hooks=[dict(type='LayerLrSpreadHook')]``.
"""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...guards.ratio_guard import ratio_drift
from ...guards.schedule_floor import judge_floor


@HOOKS.register_module()
class LayerLrSpreadHook(Hook):
    """Puts ``train/min_lr`` into the message hub before every iteration
    (after MMEngine's RuntimeInfoHook has put ``train/lr``)."""

    priority = 'HIGH'

    def before_train(self, runner) -> None:
        """An ``eta_min`` at or above some group's starting lr is an error
        naming the group; a lower one a warning saying from when the layer
        ratios flatten (:mod:`internvl_optim.guards.schedule_floor`)."""
        groups = _param_groups(runner.optim_wrapper)
        # the groups as planned: a rebuilt optimizer is named later
        self._planned_names = [str(g.get('group_name', i))
                               for i, g in enumerate(groups)]
        schedulers = getattr(runner, 'param_schedulers', None)
        if not isinstance(schedulers, list):
            return
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
            if runner.iter == 0 or runner.iter % _log_interval(runner) == 0:
                self.check_ratios(runner, groups)

    def check_ratios(self, runner, groups) -> None:
        """Every group still at the same fraction of its planned lr (the
        ratios of the plan); a scheduler or wrapper that changed them is
        named once, at the iteration it is found
        (:mod:`internvl_optim.guards.ratio_guard`).  Runs with an absolute
        ``eta_min`` (judged in ``before_train``) are left out."""
        if getattr(self, '_ratio_warned', False) or any(
                getattr(s, 'eta_min', None)
                for s in getattr(runner, 'param_schedulers', None) or []
                if not isinstance(s, dict)):
            return
        drift = ratio_drift(groups, planned_names=getattr(
            self, '_planned_names', None))
        if drift:
            self._ratio_warned = True
            names = [type(s).__name__ for s in
                     getattr(runner, 'param_schedulers', None) or []]
            runner.logger.warning(
                f'Iteration {runner.iter}: the layer-wise lr ratios are no '
                f'longer the plan\'s: {drift}. A scheduler or optimizer '
                'wrapper set an absolute lr per group, or rebuilt the groups '
                f'(this run\'s param_scheduler: {names or "none"}). Use '
                'schedulers that scale every group by one factor (LinearLR, '
                'CosineAnnealingLR with eta_min_ratio, ...)')


def _log_interval(runner) -> int:
    """The ``LoggerHook`` interval (MMEngine's default 10)."""
    for hook in getattr(runner, 'hooks', []):
        if type(hook).__name__ == 'LoggerHook':
            interval = getattr(hook, 'interval', 10)
            return interval if isinstance(interval, int) and interval > 0 \
                else 10
    return 10


def _param_groups(optim_wrapper):
    """The param groups of a wrapper (or of every wrapper of a dict)."""
    wrappers = getattr(optim_wrapper, 'optim_wrappers', None)
    if wrappers:
        return [g for w in wrappers.values()
                for g in w.optimizer.param_groups]
    optimizer = getattr(optim_wrapper, 'optimizer', None)
    return list(getattr(optimizer, 'param_groups', []) or [])
