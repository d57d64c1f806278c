"""Old import path, kept for configs and code that name it (e.g. FSDP wrap
policies naming ``internvl_optim.models.intern_vit_6b.Block``); the module
is :mod:`internvl_optim.models.backbones.intern_vit_6b`."""
import warnings

warnings.warn(
    'internvl_optim.models.intern_vit_6b is an old import path; import '
    'internvl_optim.models.backbones.intern_vit_6b instead (the old path will be removed in 0.2)',
    DeprecationWarning, stacklevel=2)

from .backbones.intern_vit_6b import *  # noqa: F401,F403
from .backbones.intern_vit_6b import Block, InternViT6B  # noqa: F401
