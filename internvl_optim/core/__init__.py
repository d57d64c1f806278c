"""The pure core: ``(named parameters, modules, settings) -> groups``.

Imports only PyTorch (tested with MMEngine blocked).  Reading order:
:mod:`.settings` (``paramwise_cfg``), :mod:`.names`, :mod:`.names`,
:mod:`.backbone_probe`, :mod:`.layer_rules` (the provider table),
:mod:`.weight_decay`, :mod:`.multipliers`, :mod:`.param_plan`,
:mod:`.group_reduce`, :mod:`.freezing`, :mod:`.param_groups`.
"""
from .param_groups import GroupPlan, build_param_groups
from .param_plan import ParamPlan
from .settings import LayerDecaySettings

__all__ = ['GroupPlan', 'ParamPlan', 'LayerDecaySettings',
           'build_param_groups']
