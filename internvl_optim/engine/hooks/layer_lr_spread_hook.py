"""Log the layer spread of the learning rate, not only the head's.

MMEngine logs ``lr``, the first param group's, which with our groups
(heads first) is always the base lr's schedule.  This hook adds
``min_lr``, the smallest group lr (the embeddings' under layer decay), to
every training log line.  ``tools/train.py`` adds it when the config uses
our constructor; with your own script add
``custom_hooks=[dict(type='LayerLrSpreadHook')]``.
"""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class LayerLrSpreadHook(Hook):
    """Puts ``train/min_lr`` into the message hub before every iteration
    (after MMEngine's RuntimeInfoHook has put ``train/lr``)."""

    priority = 'HIGH'

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
