"""Old import path of :mod:`internvl_optim.checkpoint.safe_loading`
(checkpoint reading, trust and formats live together in
:mod:`internvl_optim.checkpoint`)."""
from internvl_optim.old_paths import alias

alias(globals(), 'internvl_optim.runtime.safe_checkpoint_loading',
      'internvl_optim.checkpoint.safe_loading')
