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
