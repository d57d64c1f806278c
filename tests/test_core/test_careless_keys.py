"""Combinations of keys that cannot do what they say are refused before
anything is built, naming the keys: a warm-up with nothing joining later,
a top-level rate or backbone next to towers that take their own, an lr for
a tower the same config freezes."""
import pytest

from internvl_optim.core.settings import LayerDecaySettings

TOWERS = dict(vision=dict(module='model.vision_tower', layer_decay_rate=0.9),
              language=dict(module='model.language_model'))


@pytest.mark.parametrize('cfg, message', [
    (dict(layer_decay_rate=0.9, layer_phases=dict(warmup=5)),
     'paramwise_cfg.layer_phases.warmup=5 warms up the layers that join '
     'after step 0, but with head_only=0 and unfreeze_every=0 every layer '
     'joins at step 0: the warm-up applies to none.'),
    (dict(layer_decay_rate=0.8, towers=TOWERS),
     'paramwise_cfg.layer_decay_rate=0.8 applies to no tower: with '
     'paramwise_cfg.towers each tower takes its own rate (vision: 0.9, '
     "language: 1). Set towers['vision'].layer_decay_rate, and remove "
     'layer_decay_rate'),
    (dict(first_block_lr_ratio=0.1, towers=TOWERS),
     'paramwise_cfg.first_block_lr_ratio=0.1 applies to no tower'),
    (dict(backbone_name='model.vision_tower', towers=TOWERS),
     "paramwise_cfg.backbone_name='model.vision_tower' is not used with "
     'paramwise_cfg.towers: each tower names its module.'),
    (dict(freeze_mlp=True, mm_projector_lr=1e-5),
     'paramwise_cfg.mm_projector_lr=1e-05 sets the lr of a tower that '
     'paramwise_cfg.freeze_mlp freezes: it would train at no lr. Remove '
     'mm_projector_lr, or freeze_mlp'),
    (dict(freeze_backbone=True, vit_lr=1e-5),
     'paramwise_cfg.vit_lr=1e-05 sets the lr of a tower that '
     'paramwise_cfg.freeze_backbone freezes'),
])
def test_refused_naming_the_keys(cfg, message):
    with pytest.raises(ValueError) as err:
        LayerDecaySettings.from_paramwise_cfg(cfg)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize('cfg', [
    dict(layer_decay_rate=0.9, towers=TOWERS),  # the vision tower's rate
    dict(layer_decay_rate=1.0, towers=TOWERS),
    dict(layer_decay_rate=0.9, layer_phases=dict(head_only=5, warmup=5)),
    dict(freeze_backbone=True, unfreeze_vit_layers=-1, vit_lr=1e-5),
])
def test_consistent_combinations_pass(cfg):
    LayerDecaySettings.from_paramwise_cfg(cfg)

