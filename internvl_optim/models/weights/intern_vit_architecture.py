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
import math
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


#: config.json fields read or compared, and what each may be
POSITIVE_INT_FIELDS = ('hidden_size', 'num_hidden_layers',
                       'num_attention_heads', 'intermediate_size',
                       'num_channels', 'image_size', 'patch_size')
BOOL_FIELDS = ('qkv_bias', 'qk_normalization')
NORM_TYPES = ('rms_norm', 'layer_norm')
#: deeper or wider than any vision tower: an absurd value, not a model
MAX_FIELD_VALUE = 1_000_000


def _config_error(source: str, key: str, value, wanted: str):
    return ValueError(f'{source}: config.json {key}={value!r} is not valid: '
                      f'it must be {wanted}')


def check_hf_config_fields(config: dict, source: str) -> None:
    """Every architecture field of ``config.json`` of the right type and
    in range; an absurd value is an error naming the field."""
    for key in POSITIVE_INT_FIELDS:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or \
                not 0 < value <= MAX_FIELD_VALUE:
            raise _config_error(source, key, value,
                                f'an int in [1, {MAX_FIELD_VALUE:,}]')
    for key in BOOL_FIELDS:
        if key in config and not isinstance(config[key], bool):
            raise _config_error(source, key, config[key], 'true or false')
    if 'norm_type' in config and config['norm_type'] not in NORM_TYPES:
        raise _config_error(source, 'norm_type', config['norm_type'],
                            f'one of {NORM_TYPES}')
    eps = config.get('layer_norm_eps')
    if eps is not None and (isinstance(eps, bool) or not isinstance(
            eps, (int, float)) or not math.isfinite(eps) or not 0 < eps < 1):
        raise _config_error(source, 'layer_norm_eps', eps,
                            'a number in (0, 1)')
    if 'hidden_act' in config and not isinstance(config['hidden_act'], str):
        raise _config_error(source, 'hidden_act', config['hidden_act'],
                            'a string')


#: (config.json key, Architecture field, what the tensors show)
CONFIG_VS_TENSORS = (
    ('hidden_size', 'embed_dim', 'a width of'),
    ('num_hidden_layers', 'depth', 'blocks:'),
    ('intermediate_size', 'mlp_hidden', 'an MLP width of'),
    ('num_channels', 'in_chans', 'input channels:'),
    ('qkv_bias', 'qkv_bias', 'qkv bias:'),
    ('qk_normalization', 'qk_normalization', 'qk-norm:'),
    ('norm_type', 'norm_type', 'norm type'),
)


def check_config_matches_tensors(config: dict, arch: 'Architecture',
                                 source: str) -> None:
    """What config.json says about the architecture is what the tensors
    hold (a file whose config disagrees with its own tensors is damaged or
    crafted)."""
    for key, field_name, shown in CONFIG_VS_TENSORS:
        if key in config and config[key] != getattr(arch, field_name):
            raise ValueError(
                f'{source}: config.json {key}={config[key]!r}, but its '
                f'tensors have {shown} {getattr(arch, field_name)!r}; the '
                'file is damaged or not the config of these weights')
    heads = config.get('num_attention_heads')
    if heads is not None and arch.embed_dim % heads:
        raise ValueError(
            f'{source}: config.json num_attention_heads={heads} does not '
            f'divide the width {arch.embed_dim}')


def check_tensor_shapes(state: Dict[str, torch.Tensor], source: str) -> None:
    """The embeddings have the shapes InternViT writes: ``cls_token``
    ``(1, 1, C)``, ``pos_embed`` ``(1, 1 + s*s, C)``, the patch kernel
    ``(C, in, p, p)``; each else an error naming the tensor and the shape
    expected."""
    kernel = state.get('patch_embed.proj.weight')
    if kernel is None:
        return
    if kernel.dim() != 4 or kernel.shape[-1] != kernel.shape[-2] or \
            0 in kernel.shape:
        raise ValueError(
            f'{source}: patch_embed.proj.weight has shape '
            f'{tuple(kernel.shape)}; expected (C, in_chans, p, p) with a '
            'square patch p >= 1')
    width = kernel.shape[0]
    cls = state.get('cls_token')
    if cls is not None and tuple(cls.shape) != (1, 1, width):
        raise ValueError(f'{source}: cls_token has shape {tuple(cls.shape)}; '
                         f'expected (1, 1, {width})')
    pos = state.get('pos_embed')
    if pos is not None:
        side = math.isqrt(max(pos.shape[1] - 1, 0)) if pos.dim() == 3 else 0
        if pos.dim() != 3 or pos.shape[0] != 1 or pos.shape[2] != width or \
                side == 0 or side * side != pos.shape[1] - 1:
            raise ValueError(
                f'{source}: pos_embed has shape {tuple(pos.shape)}; expected '
                f'(1, 1 + s*s, {width}): a class position and a square grid '
                'of s x s patch positions')
    fc1 = state.get('blocks.0.mlp.fc1.weight')
    if fc1 is not None and (fc1.dim() != 2 or fc1.shape[1] != width):
        raise ValueError(f'{source}: blocks.0.mlp.fc1.weight has shape '
                         f'{tuple(fc1.shape)}; expected (hidden, {width})')


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
    check_tensor_shapes(state, source)
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
        check_hf_config_fields(hf_config, source)
        check_config_matches_tensors(hf_config, arch, source)
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
