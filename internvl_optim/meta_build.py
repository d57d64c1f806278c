"""Old import path of :mod:`internvl_optim.analysis.meta_device`, kept for
code that imports ``internvl_optim.meta_build.meta_device``."""
from .analysis.meta_device import meta_device  # noqa: F401
