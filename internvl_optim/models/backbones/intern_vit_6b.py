"""InternViT (6B and 300M) for MMSegmentation 1.x, as InternVL ships it.

Arguments, parameter names and shapes follow InternVL's segmentation
backbone (``segmentation/mmseg_custom/models/backbones/intern_vit_6b.py``,
OpenGVLab/InternVL), so its checkpoints load with ``strict=True``;
``pretrained=`` also reads the HuggingFace InternViT releases
(see :mod:`internvl_optim.models.weights`).
"""
import math
from typing import Optional

import torch
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

from ...checkpoint.errors import CheckpointError
from ...checkpoint.tensors import TensorTrustError, check_tensors
from ...core.layer_rules.vit import vit_layer_id
from ...core.numbers import (NON_NEGATIVE, POSITIVE, UNIT_CLOSED_OPEN,
                              check_number)
from ..weights import (OLD_LAYOUT_MESSAGE, architecture_mismatches,
                       checkpoint_architecture, old_fpn_layout_keys,
                       read_weights, resize_patch_kernel, resize_pos_embed,
                       to_internvl_names)
from ..weights.intern_vit_architecture import model_architecture
from ..weights.intern_vit_naming import (is_vision_key,
                                         transformers_vision_config)
from .intern_vit_layers import Block, PatchEmbed, fpn_adapters

__all__ = ['InternViT6B', 'Block', 'resize_pos_embed']

NORM_TYPES = ('rms_norm', 'layer_norm')
#: names this class accepted before it followed InternVL
OLD_NORM_TYPES = {'rms': 'rms_norm', 'RMSNorm': 'rms_norm',
                  'ln': 'layer_norm', 'LayerNorm': 'layer_norm'}
PARAM_DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16}
FPN_NAMES = ('up1', 'up2', 'up3', 'up4')


def _layerscale_force_fp32(force, no_force) -> bool:
    """InternVL's two spellings: ``layerscale_force_fp32`` (earlier
    commits) and ``layerscale_no_force_fp32`` (its negation, later)."""
    for name, value in (('layerscale_force_fp32', force),
                        ('layerscale_no_force_fp32', no_force)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f'InternViT6B {name} must be True or False, got '
                            f'{value!r}')
    if force is not None and no_force is not None and force == no_force:
        raise ValueError(
            f'InternViT6B layerscale_force_fp32={force} and '
            f'layerscale_no_force_fp32={no_force} contradict each other '
            '(one is the negation of the other, from two InternVL commits); '
            'give one')
    if force is not None:
        return force
    return not no_force if no_force is not None else False


