"""Apply the phases over layers (:mod:`internvl_optim.core.phase_schedule`)
to a live optimizer: an explicit patch of its ``step``.

Around each ``optimizer.step()`` the lr of every group is multiplied by
its phase factor and restored afterwards, so the schedulers (which update
each group's lr from its current value) never see the factor and the
groups never change.  A group at factor 0 (not joined yet) has its
gradients dropped for that step: PyTorch's optimizers skip a parameter
without a gradient, so it gets no update, no weight decay (decoupled or
not, whatever the optimizer) and no optimizer state until it joins; its
``requires_grad`` stays True, so DDP, ZeRO and FSDP see the same parameters
from step 0.  The backward of layers not joined yet is still computed.
Under DeepSpeed ZeRO and FSDP a layer not joined yet keeps its gradients
and steps at lr 0 instead (its moments accumulate): ZeRO steps every flat
partition, and FSDP saves the optimizer state of all the parameters of a
flat parameter or of none (:func:`steps_every_parameter`).

:class:`LayerPhaseLR` is the plain-PyTorch scheduler (HF ``Trainer``
users pass it as the scheduler or step it beside theirs); the MMEngine
parameter scheduler is
:class:`internvl_optim.engine.schedulers.LayerPhaseScheduler`.
"""
import functools
import types
from typing import Callable

from ..core.numbers import short_repr
from ..core.phase_schedule import MAX_STEPS, group_factors, has_phases

_PATCHED = '_internvl_optim_layer_phases'
_UNPHASED = '_internvl_optim_unphased_step'

NO_SCHEDULER = (
    'paramwise_cfg.layer_phases is set but no layer-phase scheduler steps '
    'this optimizer: every layer would train from step 0. Add '
    "dict(type='LayerPhaseScheduler') to param_scheduler (tools/train.py "
    'adds it), LayerPhaseLR(optimizer) in plain PyTorch, or '
    'callbacks=[LayerPhaseCallback(optimizer)] in HF Trainer')
#: set on an optimizer while its phased step runs
_APPLYING = '_internvl_optim_applying_phases'
_HOOK = []
#: set on an optimizer whose strategy needs every parameter stepped
_STEPS_EVERY_PARAMETER = '_internvl_optim_steps_every_parameter'


def inner_optimizer(optimizer):
    """The ``torch.optim`` optimizer that takes the step: inside MMEngine's
    ``OptimWrapper``, and inside DeepSpeed's ZeRO optimizer (which steps
    the optimizer we built one group at a time)."""
    seen = set()
    while hasattr(getattr(optimizer, 'optimizer', None), 'param_groups') \
            and id(optimizer) not in seen:
        seen.add(id(optimizer))
        optimizer = optimizer.optimizer
    return optimizer


def steps_every_parameter(optimizer, strategy: str) -> None:
    """Mark an optimizer whose ``strategy`` needs every parameter stepped
    from the first step on (FSDP: its optimizer state dict holds the state
    of all the parameters of a flat parameter or of none).  The phases
    then set lr 0 on the layers not joined yet and keep their gradients."""
    setattr(inner_optimizer(optimizer), _STEPS_EVERY_PARAMETER, strategy)


def patch_step(optimizer, current_step: Callable[[], int],
               drop_grads: bool = True) -> None:
    """Make ``optimizer.step`` apply the phase factors of
    ``current_step()``; once per optimizer.  ``drop_grads=False`` (DeepSpeed,
    whose flat partitions must all step), or an optimizer marked by
    :func:`steps_every_parameter`, leaves the gradients of layers not joined
    yet: lr 0 only."""
    optimizer = inner_optimizer(optimizer)
    drop_grads = drop_grads and not getattr(optimizer,
                                            _STEPS_EVERY_PARAMETER, None)
    if not has_phases(optimizer.param_groups):
        raise ValueError(
            'The optimizer has no phases over layers: its groups carry no '
            "'join_at'. Set paramwise_cfg.layer_phases (or param_groups("
            '..., layer_phases=...)) when building the optimizer')
    if getattr(optimizer.step, _PATCHED, False):
        raise ValueError('The optimizer already has a layer-phase scheduler;'
                         ' configure one')
    original = getattr(optimizer.step, _UNPHASED, optimizer.step)

    def step(self, *args, **kwargs):
        groups = self.param_groups
        factors = group_factors(groups, current_step())
        setattr(self, _APPLYING, True)
        saved = []
        for group, factor in zip(groups, factors):
            saved.append(group['lr'])
            if factor != 1.0:
                group['lr'] = group['lr'] * factor
            if factor == 0.0 and drop_grads:
                for p in group['params']:
                    p.grad = None
        try:
            return original(*args, **kwargs)
        finally:
            setattr(self, _APPLYING, False)
            for group, lr in zip(groups, saved):
                group['lr'] = lr

    setattr(step, _PATCHED, True)
    _set_step(optimizer, step, original)


