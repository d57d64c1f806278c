"""Small helpers shared by the tests."""


def lr_wd_by_name(groups):
    """{parameter name: (lr, weight_decay)} from param groups; fails if a
    name appears twice."""
    out = {}
    for group in groups:
        assert len(group['param_names']) == len(group['params'])
        for name in group['param_names']:
            assert name not in out, f'{name} in two groups'
            out[name] = (group['lr'], group['weight_decay'])
    return out


def layer_by_name(groups):
    return {n: g['layer_id'] for g in groups for n in g['param_names']}


def run_leaving_together(main, *args):
    """Run a torchrun script's ``main(*args)``, then leave the process group
    on all ranks together: a rank that exits alone can abort gloo's
    teardown ("terminate called without an active exception")."""
    import torch.distributed as dist
    try:
        main(*args)
    finally:
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def load_tool(name: str = 'analyze_param_groups'):
    """``tools/NAME.py`` as a module (its ``main`` can then be called)."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                        'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def build_plan(model, lr=1.0, weight_decay=0.05, warn=None, **paramwise):
    """The core's ``GroupPlan`` for ``model`` from ``paramwise_cfg`` keys:
    the one way the tests call ``build_param_groups`` (files bind their
    defaults with ``functools.partial``)."""
    from internvl_optim import LayerDecaySettings, build_param_groups
    return build_param_groups(
        model, LayerDecaySettings.from_paramwise_cfg(paramwise), lr,
        weight_decay, warn=warn or (lambda msg: None))


def with_head(backbone):
    """``backbone`` as the ``backbone`` of a model with a linear ``head``
    (what a segmentor or classifier looks like to the rules)."""
    from torch import nn
    model = nn.Module()
    model.backbone = backbone
    model.head = nn.Linear(2, 2)
    return model
