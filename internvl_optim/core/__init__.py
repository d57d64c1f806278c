"""The pure core: ``(model, settings) -> groups``, one straight pipeline.

Imports only PyTorch (tested with MMEngine blocked).  Reading order, as a
parameter travels: :mod:`.settings` (``paramwise_cfg``, one schema),
:mod:`.pipeline` (the steps in order), :mod:`.model_view` (the model read
once; its layer rules from :mod:`.layer_rules`, towers from
:mod:`.tower_layouts`), :mod:`.param_plan` (one record per parameter: its
lr and weight decay, computed once), :mod:`.group_reduce` (records ->
groups).  ``docs/en/architecture.md`` lists the walk file by file.
"""
from .pipeline import GroupPlan, build_param_groups
from .param_plan import ParamPlan
from .settings import LayerDecaySettings

__all__ = ['GroupPlan', 'ParamPlan', 'LayerDecaySettings',
           'build_param_groups']