def require_phase_scheduler(optimizer) -> None:
    """Until a layer-phase scheduler patches it, ``optimizer.step`` raises
    (phases configured but never applied would train every layer from
    the start, silently)."""
    optimizer = inner_optimizer(optimizer)
    original = optimizer.step

    def step(self, *args, **kwargs):
        raise RuntimeError(NO_SCHEDULER)

    setattr(step, _UNPHASED, original)
    _set_step(optimizer, step, original)


def require_phases_applied() -> None:
    """From now on in this process, a ``torch.optim`` optimizer whose groups
    carry phases stops at its step unless the step runs through a
    layer-phase scheduler's patch (groups from ``param_groups(...,
    layer_phases=...)`` handed to a bare optimizer would otherwise train
    every layer from step 0, silently).  One global step pre-hook, installed
    once; it looks at the groups only."""
    if _HOOK:
        return
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    def check(optimizer, args, kwargs):
        if not getattr(optimizer, _APPLYING, False) and \
                has_phases(optimizer.param_groups):
            raise RuntimeError(NO_SCHEDULER)
    _HOOK.append(register_optimizer_step_pre_hook(check))


def _set_step(optimizer, step: Callable, original: Callable) -> None:
    """``optimizer.step = step`` as a bound method, as PyTorch's schedulers
    expect of it: ``LRScheduler.__init__`` wraps ``step.__func__`` (a
    scheduler built after the patch), and reads ``_wrapped_by_lr_sched``
    to know the step it wrapped is still called (a scheduler built
    before)."""
    functools.update_wrapper(step, getattr(original, '__func__', original),
                             updated=())
    if getattr(original, '_wrapped_by_lr_sched', False):
        step._wrapped_by_lr_sched = True
    optimizer.step = types.MethodType(step, optimizer)


class LayerPhaseLR:
    """The phases over layers for a plain PyTorch loop: call ``step()``
    after each ``optimizer.step()`` (or each epoch, for phases by epoch),
    like any PyTorch scheduler; ``state_dict`` / ``load_state_dict`` resume
    it.

    >>> import torch
    >>> from internvl_optim import param_groups
    >>> model = torch.nn.Sequential()
    >>> model.blocks = torch.nn.ModuleList(torch.nn.Linear(2, 2)
    ...                                    for _ in range(2))
    >>> model.head = torch.nn.Linear(2, 1)
    >>> optimizer = torch.optim.AdamW(param_groups(
    ...     model, lr=1.0, weight_decay=0.05, layer_decay_rate=0.5,
    ...     layer_phases=dict(head_only=2, unfreeze_every=1)))
    >>> phases = LayerPhaseLR(optimizer)
    >>> [(g['group_name'], g['join_at']) for g in optimizer.param_groups][:3]
    [('layer_3_decay', 0), ('layer_3_no_decay', 0), ('layer_2_decay', 2)]
    """

    def __init__(self, optimizer, last_step: int = 0):
        self.optimizer = optimizer
        self.last_step = last_step
        patch_step(optimizer, lambda: self.last_step)

    def step(self) -> None:
        self.last_step += 1

    def factors(self):
        """Each group's factor for the next ``optimizer.step()``."""
        return group_factors(inner_optimizer(self.optimizer).param_groups,
                             self.last_step)

    def state_dict(self) -> dict:
        return {'last_step': self.last_step}

    def load_state_dict(self, state_dict: dict) -> None:
        step = state_dict.get('last_step') if isinstance(
            state_dict, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or \
                not 0 <= step <= MAX_STEPS:
            raise ValueError('LayerPhaseLR state: last_step must be the count '
                             f'of steps taken, an int from 0 to {MAX_STEPS:,}, '
                             f'got {short_repr(step)}')
        self.last_step = step
