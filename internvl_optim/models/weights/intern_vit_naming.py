"""The names InternViT weights are published under, mapped to InternVL's
segmentation naming (the names of :class:`InternViT6B`).

=====================  ==============================  =======================
naming                 example key                     where it comes from
=====================  ==============================  =======================
segmentation           ``blocks.0.attn.qkv.weight``    InternVL's
                                                       ``intern_vit_6b_224px.pth``
segmentation (full)    ``backbone.blocks.0...``        a segmentation run
huggingface            ``encoder.layers.0.attn...``    InternViT-6B/300M repos
chat                   ``vision_model.encoder...``     InternVL chat models
transformers           ``vision_tower.encoder.layer    transformers-native
                       .0.attention.q_proj...``        InternVL (``-hf`` repos)
=====================  ==============================  =======================

transformers-native to segmentation (facts from transformers 5.24
``models/internvl/modeling_internvl.py``, ``InternVLVisionModel``, and its
converter ``convert_internvl_weights_to_hf.py``): an optional
``vision_tower.`` prefix (a whole VLM, saved without the leading
``model.``); ``embeddings.cls_token`` -> ``cls_token``,
``embeddings.position_embeddings`` -> ``pos_embed``,
``embeddings.patch_embeddings.projection.*`` -> ``patch_embed.proj.*``
(``embeddings.mask_token`` is not used);
``encoder.layer.{i}.attention.{q,k,v}_proj.*`` concatenated in that order
-> ``blocks.{i}.attn.qkv.*``; ``attention.projection_layer`` ->
``attn.proj``; ``attention.{q,k}_norm`` -> ``attn.{q,k}_norm``;
``layernorm_before`` / ``layernorm_after`` -> ``norm1`` / ``norm2``;
``lambda_1`` / ``lambda_2`` -> ``ls1.gamma`` / ``ls2.gamma``;
``mlp.fc1`` / ``mlp.fc2`` unchanged.  Its config names differ too
(:func:`transformers_vision_config`).

HuggingFace to segmentation (facts from InternVL's ``modeling_intern_vit.py``
and ``intern_vit_6b.py``): ``embeddings.class_embedding`` -> ``cls_token``,
``embeddings.position_embedding`` -> ``pos_embed``,
``embeddings.patch_embedding.*`` -> ``patch_embed.proj.*``, the layer scales
``encoder.layers.{i}.ls1`` (a bare parameter) -> ``blocks.{i}.ls1.gamma``,
and everything else under ``encoder.layers.{i}.`` -> ``blocks.{i}.``
(``norm1``, ``norm2``, ``attn.{qkv,q_norm,k_norm,proj}``, ``mlp.{fc1,fc2}``).
"""
import re
from typing import Dict, Iterable, List, Tuple

import torch

CHAT_PREFIX = 'vision_model.'
FULL_SEGMENTATION_PREFIX = 'backbone.'
#: the vision tower of a transformers-native VLM checkpoint
TRANSFORMERS_PREFIX = 'vision_tower.'
#: parts of a chat or transformers-native VLM checkpoint that are not the
#: vision tower (never read)
CHAT_NON_VISION_PREFIXES = ('language_model.', 'mlp1.',
                            'multi_modal_projector.', 'lm_head.')

#: ordered: the first pattern that matches renames the key
HF_RENAMES = (
    (re.compile(r'^embeddings\.class_embedding$'), 'cls_token'),
    (re.compile(r'^embeddings\.position_embedding$'), 'pos_embed'),
    (re.compile(r'^embeddings\.patch_embedding\.(weight|bias)$'),
     r'patch_embed.proj.\1'),
    (re.compile(r'^encoder\.layers\.(\d+)\.ls([12])$'),
     r'blocks.\1.ls\2.gamma'),
    (re.compile(r'^encoder\.layers\.(\d+)\.(.+)$'), r'blocks.\1.\2'),
)


