"""Plain (columnar) vision transformers: embeddings are layer 0, block
``i`` of the block list is layer ``i + 1``, everything else in the backbone
(final norm, FPN adapters) is ``N + 1`` like the heads.

Covers InternViT-6B (``patch_embed``, ``pos_embed``, ``cls_token``,
``blocks.{i}``), HuggingFace InternViT (``embeddings.*``,
``encoder.layers.{i}``), MMSeg ``VisionTransformer``/``BEiT``/``MAE``
(``layers.{i}``).  Names are backbone-relative, so a head parameter such as
``decode_head.layers.1.conv.weight`` is never taken for block 1.
"""
from typing import Sequence

from ..backbone_probe import composite_backbones, is_block_list
from ..names import join_name
from .base import Built, RuleContext, check_num_layers, outside_placement


def vit_layer_id(rel_name: str, block_path: str, num_layers: int,
                 block_names: Sequence[str] = (),
                 top_level: Sequence[str] = (),
                 siblings: Sequence[str] = ()) -> int:
    """Layer id of a backbone-relative parameter name in a plain ViT: block
    ``i`` (the i-th child of the block list, numbered or named as
    torchvision's ``encoder_layer_{i}``) is ``i + 1``; other names by
    :func:`~.base.outside_placement`; ``siblings`` are the children of a
    nested block list's parent, in registration order.

    >>> vit_layer_id('blocks.3.attn.qkv.weight', 'blocks', 48)
    4
    >>> top = ('patch_embed', 'blocks', 'up1')
    >>> vit_layer_id('pos_embed', 'blocks', 48, (), top), vit_layer_id('up1.0.weight', 'blocks', 48, (), top)
    (0, 49)
    >>> vit_layer_id('encoder.layers.encoder_layer_2.mlp.0.weight', 'encoder.layers', 4,
    ...              ('encoder_layer_0', 'encoder_layer_1', 'encoder_layer_2'))
    3
    """
    prefix = block_path + '.'
    if rel_name.startswith(prefix):
        child = rel_name[len(prefix):].split('.', 1)[0]
        if child in block_names:
            return block_names.index(child) + 1
        if child.isdigit():
            return int(child) + 1
    parent, _, holder = block_path.rpartition('.')
    if parent and rel_name.startswith(parent + '.') and siblings:
        # beside a nested block list (encoder.patch_embed next to
        # encoder.blocks): before it is layer 0, after it N + 1
        sibling = rel_name[len(parent) + 1:].split('.', 1)[0]
        if sibling in siblings and holder in siblings:
            return 0 if siblings.index(sibling) < siblings.index(holder) \
                else num_layers + 1
    return outside_placement(rel_name, block_path, top_level, num_layers)


def claims(ctx: RuleContext) -> bool:
    return ctx.structure.blocks is not None


def build(ctx: RuleContext) -> Built:
    block_path, count = ctx.structure.blocks
    names, top = ctx.structure.block_names, ctx.structure.top_level
    n = check_num_layers(ctx.settings.num_layers, count,
                         f'{ctx.desc}.{block_path}')
    parent = block_path.rpartition('.')[0]
    inner = composite_backbones(ctx.backbone)[0]
    siblings = tuple(c for c, _ in inner.get_submodule(
        parent).named_children()) if parent else ()
    prefix = block_path + '.'
    block_index = {child: i for i, child in enumerate(names)}

    def layer_id(rel: str) -> int:
        if rel.startswith(prefix):  # the common case, by dict lookup
            index = block_index.get(rel[len(prefix):].split('.', 1)[0])
            if index is not None:
                return index + 1
        return vit_layer_id(rel, block_path, n, names, top, siblings)

    other_lists = [name for name in top if name != block_path
                   and is_block_list(getattr(inner, name, None))]

    def claimed(name: str) -> bool:
        """Not claimed (the audit names them): a bare backbone parameter
        that is no token or embedding, and a second list of attention
        blocks (XCiT's ``cls_attn_blocks``, CaiT's ``blocks_token_only``),
        which land at N + 1 with the heads."""
        rel = ctx.rule_names.get(name)
        if rel is None:
            return True
        if '.' not in rel:
            return vit_layer_id(rel, block_path, n, names, top,
                                siblings) != n + 1
        return not any(rel.startswith(path + '.') for path in other_lists)

    return ctx.make_rule(n, f'ViT rule ({join_name(ctx.prefix, block_path)})',
                         layer_id, claimed), frozenset()
