"""Plain (columnar) vision transformers: embeddings are layer 0, block
``i`` of the block list is layer ``i + 1``, everything else in the backbone
(final norm, FPN adapters) is ``N + 1`` like the heads.

Covers InternViT-6B (``patch_embed``, ``pos_embed``, ``cls_token``,
``blocks.{i}``), HuggingFace InternViT (``embeddings.*``,
``encoder.layers.{i}``), MMSeg ``VisionTransformer``/``BEiT``/``MAE``
(``layers.{i}``).  Names are backbone-relative, so a head parameter such as
``decode_head.layers.1.conv.weight`` is never taken for block 1.
"""
from __future__ import annotations
from typing import Mapping, Optional, Sequence, TYPE_CHECKING, Tuple

from torch import nn

from ..backbone_probe import (composite_backbones, is_block_list,
                              transformer_towers)
from ..names import is_embedding_name, is_token_or_position, join_name
from .common import (PRE_BLOCK_NORMS, ancestors_of, check_num_layers,
                     outside_placement, registered_before, shared_depth)
from .continued_lists import (POST, declared_continuations, sibling_lists,
                              stacks)

if TYPE_CHECKING:  # the types live with the table
    from . import Built, RuleContext


def vit_layer_id(rel_name: str, block_path: str, num_layers: int,
                 block_names: Sequence[str] = (),
                 top_level: Sequence[str] = (),
                 ancestors: Mapping[str, Sequence[str]] = None) -> int:
    """Layer id of a backbone-relative parameter name in a plain ViT: block
    ``i`` (the i-th child of the block list, numbered or named as
    torchvision's ``encoder_layer_{i}``) is ``i + 1``.  A name inside a
    module that also holds the (nested) block list is placed by
    registration order there: ``ancestors`` maps each module on the path
    to the blocks to its children in registration order, and what is
    registered before the branch leading to the blocks runs before them
    (layer 0: ``encoder.patch_embed`` beside ``encoder.blocks``, Ovis2's
    ``transformer.embeddings`` beside ``transformer.encoder.layers``), what
    comes after runs after them (``N + 1``).  A position table held by any
    module outside the blocks is layer 0 (YOLOS' mid-position embeddings).
    Other names by :func:`~.base.outside_placement`.

    >>> vit_layer_id('blocks.3.attn.qkv.weight', 'blocks', 48)
    4
    >>> top = ('patch_embed', 'blocks', 'up1')
    >>> vit_layer_id('pos_embed', 'blocks', 48, (), top), vit_layer_id('up1.0.weight', 'blocks', 48, (), top)
    (0, 49)
    >>> vit_layer_id('encoder.layers.encoder_layer_2.mlp.0.weight', 'encoder.layers', 4,
    ...              ('encoder_layer_0', 'encoder_layer_1', 'encoder_layer_2'))
    3
    >>> tree = {'t': ('embeddings', 'encoder', 'norm'), 't.encoder': ('layers',)}
    >>> [vit_layer_id(n, 't.encoder.layers', 2, (), ('t', ), tree) for n in
    ...  ('t.embeddings.patch.weight', 't.norm.weight', 't.pos_embed',
    ...   'enc.interpolation.mid_position_embeddings')]
    [0, 3, 0, 0]
    """
    prefix = block_path + '.'
    if rel_name.startswith(prefix):
        child = rel_name[len(prefix):].split('.', 1)[0]
        if child in block_names:
            return block_names.index(child) + 1
        if child.isdigit():
            return int(child) + 1
    parts = rel_name.split('.')
    if len(parts) > 1 and is_token_or_position(parts[-1]) and \
            'token' not in parts[-1]:
        return 0  # a position table, wherever it is held (YOLOS'
        # encoder.interpolation.mid_position_embeddings, added in the
        # blocks); a token of a pooling head (AIMv2's head.cls_token) is not
        # an embedding
    depth = shared_depth(rel_name, block_path)
    if depth and ancestors:
        below = parts[depth]
        if depth == len(parts) - 1:  # held by that module itself
            return 0 if is_token_or_position(below) else num_layers + 1
        if below in PRE_BLOCK_NORMS:
            return 0
        before = registered_before(rel_name, block_path, ancestors)
        if before is not None:
            return 0 if before else num_layers + 1
    return outside_placement(rel_name, block_path, top_level, num_layers)


