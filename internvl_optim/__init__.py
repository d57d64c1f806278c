"""internvl_optim: layer-wise lr decay optimizer construction for MMEngine /
MMSegmentation 1.x (InternViT-6B, ViT, BEiT, MAE, Swin, ConvNeXt, ...).

The tree is the architecture: ``core/`` (pure PyTorch: settings, layer-rule
providers, weight decay, planning, grouping), ``engine/`` (MMEngine glue:
the registered constructor, hooks, strategies, config preparation),
``runtime/`` (explicit changes to live objects), ``models/backbones/``,
``analysis/``, ``datasets/``.

Importing the package in an MMEngine program registers :class:`LayerDecayOptimizerConstructor` (also as
``CustomLayerDecayOptimizerConstructor``, InternVL's name), the hooks and
strategies, turns on safe checkpoint loading
(:func:`~internvl_optim.checkpoint.safe_loading.enable_safe_checkpoint_loading`)
and, with MMSeg present, registers the ``InternViT6B`` backbone: at once
when MMEngine is already imported (a config's ``custom_imports``, the
tools), else as soon as the program imports MMEngine's, MMSeg's or
MMDetection's optimizer modules (:mod:`.runtime.import_watch`), so the
constructor names mean ours whatever the import order.  Importing
``internvl_optim.engine`` (or either constructor name from here) registers
at any time.  Until then nothing outside PyTorch is imported: the pure API
(:func:`param_groups`, ``internvl_optim.core``) imports neither MMEngine
nor DeepSpeed.
"""
import importlib

from .core import GroupPlan, LayerDecaySettings, ParamPlan, build_param_groups
from .runtime.import_watch import mmengine_imported, watch
from .torch_api import LayerDecayWarning, param_groups

if mmengine_imported():  # an MMEngine program: register now
    from . import engine  # noqa: F401  (registers on import)
else:  # register when the program imports MMEngine's optimizers
    watch(lambda: importlib.import_module(__name__ + '.engine'))


def __getattr__(name):
    """The constructors (and with them the MMEngine registration) on first
    use, so that the pure API never imports MMEngine."""
    if name in ('LayerDecayOptimizerConstructor',
                'CustomLayerDecayOptimizerConstructor'):
        try:
            from .engine import optimizers
        except ImportError as err:  # MMEngine not installed
            raise AttributeError(
                f'internvl_optim.{name} needs MMEngine ({err}); the pure '
                'API (param_groups, internvl_optim.core) does not') from err
        return getattr(optimizers, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__version__ = '0.1.0'
#: what ``from internvl_optim import *`` takes: the pure API (the
#: constructors are attributes, imported with MMEngine on first use)
__all__ = [
    'param_groups', 'LayerDecayWarning', 'LayerDecaySettings', 'build_param_groups', 'GroupPlan', 'ParamPlan',
    '__version__'
]
