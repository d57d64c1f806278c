"""InternVL's segmentation ``CustomLayerDecayOptimizerConstructor``,
reproduced (BEiT's, as InternVL copied it).

Facts (OpenGVLab/InternVL, ``segmentation/mmcv_custom/
layer_decay_optimizer_constructor.py`` at commit 749a4c3):

* ``num_layers`` and ``layer_decay_rate`` are required; the scale is
  ``layer_decay_rate ** (num_layers + 1 - layer_id)``.
* Names are first rewritten: ``cb_modules.0.`` / ``cb_modules.1.``
  removed, ``levels.`` -> ``layers.``.
* Layer 0: ``backbone.cls_token``, ``backbone.mask_token``,
  ``backbone.pos_embed``, ``backbone.visual_embed`` and anything under
  ``backbone.visual_embed`` or ``backbone.patch_embed``; ``backbone.blocks.{i}``
  or ``backbone.layers.{i}`` -> i + 1 (a hierarchical backbone's
  ``levels.{i}``: one id per level); anything else ``num_layers + 1``.
* Weight decay 0 when 1-D, a name ending in ``.bias``, or a full name
  ``'pos_embed'`` / ``'cls_token'`` (never true for ``backbone.*``: the
  3-D tokens are decayed).  Frozen parameters are skipped.
* Groups ``layer_{id}_{decay|no_decay}`` in order of first appearance.
* The head-tuning and linear-probing recipes (``freeze_vit=True`` in the
  backbone, ``layer_decay_rate=1.0``) freeze every ViT parameter; the
  constructor then groups the trainable ones only (heads, FPN adapters).
"""
import re
from typing import List, Sequence, Tuple

from .common import backbone_class_of, beit_style_plans, clean_parameter_names

SOURCE = ("InternVL's segmentation CustomLayerDecayOptimizerConstructor "
          "(reproduce='internvl_segmentation')")
LAYER_0_NAMES = ('backbone.cls_token', 'backbone.mask_token',
                 'backbone.pos_embed', 'backbone.visual_embed')
BLOCK = re.compile(r'^backbone\.(blocks|layers)\.')


def _rewritten(name: str) -> str:
    name = name.replace('cb_modules.0.', '').replace('cb_modules.1.', '')
    return name.replace('levels.', 'layers.')


def internvl_layer_id(name: str, num_layers: int) -> int:
    name = _rewritten(name)
    if name in LAYER_0_NAMES or name.startswith(
            ('backbone.visual_embed', 'backbone.patch_embed')):
        return 0
    if BLOCK.match(name):
        return int(name.split('.')[2]) + 1
    return num_layers + 1


def internvl_plans(model, named: Sequence[Tuple[str, object]],
                    settings, base_lr: float, base_weight_decay: float
                    ) -> Tuple[List, list]:
    """The plans of InternVL's segmentation constructor, each naming its
    group."""
    backbone_class = backbone_class_of(model)
    num_layers, rate = settings.num_layers, settings.layer_decay_rate
    if num_layers is None:
        raise ValueError("paramwise_cfg.reproduce='internvl_segmentation' "
                         "needs paramwise_cfg.num_layers, as InternVL's "
                         'constructor does')
    # frozen blocks count (InternVL's head-tuning and linear-probing
    # recipes freeze the whole ViT: only the heads are grouped)
    if not any(BLOCK.match(_rewritten(n))
               for n in clean_parameter_names(model)):
        raise ValueError(
            "paramwise_cfg.reproduce='internvl_segmentation': InternVL's "
            'constructor numbers blocks under backbone.blocks.{i} or '
            f'backbone.layers.{{i}} (levels.{{i}}); {backbone_class} has '
            'none, so it would give every backbone parameter the head lr. '
            'Leave reproduce out for our rules')
    return beit_style_plans(
        named, lambda n: internvl_layer_id(n, num_layers), num_layers, rate,
        base_lr, base_weight_decay, 'internvl', SOURCE)
