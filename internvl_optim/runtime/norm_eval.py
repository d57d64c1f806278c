"""Frozen parts keep their normalization layers in eval mode.

``model.train()`` would put them back in training mode, where BatchNorm
updates its running statistics even without gradients; a forward pre-hook
re-applies eval mode before every forward.  Pure PyTorch.
"""
from typing import Callable, Iterable

from torch import nn

_MARK = '_internvl_optim_frozen'


def _keep_eval(module, args):
    module.train(False)


def keep_norms_in_eval(units: Iterable[nn.Module],
                       is_norm: Callable[[nn.Module], bool]) -> None:
    """Put every norm module (by ``is_norm``) inside ``units`` in eval mode,
    for good (idempotent: a module is hooked once)."""
    for unit in units:
        for module in unit.modules():
            if is_norm(module) and not getattr(module, _MARK, False):
                setattr(module, _MARK, True)
                module.train(False)
                module.register_forward_pre_hook(_keep_eval)
