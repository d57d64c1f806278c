"""Old import path of :mod:`internvl_optim.engine.strategies.fsdp_wrap_policy`,
kept for configs that name ``internvl_optim.fsdp_wrap.wrap_module_classes``."""
from .engine.strategies.fsdp_wrap_policy import (  # noqa: F401
    import_classes, wrap_module_classes)
