"""InternImage's ``CustomLayerDecayOptimizerConstructor``, reproduced: its
segmentation and its detection versions.

Facts (OpenGVLab/InternImage, ``segmentation/mmcv_custom/
custom_layer_decay_optimizer_constructor.py`` at commit 2071d4c and
``detection/mmcv_custom/custom_layer_decay_optimizer_constructor.py`` at
commit 41b18fd):

* keys: ``num_layers``, ``layer_decay_rate``, ``depths`` (needed as soon as
  the backbone has ``layers``/``levels``), ``backbone_small_lr``,
  ``dino_head``, ``offset_lr_scale`` (default 1.0); ``N + 1 =
  num_layers + 1``.
* layer 0: ``backbone.patch_embed*`` and names containing ``level_embeds``;
  segmentation also ``decode_head.{mask_embed, cls_embed, level_embed,
  query_embed, query_feat}*`` and ``backbone.cb_modules.0.patch_embed*``.
* ``backbone.{layers,levels}.{s}.{child}.{k}``: unless ``child`` is
  ``downsample`` or ``norm``, ``k + 1 + sum(depths[:s])`` (``post_norms.{k}``
  too); ``downsample``/``norm`` of stage s: ``1 + sum(depths[:s + 1])``,
  capped at ``1 + sum(depths[:3])`` for the last stage; anything else
  ``N + 1`` (CBNet's ``cb_modules.{k}.levels`` included).
* weight decay 0 for 1-D, ``.bias``, and names containing
  ``relative_position``, ``norm`` or ``sampling_offsets``.
* group ``layer_{id}_{decay}_0.1x`` for ``sampling_offsets`` /
  ``reference_points`` at ``N + 1`` with ``dino_head``; else
  ``layer_{id}_{decay}_offset_lr_scale`` for them (segmentation: only in
  the backbone); else ``layer_{id}_{decay}``.
* scale ``rate ** (N + 1 - id)``, fixed when a group is created: x0.1 if
  below 1 and ``backbone_small_lr``, x0.1 for ``_0.1x``, x``offset_lr_scale``
  for ``_offset_lr_scale``.  Groups in order of first appearance.
"""
from typing import List, Sequence, Tuple

from ..param_plan import OFFSET_KEYWORDS
from ..param_plan import ParamPlan

SEGMENTATION_HEAD_EMBEDS = tuple(
    f'decode_head.{n}' for n in ('mask_embed', 'cls_embed', 'level_embed',
                                 'query_embed', 'query_feat'))
NO_DECAY_WORDS = ('relative_position', 'norm', 'sampling_offsets')


def internimage_layer_id(name: str, num_layers: int, depths,
                         segmentation: bool) -> int:
    if name.startswith('backbone.patch_embed'):
        return 0
    if segmentation and (name.startswith(SEGMENTATION_HEAD_EMBEDS) or
                         name.startswith('backbone.cb_modules.0.patch_embed')):
        return 0
    if 'level_embeds' in name:
        return 0
    if name.startswith(('backbone.layers', 'backbone.levels')):
        if depths is None:
            raise ValueError(
                'paramwise_cfg.reproduce: InternImage\'s constructor needs '
                'paramwise_cfg.depths for backbone.levels / backbone.layers '
                '(it indexes depths[0..2])')
        parts = name.split('.')
        stage = int(parts[2])
        if parts[3] not in ('downsample', 'norm'):
            return int(parts[4]) + 1 + sum(depths[:min(stage, 3)])
        return 1 + sum(depths[:min(stage + 1, 3)])
    return num_layers + 1


def _plans(named, settings, base_lr, base_weight_decay, segmentation,
           source) -> Tuple[List[ParamPlan], list]:
    num_layers, rate = settings.num_layers, settings.layer_decay_rate
    if num_layers is None:
        raise ValueError(f"paramwise_cfg.reproduce: {source} needs "
                         'paramwise_cfg.num_layers')
    depths = settings.depths
    if not any(n.startswith(('backbone.levels.', 'backbone.layers.'))
               for n, _ in named):
        raise ValueError(
            f'paramwise_cfg.reproduce: {source} numbers blocks under '
            'backbone.levels.{s} / backbone.layers.{s}; this model has none, '
            'so it would give every backbone parameter the head lr. Leave '
            'reproduce out for our rules')
    plans = []
    for name, param in named:
        no_decay = (param.ndim == 1 or name.endswith('.bias')
                    or any(w in name for w in NO_DECAY_WORDS))
        decay = 'no_decay' if no_decay else 'decay'
        layer_id = internimage_layer_id(name, num_layers, depths,
                                        segmentation)
        offset = any(w in name for w in OFFSET_KEYWORDS)
        if layer_id == num_layers + 1 and settings.dino_head and offset:
            key = f'layer_{layer_id}_{decay}_0.1x'
        elif offset and (not segmentation or 'backbone' in name):
            key = f'layer_{layer_id}_{decay}_offset_lr_scale'
        else:
            key = f'layer_{layer_id}_{decay}'
        scale = rate ** (num_layers + 1 - layer_id)
        if scale < 1 and settings.backbone_small_lr:
            scale *= 0.1
        if '0.1x' in key:
            scale *= 0.1
        if 'offset_lr_scale' in key:
            scale *= settings.offset_lr_scale
        plans.append(ParamPlan(name, layer_id, scale, scale * base_lr,
                               0.0 if no_decay else base_weight_decay,
                               'internimage' if no_decay else None, None,
                               param.numel(), placed_by=source, group=key))
    return plans, []


def internimage_segmentation_plans(model, named: Sequence[Tuple[str, object]],
                                    settings, base_lr: float,
                                    base_weight_decay: float):
    return _plans(named, settings, base_lr, base_weight_decay, True,
                   "InternImage's segmentation constructor "
                   "(reproduce='internimage_segmentation')")


def internimage_detection_plans(model, named: Sequence[Tuple[str, object]],
                                 settings, base_lr: float,
                                 base_weight_decay: float):
    return _plans(named, settings, base_lr, base_weight_decay, False,
                   "InternImage's detection constructor "
                   "(reproduce='internimage_detection')")
