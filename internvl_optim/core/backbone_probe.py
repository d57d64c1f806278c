"""One look at a backbone's structure, shared by the layer rules and
``freeze_backbone``.

A backbone is found by ``paramwise_cfg.backbone_name`` (default
``'backbone'`` if the model has one, else the whole model).  CBNet backbones
(``cb_modules.{k}``) are probed through their first composite backbone;
the rules apply to every ``cb_modules.{k}`` alike.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from torch import nn

from .names import (BACKBONE_ATTRIBUTES, BLOCK_CONTAINERS,
                    STAGE_CONTAINERS, is_embedding_name, join_name)
from .declared_towers import declared_backbone
from .weight_decay import is_norm_module

_LISTS = (nn.ModuleList, nn.Sequential)


@dataclass(frozen=True)
class StageLayout:
    """Stages that each hold one list of blocks (Swin, InternImage, MiT,
    timm/HF Swin), or (``parallel``) stages that are lists of blocks with
    per-stage modules in parallel lists at backbone level (Twins).

    Attributes:
        container: where the stages are (``levels``, ``stages``, ``layers``,
            ``encoder.layers``).
        depths: blocks per stage.
        block_child: per stage, the child holding the blocks (``blocks``,
            or MiT's ``1``); ``''`` for parallel stages.
        before: per stage, children registered before the blocks (they run
            at the start of the stage: timm Swin's downsample, MiT's patch
            embedding); the others run at its end.
        post_norm_ids: per stage, InternImage's ``post_norm_block_ids``
            (``post_norms.{k}`` follows block ``ids[k]``), or None.
        parallel: backbone-level lists with one module per stage, and
            where each runs: ``'start'`` (patch embeddings), ``'first_block'``
            (Twins' position encodings, after the stage's first block) or
            ``'end'`` (norms).
    """
    container: str
    depths: List[int]
    block_child: List[str]
    before: List[frozenset]
    post_norm_ids: List[Optional[List[int]]]
    parallel: Dict[str, str] = field(default_factory=dict)
    #: stages interleaved with other items in their list (SwiftFormer's
    #: ``encoder.network``: stage, downsample, stage, ...): the list index
    #: of each stage; every other item runs before the next stage
    stage_items: Optional[Tuple[int, ...]] = None
    #: items of a stage's list that make one declared block (LeViT: an
    #: attention and an MLP residual layer); items after the last block
    #: run at the stage's end (LeViT's subsampling into the next stage)
    items_per_block: int = 1


@dataclass(frozen=True)
class BackboneStructure:
    """What the probe found (each ``None`` when absent).

    Attributes:
        blocks: ``(path, count)`` of a ViT block list.
        block_names: the block list's child names in order (``0``, ``1``,
            ... or torchvision's ``encoder_layer_0``, ...).
        stages: a :class:`StageLayout`.
        convnext: stage depths of a ConvNeXt (``downsample_layers`` + 4
            ``stages`` of plain blocks).
        top_level: the backbone's child module names in registration order.
    """
    blocks: Optional[Tuple[str, int]] = None
    block_names: Tuple[str, ...] = ()
    stages: Optional[StageLayout] = None
    convnext: Optional[List[int]] = None
    top_level: Tuple[str, ...] = ()


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


def _block_child(stage: nn.Module) -> Optional[str]:
    """The child of a stage that holds its blocks: ``blocks``, else the only
    child that is a list of modules."""
    blocks = getattr(stage, 'blocks', None)
    if isinstance(blocks, _LISTS) and len(blocks):
        return 'blocks'
    # in a stage that is itself a list, only a ModuleList item holds blocks
    # (MiT: [patch_embed, ModuleList(blocks), norm]); a Sequential item is a
    # layer such as StarNet's ConvBN downsample
    kinds = nn.ModuleList if isinstance(stage, _LISTS) else _LISTS
    lists = [n for n, c in stage.named_children()
             if isinstance(c, kinds) and len(c)
             and not isinstance(c[0], _LISTS)]
    return lists[0] if len(lists) == 1 else None


def declared_depths(module: nn.Module) -> Optional[List[int]]:
    """The depth a transformers model declares in its config:
    ``stage_num_blocks`` (blocks per stage, HGNetV2's name, whose
    ``depths`` counts something else), ``depths`` (blocks per stage of a
    hierarchical encoder; CvT's ``depth``) or ``[num_hidden_layers]``;
    None without one."""
    config = getattr(module, 'config', None)
    depths = getattr(config, 'stage_num_blocks', None)
    if depths is None:
        depths = getattr(config, 'depths', None)
    if depths is None and isinstance(getattr(config, 'depth', None),
                                     (list, tuple)):
        depths = config.depth
    if isinstance(depths, (list, tuple)) and depths and all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0
            for d in depths):
        return list(depths)
    n = getattr(config, 'num_hidden_layers', None)
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return [n]
    return None


def _is_block_items(container: nn.Module) -> bool:
    """A list whose items are composite blocks of one class (not plain
    layers such as a downsampling ``Sequential(LayerNorm, Conv2d)``)."""
    items = list(container.children())
    return bool(items) and len({type(i) for i in items}) == 1 and \
        next(items[0].children(), None) is not None


def _outer_lists(module: nn.Module):
    """``(path, list)`` of every non-empty ModuleList / Sequential of
    blocks not inside another list, in registration order."""
    for path, child in module.named_modules():
        if path and isinstance(child, _LISTS) and len(child) and \
                not any(part.isdigit() for part in path.split('.')) and \
                _is_block_items(child):
            yield path, child


def find_declared_blocks(module: nn.Module) -> Optional[Tuple[str, int]]:
    """The block list a transformers model declares: the first list of
    blocks holding ``config.num_hidden_layers`` of them (DINOv3's
    ``layer``, Pixtral's ``transformer.layers``, an LLM's
    ``model.layers``); where several lists hold that many, the first of
    attention blocks (Qwen3-Omni's vision ``blocks``, not the deep-stack
    ``merger_list`` registered before it, whose mergers run on the blocks'
    outputs)."""
    depths = declared_depths(module)
    if depths is None or len(depths) != 1:
        return None
    found = [(path, c) for path, c in _outer_lists(module)
             if len(c) == depths[0]]
    attention = [(path, c) for path, c in found if _has_attention(c[0])]
    path, blocks = (attention or found or [(None, ())])[0]
    return None if path is None else (path, len(blocks))


def find_declared_stages(module: nn.Module) -> Optional[StageLayout]:
    """The stages a transformers model declares by ``config.depths``: a
    list with one stage per depth, stage ``s`` holding a list of
    ``depths[s]`` blocks (HF ConvNeXt, ResNet, RegNet, BiT, FocalNet,
    Hiera: ``encoder.stages.{s}.layers``)."""
    depths = declared_depths(module)
    if depths is None or len(depths) < 2:
        return None
    for path, stages in _outer_lists(module):
        if len(stages) != len(depths):
            continue
        if all(isinstance(s, _LISTS) and len(s) == d and _is_block_items(s)
               for s, d in zip(stages, depths)):
            # stages that are their lists of blocks, per-stage modules in
            # parallel lists beside them (HF PVT, PoolFormer)
            found = _parallel_stages(module, path, list(stages))
            if found is not None:
                return found
        children = []
        for stage, depth in zip(stages, depths):
            lists = [n for n, c in stage.named_children()
                     if isinstance(c, _LISTS) and len(c) == depth
                     and _is_block_items(c)]
            children.append(lists[0] if len(lists) == 1 else None)
        if all(children):
            return _stage_layout(path, list(stages), children)
        grouped = _grouped_stages(path, list(stages), depths)
        if grouped is not None:
            return grouped
    return _interleaved_stages(module, depths)


def _signature(item: nn.Module) -> tuple:
    """An item's class and its children's classes."""
    return (type(item),) + tuple(type(c) for c in item.children())


def _grouped_stages(path: str, stages, depths: List[int],
                    per_block: int = 2) -> Optional[StageLayout]:
    """Stages whose declared depth counts groups of ``per_block``
    consecutive items of their one list (LeViT: ``depths`` [4, 4, 4]
    counts attention + MLP residual pairs in ``stages.{s}.layers``, each
    list ending with the subsampling into the next stage): each list starts
    with ``depths[s]`` repeats of one group of distinct items."""
    children = []
    for stage, depth in zip(stages, depths):
        lists = [n for n, c in stage.named_children()
                 if isinstance(c, _LISTS) and len(c) >= per_block * depth]
        if len(lists) != 1:
            return None
        items = [_signature(i) for i in stage.get_submodule(lists[0])]
        group = items[:per_block]
        if len(set(group)) != per_block or \
                items[:per_block * depth] != group * depth:
            return None
        children.append(lists[0])
    layout = _stage_layout(path, stages, children)
    if layout is None:
        return None
    return StageLayout(layout.container, list(depths), layout.block_child,
                       layout.before, layout.post_norm_ids,
                       items_per_block=per_block)


def _interleaved_stages(module: nn.Module,
                        depths: List[int]) -> Optional[StageLayout]:
    """Stages interleaved with other modules in one list (SwiftFormer's
    ``encoder.network``: a stage holding ``blocks``, a downsampling
    embedding, the next stage, ...): the items holding one list of
    ``depths[s]`` blocks, in order, are the stages."""
    for path, items in module.named_modules():
        if not path or not isinstance(items, _LISTS) or \
                len(items) <= len(depths) or \
                any(part.isdigit() for part in path.split('.')):
            continue
        found = []  # (index, child holding the blocks)
        for index, item in enumerate(items):
            # (blocks of more than one class: SwiftFormer ends each stage
            # with an attention block after its convolution blocks)
            lists = [n for n, c in item.named_children()
                     if isinstance(c, _LISTS) and len(c) and all(
                         next(b.children(), None) is not None for b in c)]
            if lists:
                found.append((index, lists))
        if len(found) != len(depths):
            continue
        children = []
        for (index, lists), depth in zip(found, depths):
            match = [n for n in lists if len(items[index].get_submodule(n))
                     == depth]
            children.append(match[0] if len(match) == 1 else None)
        if all(children):
            stages = [items[index] for index, _ in found]
            layout = _stage_layout(path, stages, children)
            if layout is not None:
                return StageLayout(
                    layout.container, layout.depths, layout.block_child,
                    layout.before, layout.post_norm_ids,
                    stage_items=tuple(index for index, _ in found))
    return None


def _stage_layout(path: str, stages,
                  children=None) -> Optional[StageLayout]:
    children = children or [_block_child(stage) for stage in stages]
    if all(children):
        before = []
        for stage, child in zip(stages, children):
            names = [n for n, _ in stage.named_children()]
            before.append(frozenset(names[:names.index(child)]))
        return StageLayout(
            path, [len(getattr(s, c)) for s, c in zip(stages, children)],
            children, before,
            [getattr(s, 'post_norm_block_ids', None) for s in stages])
    return None


def _parallel_stages(module: nn.Module, path: str,
                     stages) -> Optional[StageLayout]:
    """Twins: ``layers.{s}`` are lists of blocks; ``patch_embeds.{s}``,
    ``position_encodings.{s}``, ``norm_list.{s}`` run with stage s."""
    # (a Sequential item is a layer, e.g. StarNet's ConvBN downsample; a
    # ModuleList item would make the stage a list of lists)
    if not all(isinstance(s, _LISTS) and len(s)
               and not isinstance(s[0], nn.ModuleList) for s in stages):
        return None
    parallel = {}
    # the lists beside the stages' list (at backbone level for Twins, in
    # HF PVT's encoder: encoder.patch_embeddings beside encoder.block)
    parent_path, _, leaf = path.rpartition('.')
    parent = module.get_submodule(parent_path) if parent_path else module
    order = [name for name, _ in parent.named_children()]
    for name, child in parent.named_children():
        if name != leaf and isinstance(child, nn.ModuleList) and \
                len(child) == len(stages) and \
                any(p is not None for p in child.parameters()):
            key = join_name(parent_path, name)
            if all(is_norm_module(m) for m in child):
                parallel[key] = 'end'          # norm_list: end of stage
            elif is_embedding_name(name) or 'Embed' in type(
                    child[0]).__name__:
                # patch_embeds; Florence-2 DaViT's convs of ConvEmbed
                parallel[key] = 'start'
            elif order.index(name) < order.index(leaf):
                parallel[key] = 'start'        # registered before: runs so
            else:
                parallel[key] = 'first_block'  # position_encodings
    n = len(stages)
    return StageLayout(path, [len(s) for s in stages], [''] * n,
                       [frozenset()] * n, [None] * n, parallel)


def find_stages(module: nn.Module) -> Optional[StageLayout]:
    """The first container of :data:`STAGE_CONTAINERS` (and HF Swin's
    ``encoder.layers``) whose items are stages."""
    for path in STAGE_CONTAINERS + ('encoder.layers', ):
        try:
            container = module.get_submodule(path)
        except AttributeError:
            continue
        if not isinstance(container, _LISTS) or not len(container):
            continue
        stages = list(container)
        found = _stage_layout(path, stages) or \
            _parallel_stages(module, path, stages)
        if found is not None:
            return found
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
    CBNet).  A container holding stages is not also a block list."""
    inner = composite_backbones(backbone)[0]
    convnext = find_convnext(inner)  # has rules of its own
    # what a transformers model declares (config depths) before the names
    declared = None if convnext is not None else find_declared_stages(inner)
    stages = declared or (None if convnext is not None
                          else find_stages(inner))
    blocks = None if declared is not None else (
        find_declared_blocks(inner) or find_block_container(inner))
    if blocks is not None and stages is not None and \
            stages.container == blocks[0]:
        blocks = None
    names = () if blocks is None else tuple(
        n for n, _ in inner.get_submodule(blocks[0]).named_children())
    return BackboneStructure(
        blocks=blocks, block_names=names, stages=stages,
        convnext=convnext,
        top_level=tuple(n for n, _ in inner.named_children()))


#: the last name of a list of transformer blocks, in any tower
_BLOCK_LIST_NAMES = ('layer', 'h')


def _is_block_list_name(name: str) -> bool:
    """``blocks``, ``layers``, ``resblocks``, XCiT's ``cls_attn_blocks``,
    CaiT's ``blocks_token_only``, HF's ``layer`` and GPT's ``h``."""
    return 'blocks' in name or 'layers' in name or name in _BLOCK_LIST_NAMES


def _has_attention(module: nn.Module) -> bool:
    return any(isinstance(m, nn.MultiheadAttention)
               or 'attention' in type(m).__name__.lower()
               or 'attn' in type(m).__name__.lower()
               or name.rsplit('.', 1)[-1] in ('attn', 'attention',
                                             'self_attn')
               for name, m in module.named_modules())


def is_block_list(module, min_blocks: int = 2) -> bool:
    """A list of at least ``min_blocks`` attention blocks."""
    return isinstance(module, _LISTS) and len(module) >= min_blocks and \
        _has_attention(module[0])


def transformer_towers(module: nn.Module, min_blocks: int = 2
                       ) -> List[Tuple[str, int]]:
    """``(path, blocks)`` of every list of at least ``min_blocks``
    attention blocks (``*.layers``, ``*.blocks``, ``*.encoder.layer``, ...)
    that is not inside another list: a VLM's vision tower and language
    model give two; the stages of one hierarchical backbone
    (``stages.{i}.blocks``, PiT's ``transformers.{i}.blocks``) and CNN
    blocks give none."""
    found: List[Tuple[str, int]] = []
    for path, child in module.named_modules():
        if not path or not isinstance(child, _LISTS) or \
                len(child) < min_blocks:
            continue
        if not _is_block_list_name(path.rsplit('.', 1)[-1]):
            continue
        if any(part.isdigit() for part in path.split('.')):
            continue  # inside a list: a stage of a hierarchical backbone
        if any(path.startswith(other + '.') for other, _ in found):
            continue
        if not _has_attention(child[0]):
            continue
        found.append((path, len(child)))
    return found


def sole_holder(module: nn.Module) -> Optional[str]:
    """The name of the one child that holds all of ``module``'s parameters
    (``module`` holding none itself), else None.  A wrapper such as
    MMSeg's/mmpretrain's ``TIMMBackbone`` (all in ``timm_model``); never a
    list of units (CBNet's ``cb_modules``, a ``ModuleList`` of stages).

    >>> wrapper = nn.Module(); wrapper.timm_model = nn.Linear(2, 2)
    >>> sole_holder(wrapper), sole_holder(wrapper.timm_model)
    ('timm_model', None)
    """
    if next(module.parameters(recurse=False), None) is not None:
        return None
    holders = [(name, child) for name, child in module.named_children()
               if next(child.parameters(), None) is not None]
    if len(holders) != 1:
        return None
    name, child = holders[0]
    if name == 'cb_modules' or isinstance(child, (nn.ModuleList,
                                                  nn.Sequential)):
        return None
    return name


def holder_within(modules: Mapping[str, nn.Module], name: str) -> str:
    """``name``, or the module inside it that holds all its parameters
    when it only wraps one (:func:`sole_holder`, repeatedly)."""
    if name not in modules:
        return name
    child = sole_holder(modules[name])
    while child is not None:
        name = join_name(name, child)
        child = sole_holder(modules[name])
    return name


def find_backbone(modules: Mapping[str, nn.Module],
                  backbone_name: Optional[str]) -> Tuple[str, nn.Module]:
    """``(prefix, backbone)``; ``backbone_name=None`` means the first of
    :data:`BACKBONE_ATTRIBUTES` the model has (else the whole model), and
    within it the module that holds the parameters when the found one
    only wraps it (:func:`sole_holder`: ``backbone.timm_model`` for
    ``TIMMBackbone``); when the found module is a transformers detector or
    segmenter, the backbone its config declares (``backbone_config``:
    :func:`~.declared_towers.declared_backbone`, DETR's
    ``model.backbone.model``).  A given ``backbone_name`` is taken as it
    is."""
    if backbone_name is None:
        backbone_name = holder_within(modules, next(
            (n for n in BACKBONE_ATTRIBUTES if n in modules), ''))
        declared = declared_backbone(modules, backbone_name)
        if declared is not None:
            backbone_name = holder_within(modules, declared)
    if backbone_name not in modules:
        children = sorted(n for n in modules if n and '.' not in n)
        raise ValueError(
            f'paramwise_cfg.backbone_name={backbone_name!r}: the model has no '
            f'such sub-module; its top-level sub-modules are {children} '
            "(use '' for the whole model)")
    return backbone_name, modules[backbone_name]