def is_vision_key(key: str) -> bool:
    """Whether a tensor of a (chat) checkpoint may belong to the vision
    tower; used to skip the language model's shards."""
    return not key.startswith(CHAT_NON_VISION_PREFIXES)


_TRANSFORMERS_LAYER = re.compile(r'^(vision_tower\.)?encoder\.layer\.\d+\.')


def naming_of(keys: Iterable[str]) -> str:
    keys = list(keys)
    if any(k.startswith(TRANSFORMERS_PREFIX) or _TRANSFORMERS_LAYER.match(k)
           for k in keys):
        return 'transformers'
    if any(k.startswith(CHAT_PREFIX) for k in keys):
        return 'chat'
    if any(k.startswith(FULL_SEGMENTATION_PREFIX) for k in keys):
        return 'segmentation (full)'
    if any(k.startswith(('embeddings.', 'encoder.layers.')) for k in keys):
        return 'huggingface'
    return 'segmentation'


def hf_to_internvl_name(key: str) -> str:
    for pattern, replacement in HF_RENAMES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return key


#: ordered: the first pattern that matches renames the key
TRANSFORMERS_RENAMES = (
    (re.compile(r'^embeddings\.cls_token$'), 'cls_token'),
    (re.compile(r'^embeddings\.position_embeddings$'), 'pos_embed'),
    (re.compile(r'^embeddings\.patch_embeddings\.projection\.(weight|bias)$'),
     r'patch_embed.proj.\1'),
    (re.compile(r'^encoder\.layer\.(\d+)\.attention\.projection_layer\.'),
     r'blocks.\1.attn.proj.'),
    (re.compile(r'^encoder\.layer\.(\d+)\.attention\.([qk]_norm)\.'),
     r'blocks.\1.attn.\2.'),
    (re.compile(r'^encoder\.layer\.(\d+)\.layernorm_before\.'),
     r'blocks.\1.norm1.'),
    (re.compile(r'^encoder\.layer\.(\d+)\.layernorm_after\.'),
     r'blocks.\1.norm2.'),
    (re.compile(r'^encoder\.layer\.(\d+)\.lambda_([12])$'),
     r'blocks.\1.ls\2.gamma'),
    (re.compile(r'^encoder\.layer\.(\d+)\.mlp\.'), r'blocks.\1.mlp.'),
)
_QKV = re.compile(r'^encoder\.layer\.(\d+)\.attention\.([qkv])_proj\.'
                  r'(weight|bias)$')
#: transformers-native keys with no counterpart in InternViT6B
TRANSFORMERS_UNUSED = re.compile(r'^(embeddings\.mask_token|layernorm\.)')


