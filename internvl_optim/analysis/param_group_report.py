"""Inspect the parameter groups an optimizer was built with: one row per
group, totals, a per-parameter plan (JSON) and warnings for what looks wrong.

Works on any MMEngine optimizer's ``param_groups`` (ours or MMSeg's
constructor), given the model they were built from.
"""
import json
import re
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

from torch import nn

from ..core.names import (clean_named_modules, is_token_or_position,
                          relative_name, strip_wrapper_prefixes)
from .group_table import halves_line, render_table
from ..core.param_plan import Placement
from ..core.weight_decay import is_norm_module, parameter_owners

_LAYER_IN_NAME = re.compile(r'layer_(\d+)_')


@dataclass
class ParamRow:
    name: str
    group: int
    layer_id: Optional[int]
    lr: float
    lr_scale: float
    weight_decay: float
    shape: List[int]
    numel: int
    in_backbone: bool
    #: from our constructor's plan: the rule that placed it, and why it has
    #: no weight decay (empty with other constructors)
    placed_by: str = ''
    no_decay_reason: Optional[str] = None
    #: a backbone parameter no rule claimed (at the heads' layer)
    unclaimed: bool = False
    #: its update in a hybrid optimizer (None otherwise)
    algorithm: Optional[str] = None


@dataclass
class GroupRow:
    index: int
    name: str
    layer_id: Optional[int]
    lr_scale: float
    lr: float
    weight_decay: float
    tensors: int
    params: int
    #: the ``paramwise_cfg.towers`` entry (None without towers)
    tower: Optional[str] = None
    #: the group's update in a hybrid optimizer (None otherwise)
    algorithm: Optional[str] = None


def _layer_id(group: dict) -> Optional[int]:
    if 'layer_id' in group:
        return group['layer_id']
    match = _LAYER_IN_NAME.match(str(group.get('group_name', '')))
    return int(match.group(1)) if match else None


def analyze(model: nn.Module, param_groups: List[dict], base_lr: float,
            backbone_name: str = 'backbone',
            base_weight_decay: Optional[float] = None,
            settings: Optional[Dict] = None, plans=()) -> Dict:
    """Rows per group and per parameter, frozen parameters and warnings.

    ``base_weight_decay`` 0 means no weight is expected to decay (no
    warning about weights without it); ``settings`` (rule, num_layers,
    layer_decay_rate, base lr, weight decay) is shown above the table;
    ``plans`` (our constructor's ``ParamPlan`` list) add, per parameter, the
    rule that placed it and why it has no weight decay."""
    planned = {plan.name: plan for plan in plans}
    names = {id(p): strip_wrapper_prefixes(n)
             for n, p in model.named_parameters()}
    modules = clean_named_modules(model)
    owners = parameter_owners(modules)
    prefix = backbone_name if backbone_name in modules else ''
    groups, params = [], []
    for index, group in enumerate(param_groups):
        layer_id = _layer_id(group)
        lr_scale = group['lr'] / base_lr if base_lr else 1.0
        groups.append(GroupRow(
            index, str(group.get('group_name', f'group_{index}')), layer_id,
            lr_scale, group['lr'], group.get('weight_decay', 0.0),
            len(group['params']), sum(p.numel() for p in group['params']),
            group.get('tower'), group.get('algorithm')))
        for p in group['params']:
            name = names.get(id(p), '?')
            params.append(ParamRow(
                name, index, layer_id, group['lr'], lr_scale,
                group.get('weight_decay', 0.0), list(p.shape), p.numel(),
                (prefix != '' and relative_name(name, prefix) is not None)
                or getattr(planned.get(name), 'tower', None) is not None,
                getattr(planned.get(name), 'placed_by', ''),
                getattr(planned.get(name), 'no_decay_reason', None),
                getattr(planned.get(name), 'placement', None)
                is Placement.UNCLAIMED, group.get('algorithm')))
    in_groups = {row.name for row in params}
    frozen = [n for n, p in model.named_parameters()
              if not p.requires_grad]
    frozen = [strip_wrapper_prefixes(n) for n in frozen]
    missing = [n for n in names.values()
               if n not in in_groups and n not in set(frozen)]
    warnings = find_warnings(params, frozen, missing, owners, backbone_name,
                             base_weight_decay)
    unclaimed = [r.name for r in params
                 if r.unclaimed]
    if unclaimed:
        warnings.append(f'{len(unclaimed)} backbone parameters are claimed '
                        'by no layer rule and get the heads\' layer: '
                        f'{_examples(unclaimed)}')
    return dict(groups=groups, params=params, frozen=frozen,
                settings=settings or {}, warnings=warnings)


def _examples(names: List[str], limit: int = 3) -> str:
    more = f' and {len(names) - limit} more' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def _prefixes(names: List[str], depth: int = 2) -> List[str]:
    seen = []
    for name in names:
        head = '.'.join(name.split('.')[:depth])
        if head not in seen:
            seen.append(head)
    return seen


