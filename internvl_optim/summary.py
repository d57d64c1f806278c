"""One compact table of the parameter groups (one row per group)."""
from typing import List


def format_group_table(groups: List[dict], title: str = '') -> str:
    """Render groups as a fixed-width table with a totals line.

    Columns: group name, layer id, lr scale, lr, weight decay, number of
    tensors, number of parameters.
    """
    header = ('group', 'layer', 'lr_scale', 'lr', 'weight_decay', 'tensors',
              'params')
    rows = [(g['group_name'], str(g['layer_id']), f"{g['lr_scale']:.4g}",
             f"{g['lr']:.4e}", f"{g['weight_decay']:g}",
             str(len(g['params'])), f"{sum(p.numel() for p in g['params']):,}")
            for g in groups]
    total_tensors = sum(len(g['params']) for g in groups)
    total_params = sum(p.numel() for g in groups for p in g['params'])
    footer = ('total', '', '', '', '', str(total_tensors), f'{total_params:,}')
    widths = [max(len(r[i]) for r in [header, footer] + rows)
              for i in range(len(header))]

    def line(cells):
        return '  '.join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths)))

    rule = '-' * len(line(header))
    out = [title] if title else []
    out += [line(header), rule] + [line(r) for r in rows] + [rule, line(footer)]
    return '\n'.join(out)
