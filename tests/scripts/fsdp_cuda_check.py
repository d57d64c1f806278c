"""FSDP v1 on a CUDA GPU through MMEngine's strategies, with our groups.

Needs MMEngine, not MMSeg: the model is the InternViT-named toy of
``tests/toy_models.py`` given a forward here.  On CUDA it checks MMEngine's
``FSDPStrategy`` and our ``ResumableFSDPStrategy``; without a GPU only ours
(MMEngine's cannot place FSDP on the CPU).  Two modes:

* ``torchrun --nproc_per_node 1 tests/scripts/fsdp_cuda_check.py train``:
  NCCL, world size 1 (FSDP runs NO_SHARD).  For ``ResumableFSDPStrategy``
  with ``state_dict_cfg`` 'local' and 'full': groups equal the unwrapped
  model's, 3 steps, save, 2 more steps; a fresh model resumed from the
  checkpoint takes the same 2 steps and must end with the same weights.
  MMEngine's own ``FSDPStrategy`` is expected to fail at resume.
* ``python tests/scripts/fsdp_cuda_check.py shard RANK``: one process as
  rank RANK of 2 (PyTorch's fake process group: collectives do nothing), so
  FSDP shards for real on the GPU: parameters become 1-D views, and the
  groups must still equal the unwrapped model's.

Prints one JSON line per check.  ``tests/test_distributed.py`` runs the
same on CPU with gloo and two real processes.
"""
import json
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, '..'), os.path.join(HERE, '..', '..')]

from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import STRATEGIES  # noqa: E402

import internvl_optim  # noqa: E402,F401  (registers constructor, strategy)
from internvl_optim.core.names import strip_wrapper_prefixes  # noqa: E402
from toy_models import (InternViTBlock, ToyInternViT,  # noqa: E402
                        ToySegmentor)

CUDA = torch.cuda.is_available()  # on CPU only ours runs (for debugging)
DEVICE = 'cuda' if CUDA else 'cpu'
KINDS = ('FSDPStrategy', 'ResumableFSDPStrategy') if CUDA else (
    'ResumableFSDPStrategy', )
OPTIM = dict(constructor='LayerDecayOptimizerConstructor',
             optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05),
             paramwise_cfg=dict(layer_decay_rate=0.5))


def block_forward(self, x):
    q, k, v = self.attn.qkv(self.norm1(x)).chunk(3, dim=-1)
    a = F.scaled_dot_product_attention(self.attn.q_norm(q),
                                       self.attn.k_norm(k), v)
    x = x + self.ls1.gamma * self.attn.proj(a)
    h = self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))
    return x + self.ls2.gamma * h


def segmentor_forward(self, img):
    bb, head = self.backbone, self.decode_head
    x = bb.patch_embed.proj(img)  # (B, C, 2, 2)
    b, c, h, w = x.shape
    x = torch.cat([bb.cls_token.expand(b, -1, -1),
                   x.flatten(2).transpose(1, 2)], 1) + bb.pos_embed
    for block in bb.blocks:
        x = block(x)
    f = bb.up2(bb.up1(x[:, 1:].transpose(1, 2).reshape(b, c, h, w)))
    f = head.bn(head.layers[1](head.layers[0](f)))
    return head.conv_seg(f).pow(2).mean()


InternViTBlock.forward = block_forward
ToySegmentor.forward = segmentor_forward


def new_model(seed=0):
    torch.manual_seed(seed)
    return ToySegmentor(ToyInternViT(depth=3, dim=8))


def by_name(groups):
    return {n: (g['lr'], g['weight_decay'], g['group_name'])
            for g in groups for n in g['param_names']}


def strategy(kind, state_dict_cfg):
    return STRATEGIES.build(dict(
        type=kind, state_dict_cfg=state_dict_cfg,
        model_wrapper=dict(
            use_orig_params=True,
            auto_wrap_policy=dict(
                type='internvl_optim.engine.strategies.fsdp_wrap_policy.wrap_module_classes',
                module_classes=['toy_models.InternViTBlock']))))


def steps(model, wrapper, n, seed):
    torch.manual_seed(seed)
    for _ in range(n):
        wrapper.update_params(model(torch.randn(2, 3, 4, 4, device=DEVICE)))


def weights(model):
    return {strip_wrapper_prefixes(k): v.detach().clone()
            for k, v in model.named_parameters()}


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + '\n')
    sys.stdout.flush()


def check_groups(kind, mode, state_dict_cfg='local'):
    expected = by_name(build_optim_wrapper(new_model(), dict(OPTIM))
                       .optimizer.param_groups)
    s = strategy(kind, state_dict_cfg)
    model, wrapper = s.prepare(new_model(), optim_wrapper=dict(OPTIM))
    shapes = {strip_wrapper_prefixes(n): tuple(p.shape)
              for n, p in model.named_parameters()}
    got = by_name(wrapper.optimizer.param_groups)
    emit(check='groups', mode=mode, strategy=kind, rank=dist.get_rank(),
         world_size=dist.get_world_size(), equal=got == expected,
         device=str(next(model.parameters()).device),
         all_1d=all(len(v) == 1 for v in shapes.values()),
         qkv_shape=shapes['backbone.blocks.0.attn.qkv.weight'],
         qkv_wd=got['backbone.blocks.0.attn.qkv.weight'][1])
    return s, model, wrapper


def check_resume(kind, state_dict_cfg):
    s, model, wrapper = check_groups(kind, 'train', state_dict_cfg)
    steps(model, wrapper, 3, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'ckpt.pth')
        s.save_checkpoint(path, save_param_scheduler=False,
                          extra_ckpt=dict(meta=dict(epoch=0, iter=3)))
        steps(model, wrapper, 2, seed=2)
        expected = weights(model)
        s2 = strategy(kind, state_dict_cfg)
        model2, wrapper2 = s2.prepare(new_model(seed=5),
                                      optim_wrapper=dict(OPTIM))
        try:
            s2.resume(path, resume_param_scheduler=False)
        except Exception as err:  # MMEngine's own strategy, expected
            emit(check='resume', strategy=kind, state_dict_cfg=state_dict_cfg,
                 resumed=False, error=f'{type(err).__name__}: {err}'[:200])
            return
        steps(model2, wrapper2, 2, seed=2)
        got = weights(model2)
        diff = max((got[k] - expected[k]).abs().max().item()
                   for k in expected)
        start = weights(new_model(seed=5))
        emit(check='resume', strategy=kind, state_dict_cfg=state_dict_cfg,
             resumed=True, same_names=got.keys() == expected.keys(),
             max_abs_diff=diff,
             moved_from_init=max((got[k].cpu() - start[k]).abs().max().item()
                                 for k in got))


def main():
    torch.backends.cudnn.deterministic = True
    if sys.argv[1] == 'train':
        dist.init_process_group('nccl' if CUDA else 'gloo')
        if CUDA:
            torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
        for state_dict_cfg in ('local', 'full'):
            check_resume('ResumableFSDPStrategy', state_dict_cfg)
        if CUDA:
            check_resume('FSDPStrategy', 'local')
    else:
        from torch.testing._internal.distributed.fake_pg import FakeStore
        os.environ.setdefault('LOCAL_RANK', '0')
        dist.init_process_group('fake', rank=int(sys.argv[2]), world_size=2,
                                store=FakeStore())
        if CUDA:
            torch.cuda.set_device(0)
        for kind in KINDS:
            check_groups(kind, 'shard')
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
