"""Reference InternViTs written by us in the *source* layouts, to write
checkpoints the way InternVL's code would and to compare features.

Facts relied on (read from OpenGVLab/InternVL, MIT):

segmentation/mmseg_custom/models/backbones/intern_vit_6b.py (commit 345ce5d):
  * names: patch_embed.proj, pos_embed (1, 1+N, C), cls_token (1, 1, C),
    blocks.{i}.{norm1, attn.qkv, attn.q_norm, attn.k_norm, attn.proj,
    ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}; block norms RMSNorm
    eps 1e-6; q/k norm over all heads (width C) before the head split;
    attention = softmax(q * head_dim**-0.5 @ k^T) @ v, then proj;
  * FPN: up1 = Sequential(ConvTranspose2d(C, C, 2, 2), LayerNorm(C),
    GELU, ConvTranspose2d(C, C, 2, 2), LayerNorm(C) | Identity);
    up2 = Sequential(ConvTranspose2d, LayerNorm | Identity);
    up3 = Sequential(Identity, LayerNorm | Identity);
    up4 = Sequential(MaxPool2d(2, 2), LayerNorm | Identity), the last of each
    with_final_norm; LayerNorm channels-first, eps 1e-6, weight and bias,
    in float32;
  * outputs: x[:, 1:] reshaped (b, H, W, c).permute(0, 3, 1, 2), float32;
  * pretrained loading: the 'module' entry if present; pos_embed resized
    bicubic (align_corners=False) and patch_embed.proj.weight interpolated
    bicubic to (patch_size, patch_size).

internvl_chat/internvl/model/internvl_chat/modeling_intern_vit.py and
configuration_intern_vit.py:
  * names: embeddings.class_embedding (1, 1, C), embeddings.patch_embedding
    (Conv2d), embeddings.position_embedding (1, 1+N, C),
    encoder.layers.{i}.{attn.{qkv, q_norm, k_norm, proj}, mlp.{fc1, fc2},
    norm1, norm2, ls1, ls2} with ls1/ls2 bare (C,) parameters;
  * norm1/norm2 by config.norm_type: 'rms_norm' (InternRMSNorm) or
    'layer_norm' (nn.LayerNorm), eps config.layer_norm_eps; q/k norms are
    always InternRMSNorm;
  * layer: x + attn(norm1(x)) * ls1, then x + mlp(norm2(x)) * ls2;
  * position embedding grid is image_size // patch_size of the config,
    interpolated bicubic to the input's grid at forward;
  * config keys (defaults): hidden_size 3200, num_attention_heads 25,
    intermediate_size 12800, num_hidden_layers 48, qkv_bias False,
    qk_normalization True, norm_type 'rms_norm', layer_norm_eps 1e-6,
    image_size 224, patch_size 14, initializer_factor 0.1; a chat model's
    config.json holds these under 'vision_config' and its weights under
    'vision_model.' (next to 'mlp1.' and 'language_model.').
"""
import json
import os

import torch
import torch.nn.functional as F
from torch import nn


class RefRMSNorm(nn.Module):

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.variance_epsilon = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) +
                            self.variance_epsilon)
        return self.weight * x.to(dtype)


