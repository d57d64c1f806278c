"""Reproduction presets: the groups an original constructor builds,
parameter by parameter, quirks included, so a port can be checked against
the paper before our defaults improve on it.

``paramwise_cfg.reproduce`` names the original (:data:`PRESETS`); the
default (none) is ours.  Each preset is a pure function from the model's
named parameters to ``(plans, groups)``, written from reading the original
file (cited in its module), raising ``ValueError`` for a backbone the
original does not support.
"""
from .internimage import (internimage_detection_groups,
                          internimage_segmentation_groups)
from .internimage_classification import internimage_classification_groups
from .internvl import internvl_groups
from .mmseg import mmseg_groups

#: ``paramwise_cfg.reproduce`` value -> (what it reproduces, builder)
PRESETS = {
    'mmseg': ("MMSegmentation 1.x's LearningRateDecayOptimizerConstructor "
              '(and its deprecated LayerDecayOptimizerConstructor)',
              mmseg_groups),
    'internvl_segmentation': ("InternVL's segmentation "
                              'CustomLayerDecayOptimizerConstructor',
                              internvl_groups),
    'internimage_segmentation': ("InternImage's segmentation "
                                 'CustomLayerDecayOptimizerConstructor',
                                 internimage_segmentation_groups),
    'internimage_detection': ("InternImage's detection "
                              'CustomLayerDecayOptimizerConstructor',
                              internimage_detection_groups),
    'internimage_classification': ("InternImage's classification "
                                   'build_optimizer',
                                   internimage_classification_groups),
}

__all__ = ['PRESETS', 'internvl_groups', 'mmseg_groups']
