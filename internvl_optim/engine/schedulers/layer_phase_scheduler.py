"""``LayerPhaseScheduler``: the phases over layers
(``paramwise_cfg.layer_phases``) as an MMEngine parameter scheduler.

It changes no group's lr itself: it counts steps (iterations, or epochs
for phases by epoch) and the optimizer's ``step`` applies each group's
phase factor around the update (:mod:`internvl_optim.runtime.layer_phases`),
so it combines with any other scheduler of the run, and its state
(``last_step``) resumes with the checkpoint like theirs.
``tools/train.py`` adds it when ``layer_phases`` is set; with your own
script add ``dict(type='LayerPhaseScheduler')`` to ``param_scheduler``.
"""
import weakref

from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS

from ...core.phase_schedule import JOIN_BY_EPOCH, MAX_STEPS
from ...runtime.layer_phases import inner_optimizer, patch_step


@PARAM_SCHEDULERS.register_module()
class LayerPhaseScheduler(_ParamScheduler):
    """Counts the steps of the phases over layers.

    Args:
        optimizer: the optimizer wrapper (built by MMEngine).
        by_epoch: count epochs instead of iterations; by default what
            ``layer_phases.by_epoch`` says (giving the other is an error).
    """

    def __init__(self, optimizer, by_epoch=None, begin: int = 0,
                 end: int = INF, last_step: int = -1, verbose: bool = False):
        groups = inner_optimizer(optimizer).param_groups
        declared = {g[JOIN_BY_EPOCH] for g in groups if JOIN_BY_EPOCH in g}
        if not declared:
            raise ValueError(
                'LayerPhaseScheduler: the optimizer has no phases over '
                'layers; set optim_wrapper.paramwise_cfg.layer_phases (with '
                "constructor='LayerDecayOptimizerConstructor')")
        (phases_by_epoch,) = declared
        if begin != 0:
            raise ValueError(
                f'LayerPhaseScheduler(begin={begin}): the phases count from '
                'the start of the run; set head_only / unfreeze_every in '
                'paramwise_cfg.layer_phases instead')
        if by_epoch is None:
            by_epoch = phases_by_epoch
        if by_epoch != phases_by_epoch:
            raise ValueError(
                f'LayerPhaseScheduler(by_epoch={by_epoch}) but '
                f'paramwise_cfg.layer_phases.by_epoch is {phases_by_epoch}: '
                'leave by_epoch out of the scheduler, it follows the phases')
        super().__init__(optimizer, 'lr', begin=begin, end=end,
                         last_step=last_step, by_epoch=by_epoch,
                         verbose=verbose)
        ref = weakref.ref(self)
        # DeepSpeed's ZeRO steps every flat partition: lr 0 only there
        patch_step(optimizer, lambda: ref().last_step,
                   drop_grads='DeepSpeed' not in type(optimizer).__name__)

    def step(self):
        """Count one step (MMEngine sets a default ``end`` from the loop for
        a scheduler without ``by_epoch``: the phases count on regardless,
        they define their own ends)."""
        self._global_step += 1
        self.last_step += 1
        self._last_value = [group[self.param_name]
                            for group in self.optimizer.param_groups]

    #: more steps than any run takes (a crafted count is refused)
    MAX_STEPS = MAX_STEPS

    def load_state_dict(self, state_dict: dict):
        """A saved phase state: ``last_step`` a count of the steps taken
        (an int, 0 to :attr:`MAX_STEPS`) and the same ``by_epoch`` as the
        config's phases; anything else is refused, naming the field."""
        where = 'LayerPhaseScheduler state'
        if not isinstance(state_dict, dict):
            raise ValueError(f'{where} must be a dict, got {state_dict!r}')
        step = state_dict.get('last_step')
        if isinstance(step, bool) or not isinstance(step, int) or \
                not 0 <= step <= self.MAX_STEPS:
            raise ValueError(
                f'{where}: last_step must be the count of steps taken, an '
                f'int from 0 to {self.MAX_STEPS:,}, got {step!r}')
        if state_dict.get('by_epoch', self.by_epoch) != self.by_epoch:
            raise ValueError(
                f'{where}: by_epoch={state_dict.get("by_epoch")!r} in the '
                f'checkpoint, {self.by_epoch} in the config '
                '(paramwise_cfg.layer_phases.by_epoch): the saved count is '
                'in the other unit. Resume with the phases it was saved '
                'with, or start the phases anew (load_from without resume)')
        super().load_state_dict(state_dict)

    def _get_value(self):
        """No group's lr changes here (the factor is applied in the step)."""
        return [group[self.param_name]
                for group in self.optimizer.param_groups]
