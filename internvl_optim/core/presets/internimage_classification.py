"""InternImage's classification ``build_optimizer``, reproduced.

Facts (OpenGVLab/InternImage, ``classification/optimizer.py`` at commit
13b9201, ``set_weight_decay_and_lr``):

* one param group per parameter, carrying ``params``, ``weight_decay``,
  ``lr`` and ``name``; frozen parameters skipped;
* weight decay 0 for 1-D, ``.bias``, names in ``model.no_weight_decay()``
  and names containing a keyword of ``model.no_weight_decay_keywords()``;
* with layer decay (``LR_LAYER_DECAY``; here: ``layer_decay_rate`` given),
  ``model.lr_decay_keywards(ratio)`` (sic) maps keywords to lr ratios; the
  first keyword (in the dict's order) contained in a name gives ``lr =
  ratio * base_lr``, else ``base_lr``; then ``dcn_lr_mul`` multiplies names
  containing ``offset``, ``attention_weights``, ``center_feature_scale_proj``
  or ``alpha_beta`` (only with layer decay);
* ``freeze_backbone`` (level indices) sets ``requires_grad=False`` on names
  containing ``levels.{i}`` *after* deciding to keep them: they stay in the
  optimizer, frozen.
"""
from typing import List, Sequence, Tuple

from ..param_plan import DCN_KEYWORDS
from ..param_plan import ParamPlan

SOURCE = ("InternImage's classification build_optimizer "
          "(reproduce='internimage_classification')")


def internimage_classification_plans(
        model, named: Sequence[Tuple[str, object]], settings, base_lr: float,
        base_weight_decay: float) -> Tuple[List[ParamPlan], list]:
    skip = set(model.no_weight_decay()) if hasattr(
        model, 'no_weight_decay') else set()
    keywords = tuple(model.no_weight_decay_keywords()) if hasattr(
        model, 'no_weight_decay_keywords') else ()
    ratios = None
    if settings.layer_decay_rate != 1.0:
        if not callable(getattr(model, 'lr_decay_keywards', None)):
            raise ValueError(
                "paramwise_cfg.reproduce='internimage_classification': "
                "InternImage's build_optimizer asks the model for "
                'lr_decay_keywards(ratio) (sic), which '
                f'{type(model).__name__} does not have')
        ratios = model.lr_decay_keywards(settings.layer_decay_rate)
    levels = settings.freeze_backbone
    if levels == 'all':
        raise ValueError(
            "paramwise_cfg.reproduce='internimage_classification': "
            "InternImage's FREEZE_BACKBONE is a list of level indices")
    plans, to_freeze = [], []
    for name, param in named:
        no_decay = (param.ndim == 1 or name.endswith('.bias')
                    or name in skip or any(k in name for k in keywords))
        weight_decay = 0.0 if no_decay else base_weight_decay
        lr = base_lr
        if ratios is not None:
            ratio = next((v for k, v in ratios.items() if k in name), None)
            if ratio is not None:
                lr = ratio * base_lr
            if settings.dcn_lr_mul != 1.0 and any(w in name
                                                  for w in DCN_KEYWORDS):
                lr = settings.dcn_lr_mul * lr
        if levels and any(f'levels.{i}' in name for i in levels):
            to_freeze.append(param)
        # one group per parameter, named by it
        plans.append(ParamPlan(name, 0, lr / base_lr, lr, weight_decay,
                               'internimage' if no_decay else None, None,
                               param.numel(), placed_by=SOURCE, group=name))
    return plans, to_freeze
