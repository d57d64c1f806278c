"""Applying ``freeze_backbone``: the one change to the model a plan asks
for, made explicitly by whoever builds the optimizer (our MMEngine
constructor, :func:`internvl_optim.param_groups`)."""
from torch import nn

from ..core.pipeline import GroupPlan
from ..core.weight_decay import is_norm_module
from .norm_eval import keep_norms_in_eval


def apply_freezing(plan: GroupPlan) -> None:
    """``requires_grad=False`` for ``plan.to_freeze``; their normalization
    layers stay in eval mode (BatchNorm statistics stop updating)."""
    modules = [u for u in plan.to_freeze if isinstance(u, nn.Module)]
    for unit in plan.to_freeze:  # a module, or a single parameter
        unit.requires_grad_(False)
    keep_norms_in_eval(modules, is_norm_module)
