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
=====================  ==============================  =======================

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
#: parts of a chat checkpoint that are not the vision tower (never read)
CHAT_NON_VISION_PREFIXES = ('language_model.', 'mlp1.')

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


def naming_of(keys: Iterable[str]) -> str:
    keys = list(keys)
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


def to_internvl_names(state: Dict[str, torch.Tensor]
                      ) -> Tuple[Dict[str, torch.Tensor], str]:
    """``state`` renamed to InternVL's segmentation naming, and the naming
    it was in.  A chat checkpoint keeps its ``vision_model.`` tensors and a
    full segmentation checkpoint its ``backbone.`` ones."""
    naming = naming_of(state)
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