def query_blocks(module) -> Optional[Tuple[int, str]]:
    """``(blocks, query module)`` where the model declares that its last
    ``num_blocks`` blocks also process learned queries (EoMT:
    ``config.num_blocks`` with ``num_queries``; its ``query`` embedding is
    concatenated before block ``num_hidden_layers - num_blocks``, and its
    ``layernorm``, registered before the blocks, normalizes their outputs
    for the heads), else None."""
    config = getattr(module, 'config', None)
    blocks = getattr(config, 'num_blocks', None)
    if isinstance(blocks, int) and not isinstance(blocks, bool) and \
            blocks > 0 and isinstance(getattr(config, 'num_queries', None),
                                      int) and \
            isinstance(getattr(module, 'query', None), nn.Embedding):
        return blocks, 'query'
    return None


def claims(ctx: RuleContext) -> bool:
    return ctx.structure.blocks is not None


def build(ctx: RuleContext) -> Built:
    block_path, count = ctx.structure.blocks
    names, top = ctx.structure.block_names, ctx.structure.top_level
    inner = composite_backbones(ctx.backbone)[0]
    other_lists = [name for name in top if name != block_path
                   and is_block_list(getattr(inner, name, None))]
    other_lists += [path for path, _ in transformer_towers(inner)
                    if path not in other_lists and path != block_path
                    and not block_path.startswith(path + '.')]
    other_lists += [path for path in sibling_lists(inner, block_path)
                    if path not in other_lists]
    following = declared_continuations(inner, block_path, other_lists)
    other_lists = [p for p in other_lists if p not in dict(following)]
    n = check_num_layers(ctx.settings.num_layers,
                         count + sum(k for _, k in following),
                         f'{ctx.desc}.{block_path}')
    ancestors = ancestors_of(inner, block_path)
    prefix = block_path + '.'
    block_index = {child: i for i, child in enumerate(names)}
    starts, first = [], count + 1
    for path, blocks in following:  # their blocks continue the ids
        starts.append((path + '.', first))
        first += blocks
    holders = stacks(inner, [(block_path, 1)] + [
        (path[:-1], first_id) for path, first_id in starts], n)
    queries = query_blocks(inner)

    def layer_id(rel: str) -> int:
        if queries is not None:  # declared: the queries join the last
            blocks, query = queries  # blocks; the norm serves the heads
            if rel.startswith(query + '.'):
                return max(n - blocks + 1, 1)
            if rel.startswith('layernorm.'):
                return n + 1
        if rel.startswith(prefix):  # the common case, by dict lookup
            index = block_index.get(rel[len(prefix):].split('.', 1)[0])
            if index is not None:
                return index + 1
        for start, first_id in starts:
            if rel.startswith(start):
                child = rel[len(start):].split('.', 1)[0]
                if child.isdigit():
                    return first_id + int(child)
        for holder, before, first_id, next_id in holders:
            if rel.startswith(holder):
                child = rel[len(holder):].split('.', 1)[0]
                if is_embedding_name(child) or child in before:
                    return first_id
                return next_id
        if starts and '.' in rel and POST.search(rel.split('.', 1)[0]):
            # a post-module before the lists (Mllama's layernorm_post and
            # post_tile_positional_embedding, run after transformer.layers):
            # with the next list's first block
            return starts[0][1]
        return vit_layer_id(rel, block_path, n, names, top, ancestors)

    def claimed(name: str) -> bool:
        """Not claimed (the audit names them): a bare backbone parameter
        that is no token or embedding, and a second list of attention
        blocks that does not continue the first (XCiT's
        ``cls_attn_blocks``, CaiT's ``blocks_token_only``, at any depth),
        which land at N + 1 with the heads."""
        rel = ctx.rule_names.get(name)
        if rel is None:
            return True
        if '.' not in rel:
            return vit_layer_id(rel, block_path, n, names, top,
                                ancestors) != n + 1
        return not any(rel.startswith(path + '.') for path in other_lists)

    source = join_name(ctx.prefix, block_path) + ''.join(
        f' + {join_name(ctx.prefix, path)}' for path, _ in following)
    return ctx.make_rule(n, f'ViT rule ({source})', layer_id,
                         claimed), frozenset()