class InternViT6B(BaseModule):
    """InternViT backbone; defaults are InternVL's (the 6B model).

    Args:
        in_chans (int): input channels. Default: 3.
        patch_size (int): patch size. Default: 14.
        img_size (int): training crop; sets the position-embedding grid.
            Default: 224.
        pretrain_size (int): image size the pretrained weights were trained
            at (informative: the grid is read from the checkpoint).
            Default: 224.
        qkv_bias (bool): bias in the qkv projection (300M: True).
            Default: False.
        drop_path_rate (float): stochastic depth, linear over blocks.
            Default: 0.
        embed_dim, num_heads, mlp_ratio, depth: width, heads, MLP ratio and
            blocks. Defaults: 3200, 25, 4, 48 (300M: 1024, 16, 4, 24;
            6B-448px-V1.5/V2.5: 45 blocks).
        init_values (float, optional): layer-scale init; 0 or None (as
            InternVL, ``... if init_values else nn.Identity()``) means no
            layer scale (no ``ls1``/``ls2`` parameters). Default: 0.1.
        qk_normalization (bool): RMSNorm on queries and keys (300M: False).
            Default: True.
        use_flash_attn (bool): accepted as in InternVL; attention always
            goes through ``F.scaled_dot_product_attention``, which uses the
            flash kernel on GPUs that have it. Default: True.
        with_cp (bool): activation checkpointing per block while training.
            Default: True.
        layerscale_no_force_fp32 (bool): False computes layer scale in
            float32 (InternVL's current spelling). Default: True.
        layerscale_force_fp32 (bool): True computes layer scale in float32
            (the spelling of InternVL's earlier commits, opposite meaning).
            Giving both with contradicting values is an error.
        out_indices (sequence[int]): blocks whose outputs are returned as
            ``(B, C, H/p, W/p)`` maps in the input's dtype (float32 from
            MMSeg's data preprocessor, as InternVL; bfloat16 where
            DeepSpeedStrategy's ``inputs_to_half`` casts the inputs, as it
            must when its bf16 mode casts the heads too).
            Default: (7, 11, 15, 23).
        freeze_vit (bool): freeze patch embedding, position embedding, class
            token and blocks (not the FPN) and keep them in eval mode.
            Default: False.
        unfreeze_pos_embed (bool): with ``freeze_vit``, train ``pos_embed``
            anyway. Default: False.
        with_fpn (bool): map four outputs to 4x/2x/1x/0.5x resolution with
            InternVL's ``up1..up4``. Default: False.
        with_final_norm (bool): end each of ``up1..up4`` with a
            channels-first LayerNorm. Default: False.
        pretrained (str, optional): weights loaded in ``init_weights``: an
            InternVL segmentation ``.pth``, a full segmentation checkpoint
            (its ``backbone.`` part), or a HuggingFace InternViT / InternVL
            chat model (directory, ``.safetensors``, ``.bin`` or
            ``*.index.json``). Default: None.
        norm_type (str): block norm, ``'rms_norm'`` (6B) or ``'layer_norm'``
            (300M). Default: ``'rms_norm'``.
        layer_norm_eps (float): eps of the block and query/key norms.
            Default: 1e-6.
        param_dtype (str): ``'bfloat16'`` keeps the ViT's parameters (not
            the FPN adapters) in bfloat16 and casts the input to it, as
            InternVL trains; outputs keep the input's dtype.
            Default: ``'float32'``.
    """

    def __init__(self, in_chans=3, patch_size=14, img_size=224,
                 pretrain_size=224, qkv_bias=False, drop_path_rate=0.0,
                 embed_dim=3200, num_heads=25, mlp_ratio=4., init_values=0.1,
                 qk_normalization=True, depth=48, use_flash_attn=True,
                 with_cp=True, layerscale_no_force_fp32=None,
                 out_indices=(7, 11, 15, 23), freeze_vit=False,
                 unfreeze_pos_embed=False, with_fpn=False,
                 with_final_norm=False, pretrained: Optional[str] = None,
                 norm_type='rms_norm', layer_norm_eps=1e-6,
                 param_dtype='float32', fpn_norm_cfg=None, init_cfg=None,
                 layerscale_force_fp32=None):
        super().__init__(init_cfg=init_cfg)
        force_fp32 = _layerscale_force_fp32(layerscale_force_fp32,
                                            layerscale_no_force_fp32)
        if init_values is None:  # InternVL: no layer scale
            init_values = 0.0
        self._check_arguments(norm_type, param_dtype, out_indices, depth,
                              with_fpn, fpn_norm_cfg, embed_dim, num_heads)
        for name, value, valid in (
                ('drop_path_rate', drop_path_rate, UNIT_CLOSED_OPEN),
                ('mlp_ratio', mlp_ratio, POSITIVE),
                ('init_values', init_values, NON_NEGATIVE),
                ('layer_norm_eps', layer_norm_eps, POSITIVE)):
            check_number(f'InternViT6B {name}', value, valid)
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.img_size = img_size
        self.pretrain_size = pretrain_size
        self.embed_dim = self.num_features = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_hidden = int(embed_dim * mlp_ratio)
        self.norm_type = norm_type
        self.layer_norm_eps = layer_norm_eps
        self.qkv_bias = qkv_bias
        self.qk_normalization = qk_normalization
        self.layer_scale = bool(init_values)
        self.out_indices = tuple(out_indices)
        self.with_fpn = with_fpn
        self.freeze_vit = freeze_vit
        self.with_cp = with_cp
        self.use_flash_attn = use_flash_attn
        self.pretrained = pretrained
        self.param_dtype = PARAM_DTYPES[param_dtype]

        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1,
                                                  embed_dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # plain Python: torch.linspace(...).item() fails on the meta device
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, dpr[i],
                  init_values, qk_normalization, norm_type, layer_norm_eps,
                  layerscale_force_fp32=force_fp32)
            for i in range(depth))
        nn.init.trunc_normal_(self.pos_embed, std=.02)
        nn.init.trunc_normal_(self.cls_token, std=.02)
        self.apply(self._init_linear)
        if with_fpn:
            for name, adapter in fpn_adapters(embed_dim,
                                              with_final_norm).items():
                self.add_module(name, adapter)
        if freeze_vit:
            for param in self.vit_parameters():
                param.requires_grad_(False)
            self.pos_embed.requires_grad_(unfreeze_pos_embed)
        self.to_param_dtype()

    @staticmethod
    def _check_arguments(norm_type, param_dtype, out_indices, depth,
                         with_fpn, fpn_norm_cfg, embed_dim, num_heads):
        if fpn_norm_cfg is not None:
            raise TypeError(
                'InternViT6B: fpn_norm_cfg was removed: up1 now uses '
                "InternVL's channels-first LayerNorm, as InternVL's "
                'checkpoints need; delete the key')
        if norm_type not in NORM_TYPES:
            hint = (f" ({norm_type!r} is now {OLD_NORM_TYPES[norm_type]!r})"
                    if norm_type in OLD_NORM_TYPES else '')
            raise ValueError(f'norm_type={norm_type!r}; valid: '
                             f'{list(NORM_TYPES)}{hint}')
        if param_dtype not in PARAM_DTYPES:
            raise ValueError(f'param_dtype={param_dtype!r}; valid: '
                             f'{list(PARAM_DTYPES)}')
        if embed_dim % num_heads:
            raise ValueError(f'embed_dim={embed_dim} must be divisible by '
                             f'num_heads={num_heads}')
        bad = [i for i in out_indices if not 0 <= i < depth]
        if bad:
            raise ValueError(f'out_indices {bad} out of range for depth='
                             f'{depth} (valid 0..{depth - 1})')
        if with_fpn and len(out_indices) != 4:
            raise ValueError('with_fpn=True needs exactly 4 out_indices, got '
                             f'{list(out_indices)}')

    @staticmethod
    def _init_linear(module):
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def vit_modules(self):
        return [self.patch_embed, self.blocks]

    def vit_parameters(self):
        """The parameters InternVL freezes with ``freeze_vit`` (all but the
        FPN adapters)."""
        return [p for n, p in self.named_parameters()
                if not n.startswith(FPN_NAMES)]

    def to_param_dtype(self):
        """Cast the ViT's parameters to ``param_dtype`` (the FPN adapters
        stay float32)."""
        for param in self.vit_parameters():
            param.data = param.data.to(self.param_dtype)
        return self

    @property
    def dtype(self):
        return self.patch_embed.proj.weight.dtype

    # --- what the optimizer constructor asks -------------------------------
    def no_weight_decay(self):
        return {'pos_embed', 'cls_token'}

    def get_layer_depth(self, param_name: str, prefix: str = ''):
        """mmpretrain convention: ``(layer_id, depth + 2)``; embeddings 0,
        block i -> i + 1, the rest (FPN) and non-backbone names depth + 1."""
        num_layers = self.depth + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        top_level = tuple(name for name, _ in self.named_children())
        return vit_layer_id(param_name[len(prefix):], 'blocks', self.depth,
                            top_level=top_level), num_layers

    # --- training mode / checkpoints ---------------------------------------
    def train(self, mode=True):
        super().train(mode)
        if self.freeze_vit:
            for module in self.vit_modules():
                module.eval()
        return self

    def init_weights(self):
        if self.pretrained is None:
            return super().init_weights()
        self.load_pretrained(self.pretrained)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Refuse checkpoints of the FPN layout before InternVL fidelity
        (``load_from``, resume, ``tools/test.py``) instead of loading their
        FPN keys into the wrong modules."""
        old = old_fpn_layout_keys(state_dict, prefix)
        if old:
            raise ValueError('InternViT6B: this checkpoint ' +
                             OLD_LAYOUT_MESSAGE.format(keys=', '.join(old)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def load_pretrained(self, path: str):
        """Load released weights (see ``pretrained``): names mapped to
        InternVL's, architecture checked, ``pos_embed`` resized from the
        checkpoint's grid to ``img_size // patch_size`` and the patch kernel
        to ``patch_size``."""
        weights = read_weights(path, wanted=is_vision_key)
        state, naming = to_internvl_names(weights.state)
        source = f'{weights.source} ({naming} naming)'
        hf_config = weights.hf_config
        if naming == 'transformers' and hf_config is not None:
            hf_config = transformers_vision_config(hf_config)
        old = old_fpn_layout_keys(state)
        if old:
            print_log(f'InternViT6B: {source} ' + OLD_LAYOUT_MESSAGE.format(
                keys=', '.join(old)) + '. Loading its ViT weights only.',
                level=30)
            state = {k: v for k, v in state.items()
                     if not k.startswith(FPN_NAMES)}
        arch, sources = checkpoint_architecture(state, hf_config, source)
        mismatches = architecture_mismatches(model_architecture(self), arch,
                                             sources)
        if mismatches:
            raise ValueError(
                f'InternViT6B: {source} does not fit the configured '
                'architecture; set these in the backbone config:\n  ' +
                '\n  '.join(mismatches))
        own = self.state_dict()
        try:
            check_tensors({k: v for k, v in state.items() if k in own},
                          f'InternViT6B: {source}', reference=own)
        except TensorTrustError as err:
            raise CheckpointError(str(err)) from None
        notes = self._resize_embeddings(state)
        missing = [k for k in own
                   if k not in state and not k.startswith(FPN_NAMES)]
        if missing:
            raise ValueError(f'InternViT6B: {source} lacks {len(missing)} '
                             f'tensor(s) of the ViT, e.g. {missing[:4]}')
        unexpected = sorted(k for k in state if k not in own)
        shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
                  for k in state if k in own and state[k].shape != own[k].shape]
        if shapes:
            raise ValueError(f'InternViT6B: {source}: shapes differ for '
                             + ', '.join(shapes[:5]))
        self.load_state_dict({k: v for k, v in state.items() if k in own},
                             strict=False)
        print_log(f'InternViT6B: loaded {len(state) - len(unexpected)} '
                  f'tensors from {source}' + ''.join(notes)
                  + (f'; ignored {len(unexpected)} tensor(s) that are not '
                     f'InternViT6B\'s: {unexpected[:6]}' if unexpected
                     else ''), level=30 if unexpected else 20)

    def _resize_embeddings(self, state) -> list:
        notes = []
        kernel = state.get('patch_embed.proj.weight')
        if 'pos_embed' in state:
            grid = self.img_size // self.patch_size
            side = math.isqrt(state['pos_embed'].shape[1] - 1)
            expected = self.pretrain_size // kernel.shape[-1]
            if side != expected:
                print_log(
                    f'InternViT6B: pretrain_size={self.pretrain_size} means '
                    f'a {expected}x{expected} position grid, the checkpoint '
                    f'has {side}x{side} (pretrain_size={side * kernel.shape[-1]}'
                    '); resizing from the checkpoint\'s grid. Set '
                    'pretrain_size to match to silence this', level=30)
            if side != grid:
                notes.append(f'; pos_embed resized from a {side}x{side} grid '
                             f'to {grid}x{grid}')
            state['pos_embed'] = resize_pos_embed(state['pos_embed'],
                                                  (grid, grid))
        if kernel.shape[-1] != self.patch_size:
            notes.append(f'; patch kernel resized from {kernel.shape[-1]} to '
                         f'{self.patch_size}')
            state['patch_embed.proj.weight'] = resize_patch_kernel(
                kernel, self.patch_size)
        return notes

    # --- forward ------------------------------------------------------------
    def _pos_embed(self, h, w):
        grid = self.img_size // self.patch_size
        if (h, w) == (grid, grid):
            return self.pos_embed
        return resize_pos_embed(self.pos_embed, (h, w))

    def forward(self, x):
        out_dtype = x.dtype  # float32 from MMSeg; bf16 from DeepSpeed's
        # inputs_to_half
        x, (h, w) = self.patch_embed(x.to(self.dtype))
        b, _, c = x.shape
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        x = x + self._pos_embed(h, w)
        outs = []
        for i, block in enumerate(self.blocks):
            if self.with_cp and self.training and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if i in self.out_indices:
                outs.append(x[:, 1:].transpose(1, 2).reshape(b, c, h, w))
        if self.with_fpn:  # in the adapters' own dtype
            fpn_dtype = self.up1[0].weight.dtype
            outs = [getattr(self, name)(out.to(fpn_dtype))
                    for name, out in zip(FPN_NAMES, outs)]
        return tuple(out.to(out_dtype).contiguous() for out in outs)
