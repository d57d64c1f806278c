"""Names as the rules see them: without wrapper prefixes, and the name
patterns every rule shares, defined once.

Wrapper prefixes: DistributedDataParallel adds ``module.``, FSDP adds ``_fsdp_wrapped_module.``,
activation checkpointing adds ``_checkpoint_wrapped_module.`` and
``torch.compile`` adds ``_orig_mod.``.  No rule in this package ever sees these
segments, so a model gets the same groups however it is wrapped.

Patterns: names are backbone-relative (``blocks.3.attn.qkv.weight``) or a
parameter's own name (``cls_token``), as each function says.
"""
import re
from typing import Dict, Iterator, Tuple

from torch import nn

#: Segments that wrappers insert anywhere in a name.
WRAPPER_SEGMENTS = ('_fsdp_wrapped_module', '_checkpoint_wrapped_module',
                    '_orig_mod')
#: Segments that wrappers insert only at the front (DDP / DataParallel).
LEADING_WRAPPER_SEGMENTS = ('module', ) + WRAPPER_SEGMENTS


def strip_wrapper_prefixes(name: str) -> str:
    """Return ``name`` without the segments that model wrappers insert.

    ``module.`` is removed only at the front (a model may legitimately own a
    sub-module called ``module`` deeper down); the FSDP, checkpoint and
    ``torch.compile`` segments are removed wherever they appear.

    >>> strip_wrapper_prefixes('module._orig_mod.backbone.blocks.0.attn.qkv.weight')
    'backbone.blocks.0.attn.qkv.weight'
    """
    if not name.startswith(LEADING_WRAPPER_SEGMENTS) and \
            '_wrapped_module' not in name and '_orig_mod' not in name:
        return name  # the common case (no segment of WRAPPER_SEGMENTS)
    parts = name.split('.') if name else []
    start = 0
    while start < len(parts) and parts[start] in LEADING_WRAPPER_SEGMENTS:
        start += 1
    return '.'.join(p for p in parts[start:] if p not in WRAPPER_SEGMENTS)


def join_name(prefix: str, name: str) -> str:
    """Join two dotted names, either of which may be empty."""
    if not prefix:
        return name
    if not name:
        return prefix
    return f'{prefix}.{name}'


def relative_name(name: str, prefix: str):
    """``name`` relative to the module ``prefix``, or None if outside it."""
    if not prefix:
        return name
    if name == prefix:
        return ''
    if name.startswith(prefix + '.'):
        return name[len(prefix) + 1:]
    return None


def clean_named_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """Map each wrapper-free module name to the innermost module of that name.

    ``named_modules`` yields a wrapper before the module it wraps, so the
    later (inner) module overwrites the wrapper under the same clean name.
    """
    modules: Dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        modules[strip_wrapper_prefixes(name)] = module
    return modules


def clean_named_parameters(
        model: nn.Module) -> Iterator[Tuple[str, nn.Parameter]]:
    """``model.named_parameters()`` with wrapper-free names.

    Tied parameters are reported once (under their first name), as
    ``named_parameters`` itself does.
    """
    for name, param in model.named_parameters():
        yield strip_wrapper_prefixes(name), param


# ---- name patterns the rules share ----

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
    r'class_embedding|pos_embed_win(dow)?|patch_pos|'
    # transformers' vision towers: Llama 4's positional_embedding_vlm,
    # Molmo 2's positional_embedding, MLCD's class_pos_emb, Gemma 4's 2-D
    # position_embedding_table.  (Relative position bias tables are not
    # here: BEiT's recipe decays them, Swin's exempts them by its own
    # declaration or a config's custom key)
    r'positional_embedding(_vlm)?|class_pos_emb|position_embedding_table)'
    r'(_\d+)?$')


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
    ...   'cls_token_1', 'pos_embed_win', 'patch_pos',
    ...   'relative_position_bias_table', 'positional_embedding_vlm')]
    [True, True, True, True, True, False, False, True, True, True, True, False, True]
    """
    return bool(_TOKEN_OR_POSITION.search(own_name))
