"""Every name pattern the rules share, defined once.

Names are backbone-relative (``blocks.3.attn.qkv.weight``) or a parameter's
own name (``cls_token``), as each function says.
"""
import re

#: Where ViT-like backbones keep their transformer blocks, in lookup order.
BLOCK_CONTAINERS = ('blocks', 'layers', 'encoder.layers', 'encoder.layer',
                    'encoder.blocks', 'transformer.resblocks')
#: Where hierarchical backbones keep their stages (each with ``blocks``).
STAGE_CONTAINERS = ('levels', 'stages', 'layers')
#: Where models keep their backbone, in lookup order (MMSeg/MMDet,
#: mmdet3d, SAN's CLIP, HuggingFace vision towers).
BACKBONE_ATTRIBUTES = ('backbone', 'img_backbone', 'image_encoder',
                       'vision_model')
#: CBNet's composite backbones: ``cb_modules.{k}.<inner name>``.
CBNET_PREFIX = re.compile(r'^cb_modules\.\d+\.(.*)$')

# The first segment of an embedding's backbone-relative name: any kind of
# token (class, mask, register, distillation, prompt) or embedding (patch,
# position, level, the HuggingFace ``embeddings`` module).
# (TNT's ``patch_pos``; Hiera's ``pos_embed_win`` contains ``embed``)
_EMBEDDING_SEGMENT = re.compile(r'token|embed|^patch_pos$')
# A parameter's own name that makes it a token or position/class embedding;
# numbered copies (CrossViT's ``pos_embed_0``, ``cls_token_1``) included.
_TOKEN_OR_POSITION = re.compile(
    r'(token|tokens|pos_embed|pos_embedding|position_embeddings?|'
    r'class_embedding|pos_embed_win(dow)?|patch_pos)(_\d+)?$')


def is_embedding_name(rel_name: str) -> bool:
    """Whether a backbone-relative parameter name belongs to layer 0.

    >>> [is_embedding_name(n) for n in
    ...  ('cls_token', 'reg_token', 'register_tokens', 'pos_embed',
    ...   'patch_embed.proj.weight', 'embeddings.class_embedding',
    ...   'level_embeds', 'blocks.0.norm1.weight', 'norm.weight')]
    [True, True, True, True, True, True, True, False, False]
    """
    first = rel_name.split('.', 1)[0]
    return bool(_EMBEDDING_SEGMENT.search(first))


def is_token_or_position(own_name: str) -> bool:
    """Whether a parameter's own name marks a token or position/class
    embedding (no weight decay however many dimensions it has).

    >>> [is_token_or_position(n) for n in
    ...  ('cls_token', 'register_tokens', 'pos_embed', 'position_embedding',
    ...   'class_embedding', 'weight', 'level_embeds', 'pos_embed_0',
    ...   'cls_token_1', 'pos_embed_win', 'patch_pos')]
    [True, True, True, True, True, False, False, True, True, True, True]
    """
    return bool(_TOKEN_OR_POSITION.search(own_name))
