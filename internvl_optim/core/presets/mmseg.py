"""MMSegmentation's ``LearningRateDecayOptimizerConstructor``, reproduced.

Facts (open-mmlab/mmsegmentation, ``mmseg/engine/optimizers/
layer_decay_optimizer_constructor.py`` at commit 4b76f27; the 1.2.2 wheel
ships the same rules):

* ``num_layers`` is required; the scale is ``decay_rate ** (num_layers + 1
  - layer_id)``; ``decay_rate`` is not range-checked (its own test uses 2);
  ``decay_type`` defaults to ``'layer_wise'`` (``'layer_wise_vit'``, set by
  the deprecated ``LayerDecayOptimizerConstructor``, takes the same branch).
* Weight decay 0 when the parameter is 1-D, its name ends with ``.bias``, or
  its full name is ``'pos_embed'`` or ``'cls_token'`` (never true for
  ``backbone.*`` names, so 3-D tokens are decayed); else the base weight
  decay.  Frozen parameters are skipped.
* The backbone is ``model.backbone``; its class name decides:
  ``ConvNeXt`` (``layer_wise`` or ``stage_wise``), ``BEiT`` or ``MAE``
  (``layer_wise``); anything else raises ``NotImplementedError``.
* ConvNeXt ``layer_wise`` (max id = ``num_layers``): tokens 0;
  ``downsample_layers.{0,1,2,3}`` -> 0, 2, 3, max; ``stages.0`` -> 1,
  ``stages.1`` -> 2, ``stages.2.{b}`` -> ``3 + b // 3``, ``stages.3`` ->
  max; anything else max + 1.
* ConvNeXt ``stage_wise``: tokens and downsample layers 0, ``stages.{s}``
  -> s + 1, anything else ``num_layers + 1``.
* ViT (BEiT, MAE): tokens and ``backbone.patch_embed`` 0,
  ``backbone.layers.{i}`` -> i + 1, anything else ``num_layers + 1``.
* Groups are named ``layer_{id}_{decay|no_decay}``, in order of first
  appearance, each with ``lr = scale * base_lr``.
"""
from typing import List, Sequence, Tuple

from .common import backbone_class_of, beit_style_plans

TOKENS = ('backbone.cls_token', 'backbone.mask_token', 'backbone.pos_embed')
SOURCE = "MMSeg's LearningRateDecayOptimizerConstructor (reproduce='mmseg')"


# MMSeg's own functions on full names, quirks included (ours, on
# backbone-relative names, are in ``layer_rules/``): hence ``mmseg_``

def mmseg_convnext_layer_id(name: str, max_layer_id: int) -> int:
    """MMSeg's ``get_layer_id_for_convnext``."""
    if name in TOKENS:
        return 0
    if name.startswith('backbone.downsample_layers'):
        stage = int(name.split('.')[2])
        return {0: 0, 1: 2, 2: 3, 3: max_layer_id}[stage]
    if name.startswith('backbone.stages'):
        stage, block = int(name.split('.')[2]), int(name.split('.')[3])
        return {0: 1, 1: 2, 2: 3 + block // 3, 3: max_layer_id}[stage]
    return max_layer_id + 1


def mmseg_convnext_stage_id(name: str, num_layers: int) -> int:
    """MMSeg's ``get_stage_id_for_convnext``."""
    if name in TOKENS or name.startswith('backbone.downsample_layers'):
        return 0
    if name.startswith('backbone.stages'):
        return int(name.split('.')[2]) + 1
    return num_layers + 1


def mmseg_vit_layer_id(name: str, num_layers: int) -> int:
    """MMSeg's ``get_layer_id_for_vit`` (BEiT, MAE)."""
    if name in TOKENS or name.startswith('backbone.patch_embed'):
        return 0
    if name.startswith('backbone.layers'):
        return int(name.split('.')[2]) + 1
    return num_layers + 1


def mmseg_plans(model, named: Sequence[Tuple[str, object]],
                 settings, base_lr: float, base_weight_decay: float
                 ) -> Tuple[List, list]:
    """The plans of MMSeg's constructor, each naming its group, for ``named``
    (``(full name, parameter)``, wrapper-free, trainable only)."""
    backbone_class = backbone_class_of(model)
    num_layers, rate = settings.num_layers, settings.layer_decay_rate
    decay_type = settings.decay_type or 'layer_wise'
    if num_layers is None:
        raise ValueError("paramwise_cfg.reproduce='mmseg' needs "
                         'paramwise_cfg.num_layers, as MMSeg\'s constructor '
                         'does')
    if decay_type == 'layer_wise' and 'ConvNeXt' in backbone_class:
        layer_of = lambda n: mmseg_convnext_layer_id(n, num_layers)  # noqa: E731
    elif decay_type == 'layer_wise' and ('BEiT' in backbone_class
                                         or 'MAE' in backbone_class):
        layer_of = lambda n: mmseg_vit_layer_id(n, num_layers)  # noqa: E731
    elif decay_type == 'stage_wise' and 'ConvNeXt' in backbone_class:
        layer_of = lambda n: mmseg_convnext_stage_id(n, num_layers)  # noqa: E731
    else:
        raise ValueError(
            f"paramwise_cfg.reproduce='mmseg': MMSeg's constructor supports "
            f"ConvNeXt, BEiT and MAE backbones ('stage_wise': ConvNeXt only) "
            f"and raises NotImplementedError for {backbone_class} with "
            f"decay_type={decay_type!r}. Leave reproduce out for our rules, "
            'which support it')
    return beit_style_plans(named, layer_of, num_layers, rate,
                            base_lr, base_weight_decay, 'mmseg', SOURCE)