class RefChannelsFirstLN(nn.Module):

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def naive_attention(x, qkv, q_norm, k_norm, proj, heads):
    b, n, c = x.shape
    q, k, v = qkv(x).reshape(b, n, 3, heads, c // heads).permute(
        2, 0, 3, 1, 4).unbind(0)
    if q_norm is not None:
        q = q_norm(q.transpose(1, 2).flatten(-2, -1)).view(
            b, n, heads, -1).transpose(1, 2)
        k = k_norm(k.transpose(1, 2).flatten(-2, -1)).view(
            b, n, heads, -1).transpose(1, 2)
    attn = ((q * (c // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    return proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _Attn(nn.Module):

    def __init__(self, dim, heads, qkv_bias, qk_norm, eps,
                 proj_first=False):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        if proj_first:  # segmentation file: proj registered before q_norm
            self.proj = nn.Linear(dim, dim)
        if qk_norm:
            self.q_norm = RefRMSNorm(dim, eps)
            self.k_norm = RefRMSNorm(dim, eps)
        if not proj_first:  # HuggingFace file: proj registered last
            self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        return naive_attention(x, self.qkv, getattr(self, 'q_norm', None),
                               getattr(self, 'k_norm', None), self.proj,
                               self.heads)


class _Mlp(nn.Module):

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _Gamma(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(0.1 * torch.ones(dim))


class _SegBlock(nn.Module):

    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = RefRMSNorm(dim)
        self.attn = _Attn(dim, heads, False, True, 1e-6, proj_first=True)
        self.ls1 = _Gamma(dim)
        self.norm2 = RefRMSNorm(dim)
        self.mlp = _Mlp(dim, hidden)
        self.ls2 = _Gamma(dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x)) * self.ls1.gamma
        return x + self.mlp(self.norm2(x)) * self.ls2.gamma


class _PatchEmbed(nn.Module):

    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)


class InternVLSegmentationReference(nn.Module):
    """InternVL's segmentation InternViT6B layout (6B-style: RMSNorm,
    qk-norm, layer scale, no qkv bias)."""

    def __init__(self, dim=32, depth=4, heads=4, patch=8, img=64,
                 with_fpn=True, with_final_norm=True):
        super().__init__()
        self.heads, self.with_fpn = heads, with_fpn
        grid = img // patch
        self.patch_embed = _PatchEmbed(patch, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(
            _SegBlock(dim, heads, dim * 4) for _ in range(depth))
        if with_fpn:
            def final():
                return RefChannelsFirstLN(dim) if with_final_norm else \
                    nn.Identity()
            self.up1 = nn.Sequential(nn.ConvTranspose2d(dim, dim, 2, 2),
                                     RefChannelsFirstLN(dim), nn.GELU(),
                                     nn.ConvTranspose2d(dim, dim, 2, 2),
                                     final())
            self.up2 = nn.Sequential(nn.ConvTranspose2d(dim, dim, 2, 2),
                                     final())
            self.up3 = nn.Sequential(nn.Identity(), final())
            self.up4 = nn.Sequential(nn.MaxPool2d(2, 2), final())

    def forward(self, x, out_indices):
        x = self.patch_embed.proj(x)
        _, _, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        x = x + self.pos_embed
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in out_indices:
                out = x[:, 1:]
                b, n, c = out.shape
                outs.append(out.reshape(b, H, W, c).permute(0, 3, 1, 2))
        if self.with_fpn:
            outs = [self.up1(outs[0]), self.up2(outs[1]), self.up3(outs[2]),
                    self.up4(outs[3])]
        return [o.float() for o in outs]


class _HFEmbeddings(nn.Module):

    def __init__(self, dim, patch, img):
        super().__init__()
        self.grid = img // patch
        self.class_embedding = nn.Parameter(torch.randn(1, 1, dim))
        self.patch_embedding = nn.Conv2d(3, dim, patch, patch)
        self.position_embedding = nn.Parameter(
            torch.randn(1, self.grid**2 + 1, dim))

    def forward(self, x):
        p = self.patch_embedding(x)
        b, _, h, w = p.shape
        p = p.flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(b, 1, -1), p], 1)
        grid = self.position_embedding[:, 1:].float().reshape(
            1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode='bicubic',
                             align_corners=False).reshape(
                                 1, -1, h * w).permute(0, 2, 1)
        return x + torch.cat([self.position_embedding[:, :1], grid], 1), (h, w)


class _HFLayer(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        dim, eps = cfg['hidden_size'], cfg['layer_norm_eps']
        self.attn = _Attn(dim, cfg['num_attention_heads'], cfg['qkv_bias'],
                          cfg['qk_normalization'], eps)
        self.mlp = _Mlp(dim, cfg['intermediate_size'])
        norm = (RefRMSNorm if cfg['norm_type'] == 'rms_norm' else
                (lambda d, eps: nn.LayerNorm(d, eps=eps)))
        self.norm1 = norm(dim, eps)
        self.norm2 = norm(dim, eps)
        self.ls1 = nn.Parameter(cfg['initializer_factor'] * torch.ones(dim))
        self.ls2 = nn.Parameter(cfg['initializer_factor'] * torch.ones(dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x)) * self.ls1
        return x + self.mlp(self.norm2(x)) * self.ls2


class _HFEncoder(nn.Module):

    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList(
            _HFLayer(cfg) for _ in range(cfg['num_hidden_layers']))


def hf_config(**kw):
    """A config.json of InternVL's InternVisionConfig (tiny by default)."""
    cfg = dict(architectures=['InternVisionModel'], model_type='intern_vit_6b',
               num_channels=3, patch_size=8, image_size=64, qkv_bias=False,
               hidden_size=32, num_attention_heads=4, intermediate_size=128,
               qk_normalization=True, num_hidden_layers=4,
               use_flash_attn=True, hidden_act='gelu', norm_type='rms_norm',
               layer_norm_eps=1e-6, dropout=0.0, drop_path_rate=0.0,
               attention_dropout=0.0, initializer_range=0.02,
               initializer_factor=0.1, torch_dtype='bfloat16')
    cfg.update(kw)
    return cfg


class HFInternVisionReference(nn.Module):
    """HuggingFace ``InternVisionModel`` layout."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embeddings = _HFEmbeddings(cfg['hidden_size'], cfg['patch_size'],
                                        cfg['image_size'])
        self.encoder = _HFEncoder(cfg)

    def forward(self, x, out_indices):
        """Hidden states after the layers in ``out_indices`` as maps."""
        x, (h, w) = self.embeddings(x)
        outs = []
        for i, layer in enumerate(self.encoder.layers):
            x = layer(x)
            if i in out_indices:
                b, _, c = x.shape
                outs.append(x[:, 1:].reshape(b, h, w, c).permute(0, 3, 1, 2))
        return outs


def randomize(model, seed=0):
    """Every parameter random (norm weights and layer scales included), so
    a wrongly mapped tensor cannot go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2 +
                    (1.0 if p.ndim == 1 else 0.0))
    return model


def write_hf_directory(directory, state, config, shards=1,
                       fmt='safetensors', prefix=''):
    """Write ``state`` as a HuggingFace model: one file or ``shards`` files
    with the index json, plus config.json; ``prefix`` (``'vision_model.'``)
    for a chat model whose config.json nests the vision config."""
    from safetensors.torch import save_file
    os.makedirs(directory, exist_ok=True)
    state = {prefix + k: v.detach().contiguous().clone()
             for k, v in state.items()}
    with open(os.path.join(directory, 'config.json'), 'w') as f:
        json.dump(dict(vision_config=config, llm_config={},
                       architectures=['InternVLChatModel'])
                  if prefix else config, f)
    keys = list(state)
    if fmt == 'safetensors':
        base, ext = 'model', 'safetensors'
    else:
        base, ext = 'pytorch_model', 'bin'

    def save(tensors, name):
        path = os.path.join(directory, name)
        if fmt == 'safetensors':
            save_file(tensors, path, metadata={'format': 'pt'})
        else:
            torch.save(tensors, path)

    if shards == 1:
        save(state, f'{base}.{ext}')
        return
    weight_map = {}
    size = -(-len(keys) // shards)
    for i in range(shards):
        name = f'{base}-{i + 1:05d}-of-{shards:05d}.{ext}'
        part = {k: state[k] for k in keys[i * size:(i + 1) * size]}
        save(part, name)
        weight_map.update({k: name for k in part})
    with open(os.path.join(directory, f'{base}.{ext}.index.json'), 'w') as f:
        json.dump(dict(metadata=dict(total_size=0), weight_map=weight_map), f)
