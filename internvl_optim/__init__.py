"""internvl_optim: layer-wise lr decay optimizer construction for MMEngine /
MMSegmentation 1.x (InternViT-6B, ViT, BEiT, MAE, Swin, ConvNeXt, ...).

The tree is the architecture: ``core/`` (pure PyTorch: settings, layer-rule
providers, weight decay, planning, grouping), ``engine/`` (MMEngine glue:
the registered constructor, hooks, strategies, config preparation),
``runtime/`` (explicit changes to live objects), ``models/backbones/``,
``analysis/``, ``datasets/``.

Importing the package with MMEngine present registers
:class:`LayerDecayOptimizerConstructor` (also as
``CustomLayerDecayOptimizerConstructor``, InternVL's name), the hook and
strategies, turns on safe checkpoint loading
(:func:`~internvl_optim.checkpoint.safe_loading.enable_safe_checkpoint_loading`)
and, with MMSeg present, registers the ``InternViT6B`` backbone.
"""
from .core import GroupPlan, LayerDecaySettings, ParamPlan, build_param_groups
from .torch_api import LayerDecayWarning, param_groups

try:  # the core works without MMEngine; the rest needs it
    import mmengine  # noqa: F401
except ImportError:  # pragma: no cover
    pass
else:
    from .engine import register_all
    from .engine.optimizers import (CustomLayerDecayOptimizerConstructor,
                                    LayerDecayOptimizerConstructor)
    register_all()

__version__ = '0.1.0'
__all__ = [
    'param_groups', 'LayerDecayWarning',
    'LayerDecayOptimizerConstructor', 'CustomLayerDecayOptimizerConstructor',
    'LayerDecaySettings', 'build_param_groups', 'GroupPlan', 'ParamPlan',
    '__version__'
]
