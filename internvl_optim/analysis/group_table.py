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


def format_group_table(groups: List[dict], title: str = '') -> str:
    """One row per param group (name, layer id, lr scale, lr, weight decay,
    tensors, parameters) and a totals line."""
    header = ('group', 'layer', 'lr_scale', 'lr', 'weight_decay', 'tensors',
              'params')
    rows = [(g['group_name'], str(g['layer_id']), f"{g['lr_scale']:.4g}",
             f"{g['lr']:.4e}", f"{g['weight_decay']:g}",
             str(len(g['params'])), f"{sum(p.numel() for p in g['params']):,}")
            for g in groups]
    total_tensors = sum(len(g['params']) for g in groups)
    total_params = sum(p.numel() for g in groups for p in g['params'])
    footer = ('total', '', '', '', '', str(total_tensors), f'{total_params:,}')
    return '\n'.join(([title] if title else []) +
                     render_table(header, rows, footer))
