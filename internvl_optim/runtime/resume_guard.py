"""Refuse to load optimizer state into a different group layout.

PyTorch only compares group counts ("loaded state dict has a different
number of parameter groups") and, when the counts happen to match, loads
Adam moments into whichever parameters now sit at those positions.  Our
groups carry ``param_names``, so a resumed checkpoint is checked name by
name before anything is loaded; the error says which groups differ.  A
changed layout is loaded by name only where the schedulers are adapted
too: ``CheckpointTrustHook`` (MMEngine) or
:func:`internvl_optim.checkpoint.state_by_name.load_state_by_name`.
"""
import functools
from typing import List

HYPERPARAMETERS = ('layer_id', 'lr_scale', 'weight_decay')


def _describe(names: List[str]) -> str:
    more = f' and {len(names) - 3} more' if len(names) > 3 else ''
    return ', '.join(names[:3]) + more


def layout_differences(current: List[dict], saved: List[dict]) -> List[str]:
    """Human-readable differences between two lists of param groups."""
    def key(group, index):
        return group.get('group_name', f'group {index}')

    now = {key(g, i): (i, g) for i, g in enumerate(current)}
    then = {key(g, i): (i, g) for i, g in enumerate(saved)}
    problems = []
    only_then = [k for k in then if k not in now]
    only_now = [k for k in now if k not in then]
    if only_then:
        problems.append(f'groups only in the checkpoint: {_describe(only_then)}')
    if only_now:
        problems.append(f'groups only in the current model: '
                        f'{_describe(only_now)}')
    for name, (i, group) in now.items():
        if name not in then:
            continue
        j, old = then[name]
        if i != j:
            problems.append(f'{name}: position {j} in the checkpoint, {i} now')
        new_names = group.get('param_names')
        old_names = old.get('param_names')
        if new_names is not None and old_names is not None:
            if list(new_names) != list(old_names):
                gone = [n for n in old_names if n not in new_names]
                added = [n for n in new_names if n not in old_names]
                problems.append(
                    f'{name}: parameters differ (checkpoint {len(old_names)}, '
                    f'now {len(new_names)}; only in checkpoint: '
                    f'{_describe(gone) or "-"}; only now: '
                    f'{_describe(added) or "-"}; or their order changed)')
        elif len(group['params']) != len(old['params']):
            problems.append(f'{name}: {len(old["params"])} parameters in the '
                            f'checkpoint, {len(group["params"])} now')
        for hyper in HYPERPARAMETERS:
            if hyper in group and hyper in old and group[hyper] != old[hyper]:
                problems.append(f'{name}: {hyper} {old[hyper]} in the '
                                f'checkpoint, {group[hyper]} now')
    return problems


def check_optimizer_state(optimizer, state_dict) -> None:
    """Raise ``ValueError`` unless ``state_dict`` fits ``optimizer``."""
    if not state_dict or 'param_groups' not in state_dict:
        raise ValueError(
            'The checkpoint holds no optimizer state (empty state dict). A '
            'ZeroRedundancyOptimizer checkpoint must be consolidated before '
            'saving: MMEngine\'s ZeroRedundancyOptimizer.state_dict() does it '
            'and saves from rank 0; with plain PyTorch call '
            'consolidate_state_dict(to=0) and save state_dict() on rank 0')
    problems = layout_differences(optimizer.param_groups,
                                  state_dict['param_groups'])
    if problems:
        raise ValueError(
            'Cannot resume: the optimizer state in the checkpoint was saved '
            'for a different parameter-group layout (changed num_layers, '
            'layer_decay_rate, freezing or custom keys?). Loading it would '
            'put Adam moments on the wrong parameters. Differences:\n  - '
            + '\n  - '.join(problems[:10])
            + ('' if len(problems) <= 10 else
               f'\n  ... and {len(problems) - 10} more')
            + '\nTo carry the state over by parameter name instead (each '
            'parameter keeps its moments whatever group it now sits in): '
            'with MMEngine, add CheckpointTrustHook (tools/train.py adds '
            'it); in plain PyTorch, internvl_optim.checkpoint.state_by_name.'
            'load_state_by_name(optimizer, state_dict, schedulers, '
            'scheduler_states). Or start from the weights only '
            '(load_from=CHECKPOINT, resume=False), or restore the old '
            'settings.')


def guard_load_state_dict(optimizer) -> None:
    """Make ``optimizer.load_state_dict`` check the layout first (also for
    ZeroRedundancyOptimizer, whose own loading indexes parameters before
    PyTorch's load hooks would run)."""
    original = optimizer.load_state_dict
    if getattr(original, '_internvl_optim_guarded', False):
        return  # idempotent

    @functools.wraps(original)
    def load_state_dict(state_dict):
        check_optimizer_state(optimizer, state_dict)
        return original(state_dict)

    load_state_dict._internvl_optim_guarded = True
    optimizer.load_state_dict = load_state_dict
