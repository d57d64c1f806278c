"""The layer rules as an ordered table of providers: the
documented order, and configured keys the winner does not use are errors."""
import functools
import re

import pytest

from internvl_optim import LayerDecaySettings, build_param_groups
from internvl_optim.core.layer_rules import PROVIDERS

from helpers import build_plan, layer_by_name
from toy_models import ToyInternViT, ToySegmentor


plan = functools.partial(build_plan, layer_decay_rate=0.5)


def test_the_documented_order():
    assert [p.name for p in PROVIDERS] == [
        'MMSeg ConvNeXt rules (decay_type given)', 'model.get_layer_depth',
        'backbone.get_layer_depth', 'backbone.get_layer_id',
        'paramwise_cfg.layer_regex', 'declared group_matcher (timm)',
        'ViT block list',
        'MMSeg ConvNeXt layer_wise rule', 'stages of blocks',
        'module order (CNNs)']


class WithDepth(ToyInternViT):
    """The toy ViT with mmpretrain's get_layer_depth(name, prefix)."""

    def get_layer_depth(self, name, prefix=''):
        rel = name[len(prefix):]
        if rel.startswith('blocks.'):
            return int(rel.split('.')[1]) + 1, len(self.blocks) + 2
        return 0, len(self.blocks) + 2


def test_depths_on_a_vit_is_an_error():
    # silently ignored before
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.depths=[2, 2] is not used: ViT rule '
            "(backbone.blocks) decides the layer ids of backbone 'backbone' "
            '(ToyInternViT), and it takes no depths. Remove depths')):
        plan(ToySegmentor(ToyInternViT(depth=4)), depths=[2, 2])
    # the ViT rule itself, unchanged
    layers = layer_by_name(plan(ToySegmentor(ToyInternViT(depth=4))).groups)
    assert layers['backbone.blocks.3.attn.qkv.weight'] == 4
    assert layers['backbone.cls_token'] == 0
    assert layers['backbone.up1.0.weight'] == 5


def test_depths_on_a_model_method_without_stages_is_an_error():
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.depths=[3] is not used: WithDepth.'
            'get_layer_depth decides the layer ids')):
        plan(ToySegmentor(WithDepth(depth=3)), depths=[3])


def test_layer_regex_beside_a_model_method_is_said_not_used():
    warnings = []
    build_param_groups(
        ToySegmentor(WithDepth(depth=3)),
        LayerDecaySettings.from_paramwise_cfg(
            dict(layer_regex=dict(embed='^x', blocks=r'^blocks\.(\d+)'),
                 layer_decay_rate=0.9)),
        1.0, 0.05, warn=warnings.append)
    assert warnings[0] == ('paramwise_cfg.layer_regex is not used: '
                           'WithDepth.get_layer_depth decides the layer '
                           'ids')
