"""MMEngine's ``paramwise_cfg`` vocabulary composes with layer decay
: at ``layer_decay_rate=1.0`` every parameter of a real MMSeg
ResNetV1c-50 with MMCV's DCNv2, a depthwise conv, LayerNorm and a custom key
gets MMEngine's ``DefaultOptimWrapperConstructor`` lr and weight decay,
except where this package's no-decay rules deliberately differ (named
below); at rate 0.5 the same multipliers compose with the layer scale."""
import pytest
from torch import nn

from internvl_optim import LayerDecaySettings, build_param_groups

from helpers import lr_wd_by_name

BASE_LR, WD = 1.0, 0.1
PARAMWISE = dict(bias_lr_mult=2.0, bias_decay_mult=0.0, norm_decay_mult=0.0,
                 dwconv_decay_mult=0.5, flat_decay_mult=0.25,
                 dcn_offset_lr_mult=0.1, bypass_duplicate=True,
                 custom_keys={'neck.proj': dict(lr_mult=3.0,
                                                decay_mult=0.5)})


def model():
    import mmseg.models  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    segmentor = nn.Module()
    segmentor.backbone = MODELS.build(dict(
        type='ResNetV1c', depth=50, stem_channels=8, base_channels=4,
        num_stages=4, out_indices=(3, ), dcn=dict(type='DCNv2',
                                                   deform_groups=1),
        stage_with_dcn=(False, False, True, True)))
    segmentor.neck = nn.Module()
    segmentor.neck.dwconv = nn.Conv2d(4, 4, 3, groups=4)
    segmentor.neck.norm = nn.LayerNorm(4)
    segmentor.neck.proj = nn.Linear(4, 4)
    segmentor.head = nn.Linear(4, 2)
    return segmentor


def mmengine_lr_wd(net):
    from mmengine.optim import DefaultOptimWrapperConstructor
    constructor = DefaultOptimWrapperConstructor(
        dict(optimizer=dict(type='SGD', lr=BASE_LR, weight_decay=WD)),
        PARAMWISE)
    names = {id(p): n for n, p in net.named_parameters()}
    groups = constructor(net).optimizer.param_groups
    return {names[id(g['params'][0])]: (g['lr'], g['weight_decay'])
            for g in groups}


def ours(net, rate):
    return build_param_groups(net, LayerDecaySettings.from_paramwise_cfg(
        dict(layer_decay_rate=rate, **PARAMWISE)), BASE_LR, WD)


#: where we differ from MMEngine on purpose: 1-D parameters directly in a
#: deformable conv's conv_offset get no weight decay here (MMEngine leaves
#: them at the base decay, as flat_decay_mult skips DCN children)
DELIBERATE = {f'backbone.layer{stage}.{block}.conv2.conv_offset.bias'
              for stage, blocks in ((3, 6), (4, 3))  # ResNet-50's DCN stages
              for block in range(blocks)}


def test_rate_one_equals_mmengine_on_every_parameter():
    net = model()
    expected = mmengine_lr_wd(net)
    plan = ours(net, 1.0)
    assert plan.layer_rule == 'module order rule (backbone.*: 5 units)'
    got = lr_wd_by_name(plan.groups)
    assert got.keys() == expected.keys() and len(got) > 60
    differ = {n for n in got if got[n] != pytest.approx(expected[n])}
    assert differ == DELIBERATE
    for name in DELIBERATE:
        assert expected[name] == (pytest.approx(0.1), pytest.approx(WD))
        assert got[name] == (pytest.approx(0.1), 0.0)
    # what each key did, spelled out
    assert got['backbone.layer3.0.conv2.conv_offset.weight'] == \
        (pytest.approx(0.1), WD)                       # dcn_offset_lr_mult
    assert got['backbone.layer3.0.conv2.weight'] == (1.0, WD)  # DCN itself
    assert got['backbone.stem.1.weight'] == (1.0, 0.0)  # norm_decay_mult
    assert got['neck.dwconv.weight'] == (1.0, pytest.approx(0.05))
    assert got['neck.dwconv.bias'] == (2.0, 0.0)    # bias rules first
    assert got['neck.norm.bias'] == (1.0, 0.0)      # norm: no bias_lr_mult
    assert got['neck.proj.weight'] == (3.0, pytest.approx(0.05))  # custom
    assert got['neck.proj.bias'] == (3.0, pytest.approx(0.05))  # custom wins
    assert got['head.bias'] == (2.0, 0.0)
    assert got['head.weight'] == (1.0, WD)


def test_multipliers_compose_with_layer_decay():
    # a ViT-shaped backbone so that a layer rule applies at rate 0.5
    from toy_models import ToyInternViT
    vit = nn.Module()
    vit.backbone = ToyInternViT(depth=2)
    vit.head = nn.Linear(4, 2)
    plan = build_param_groups(vit, LayerDecaySettings.from_paramwise_cfg(
        dict(layer_decay_rate=0.5, bias_lr_mult=2.0, norm_decay_mult=1.0)),
        BASE_LR, WD)
    got = lr_wd_by_name(plan.groups)
    # block 0 is layer 1 of N=2: scale 0.5 ** 2
    assert got['backbone.blocks.0.attn.proj.bias'] == (0.5, 0.0)
    assert got['backbone.blocks.0.norm1.weight'] == (0.25, WD)  # norm decays
    assert got['head.bias'] == (2.0, 0.0)
    names = [g['group_name'] for g in plan.groups]
    assert 'layer_1_bias_lr_no_decay' in names
    assert 'layer_1_norm_decay_decay' in names
