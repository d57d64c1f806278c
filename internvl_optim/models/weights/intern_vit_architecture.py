"""Which InternViT a checkpoint holds, read from its tensors (in InternVL's
segmentation naming) and its HuggingFace ``config.json``, and how that
differs from the configured model.

Released architectures (facts from the model cards' ``config.json``):

==========================  =====  =====  =====  ==========  =======  ====
weights                     width  depth  heads  norm        qk-norm  grid
==========================  =====  =====  =====  ==========  =======  ====
InternViT-6B-224px          3200   48     25     rms_norm    yes      16
InternViT-6B-448px-V1.5/2.5 3200   45     25     rms_norm    yes      32
InternViT-300M-448px(-V2.5) 1024   24     16     layer_norm  no       32
==========================  =====  =====  =====  ==========  =======  ====
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

#: defaults of InternVL's ``InternVisionConfig`` for keys a config.json omits
HF_CONFIG_DEFAULTS = dict(hidden_size=3200, num_hidden_layers=48,
                          num_attention_heads=25, intermediate_size=12800,
                          qkv_bias=False, qk_normalization=True,
                          norm_type='rms_norm', layer_norm_eps=1e-6,
                          num_channels=3, hidden_act='gelu')

#: (field of :class:`Architecture`, the InternViT6B argument that sets it);
#: the tensors tell all but ``num_heads`` and ``layer_norm_eps``, which come
#: from config.json (``num_attention_heads``, ``layer_norm_eps``)
FIELDS = (
    ('embed_dim', 'embed_dim'),
    ('depth', 'depth'),
    ('num_heads', 'num_heads'),
    ('mlp_hidden', 'mlp_ratio'),
    ('norm_type', 'norm_type'),
    ('qk_normalization', 'qk_normalization'),
    ('qkv_bias', 'qkv_bias'),
    ('layer_scale', 'init_values'),
    ('layer_norm_eps', 'layer_norm_eps'),
    ('in_chans', 'in_chans'),
)

BLOCK_INDEX = re.compile(r'^blocks\.(\d+)\.')


@dataclass
class Architecture:
    embed_dim: int
    depth: int
    num_heads: Optional[int]  # None: no config.json, the tensors cannot tell
    mlp_hidden: int
    norm_type: str
    qk_normalization: bool
    qkv_bias: bool
    layer_scale: bool
    layer_norm_eps: Optional[float]
    in_chans: int


def _required(state: Dict[str, torch.Tensor], key: str, source: str):
    if key not in state:
        raise ValueError(f'{source} has no {key!r}: not an InternViT '
                         f'checkpoint (its keys look like {list(state)[:4]})')
    return state[key]


def checkpoint_architecture(state: Dict[str, torch.Tensor],
                            hf_config: Optional[dict], source: str
                            ) -> Tuple[Architecture, Dict[str, str]]:
    """The architecture of ``state`` and, per field, where it was read
    (``'tensors'`` or ``'config.json <key>'``)."""
    patch = _required(state, 'patch_embed.proj.weight', source)
    blocks = {int(m.group(1)) for k in state for m in [BLOCK_INDEX.match(k)]
              if m}
    if not blocks:
        raise ValueError(f'{source} has no transformer block '
                         '(blocks.{i}.* / encoder.layers.{i}.*)')
    fc1 = _required(state, 'blocks.0.mlp.fc1.weight', source)
    arch = Architecture(
        embed_dim=patch.shape[0], depth=max(blocks) + 1, num_heads=None,
        mlp_hidden=fc1.shape[0],
        norm_type='layer_norm' if 'blocks.0.norm1.bias' in state
        else 'rms_norm',
        qk_normalization='blocks.0.attn.q_norm.weight' in state,
        qkv_bias='blocks.0.attn.qkv.bias' in state,
        layer_scale='blocks.0.ls1.gamma' in state,
        layer_norm_eps=None, in_chans=patch.shape[1])
    sources = {field: 'tensors' for field, _ in FIELDS}
    if hf_config is not None:
        config = dict(HF_CONFIG_DEFAULTS, **hf_config)
        act = config['hidden_act']
        if act != 'gelu':
            raise ValueError(f'{source}: config.json hidden_act={act!r}; '
                             "InternViT6B implements 'gelu' only")
        arch.num_heads = config['num_attention_heads']
        arch.layer_norm_eps = config['layer_norm_eps']
        sources['num_heads'] = 'config.json num_attention_heads'
        sources['layer_norm_eps'] = 'config.json layer_norm_eps'
    return arch, sources


def model_architecture(model) -> Architecture:
    """The architecture an :class:`InternViT6B` was configured with."""
    return Architecture(
        embed_dim=model.embed_dim, depth=model.depth,
        num_heads=model.num_heads, mlp_hidden=model.mlp_hidden,
        norm_type=model.norm_type, qk_normalization=model.qk_normalization,
        qkv_bias=model.qkv_bias, layer_scale=model.layer_scale,
        layer_norm_eps=model.layer_norm_eps, in_chans=model.in_chans)


def architecture_mismatches(model: Architecture, checkpoint: Architecture,
                            sources: Dict[str, str]) -> List[str]:
    """One line per field where the checkpoint differs from the model,
    naming the configuration argument and both values."""
    lines = []
    for field, argument in FIELDS:
        want, have = getattr(model, field), getattr(checkpoint, field)
        if have is None or want == have:
            continue
        if field == 'mlp_hidden':
            lines.append(f'mlp_ratio: model hidden width {want}, checkpoint '
                         f'{have} (mlp_ratio={have / model.embed_dim:g}; '
                         f'from {sources[field]})')
        elif field == 'layer_scale':
            lines.append(f'init_values: the model has layer scale: {want}, '
                         f'the checkpoint: {have} (init_values=0 means '
                         'none; from tensors)')
        else:
            lines.append(f'{argument}: model {want!r}, checkpoint {have!r} '
                         f'(from {sources[field]})')
    return lines
