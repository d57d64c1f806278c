"""param_dtype='bfloat16' (InternVL keeps the backbone in bfloat16): the ViT's
parameters are bfloat16, the FPN adapters and the outputs float32; the
constructor groups them with the same lr and weight decay, warns when a
plain optimizer would update 16-bit weights, and checkpoints round-trip."""
import torch
from mmengine.logging import MMLogger

from internvl_optim import LayerDecayOptimizerConstructor
from internvl_optim.models import InternViT6B

from helpers import lr_wd_by_name

TINY = dict(depth=4, embed_dim=32, num_heads=4, patch_size=8, img_size=64,
            pretrain_size=64, out_indices=(0, 1, 2, 3), with_fpn=True,
            with_cp=False)
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


class Segmentor(torch.nn.Module):

    def __init__(self, **kw):
        super().__init__()
        self.backbone = InternViT6B(**dict(TINY, **kw))
        self.decode_head = torch.nn.Conv2d(32, 4, 1)


def build(model, wrapper='OptimWrapper', log=None):
    if log is not None:
        MMLogger.get_instance(str(log), log_file=str(log))
    return LayerDecayOptimizerConstructor(
        dict(type=wrapper, optimizer=dict(type='AdamW', lr=1e-3,
                                          weight_decay=0.05)),
        dict(num_layers=4, layer_decay_rate=0.5))(model)


def test_vit_in_bfloat16_fpn_and_outputs_float32():
    torch.manual_seed(0)
    fp32 = InternViT6B(**TINY).eval()
    bf16 = InternViT6B(**TINY, param_dtype='bfloat16').eval()
    bf16.load_state_dict(fp32.state_dict())
    dtypes = {n: p.dtype for n, p in bf16.named_parameters()}
    assert dtypes['blocks.0.attn.qkv.weight'] == torch.bfloat16
    assert dtypes['pos_embed'] == dtypes['patch_embed.proj.weight'] == \
        torch.bfloat16
    assert dtypes['up1.1.weight'] == dtypes['up2.0.weight'] == torch.float32
    with torch.no_grad():
        for a, b in zip(bf16(X), fp32(X)):  # float32 input is cast
            assert a.dtype == torch.float32
            rel = (a - b).norm() / b.norm()
            assert 0 < rel < 0.05


def test_constructor_same_groups_warns_for_plain_optimizer(tmp_path):
    fp32, bf16 = Segmentor(), Segmentor(param_dtype='bfloat16')
    log = tmp_path / 'log.txt'
    wrapper = build(bf16, log=log)
    assert lr_wd_by_name(wrapper.optimizer.param_groups) == lr_wd_by_name(
        build(fp32).optimizer.param_groups)
    text = log.read_text()
    assert ('56 in bfloat16 (e.g. backbone.patch_embed.proj.weight) '
            'trainable parameters are not float32 and OptimWrapper has no '
            'float32 master copy'
            in text)
    # head tuning: the bfloat16 ViT is frozen, the FPN float32: no warning
    log2 = tmp_path / 'log2.txt'
    build(Segmentor(param_dtype='bfloat16', freeze_vit=True), log=log2)
    assert 'not float32' not in log2.read_text()


def test_adamw_steps_and_checkpoint_round_trip(tmp_path):
    model = Segmentor(param_dtype='bfloat16')
    wrapper = build(model)
    before = model.backbone.blocks[0].mlp.fc1.weight.detach().clone()
    sum(o.sum() for o in model.backbone(X)).backward()
    wrapper.step()
    after = model.backbone.blocks[0].mlp.fc1.weight
    assert after.dtype == torch.bfloat16 and not torch.equal(after, before)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': model.state_dict(),
                'optimizer': wrapper.state_dict()}, path)
    saved = torch.load(path, weights_only=True)
    assert saved['state_dict']['backbone.blocks.0.mlp.fc1.weight'].dtype == \
        torch.bfloat16
    again = Segmentor(param_dtype='bfloat16')
    again.load_state_dict(saved['state_dict'])
    assert torch.equal(again.backbone.blocks[0].mlp.fc1.weight, after)
    fp32 = Segmentor()
    fp32.load_state_dict(saved['state_dict'])
    assert fp32.backbone.blocks[0].mlp.fc1.weight.dtype == torch.float32
    assert torch.equal(fp32.backbone.blocks[0].mlp.fc1.weight,
                       after.float())


def test_pretrained_weights_keep_bfloat16(tmp_path):
    source = InternViT6B(**dict(TINY, with_fpn=False))
    path = tmp_path / 'vit.pth'
    torch.save(source.state_dict(), path)
    model = InternViT6B(**TINY, param_dtype='bfloat16', pretrained=str(path))
    model.init_weights()
    assert model.blocks[1].attn.qkv.weight.dtype == torch.bfloat16
    assert torch.equal(model.blocks[1].attn.qkv.weight,
                       source.blocks[1].attn.qkv.weight.to(torch.bfloat16))


def test_no_warning_where_deepspeed_keeps_masters(tmp_path):
    from internvl_optim.guards.low_precision import low_precision_trainable
    model = Segmentor(param_dtype='bfloat16')
    found = low_precision_trainable(model.named_parameters())
    assert len(found['bfloat16']) == 56
    constructor = LayerDecayOptimizerConstructor
    log = tmp_path / 'log.txt'
    MMLogger.get_instance(str(log), log_file=str(log))
    named = list(model.named_parameters())
    groups = [dict(param_names=[n for n, _ in named],
                   params=[p for _, p in named])]
    constructor._warn_low_precision(groups, 'DeepSpeedOptimWrapper')
    assert 'not float32' not in log.read_text()
    constructor._warn_low_precision(groups, 'OptimWrapper')
    assert '56 in bfloat16' in log.read_text()
    log.write_text('')
    constructor._warn_low_precision(groups, 'DeepSpeedOptimWrapper')
    assert 'not float32' not in log.read_text()
