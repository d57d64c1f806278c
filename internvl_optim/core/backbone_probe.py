"""One look at a backbone's structure, shared by the layer rules and
``freeze_backbone``.

A backbone is found by ``paramwise_cfg.backbone_name`` (default
``'backbone'`` if the model has one, else the whole model).  CBNet backbones
(``cb_modules.{k}``) are probed through their first composite backbone;
the rules apply to every ``cb_modules.{k}`` alike.
"""
from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

from torch import nn

from .name_patterns import BLOCK_CONTAINERS, STAGE_CONTAINERS

_LISTS = (nn.ModuleList, nn.Sequential)


@dataclass(frozen=True)
class BackboneStructure:
    """What the probe found (each ``None`` when absent).

    Attributes:
        blocks: ``(path, count)`` of a ViT block list.
        stages: ``(container, depths)`` of stages that each hold ``blocks``
            (Swin, InternImage).
        convnext: stage depths of a ConvNeXt (``downsample_layers`` + 4
            ``stages`` of plain blocks).
    """
    blocks: Optional[Tuple[str, int]] = None
    stages: Optional[Tuple[str, List[int]]] = None
    convnext: Optional[List[int]] = None


def find_block_container(module: nn.Module) -> Optional[Tuple[str, int]]:
    """``(path, number_of_blocks)`` of the first non-empty ModuleList /
    Sequential at one of :data:`BLOCK_CONTAINERS`."""
    for path in BLOCK_CONTAINERS:
        try:
            container = module.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(container, _LISTS) and len(container):
            return path, len(container)
    return None


def find_stages(module: nn.Module) -> Optional[Tuple[str, List[int]]]:
    """``(container, depths)`` of a ModuleList at one of
    :data:`STAGE_CONTAINERS` whose items all have a ``blocks`` list."""
    for path in STAGE_CONTAINERS:
        container = getattr(module, path, None)
        if not isinstance(container, nn.ModuleList) or not len(container):
            continue
        blocks = [getattr(stage, 'blocks', None) for stage in container]
        if all(isinstance(b, _LISTS) for b in blocks):
            return path, [len(b) for b in blocks]
    return None


def find_convnext(module: nn.Module) -> Optional[List[int]]:
    """Stage depths of a ConvNeXt-shaped module, else ``None``."""
    downsample = getattr(module, 'downsample_layers', None)
    stages = getattr(module, 'stages', None)
    if isinstance(downsample, nn.ModuleList) and isinstance(
            stages, nn.ModuleList) and len(stages) == 4:
        return [len(s) if isinstance(s, _LISTS) else 1 for s in stages]
    return None


def composite_backbones(backbone: nn.Module) -> List[nn.Module]:
    """CBNet's ``cb_modules``, else ``[backbone]``."""
    cb_modules = getattr(backbone, 'cb_modules', None)
    if isinstance(cb_modules, nn.ModuleList) and len(cb_modules):
        return list(cb_modules)
    return [backbone]


def probe(backbone: nn.Module) -> BackboneStructure:
    """The structure of ``backbone`` (of its first composite backbone for
    CBNet)."""
    inner = composite_backbones(backbone)[0]
    return BackboneStructure(blocks=find_block_container(inner),
                             stages=find_stages(inner),
                             convnext=find_convnext(inner))


def find_backbone(modules: Mapping[str, nn.Module],
                  backbone_name: Optional[str]) -> Tuple[str, nn.Module]:
    """``(prefix, backbone)``; ``backbone_name=None`` means ``'backbone'``
    if the model has such a sub-module, else the whole model."""
    if backbone_name is None:
        backbone_name = 'backbone' if 'backbone' in modules else ''
    if backbone_name not in modules:
        children = sorted(n for n in modules if n and '.' not in n)
        raise ValueError(
            f'paramwise_cfg.backbone_name={backbone_name!r}: the model has no '
            f'such sub-module; its top-level sub-modules are {children} '
            "(use '' for the whole model)")
    return backbone_name, modules[backbone_name]
