"""Reproduction presets: the groups an original constructor builds,
parameter by parameter, quirks included, so a port can be checked against
the paper before our defaults improve on it.

``paramwise_cfg.reproduce`` names the original (:data:`PRESETS`); the
default (none) is ours.  Each preset is a pure function from the model's
named parameters to ``(plans, to_freeze)``: each plan names the group the
original puts the parameter in, and the shared reduction
(:func:`~internvl_optim.core.group_reduce.reduce_as_original`) builds the
groups.  Each is written from reading the original file (cited in its
module), and raises ``ValueError`` for a backbone the original does not
support.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional

from ..group_reduce import reduce_as_original
from ..names import strip_wrapper_prefixes
from ..param_plan import ParamPlan
from .internimage import (internimage_detection_plans,
                          internimage_segmentation_plans)
from .internimage_classification import internimage_classification_plans
from .internvl import internvl_plans
from .mmseg import mmseg_plans

@dataclass(frozen=True)
class Preset:
    """One reproduction: what it reproduces, its plans, and the keys the
    original puts in each group beside ours (``extra_keys(group)``)."""
    what: str
    plans: Callable
    extra_keys: Optional[Callable[[dict], dict]] = None


#: ``paramwise_cfg.reproduce`` value -> its :class:`Preset`
PRESETS = {
    'mmseg': Preset("MMSegmentation 1.x's LearningRateDecayOptimizer"
                    'Constructor (and its deprecated LayerDecayOptimizer'
                    'Constructor)', mmseg_plans),
    'internvl_segmentation': Preset(
        "InternVL's segmentation CustomLayerDecayOptimizerConstructor",
        internvl_plans),
    'internimage_segmentation': Preset(
        "InternImage's segmentation CustomLayerDecayOptimizerConstructor",
        internimage_segmentation_plans),
    'internimage_detection': Preset(
        "InternImage's detection CustomLayerDecayOptimizerConstructor",
        internimage_detection_plans),
    # one group per parameter, which the original also keys by ``name``
    'internimage_classification': Preset(
        "InternImage's classification build_optimizer",
        internimage_classification_plans,
        lambda group: dict(name=group['group_name'])),
}



@dataclass(frozen=True)
class Reproduced:
    """The groups an original constructor builds, and what went in."""
    what: str
    groups: List[dict]
    plans: List[ParamPlan]
    frozen: List[str]
    frozen_numel: int
    to_freeze: list


def reproduce(model, settings, base_lr: float,
              base_weight_decay: float) -> Reproduced:
    """The groups of the original constructor ``settings.reproduce``
    names, grouped as the original groups them."""
    preset = PRESETS[settings.reproduce]
    named = [(strip_wrapper_prefixes(n), p)
             for n, p in model.named_parameters()]
    trainable = [(n, p) for n, p in named if p.requires_grad]
    frozen = [n for n, p in named if not p.requires_grad]
    plans, to_freeze = preset.plans(model, trainable, settings, base_lr,
                                    base_weight_decay)
    groups = reduce_as_original(plans, [p for _, p in trainable])
    if preset.extra_keys is not None:
        for group in groups:
            group.update(preset.extra_keys(group))
    return Reproduced(preset.what, groups, plans, frozen,
                      sum(p.numel() for _, p in named if not p.requires_grad),
                      to_freeze)


__all__ = ['PRESETS', 'Preset', 'Reproduced', 'internvl_plans', 'mmseg_plans',
           'reproduce']
