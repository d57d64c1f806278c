"""``paramwise_cfg.freeze_backbone``: freeze backbone stages by index.

The listed units (InternImage ``levels.{i}``, Swin/ConvNeXt ``stages.{i}``
together with ConvNeXt's ``downsample_layers.{i}``, or ViT blocks), or the
whole backbone for ``'all'``, get ``requires_grad=False`` and stay out of the
optimizer; their normalization layers are kept in eval mode (a forward
pre-hook re-applies it after every ``model.train()``), so running
statistics stop updating.
"""
from typing import List, Sequence, Union

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .hierarchical_layers import is_convnext, stage_depths
from .vit_layers import find_block_container
from .weight_decay import is_norm_module


def _keep_eval(module, args):
    module.train(False)


def select_units(backbone: nn.Module, spec: Union[str, Sequence[int]],
                 desc: str) -> List[nn.Module]:
    """The modules ``spec`` names (validated; nothing is changed)."""
    if spec == 'all':
        units = [backbone]
    else:
        found = stage_depths(backbone)
        if found is not None:
            container = getattr(backbone, found[0])
            kind = found[0]
        elif is_convnext(backbone) is not None:
            container, kind = backbone.stages, 'stages'
        else:
            block = find_block_container(backbone)
            if block is None:
                raise ValueError(
                    f'paramwise_cfg.freeze_backbone={list(spec)}: {desc} has '
                    "no stages, levels or blocks to index; use 'all'")
            container, kind = backbone.get_submodule(block[0]), block[0]
        bad = [i for i in spec if i >= len(container)]
        if bad:
            raise ValueError(
                f'paramwise_cfg.freeze_backbone={list(spec)}: {bad} out of '
                f'range, {desc} has {len(container)} {kind} (valid 0..'
                f"{len(container) - 1}, or 'all')")
        units = [container[i] for i in spec]
        if kind == 'stages' and is_convnext(backbone) is not None:
            units += [backbone.downsample_layers[i] for i in spec]
    return units


def freeze(units: List[nn.Module]) -> None:
    """``requires_grad=False`` for the units; their norms stay in eval."""
    for unit in units:
        unit.requires_grad_(False)
        for module in unit.modules():
            if is_norm_module(module) and not getattr(
                    module, '_internvl_optim_frozen', False):
                module._internvl_optim_frozen = True
                module.train(False)
                module.register_forward_pre_hook(_keep_eval)


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
