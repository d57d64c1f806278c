"""Fixed-width tables: the constructor's one-row-per-group log and the
analysis tool's report share this renderer."""
from typing import List, Sequence


def render_table(header: Sequence[str], rows: List[Sequence[str]],
                 footer: Sequence[str], text_column: int = 0) -> List[str]:
    """Lines of a table: header, rule, rows, rule, footer.  Column
    ``text_column`` is left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, footer, *rows])
              for i in range(len(header))]

    def line(cells):
        return '  '.join(
            c.ljust(w) if i == text_column else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths)))

    rule = '-' * len(line(header))
    return [line(header), rule, *map(line, rows), rule, line(footer)]


def layer_part(layer_id, num_layers, units: bool = False) -> str:
    """What a layer id holds: ``embeddings`` (0), ``block i`` (i + 1),
    ``heads, necks`` (N + 1); with ``units`` (the module-order rule of
    CNNs) ``unit 0 (stem)`` and ``unit i`` instead.

    >>> [layer_part(i, 2) for i in range(4)]
    ['embeddings', 'block 0', 'block 1', 'heads, necks']
    >>> [layer_part(i, 2, units=True) for i in range(4)]
    ['unit 0 (stem)', 'unit 1', 'unit 2', 'heads, necks']
    """
    if num_layers is None or not isinstance(layer_id, int):
        return ''
    if layer_id == num_layers + 1:
        return 'heads, necks'
    if units:
        return 'unit 0 (stem)' if layer_id == 0 else f'unit {layer_id}'
    if layer_id == 0:
        return 'embeddings'
    return f'block {layer_id - 1}'


def format_group_table(groups: List[dict], title: str = '',
                       num_layers=None, tower_layers=None,
                       units: bool = False) -> str:
    """One row per param group (name, layer id, lr scale, lr, weight decay,
    tensors, parameters, and with ``num_layers`` what the layer holds; with
    towers, ``tower_layers`` gives each tower's) and a totals line."""
    header = ('group', 'layer', 'lr_scale', 'lr', 'weight_decay', 'tensors',
              'params') + (('part', ) if num_layers is not None else ())
    def part(g):
        n = (tower_layers or {}).get(g.get('tower'), num_layers)
        ids = g.get('layer_ids') or [g['layer_id']]
        if len(ids) == 1:
            return layer_part(ids[0], n, units)
        return (f'{layer_part(ids[0], n, units)} .. '
                f'{layer_part(ids[-1], n, units)} ({len(ids)} layers)')

    def layer(g):
        ids = g.get('layer_ids') or [g['layer_id']]
        return str(ids[0]) if len(ids) == 1 else f'{ids[0]}-{ids[-1]}'

    rows = [(g['group_name'], layer(g), f"{g['lr_scale']:.4g}",
             f"{g['lr']:.4e}", f"{g['weight_decay']:g}",
             str(len(g['params'])), f"{sum(p.numel() for p in g['params']):,}")
            + ((part(g), ) if num_layers is not None else ())
            for g in groups]
    hybrid = any('algorithm' in g for g in groups)
    if hybrid:  # a column saying each group's update
        header += ('update', )
        rows = [row + (_update(g), ) for row, g in zip(rows, groups)]
    total_tensors = sum(len(g['params']) for g in groups)
    total_params = sum(p.numel() for g in groups for p in g['params'])
    footer = ('total', '', '', '', '', str(total_tensors), f'{total_params:,}'
              ) + (('', ) if num_layers is not None else ()) + (
                  ('', ) if hybrid else ())
    lines = ([title] if title else []) + render_table(header, rows, footer)
    if hybrid:
        lines.append(algorithm_totals(groups))
    return '\n'.join(lines)


def _update(group: dict) -> str:
    view = group.get('matrix_view')
    return group['algorithm'] + (f' ({view})' if view not in (None, 'whole')
                                 else '')


def algorithm_totals(groups: List[dict]) -> str:
    """``Muon: T tensors, E elements; AdamW: ...``: the two halves of a
    hybrid optimizer."""
    return halves_line((g.get('algorithm'), len(g['params']),
                        sum(p.numel() for p in g['params'])) for g in groups)


def halves_line(rows) -> str:
    """The halves' line from ``(algorithm, tensors, elements)`` rows."""
    totals = {'muon': [0, 0], 'adamw': [0, 0]}
    for algorithm, tensors, elements in rows:
        if algorithm in totals:
            totals[algorithm][0] += tensors
            totals[algorithm][1] += elements
    return '; '.join(f'{label}: {totals[key][0]} tensors, '
                     f'{totals[key][1]:,} elements'
                     for key, label in (('muon', 'Muon'), ('adamw', 'AdamW')))
