"""``paramwise_cfg.freeze_backbone``: freeze backbone stages by index.

The listed units (InternImage ``levels.{i}``, Swin/ConvNeXt ``stages.{i}``
together with ConvNeXt's ``downsample_layers.{i}``, or ViT blocks; in every
CBNet composite backbone), or the whole backbone for ``'all'``, stay out of
the optimizer.  This module only selects them: the plan lists them
(``GroupPlan.to_freeze``) and :func:`internvl_optim.runtime.freezing.
apply_freezing` sets ``requires_grad=False`` and keeps their norms in eval
mode.  The structure comes from the same probe as the layer rules.
"""
from typing import List, Optional, Sequence, Tuple, Union

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .backbone_probe import BackboneStructure, composite_backbones, probe


def _indexed_units(module: nn.Module,
                   structure: BackboneStructure) -> Tuple[str, list]:
    """``(kind, units)``: what ``freeze_backbone`` indices count."""
    if structure.stages is not None:
        path = structure.stages.container
        return path.rsplit('.', 1)[-1], list(module.get_submodule(path))
    if structure.convnext is not None:
        return 'stages', [nn.ModuleList([stage, down]) for stage, down in
                          zip(module.stages, module.downsample_layers)]
    if structure.blocks is not None:
        path = structure.blocks[0]
        return path, list(module.get_submodule(path))
    return '', []


def select_units(backbone: nn.Module, spec: Union[str, Sequence[int]],
                 desc: str, structure: Optional[BackboneStructure] = None
                 ) -> List[nn.Module]:
    """The modules ``spec`` names (validated; nothing is changed).
    ``structure``: the backbone's probe when the caller has it (the layer
    rule's), else it is probed here."""
    if spec == 'all':
        return [backbone]
    if structure is None:
        structure = probe(backbone)
    units = []
    for inner in composite_backbones(backbone):
        kind, indexed = _indexed_units(inner, structure)
        if not indexed:
            raise ValueError(
                f'paramwise_cfg.freeze_backbone={list(spec)}: {desc} has '
                "no stages, levels or blocks to index; use 'all'")
        bad = [i for i in spec if i >= len(indexed)]
        if bad:
            raise ValueError(
                f'paramwise_cfg.freeze_backbone={list(spec)}: {bad} out of '
                f'range, {desc} has {len(indexed)} {kind} (valid 0..'
                f"{len(indexed) - 1}, or 'all')")
        units += [indexed[i] for i in spec]
    return units


def check_wrapper_allows_freezing(model: nn.Module) -> None:
    """MMEngine wraps the model in DDP *before* building the optimizer; DDP
    then expects gradients for parameters frozen afterwards and fails at the
    first backward unless it looks for unused parameters."""
    if isinstance(model, DistributedDataParallel) and \
            not model.find_unused_parameters:
        raise ValueError(
            'paramwise_cfg.freeze_backbone freezes parameters after the model '
            'was wrapped in DistributedDataParallel, which then waits for '
            'their gradients. Either freeze in the model config (e.g. '
            'model.backbone.freeze_vit=True / frozen_stages) or set '
            "model_wrapper_cfg=dict(type='MMDistributedDataParallel', "
            'find_unused_parameters=True)')
