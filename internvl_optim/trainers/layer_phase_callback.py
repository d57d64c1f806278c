"""``LayerPhaseCallback``: phases over layers in HF ``Trainer`` (and TRL's
trainers), beside the scheduler ``Trainer`` builds itself::

    optimizer = torch.optim.AdamW(param_groups(
        model, lr=1e-4, weight_decay=0.05, layer_decay_rate=0.9,
        layer_phases=dict(head_only=500, unfreeze_every=100)))
    trainer = Trainer(model, args, optimizers=(optimizer, None),
                      callbacks=[LayerPhaseCallback(optimizer)], ...)

The phases follow ``Trainer``'s own step count (``state.global_step``), so
a resumed run takes them up where it stopped, and ``Trainer``'s scheduler
(built after the optimizer) scales every group's lr as before: the phase
factor applies inside the optimizer step only
(:class:`~internvl_optim.runtime.layer_phases.LayerPhaseLR`).
"""
from transformers import TrainerCallback

from ..runtime.layer_phases import LayerPhaseLR


class LayerPhaseCallback(TrainerCallback):
    """Applies the phases of ``optimizer``'s groups at ``Trainer``'s
    step (phases by epoch follow ``state.epoch``, whole epochs done)."""

    def __init__(self, optimizer):
        self.phases = LayerPhaseLR(optimizer)
        self.by_epoch = any(g.get('join_by_epoch')
                            for g in optimizer.param_groups)

    def _follow(self, state) -> None:
        self.phases.last_step = (int(state.epoch or 0) if self.by_epoch
                                 else int(state.global_step))

    def on_train_begin(self, args, state, control, **kwargs):
        self._follow(state)

    def on_step_end(self, args, state, control, **kwargs):
        self._follow(state)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._follow(state)
