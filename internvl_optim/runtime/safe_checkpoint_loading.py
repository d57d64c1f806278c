"""Old import path of :mod:`internvl_optim.checkpoint.safe_loading`
(checkpoint reading, trust and formats live together in
:mod:`internvl_optim.checkpoint`)."""
import warnings

from ..checkpoint import safe_loading as _moved

warnings.warn(
    'internvl_optim.runtime.safe_checkpoint_loading is an old import path; import '
    'internvl_optim.checkpoint.safe_loading instead (the old path will be removed in 0.2)',
    DeprecationWarning, stacklevel=2)
globals().update({k: v for k, v in vars(_moved).items()
                  if not k.startswith('__')})
