"""Old import path of :mod:`internvl_optim.checkpoint.files`
(checkpoint reading, trust and formats live together in
:mod:`internvl_optim.checkpoint`)."""
import warnings

from ..checkpoint import files as _moved

warnings.warn(
    'internvl_optim.engine.checkpoint_files is an old import path; import '
    'internvl_optim.checkpoint.files instead (the old path will be removed in 0.2)',
    DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_moved).items()
                  if not k.startswith('__')})
