"""Original parameter shapes under FSDP.

FSDP (v1, ``FullyShardedDataParallel``) with ``use_orig_params=True`` turns
every parameter into a 1-D view of this rank's shard of a flat parameter: a
(16, 8) Linear weight shows as (122,) on one rank and (0,) on another, so an
``ndim <= 1`` rule would drop weight decay from every weight.  The flat
parameter still records the original names and shapes (``_fqns``,
``_shapes``); this module reads them.  FSDP2 (``fully_shard``) keeps
DTensors with their global shapes, so nothing is needed there.
"""
from typing import Dict, Tuple

from torch import nn

from .names import join_name, strip_wrapper_prefixes


def fsdp_original_shapes(model: nn.Module) -> Dict[str, Tuple[int, ...]]:
    """Wrapper-free parameter name -> original shape, for every parameter
    held in an FSDP v1 flat parameter (empty dict if there are none)."""
    shapes = {}
    for module_name, module in model.named_modules():
        flat = getattr(getattr(module, '_handle', None), 'flat_param', None)
        fqns = getattr(flat, '_fqns', None)
        if fqns is None:
            continue
        prefix = strip_wrapper_prefixes(module_name)
        for fqn, shape in zip(fqns, flat._shapes):
            shapes[join_name(prefix, strip_wrapper_prefixes(fqn))] = \
                tuple(shape)
    return shapes
