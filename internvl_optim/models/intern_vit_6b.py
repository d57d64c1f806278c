"""Old import path, kept for configs and code that name it (e.g. FSDP wrap
policies naming ``internvl_optim.models.intern_vit_6b.Block``); the module
is :mod:`internvl_optim.models.backbones.intern_vit_6b`."""
from internvl_optim.old_paths import alias

alias(globals(), 'internvl_optim.models.intern_vit_6b',
      'internvl_optim.models.backbones.intern_vit_6b')
