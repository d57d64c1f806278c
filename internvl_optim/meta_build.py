"""Old import path of :mod:`internvl_optim.analysis.meta_device`, kept for
code that imports ``internvl_optim.meta_build.meta_device``."""
import warnings

warnings.warn(
    'internvl_optim.meta_build is an old import path; import '
    'internvl_optim.analysis.meta_device instead (the old path will be removed in 0.2)',
    DeprecationWarning, stacklevel=2)

from .analysis.meta_device import meta_device  # noqa: F401
