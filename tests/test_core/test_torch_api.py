"""The pure PyTorch API: one call gives groups for any
``torch.optim`` optimizer, validated exactly like the config path, warnings
shown by default; ``LayerDecaySettings`` built directly validates too."""
import re
import warnings

import pytest
import torch

from internvl_optim import (LayerDecaySettings, LayerDecayWarning,
                            param_groups)

from helpers import lr_wd_by_name
from toy_models import ToyInternViT, ToySegmentor


def test_one_call_gives_groups_for_torch_optim():
    model = ToySegmentor(ToyInternViT(depth=2))
    groups = param_groups(model, lr=1.0, weight_decay=0.05,
                          layer_decay_rate=0.5)
    optimizer = torch.optim.AdamW(groups)
    lrs = lr_wd_by_name(optimizer.param_groups)
    assert lrs['backbone.cls_token'] == (0.125, 0.0)
    assert lrs['backbone.blocks.0.attn.qkv.weight'] == (0.25, 0.05)
    assert lrs['backbone.blocks.1.attn.qkv.weight'] == (0.5, 0.05)
    assert lrs['decode_head.layers.0.weight'] == (1.0, 0.05)
    assert len(lrs) == sum(1 for _ in model.parameters())
    # a scheduler scales every group alike
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5)
    scheduler.step()
    assert lr_wd_by_name(optimizer.param_groups)['backbone.cls_token'] == \
        (0.0625, 0.0)


@pytest.mark.parametrize('kwargs, exc, message', [
    (dict(lr='1e-4'), TypeError, "lr must be a number in (0, 10000], got '1e-4' (a "
                                 'string: write 1e-4 without quotes)'),
    (dict(lr=1e-4, weight_decay=-1), ValueError,
     'weight_decay must be a number >= 0, got -1'),
    (dict(lr=1e-4, layer_decay=0.9), ValueError,
     "Unknown key paramwise_cfg.layer_decay. Did you mean "
     "'layer_decay_rate'?"),
    (dict(lr=1e-4, num_layers=2), ValueError,
     'paramwise_cfg.num_layers is set but layer_decay_rate is not'),
])
def test_validated_like_the_config(kwargs, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        param_groups(ToySegmentor(ToyInternViT(depth=2)), **kwargs)


def test_warnings_are_shown_by_default():
    model = ToySegmentor(ToyInternViT(depth=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        param_groups(model, lr=1.0, layer_decay_rate=0.5,
                     custom_keys={'nothing_like_this': dict(lr_mult=2.0)})
    assert [type(w.message) for w in caught] == [LayerDecayWarning]
    assert str(caught[0].message).startswith(
        "paramwise_cfg.custom_keys ['nothing_like_this'] match no parameter "
        'name')


def test_freezing_is_applied_by_the_one_call():
    model = ToySegmentor(ToyInternViT(depth=2))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', LayerDecayWarning)
        groups = param_groups(model, lr=1.0, layer_decay_rate=0.5,
                              freeze_backbone=[0])
    assert not any(p.requires_grad
                   for p in model.backbone.blocks[0].parameters())
    names = {n for g in groups for n in g['param_names']}
    assert not any(n.startswith('backbone.blocks.0.') for n in names)


@pytest.mark.parametrize('kwargs, message', [
    (dict(layer_decay_rate=2.0), 'paramwise_cfg.layer_decay_rate must be in '
                                 '(0, 1], got 2.0'),
    (dict(num_layers=0), 'paramwise_cfg.num_layers must be a positive int, '
                         'got 0'),
    (dict(decay_type='block_wise'), "paramwise_cfg.decay_type='block_wise' "
                                    'is not supported'),
    (dict(dcn_lr_mul=float('nan')), 'paramwise_cfg.dcn_lr_mul must be a '
                                    'finite number, got nan'),
])
def test_direct_settings_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        LayerDecaySettings(**kwargs)
