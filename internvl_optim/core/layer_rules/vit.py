"""Plain (columnar) vision transformers: embeddings are layer 0, block
``i`` of the block list is layer ``i + 1``, everything else in the backbone
(final norm, FPN adapters) is ``N + 1`` like the heads.

Covers InternViT-6B (``patch_embed``, ``pos_embed``, ``cls_token``,
``blocks.{i}``), HuggingFace InternViT (``embeddings.*``,
``encoder.layers.{i}``), MMSeg ``VisionTransformer``/``BEiT``/``MAE``
(``layers.{i}``).  Names are backbone-relative, so a head parameter such as
``decode_head.layers.1.conv.weight`` is never taken for block 1.
"""
from ..name_patterns import is_embedding_name
from ..names import join_name
from .base import Built, RuleContext, check_num_layers


def vit_layer_id(rel_name: str, block_path: str, num_layers: int) -> int:
    """Layer id of a backbone-relative parameter name in a plain ViT.

    >>> vit_layer_id('blocks.3.attn.qkv.weight', 'blocks', 48)
    4
    >>> vit_layer_id('pos_embed', 'blocks', 48), vit_layer_id('up1.0.weight', 'blocks', 48)
    (0, 49)
    """
    prefix = block_path + '.'
    if rel_name.startswith(prefix):
        index = rel_name[len(prefix):].split('.', 1)[0]
        if index.isdigit():
            return int(index) + 1
    if is_embedding_name(rel_name):
        return 0
    return num_layers + 1


def claims(ctx: RuleContext) -> bool:
    return ctx.structure.blocks is not None


def build(ctx: RuleContext) -> Built:
    block_path, count = ctx.structure.blocks
    n = check_num_layers(ctx.settings.num_layers, count,
                         f'{ctx.desc}.{block_path}')
    rule = ctx.make_rule(n, f'ViT rule ({join_name(ctx.prefix, block_path)})',
                         lambda rel: vit_layer_id(rel, block_path, n))
    return rule, frozenset()