def find_warnings(params: List[ParamRow], frozen: List[str],
                  missing: List[str], owners, backbone_name,
                  base_weight_decay: Optional[float] = None) -> List[str]:
    warnings = []
    # with layer ids (our constructor), a head below the heads' layer is
    # layer decay gone wrong; a deliberate multiplier (custom key,
    # dino_head) is not.  Without them, any lr below the base lr.
    top = max((r.layer_id for r in params if r.layer_id is not None),
              default=None)
    decayed_head = [r.name for r in params if not r.in_backbone and (
        r.layer_id < top if r.layer_id is not None
        else r.lr_scale < 1 - 1e-12)]
    if decayed_head:
        warnings.append(f'{len(decayed_head)} parameters outside the '
                        f'backbone get a decayed lr (< base lr): '
                        f'{_examples(decayed_head)}')
    no_wd_weights = [] if base_weight_decay == 0 else [
        r.name for r in params
        if len(r.shape) >= 2 and r.weight_decay == 0
        and not is_norm_module(owners.get(r.name, nn.Identity()))
        and not is_token_or_position(r.name.rsplit('.', 1)[-1])
    ]
    if no_wd_weights:
        warnings.append(f'{len(no_wd_weights)} weights with >= 2 dimensions '
                        f'get no weight decay: {_examples(no_wd_weights)}')
    if missing:
        warnings.append(f'{len(missing)} trainable parameters are in no '
                        f'group (not optimized): {_examples(missing)}')
    if frozen:
        warnings.append(f'{len(frozen)} frozen parameter tensors, in: '
                        f'{_examples(_prefixes(frozen), 6)}')
    return warnings


def format_report(report: Dict) -> str:
    """The table (one row per group), totals and warnings as text."""
    header = ('#', 'group', 'layer', 'lr_scale', 'lr', 'weight_decay',
              'tensors', 'params')
    rows = [(str(g.index), g.name, '-' if g.layer_id is None else
             str(g.layer_id), f'{g.lr_scale:.4g}', f'{g.lr:.4e}',
             f'{g.weight_decay:g}', str(g.tensors), f'{g.params:,}')
            for g in report['groups']]
    total = ('', 'total', '', '', '', '',
             str(sum(g.tensors for g in report['groups'])),
             f"{sum(g.params for g in report['groups']):,}")
    hybrid = any(g.algorithm for g in report['groups'])
    if hybrid:  # each group's update, and the halves' totals
        header += ('update', )
        rows = [row + (g.algorithm or '-', )
                for row, g in zip(rows, report['groups'])]
        total += ('', )
    out = [describe_settings(report.get('settings') or {})]
    out += render_table(header, rows, total, text_column=1)
    if hybrid:
        out.append(halves_line((g.algorithm, g.tensors, g.params)
                               for g in report['groups']))
    frozen = report['frozen']
    out.append(f'frozen: {len(frozen)} tensors')
    out += [f'WARNING: {w}' for w in report['warnings']] or [
        'no warnings']
    return '\n'.join(out)


def format_compact(report: Dict) -> str:
    """One row per layer: what it holds, its lr, the parameters with and
    without weight decay; then the warnings."""
    from .group_table import layer_part
    settings = report.get('settings') or {}
    n = settings.get('num_layers')
    layers: Dict = {}
    towers = dict(settings.get('towers') or [])
    for g in report['groups']:
        entry = layers.setdefault((g.tower, g.layer_id),
                                  dict(lr=g.lr, decay=0, no_decay=0, wd=0.0))
        entry['decay' if g.weight_decay else 'no_decay'] += g.params
        entry['lr'] = max(entry['lr'], g.lr)
        entry['wd'] = max(entry['wd'], g.weight_decay)
    header = ('tower', 'layer', 'part', 'lr', 'weight_decay', 'decayed',
              'not decayed') if towers else (
        'layer', 'part', 'lr', 'weight_decay', 'decayed', 'not decayed')
    order = list(dict.fromkeys(t for t, _ in layers))
    keys = sorted(layers, key=lambda k: (order.index(k[0]), k[1] is None,
                                         k[1] or 0))
    rows = [((k[0] or '-', ) if towers else ()) + (
        '-' if k[1] is None else str(k[1]),
        layer_part(k[1], towers.get(k[0], n), settings.get('units', False)),
        f"{layers[k]['lr']:.4e}", f"{layers[k]['wd']:g}",
        f"{layers[k]['decay']:,}", f"{layers[k]['no_decay']:,}")
        for k in keys]
    total = (('total', '') if towers else ('total', )) + ('', '', '',
             f"{sum(v['decay'] for v in layers.values()):,}",
             f"{sum(v['no_decay'] for v in layers.values()):,}")
    out = [describe_settings(settings)]
    out += render_table(header, rows, total,
                        text_column=2 if towers else 1)
    out.append(f"frozen: {len(report['frozen'])} tensors")
    out += [f'WARNING: {w}' for w in report['warnings']] or ['no warnings']
    return '\n'.join(out)


