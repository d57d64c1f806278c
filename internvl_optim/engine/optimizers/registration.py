"""Make ``constructor='LayerDecayOptimizerConstructor'`` build ours, under
MMSeg's and MMDetection's default scopes too.

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


#: downstream scopes that get our names too: (module that registers the
#: scope's own constructors, its registry module)
SCOPES = (('mmseg.engine.optimizers', 'mmseg.registry'),
          ('mmdet.engine.optimizers', 'mmdet.registry'))


def register(constructor_cls) -> list:
    """Register ``constructor_cls`` under :data:`NAMES` in MMEngine's root
    registry and in each installed scope of :data:`SCOPES` (MMSeg, MMDet),
    after importing that scope's own constructors (so their registration
    never meets ours half-way).  MMSeg's and MMDetection's
    ``LearningRateDecayOptimizerConstructor`` are left alone.

    Returns the registries it was registered in.
    """
    import importlib
    registries = [OPTIM_WRAPPER_CONSTRUCTORS]
    for optimizers, registry in SCOPES:
        try:
            importlib.import_module(optimizers)
            registries.append(importlib.import_module(registry)
                              .OPTIM_WRAPPER_CONSTRUCTORS)
        except ImportError:
            continue
    for registry in registries:
        for name in NAMES:
            registry.register_module(
                name=name, module=constructor_cls, force=True)
    return registries
