"""Old import path of :mod:`internvl_optim.engine.strategies.fsdp_wrap_policy`,
kept for configs that name ``internvl_optim.fsdp_wrap.wrap_module_classes``."""
import warnings

warnings.warn(
    'internvl_optim.fsdp_wrap is an old import path; import '
    'internvl_optim.engine.strategies.fsdp_wrap_policy instead (the old path will be removed in 0.2)',
    DeprecationWarning, stacklevel=2)

from .engine.strategies.fsdp_wrap_policy import (  # noqa: F401
    import_classes, wrap_module_classes)
