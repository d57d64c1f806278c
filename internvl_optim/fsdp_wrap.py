"""Old import path of :mod:`internvl_optim.engine.strategies.fsdp_wrap_policy`,
kept for configs that name ``internvl_optim.fsdp_wrap.wrap_module_classes``."""
from internvl_optim.old_paths import alias

alias(globals(), 'internvl_optim.fsdp_wrap',
      'internvl_optim.engine.strategies.fsdp_wrap_policy')
