"""What the presets share."""
from typing import Callable, List, Sequence, Tuple

from ..param_plan import ParamPlan
from ..names import clean_named_modules, strip_wrapper_prefixes


def clean_parameter_names(model) -> List[str]:
    """Every parameter name without wrapper prefixes, frozen ones
    included."""
    return [strip_wrapper_prefixes(n) for n, _ in model.named_parameters()]


def backbone_class_of(model) -> str:
    """``model.backbone``'s class name, which the originals read; an error
    when there is none."""
    backbone = clean_named_modules(model).get('backbone')
    if backbone is None:
        raise ValueError('paramwise_cfg.reproduce: the original constructor '
                         'reads model.backbone, which this model does not '
                         'have')
    return type(backbone).__name__


def beit_style_plans(named: Sequence[Tuple[str, object]],
                     layer_of: Callable[[str], int], num_layers: int,
                     rate: float, base_lr: float, base_weight_decay: float,
                     reason: str, source: str
                     ) -> Tuple[List[ParamPlan], list]:
    """BEiT's constructor, which MMSeg's and InternVL's copy: no weight
    decay for 1-D parameters, ``.bias`` and the full names ``'pos_embed'``
    / ``'cls_token'`` (never true for ``backbone.*``); scale ``rate ** (N
    + 1 - id)``; groups ``layer_{id}_{decay|no_decay}`` in order of first
    appearance.  Returns the plans (each naming its group) and nothing to
    freeze."""
    plans = []
    for name, param in named:
        no_decay = (param.ndim == 1 or name.endswith('.bias')
                    or name in ('pos_embed', 'cls_token'))
        layer_id = layer_of(name)
        scale = rate ** (num_layers + 1 - layer_id)
        plans.append(ParamPlan(
            name, layer_id, scale, scale * base_lr,
            0.0 if no_decay else base_weight_decay,
            reason if no_decay else None, None, param.numel(),
            placed_by=source,
            group=f'layer_{layer_id}_{"no_decay" if no_decay else "decay"}'))
    return plans, []
