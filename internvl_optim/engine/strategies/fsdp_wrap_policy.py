"""An FSDP v1 auto-wrap policy that a text config can name.

MMEngine's ``MMFullyShardedDataParallel`` turns
``auto_wrap_policy=dict(type=F, **kwargs)`` into ``functools.partial(F,
**kwargs)`` and calls it as ``F(module=..., recurse=..., nonwrapped_numel=...)``,
so the type must be a *function*; PyTorch's ``ModuleWrapPolicy`` class fails
there (``unexpected keyword argument 'module'``), and a text config cannot
hold the block class itself.  :func:`wrap_module_classes` takes the classes
as dotted import paths instead::

    strategy = dict(
        type='ResumableFSDPStrategy',
        model_wrapper=dict(
            use_orig_params=True,
            auto_wrap_policy=dict(
                type='internvl_optim.engine.strategies.fsdp_wrap_policy.wrap_module_classes',
                module_classes=['internvl_optim.models.backbones.intern_vit_6b.Block'])))
"""
import functools
import importlib
from typing import Sequence, Tuple

from torch import nn
from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy


@functools.lru_cache(maxsize=None)
def import_classes(paths: Tuple[str, ...]) -> Tuple[type, ...]:
    """``('pkg.mod.Class', ...)`` -> the classes; a clear error for a path
    that does not name an ``nn.Module`` subclass."""
    classes = []
    for path in paths:
        module_name, _, class_name = path.rpartition('.')
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(
                f'auto_wrap_policy.module_classes: cannot import {path!r} '
                f'({err}); give dotted paths such as '
                "'internvl_optim.models.backbones.intern_vit_6b.Block'") from None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(
                f'auto_wrap_policy.module_classes: {path!r} is not an '
                'nn.Module subclass')
        classes.append(cls)
    return tuple(classes)


def wrap_module_classes(module: nn.Module, recurse: bool,
                        nonwrapped_numel: int,
                        module_classes: Sequence[str] = ()) -> bool:
    """Make every instance of ``module_classes`` (dotted paths) its own FSDP
    unit, e.g. one unit per transformer block.

    Args:
        module_classes: import paths of the module classes to wrap; required.
    """
    if not module_classes:
        raise ValueError(
            'auto_wrap_policy.module_classes is empty: name the block '
            "classes to wrap, e.g. ['internvl_optim.models.backbones.intern_vit_6b."
            "Block']")
    classes = import_classes(tuple(module_classes))
    return transformer_auto_wrap_policy(module, recurse, nonwrapped_numel,
                                        set(classes))
