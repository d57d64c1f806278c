"""The lr of every layer over iterations, as the run will apply it: the
config's parameter schedulers stepped on the built groups, times the phase
factor of each group (:mod:`internvl_optim.core.phase_schedule`).  Used by
``tools/analyze_param_groups.py --plot-schedule``; no training happens."""
from typing import Dict, List, Sequence, Tuple

from ..core.phase_schedule import group_factors

#: schedulers that only count steps for the phases (applied here directly)
PHASE_SCHEDULERS = ('LayerPhaseScheduler', )


def lr_over_time(optim_wrapper, scheduler_cfgs: Sequence[dict], iters: int,
                 build) -> Tuple[List[int], Dict[int, List[float]],
                                 List[str]]:
    """``(iterations, {layer id: [effective lr per iteration]}, notes)``.

    ``build(cfg)`` builds one MMEngine scheduler on ``optim_wrapper``
    (whose groups' lrs it changes: call this last).  Epoch-based
    schedulers are left out (named in ``notes``); a layer's lr is the
    largest of its groups'."""
    notes, schedulers = [], []
    for i, cfg in enumerate(scheduler_cfgs or []):
        kind = cfg.get('type')
        if kind in PHASE_SCHEDULERS:
            continue
        if cfg.get('by_epoch', True):
            notes.append(f'param_scheduler[{i}] ({kind}) is by epoch: left '
                         'out of the plot')
            continue
        schedulers.append(build(dict(cfg)))
    groups = optim_wrapper.optimizer.param_groups \
        if hasattr(optim_wrapper, 'optimizer') else optim_wrapper.param_groups
    steps = list(range(iters))
    by_layer: Dict[int, List[float]] = {}
    for step in steps:
        factors = group_factors(groups, step)
        now: Dict[int, float] = {}
        for group, factor in zip(groups, factors):
            layer = group.get('layer_id', 0)
            now[layer] = max(now.get(layer, 0.0), group['lr'] * factor)
        for layer, lr in now.items():
            by_layer.setdefault(layer, []).append(lr)
        for scheduler in schedulers:
            scheduler.step()
    return steps, by_layer, notes


def write_schedule_plot(steps, by_layer, path: str, title: str = '') -> None:
    """PNG: one line per layer, lr over iterations."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    top = max(by_layer)
    for layer in sorted(by_layer, reverse=True):
        label = ('heads' if layer == top else 'embeddings' if layer == 0
                 else f'layer {layer}')
        ax.plot(steps, by_layer[layer], label=label)
    ax.set_xlabel('iteration')
    ax.set_ylabel('lr applied')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
