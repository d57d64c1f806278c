"""Make ``constructor='LayerDecayOptimizerConstructor'`` build ours.

MMSeg 1.2.2 registers a deprecated class of the same name in its ``mmseg``
scope, which wins under ``default_scope='mmseg'``.  MMSeg's registry imports
``mmseg.engine.optimizers`` lazily on first lookup, and registering our class
there *before* that import makes MMSeg's own ``register_module()`` fail with
"already registered".  So: import MMSeg's module first, then take the name
over.  MMSeg's ``LearningRateDecayOptimizerConstructor`` is left alone.
"""
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: Names our constructor answers to; the second is InternVL's.
NAMES = ('LayerDecayOptimizerConstructor',
         'CustomLayerDecayOptimizerConstructor')


def register(constructor_cls) -> list:
    """Register ``constructor_cls`` under :data:`NAMES` in MMEngine's root
    registry and, when MMSeg is installed, in MMSeg's scope.

    Returns the registries it was registered in.
    """
    registries = [OPTIM_WRAPPER_CONSTRUCTORS]
    try:
        import mmseg.engine.optimizers  # noqa: F401  (registers MMSeg's own)
        from mmseg.registry import \
            OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_CONSTRUCTORS
    except ImportError:
        pass
    else:
        registries.append(MMSEG_CONSTRUCTORS)
    for registry in registries:
        for name in NAMES:
            registry.register_module(
                name=name, module=constructor_cls, force=True)
    return registries
