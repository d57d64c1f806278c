"""A self-check of the layer ids by execution order.

The rules read names, registration order and declarations; what a model
actually runs first is only known by running it.  :func:`check_run_order`
runs one forward pass with hooks, records the order in which the modules
holding parameters first run, and reports:

* a parameter whose layer id is lower than that of a parameter whose
  module ran before it (layer ids must never decrease along the forward
  pass, within a tower);
* a parameter at the heads' layer (``N + 1``) whose module runs before the
  last block of its tower.

A parameter held directly by a module that also holds parameter-holding
modules is not checked (when its parent uses it is not seen by hooks), nor
is a tower whose groups all have one lr (its ids change nothing).

Pure PyTorch; the model is run under ``torch.no_grad()`` and left as it
was (hooks removed, training mode restored).
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..core.names import strip_wrapper_prefixes


def run_order(model: nn.Module, run: Callable[[nn.Module], object]
              ) -> Dict[str, int]:
    """``{parameter name: rank}``: the rank (0, 1, ...) at which the module
    holding the parameter first ran in ``run(model)``; parameters of
    modules that did not run are absent, and so are those held directly by
    a module that also holds modules with parameters (Deformable DETR's
    ``level_embed``, CvT's stage ``cls_token``): its forward starts before
    its children run, and when inside it the parameter is used is not seen
    by hooks."""
    order: List[nn.Module] = []
    seen = set()

    def hook(module, args):
        if id(module) not in seen:
            seen.add(id(module))
            order.append(module)

    holders = [m for m in model.modules()
               if next(m.parameters(recurse=False), None) is not None]
    handles = [m.register_forward_pre_hook(hook) for m in holders]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            run(model)
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    rank = {id(m): i for i, m in enumerate(order)}
    holder_ids = {id(m) for m in holders}
    out = {}
    for module_name, module in model.named_modules():
        if id(module) not in rank or any(
                id(m) in holder_ids for m in module.modules() if m is not
                module):
            continue
        for own, _ in module.named_parameters(recurse=False):
            name = f'{module_name}.{own}' if module_name else own
            out[strip_wrapper_prefixes(name)] = rank[id(module)]
    return out


def check_run_order(model: nn.Module, groups: Sequence[dict],
                    run: Callable[[nn.Module], object]) -> List[str]:
    """Messages for every parameter whose layer id contradicts the order
    its module runs in (see the module docstring); ``groups`` are the
    param groups (``param_names``, ``layer_id``, ``tower``), ``run(model)``
    one forward pass on a small input.  Empty: the ids follow the run."""
    layer: Dict[str, Tuple[Optional[str], int]] = {}
    lrs: Dict[Optional[str], set] = {}
    for group in groups:
        for name in group.get('param_names', ()):
            layer[name] = (group.get('tower'), group['layer_id'])
        lrs.setdefault(group.get('tower'), set()).add(group.get('lr'))
    ranks = run_order(model, run)
    messages = []
    by_tower: Dict[Optional[str], List[Tuple[int, int, str, int]]] = {}
    for index, (name, rank) in enumerate(ranks.items()):
        if name in layer:
            tower, layer_id = layer[name]
            by_tower.setdefault(tower, []).append(
                (rank, index, name, layer_id))
    for tower, rows in by_tower.items():
        if len(lrs[tower]) == 1:
            continue  # one lr throughout (a tower at the base lr): the ids
            # change nothing
        rows.sort()  # by run, then model order
        where = f' in tower {tower!r}' if tower else ''
        top = max(row[3] for row in rows)
        last_block = max((rank for rank, _, _, layer_id in rows
                          if 0 < layer_id < top), default=None)
        highest, after = -1, ''
        for rank, _, name, layer_id in rows:
            if layer_id == top and last_block is not None and \
                    rank < last_block:
                messages.append(
                    f"{name}{where} is at the heads' layer {top} but runs "
                    'before the last block')
                continue  # said once; the blocks after it are not blamed
            if layer_id < highest:
                messages.append(
                    f'{name}{where} is at layer {layer_id} but runs after '
                    f'{after} (layer {highest})')
            if layer_id > highest:
                highest, after = layer_id, name
    return messages