def describe_settings(settings: Dict) -> str:
    """One line: the layer rule and the numbers the groups came from."""
    if 'layer_rule' not in settings:
        return (f"constructor: {settings.get('constructor', 'default')}, "
                f"base lr {settings.get('base_lr', 0):g}, weight decay "
                f"{settings.get('weight_decay', 0):g}")
    n, rate = settings['num_layers'], settings.get(
        'rate_applied', settings['layer_decay_rate'])
    given = settings.get('given_as') or \
        f"layer_decay_rate={settings['layer_decay_rate']}"
    carried = settings.get('given_as') and not settings['given_as'].endswith(
        f"={settings['layer_decay_rate']}")
    first = (f" ({f'rate {rate:.4g} between layers; ' if carried else ''}"
             f"first block lr {settings['base_lr'] * rate ** n:.4e})"
             if n and rate != 1.0 else '')
    return (f"layer rule: {settings['layer_rule']}, num_layers={n}, "
            f"{given}{first}, base lr {settings['base_lr']:g}, weight decay "
            f"{settings['weight_decay']:g}")


def rate_given_as(settings) -> str:
    """How the rate was given, as the user wrote it."""
    return settings.rate_given_as()


def write_json(report: Dict, path: str) -> None:
    with open(path, 'w') as f:
        json.dump(dict(groups=[asdict(g) for g in report['groups']],
                       params=[asdict(p) for p in report['params']],
                       frozen=report['frozen'],
                       settings=report.get('settings', {}),
                       warnings=report['warnings'],
                       config=report.get('config'),
                       memory_per_rank=report.get('memory', [])), f,
                  indent=1)


def write_plot(report: Dict, path: str, title: str = '') -> None:
    """PNG: lr per layer (log scale, 0 = embeddings and N + 1 = heads
    marked), weight decay per layer, and parameters per layer, decay and
    no-decay apart; titled with ``title`` and the layer rule."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    by_layer: Dict[int, Dict] = {}
    for i, g in enumerate(report['groups']):
        layer = g.layer_id if g.layer_id is not None else i
        entry = by_layer.setdefault(layer, dict(lr=g.lr, decay=0, no_decay=0,
                                                wd=0.0))
        entry['decay' if g.weight_decay else 'no_decay'] += g.params
        entry['lr'] = max(entry['lr'], g.lr)
        entry['wd'] = max(entry['wd'], g.weight_decay)
    layers = sorted(by_layer)
    memory = report.get('memory') or []
    fig = plt.figure(figsize=(9, 10 if memory else 8))
    grid = fig.add_gridspec(4 if memory else 3, 1,
                            height_ratios=[3, 1, 2, 2][:4 if memory else 3])
    ax_lr = fig.add_subplot(grid[0])
    ax_wd = fig.add_subplot(grid[1], sharex=ax_lr)
    ax_n = fig.add_subplot(grid[2], sharex=ax_lr)
    ax_lr.semilogy(layers, [by_layer[k]['lr'] for k in layers], 'o-')
    ax_lr.set_ylabel('lr (log)')
    settings = report.get('settings') or {}
    ax_lr.set_title('\n'.join(t for t in (title, describe_settings(settings))
                              if t), fontsize=8)
    n = settings.get('num_layers')
    if n is not None:
        for x, label, align in ((0, 'embeddings', 'left'),
                                (n + 1, 'heads', 'right')):
            ax_lr.axvline(x, color='grey', linestyle=':')
            ax_lr.annotate(label, (x, ax_lr.get_ylim()[1]), fontsize=7,
                           ha=align, va='top')
    ax_wd.step(layers, [by_layer[k]['wd'] for k in layers], where='mid')
    ax_wd.set_ylabel('weight decay\n(decayed groups)')
    decay = [by_layer[k]['decay'] for k in layers]
    no_decay = [by_layer[k]['no_decay'] for k in layers]
    ax_n.bar([k - 0.2 for k in layers], decay, width=0.4,
             label='weight decay')
    ax_n.bar([k + 0.2 for k in layers], no_decay, width=0.4,
             label='no weight decay')
    ax_n.set_yscale('symlog')
    ax_n.set_xlabel('layer id')
    ax_n.set_ylabel('parameters')
    ax_n.legend(loc='upper center', bbox_to_anchor=(0.5, -0.25), ncol=2,
                fontsize=7)
    if memory:
        ax_mem = fig.add_subplot(grid[3])
        sizes = [str(r['world_size']) for r in memory]
        bottom = [0.0] * len(memory)
        for part in ('parameters', 'gradients', 'optimizer'):
            values = [r[part] / 2**30 for r in memory]
            ax_mem.bar(sizes, values, bottom=bottom, label=part)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax_mem.set_xlabel('ranks')
        ax_mem.set_ylabel('GiB per rank')
        ax_mem.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
