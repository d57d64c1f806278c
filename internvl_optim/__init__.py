"""internvl_optim: layer-wise lr decay optimizer construction for MMEngine /
MMSegmentation 1.x (InternViT-6B, ViT, BEiT, MAE, ...).

Importing the package registers :class:`LayerDecayOptimizerConstructor`
(also as ``CustomLayerDecayOptimizerConstructor``, InternVL's name) so that
``constructor='LayerDecayOptimizerConstructor'`` in an MMSeg config builds it.
"""
from .param_groups import GroupPlan, build_param_groups
from .settings import LayerDecaySettings

try:  # the core works without MMEngine; the constructor needs it
    import mmengine  # noqa: F401
except ImportError:  # pragma: no cover
    pass
else:
    from .constructor import LayerDecayOptimizerConstructor
    from .registration import register

    CustomLayerDecayOptimizerConstructor = LayerDecayOptimizerConstructor
    register(LayerDecayOptimizerConstructor)
    # MMEngine checkpoints under torch >= 2.6's weights_only=True, and
    # nothing from a checkpoint ever run: see checkpoint_safety.py
    from .checkpoint_safety import enable_safe_checkpoint_loading
    enable_safe_checkpoint_loading()
    from .zero import ZeroConsolidateHook  # noqa: F401  (registers the hook)
    from .fsdp_strategy import ResumableFSDPStrategy  # noqa: F401
    from .deepspeed_strategy import SafeResumeDeepSpeedStrategy  # noqa: F401
    try:
        import mmseg  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    else:
        from . import models  # noqa: F401  (registers InternViT6B)

__version__ = '0.1.0'
__all__ = [
    'LayerDecayOptimizerConstructor', 'CustomLayerDecayOptimizerConstructor',
    'LayerDecaySettings', 'build_param_groups', 'GroupPlan', '__version__'
]
