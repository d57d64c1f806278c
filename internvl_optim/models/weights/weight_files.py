"""Old import path of :mod:`internvl_optim.checkpoint.weight_files`
(checkpoint reading, trust and formats live together in
:mod:`internvl_optim.checkpoint`)."""
from internvl_optim.old_paths import alias

alias(globals(), 'internvl_optim.models.weights.weight_files',
      'internvl_optim.checkpoint.weight_files')
