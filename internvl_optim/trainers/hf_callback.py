"""``LayerRatioCallback``: the ratio guard for HF ``Trainer`` (and TRL's
trainers, which are ``Trainer`` s).

Before the first step, a ``scheduler`` in the DeepSpeed config
(``TrainingArguments.deepspeed``) is an error when the groups have
different lrs (DeepSpeed's schedulers set every group to one lr).  At the
first step and every ``logging_steps``, the live lrs are compared with the
plan's ratios (:func:`internvl_optim.guards.ratio_guard.ratio_drift`); a
scheduler that changed them is named once, with the step and the group::

    trainer = Trainer(model, args, optimizers=(optimizer, None),
                      callbacks=[LayerRatioCallback()], ...)
"""
import logging
import warnings

from transformers import TrainerCallback

from ..checkpoint.json_files import read_json
from ..guards.ratio_guard import deepspeed_scheduler_problem, ratio_drift

logger = logging.getLogger(__name__)


class LayerRatioCallback(TrainerCallback):

    def __init__(self):
        self.warned = False

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        config = getattr(args, 'deepspeed', None)
        where = 'TrainingArguments.deepspeed'
        if isinstance(config, str):
            where = f'the DeepSpeed config {config!r}'
            config = read_json(config)
        groups = getattr(optimizer, 'param_groups', None) or []
        self.planned_names = [str(g.get('group_name', i))
                              for i, g in enumerate(groups)]
        lrs = {g.get('initial_lr', g.get('lr')) for g in groups}
        problem = deepspeed_scheduler_problem(config, where)
        if problem and len(lrs) > 1:
            raise ValueError(problem)

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        step = state.global_step
        interval = max(int(getattr(args, 'logging_steps', 1) or 1), 1)
        if self.warned or optimizer is None or (step and step % interval):
            return
        drift = ratio_drift(optimizer.param_groups,
                            planned_names=getattr(self, 'planned_names',
                                                  None))
        if drift:
            self.warned = True
            message = (f'Step {step}: the layer-wise lr ratios are no longer '
                       f"the plan's: {drift}. The lr scheduler set an "
                       'absolute lr per group, or the groups were rebuilt; '
                       "use a scheduler that scales every group by one factor "
                       "(Trainer's lr_scheduler_type schedules do)")
            logger.warning(message)
            warnings.warn(message, stacklevel=2)
