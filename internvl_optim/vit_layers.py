"""The layer rule for plain (columnar) vision transformers.

Covers every naming of the ViT family this package knows:

* InternViT-6B, segmentation version: ``patch_embed``, ``pos_embed``,
  ``cls_token``, ``blocks.{i}``;
* InternViT, HuggingFace-style naming: ``embeddings.*``,
  ``encoder.layers.{i}``;
* MMSeg ``VisionTransformer``, ``BEiT`` and ``MAE``: ``cls_token``,
  ``pos_embed``, ``patch_embed``, ``layers.{i}``.

The rule works on names *relative to the backbone*, so a head parameter such
as ``decode_head.layers.1.conv.weight`` can never be taken for block 1: it is
not inside the backbone at all.
"""
import re
from typing import Optional, Tuple

from torch import nn

#: Where ViT-like backbones keep their transformer blocks, in lookup order.
BLOCK_CONTAINERS = ('blocks', 'layers', 'encoder.layers', 'encoder.layer',
                    'transformer.resblocks')

# The first name segment of an embedding: any kind of token (class, mask,
# register, distillation, prompt) or embedding (patch, position, the
# HuggingFace ``embeddings`` module).
_EMBEDDING_SEGMENT = re.compile(r'token|embed')


def is_embedding_name(rel_name: str) -> bool:
    """Whether a backbone-relative parameter name belongs to layer 0.

    >>> [is_embedding_name(n) for n in
    ...  ('cls_token', 'reg_token', 'register_tokens', 'pos_embed',
    ...   'patch_embed.proj.weight', 'embeddings.class_embedding',
    ...   'blocks.0.norm1.weight', 'norm.weight')]
    [True, True, True, True, True, True, False, False]
    """
    first = rel_name.split('.', 1)[0]
    return bool(_EMBEDDING_SEGMENT.search(first))


def find_block_container(backbone: nn.Module) -> Optional[Tuple[str, int]]:
    """Return ``(path, number_of_blocks)`` of the backbone's block list.

    Only a non-empty ``nn.ModuleList`` / ``nn.Sequential`` at one of
    :data:`BLOCK_CONTAINERS` counts; ``None`` when the backbone has none.
    """
    for path in BLOCK_CONTAINERS:
        try:
            container = backbone.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(container,
                      (nn.ModuleList, nn.Sequential)) and len(container):
            return path, len(container)
    return None


def vit_layer_id(rel_name: str, block_path: str, num_layers: int) -> int:
    """Layer id of a backbone-relative parameter name in a plain ViT.

    Embeddings are layer 0, ``{block_path}.{i}.*`` is layer ``i + 1`` and
    everything else in the backbone (final norm, FPN adapters) is
    ``num_layers + 1``, like the heads.

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
