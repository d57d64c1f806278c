"""The pure core: ``(model, settings) -> groups``, one straight pipeline.

Imports only PyTorch (tested with MMEngine blocked).  Reading order, as a
parameter travels: :mod:`.settings` (``paramwise_cfg``, one schema),
:mod:`.model_view` (the model read once; its layer rules from
:mod:`.layer_rules`, towers from :mod:`.towers`), :mod:`.param_plan` (one
record per parameter: its lr and weight decay, computed once, with
:mod:`.weight_decay` and :mod:`.multipliers`), :mod:`.group_reduce`
(records -> groups); :mod:`.param_groups` runs them in order and
:mod:`.freezing` selects what to freeze.
"""
from .param_groups import GroupPlan, build_param_groups
from .param_plan import ParamPlan
from .settings import LayerDecaySettings

__all__ = ['GroupPlan', 'ParamPlan', 'LayerDecaySettings',
           'build_param_groups']
