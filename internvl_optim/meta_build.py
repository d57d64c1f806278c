"""Old import path of :mod:`internvl_optim.analysis.meta_device`, kept for
code that imports ``internvl_optim.meta_build.meta_device``."""
from internvl_optim.old_paths import alias

alias(globals(), 'internvl_optim.meta_build',
      'internvl_optim.analysis.meta_device')
