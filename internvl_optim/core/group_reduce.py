"""Parameter plans -> optimizer groups: one group per distinct
(tower, multiplier, custom key, decays or not, lr, weight decay), so the
group count grows with the number of layers that differ, not of parameters
(multi-tensor ``foreach`` / ``fused`` optimizers stay fast; detectron2's
``reduce_param_groups`` idea).  Layers whose lr and weight decay are equal
(every layer at ``layer_decay_rate=1.0``) share a group: ``torch.optim``
takes each new group in time proportional to all earlier ones, so 20,000
groups of equal values would cost minutes for nothing.  Pure: parameters
are opaque, so tests may pass strings for them."""
from typing import Any, Dict, List, Sequence, Tuple

from .algorithms import MatrixView
from .param_plan import ParamPlan, Placement


def group_key(plan: ParamPlan) -> Tuple:
    return (plan.tower or '', plan.multiplier, plan.custom_key,
            plan.weight_decay != 0, plan.lr, plan.weight_decay,
            plan.algorithm.value if plan.algorithm else '',
            plan.matrix_view.value if plan.matrix_view else '')


def group_name(plan: ParamPlan, layers: Sequence[int] = ()) -> str:
    """``layer_{id}[_{multiplier}][_{custom key}]_{decay|no_decay}``;
    ``layers_{first}-{last}...`` for a group holding several layers;
    ``head...`` outside every tower of a multi-tower model (``lm_head``).

    >>> from internvl_optim.core.param_plan import ParamPlan
    >>> group_name(ParamPlan('b.x', 3, .5, .5, 0.0, 'bias', 'pos', 1, 'dcn'))
    'layer_3_dcn_pos_no_decay'
    >>> group_name(ParamPlan('b.x', 3, 1., 1., 0.1, None, None, 1), [0, 3])
    'layers_0-3_decay'
    """
    tags = ''.join(f'_{t}' for t in (plan.multiplier, plan.custom_key) if t)
    tower = f'{plan.tower}_' if plan.tower else ''
    layers = sorted(set(layers) or {plan.layer_id})
    where = ('head' if plan.placement is Placement.REST else
             f'layer_{layers[0]}' if len(layers) == 1
             else f'layers_{layers[0]}-{layers[-1]}')
    algorithm = f'_{plan.algorithm.value}' if plan.algorithm else ''
    view = (f'_{plan.matrix_view.value}' if plan.matrix_view not in
            (None, MatrixView.WHOLE) else '')
    return (f'{tower}{where}{tags}_'
            f'{"decay" if plan.weight_decay != 0 else "no_decay"}'
            f'{algorithm}{view}')


def group_sort_key(key: Tuple, layer_id: int) -> Tuple:
    """Heads first (so MMEngine's logged ``lr`` is the base lr), then layers
    downwards (a group's highest layer); within a layer plain before
    tagged, decay before no-decay.  With towers: the parameters outside
    them first, then tower by tower (by first appearance)."""
    tower, multiplier, custom_key, decays = key[:4]
    tag = (multiplier or '') + (custom_key or '')
    return (bool(tower), -layer_id, bool(tag), tag, not decays)


def reduce_as_original(plans: Sequence[ParamPlan],
                       params: Sequence[Any]) -> List[dict]:
    """Plans that carry an original constructor's group (``plan.group``,
    the reproduction presets) into those groups, named as the original
    names them, in order of first appearance (the originals' order).

    >>> from internvl_optim.core.param_plan import ParamPlan
    >>> plans = [ParamPlan('w', 1, .5, .05, .1, None, None, 4, group='a'),
    ...          ParamPlan('h', 2, 1., .1, .1, None, None, 4, group='b'),
    ...          ParamPlan('v', 1, .5, .05, .1, None, None, 4, group='a')]
    >>> [(g['group_name'], g['params']) for g in
    ...  reduce_as_original(plans, ['W', 'H', 'V'])]
    [('a', ['W', 'V']), ('b', ['H'])]
    """
    groups: Dict[str, dict] = {}
    for plan, param in zip(plans, params):
        group = groups.setdefault(plan.group, dict(
            weight_decay=plan.weight_decay, params=[], param_names=[],
            lr_scale=plan.lr_scale, group_name=plan.group, lr=plan.lr,
            layer_id=plan.layer_id))
        group['params'].append(param)
        group['param_names'].append(plan.name)
    return list(groups.values())


def reduce_param_groups(plans: Sequence[ParamPlan],
                        params: Sequence[Any],
                        merge_layers: bool = True) -> List[dict]:
    """Merge the plans (``params[i]`` belongs to ``plans[i]``) into groups
    carrying ``params``, ``param_names``, ``lr``, ``weight_decay``,
    ``layer_id``, ``lr_scale`` and ``group_name``, in
    :func:`group_sort_key` order.

    >>> from internvl_optim.core.param_plan import ParamPlan
    >>> plans = [ParamPlan('w', 1, .5, .05, .1, None, None, 4),
    ...          ParamPlan('b', 1, .5, .05, 0., 'bias', None, 2),
    ...          ParamPlan('v', 1, .5, .05, .1, None, None, 4),
    ...          ParamPlan('h', 2, 1., .1, .1, None, None, 4)]
    >>> [(g['group_name'], g['params']) for g in
    ...  reduce_param_groups(plans, ['W', 'B', 'V', 'H'])]
    [('layer_2_decay', ['H']), ('layer_1_decay', ['W', 'V']), ('layer_1_no_decay', ['B'])]
    """
    groups: Dict[Tuple, dict] = {}
    layers: Dict[Tuple, set] = {}
    first: Dict[Tuple, ParamPlan] = {}
    for plan, param in zip(plans, params):
        key = group_key(plan) + (() if merge_layers else (plan.layer_id,))
        if key not in groups:
            groups[key] = dict(params=[], param_names=[], lr=plan.lr,
                               weight_decay=plan.weight_decay,
                               layer_id=plan.layer_id,
                               lr_scale=plan.lr_scale,
                               group_name=group_name(plan))
            if plan.tower:
                groups[key]['tower'] = plan.tower
            if plan.algorithm is not None:
                groups[key]['algorithm'] = plan.algorithm.value
                if plan.matrix_view is not None:
                    groups[key]['matrix_view'] = plan.matrix_view.value
                    groups[key]['shapes'] = []
            layers[key], first[key] = set(), plan
        groups[key]['params'].append(param)
        groups[key]['param_names'].append(plan.name)
        if 'shapes' in groups[key]:
            groups[key]['shapes'].append(list(plan.shape))
        layers[key].add(plan.layer_id)
    for key, group in groups.items():
        if len(layers[key]) > 1:  # equal lr and weight decay across layers
            group['layer_id'] = max(layers[key])
            group['layer_ids'] = sorted(layers[key])
            group['group_name'] = group_name(first[key], layers[key])
    towers = list(dict.fromkeys(k[0] for k in groups))
    ordered = [groups[k] for k in sorted(
        groups, key=lambda k: (towers.index(k[0]) if k[0] else -1,
                               group_sort_key(k, groups[k]['layer_id'])))]
    # MMEngine logs the first group's lr as ``lr``: make it a base-lr one
    # (with towers the first tower may be decayed throughout)
    top = next((i for i, g in enumerate(ordered) if g['lr_scale'] == 1.0),
               0)
    return [ordered[top]] + ordered[:top] + ordered[top + 1:]
