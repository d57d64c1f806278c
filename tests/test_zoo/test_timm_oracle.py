"""timm as an oracle: one architecture of every timm family,
built on the meta device, compared parameter by parameter with timm's own
``param_groups_layer_decay`` (which reads the model's ``group_matcher`` and
``no_weight_decay()``).  Where the model declares a grouping, lr scales are
equal; weight decay is equal or differs only by a documented convention,
asserted here.  The whole zoo: ``python benchmarks/timm_zoo.py``.

timm imports torchvision at import time; torchvision cannot be imported
beside this CPU torch, so ``import_timm`` stands in for it in this process
(``internvl_optim/analysis/timm_oracle.py``).
"""
import pytest

from internvl_optim.analysis.timm_oracle import compare, import_timm

timm = import_timm()


def first_of_each_family():
    """The first architecture (alphabetically) of every timm module."""
    return [sorted(timm.list_models(module=module))[0]
            for module in timm.list_modules()
            if timm.list_models(module=module)]


FAMILIES = first_of_each_family()

#: documented weight-decay conventions, per model: names we exempt that
#: timm decays, and why
DOCUMENTED_WD = {
}


def test_there_is_one_model_per_family():
    assert timm.__version__ == '1.0.31'
    assert len(FAMILIES) == len(timm.list_modules()) == 98
    assert len(timm.list_models()) == 1371


@pytest.mark.parametrize('name', FAMILIES)
def test_each_family_against_timm(name):
    result = compare(name)
    assert not result.refused, result.refused
    assert set(result.ours) == set(result.theirs)
    assert result.silent_head_lr() == []
    if not result.declares:
        return  # timm then chunks parameters 12 by 12: no declaration
    assert result.lr_differences() == []
    assert sorted(result.wd_differences()) == sorted(
        DOCUMENTED_WD.get(name, []))


def mmseg_timm_backbone(**backbone):
    """MMSeg's real ``TIMMBackbone`` in a real ``EncoderDecoder`` (meta
    device).  MMSeg's module imported timm before this process had the
    torchvision stand-in, so it gets the timm imported here."""
    import torch
    from mmengine.registry import init_default_scope
    import mmseg.models.backbones.timm_backbone as timm_backbone
    from mmseg.registry import MODELS
    timm_backbone.timm = timm
    init_default_scope('mmseg')
    with torch.device('meta'):
        return MODELS.build(dict(
            type='EncoderDecoder',
            backbone=dict(type='TIMMBackbone', pretrained=False, **backbone),
            decode_head=dict(type='FCNHead', in_channels=8, channels=8,
                             num_convs=1, num_classes=4)))


def our_plan(model, warnings):
    from internvl_optim.core import LayerDecaySettings, build_param_groups
    return build_param_groups(model, LayerDecaySettings(layer_decay_rate=0.9),
                              1.0, 0.05, warn=warnings.append)


def test_mmseg_timm_backbone_gets_timms_own_grouping():
    """MMSeg 1.2.2's TIMMBackbone keeps the model as ``timm_model`` (and
    sets its ``global_pool``/``fc``/``classifier`` to None): every backbone
    parameter gets the lr scale and weight decay timm's own
    ``param_groups_layer_decay`` gives the timm model."""
    from internvl_optim.analysis.timm_oracle import timm_groups
    warnings = []
    model = mmseg_timm_backbone(model_name='vit_tiny_patch16_224',
                                features_only=False, img_size=32,
                                num_classes=0)
    plan = our_plan(model, warnings)
    assert plan.layer_rule == ('VisionTransformer.group_matcher (declared '
                               'by the model)')
    assert plan.backbone_prefix == 'backbone.timm_model'
    assert warnings == []
    ours = {n: (g['lr_scale'], g['weight_decay']) for g in plan.groups
            for n in g['param_names']}
    theirs = timm_groups(model.backbone.timm_model, 0.05, 0.9)
    assert len(theirs) == 150
    for name, (scale, wd) in theirs.items():
        assert ours['backbone.timm_model.' + name] == (
            pytest.approx(scale, rel=1e-12), wd), name
    assert ours['backbone.timm_model.cls_token'] == (
        pytest.approx(0.9 ** 12), 0.0)
    assert ours['decode_head.conv_seg.weight'] == (1.0, 0.05)


def test_mmseg_timm_backbone_features_only_is_placed_by_structure():
    """``features_only=True`` wraps the model in timm's ``FeatureListNet``
    (a ModuleDict of the model's children, no ``group_matcher``): the
    backbone is the wrapped model, and the module-order rule numbers its
    units (resnet18: conv1, bn1, layer1..layer4)."""
    warnings = []
    model = mmseg_timm_backbone(model_name='resnet18', features_only=True)
    assert type(model.backbone.timm_model).__name__ == 'FeatureListNet'
    plan = our_plan(model, warnings)
    assert plan.layer_rule == ('module order rule (backbone.timm_model.*: '
                               '6 units)')
    assert warnings == []
    layers = {n: g['layer_id'] for g in plan.groups for n in g['param_names']}
    assert layers['backbone.timm_model.conv1.weight'] == 0
    assert layers['backbone.timm_model.bn1.weight'] == 1
    assert layers['backbone.timm_model.layer1.0.conv1.weight'] == 2
    assert layers['backbone.timm_model.layer4.1.bn2.bias'] == 5
    assert layers['decode_head.conv_seg.weight'] == 6
