"""Old import path of :mod:`internvl_optim.checkpoint.files`
(checkpoint reading, trust and formats live together in
:mod:`internvl_optim.checkpoint`)."""
from internvl_optim.old_paths import alias

alias(globals(), 'internvl_optim.engine.checkpoint_files',
      'internvl_optim.checkpoint.files')