def transformers_to_internvl(state: Dict[str, torch.Tensor]
                             ) -> Dict[str, torch.Tensor]:
    """A transformers-native vision tower in InternVL's segmentation
    naming; q/k/v are concatenated into ``qkv`` (a block missing one of
    them is an error naming it)."""
    state = {k[len(TRANSFORMERS_PREFIX):] if k.startswith(
        TRANSFORMERS_PREFIX) else k: v for k, v in state.items()}
    out: Dict[str, torch.Tensor] = {}
    qkv: Dict[Tuple[str, str], Dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        found = _QKV.match(key)
        if found:
            block, part, kind = found.groups()
            qkv.setdefault((block, kind), {})[part] = value
            continue
        if TRANSFORMERS_UNUSED.match(key):
            continue
        for pattern, replacement in TRANSFORMERS_RENAMES:
            if pattern.match(key):
                key = pattern.sub(replacement, key)
                break
        out[key] = value
    for (block, kind), parts in sorted(qkv.items()):
        missing = [p for p in 'qkv' if p not in parts]
        if missing:
            raise ValueError(
                f'encoder.layer.{block}.attention has no '
                f'{", ".join(p + "_proj." + kind for p in missing)}; '
                'q_proj, k_proj and v_proj are needed together')
        out[f'blocks.{block}.attn.qkv.{kind}'] = torch.cat(
            [parts['q'], parts['k'], parts['v']], dim=0)
    return out


def _as_int(value):
    """transformers writes ``image_size``/``patch_size`` as [h, w]."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and \
            value[0] == value[1]:
        return value[0]
    return value


def transformers_vision_config(config: dict) -> dict:
    """A transformers-native ``InternVLVisionConfig`` in the vocabulary of
    InternVL's ``InternVisionConfig`` (the one the architecture checks
    read): ``attention_bias`` -> ``qkv_bias``, ``use_qk_norm`` ->
    ``qk_normalization``, square ``image_size``/``patch_size`` lists ->
    ints; ``hidden_size``, ``num_hidden_layers``,
    ``num_attention_heads``, ``intermediate_size``, ``num_channels``,
    ``norm_type``, ``layer_norm_eps``, ``hidden_act`` keep their names."""
    renamed = dict(attention_bias='qkv_bias', use_qk_norm='qk_normalization')
    kept = ('hidden_size', 'num_hidden_layers', 'num_attention_heads',
            'intermediate_size', 'num_channels', 'norm_type',
            'layer_norm_eps', 'hidden_act', 'image_size', 'patch_size')
    out = {}
    for key, value in config.items():
        if key in renamed:
            out[renamed[key]] = value
        elif key in kept:
            out[key] = _as_int(value) if key in ('image_size',
                                                 'patch_size') else value
    # InternVisionConfig's defaults differ: say what transformers' are
    out.setdefault('qkv_bias', False)
    out.setdefault('qk_normalization', False)
    out.setdefault('norm_type', 'layer_norm')
    return out


def to_internvl_names(state: Dict[str, torch.Tensor]
                      ) -> Tuple[Dict[str, torch.Tensor], str]:
    """``state`` renamed to InternVL's segmentation naming, and the naming
    it was in.  A chat checkpoint keeps its ``vision_model.`` tensors and a
    full segmentation checkpoint its ``backbone.`` ones."""
    naming = naming_of(state)
    if naming == 'transformers':
        return transformers_to_internvl(state), naming
    if naming == 'chat':
        state = {k[len(CHAT_PREFIX):]: v for k, v in state.items()
                 if k.startswith(CHAT_PREFIX)}
    elif naming == 'segmentation (full)':
        state = {k[len(FULL_SEGMENTATION_PREFIX):]: v
                 for k, v in state.items()
                 if k.startswith(FULL_SEGMENTATION_PREFIX)}
    if naming in ('chat', 'huggingface'):
        state = {hf_to_internvl_name(k): v for k, v in state.items()}
    return state, naming


#: keys only the FPN layout of internvl_optim before InternVL fidelity had
#: (SyncBN inside ``up1``, a bare ``ConvTranspose2d`` as ``up2``)
OLD_FPN_KEYS = ('up1.1.running_mean', 'up1.1.running_var',
                'up1.1.num_batches_tracked', 'up2.weight', 'up2.bias')

OLD_LAYOUT_MESSAGE = (
    'was written by internvl_optim before InternViT6B followed InternVL '
    '(it has {keys}). The FPN adapters changed: up1.1 is now a '
    'channels-first LayerNorm (was BatchNorm/SyncBN, whose statistics '
    'cannot be turned into it) and up2 is now Sequential(ConvTranspose2d, '
    'LayerNorm|Identity), so up2.weight is now up2.0.weight. The ViT '
    'weights are unchanged: load them with pretrained= (the FPN keys are '
    'then not used), or train the run again')


def old_fpn_layout_keys(keys: Iterable[str], prefix: str = '') -> List[str]:
    """The keys of ``keys`` (under ``prefix``) that only the old layout has."""
    old = {prefix + k for k in OLD_FPN_KEYS}
    return sorted(k for k in keys if k in old)
