"""A resume after switching the optimizer, by parameter name: each
parameter keeps the saved state its new update understands (AdamW's
``step``, ``exp_avg``, ``exp_avg_sq``; Muon's and SGD's
``momentum_buffer``) and starts fresh otherwise, named in the change
table; no KeyError at the first step.  AdamW -> MuonAdamW keeps the moments
of the parameters that stay on AdamW; MuonAdamW -> AdamW keeps those of the
AdamW half; AdamW -> SGD with momentum and AdamW -> AdamW(amsgrad) start
fresh."""
import copy

import torch

from internvl_optim import param_groups
from internvl_optim.checkpoint.state_by_name import load_state_by_name
from internvl_optim.optim import MuonAdamW

from toy_models import ToyInternViT, ToySegmentor


def model():
    torch.manual_seed(0)
    return ToySegmentor(ToyInternViT(depth=2))


def trained(optimizer, m, steps=2):
    for step in range(steps):
        torch.manual_seed(step)
        for p in m.parameters():
            p.grad = torch.randn_like(p)
        optimizer.step()
    return copy.deepcopy(optimizer.state_dict())


def state_by_name(optimizer):
    return {n: optimizer.state[p] for g in optimizer.param_groups
            for n, p in zip(g['param_names'], g['params'])
            if optimizer.state[p]}


def groups(m, **kw):
    return param_groups(m, lr=1e-3, weight_decay=0.05, layer_decay_rate=0.5,
                        **kw)


def test_adamw_to_the_hybrid_keeps_the_adamw_half():
    m = model()
    adamw = torch.optim.AdamW(groups(m))
    saved = trained(adamw, m)
    saved_by_name = {n: {k: v.clone() for k, v in s.items()}
                     for n, s in state_by_name(adamw).items()}
    hybrid = MuonAdamW(groups(m, muon=True), lr=1e-3)
    tables = []
    match = load_state_by_name(hybrid, saved, warn=tables.append)
    now = state_by_name(hybrid)
    updates = {n: g['algorithm'] for g in hybrid.param_groups
               for n in g['param_names']}
    kept = sorted(n for n, u in updates.items() if u == 'adamw')
    fresh = sorted(n for n, u in updates.items() if u == 'muon')
    assert sorted(now) == kept
    for name in kept:
        assert torch.equal(now[name]['exp_avg'],
                           saved_by_name[name]['exp_avg'])
        assert now[name]['step'] == 2
    assert sorted(n for n, _, _ in match.restarted) == fresh
    assert sorted(match.kept) == kept
    # every group gained its update in the name: the kept ones moved, the
    # restarted ones are counted apart only
    assert sorted(n for n, _, _ in match.moved) == kept
    assert f'parameters: {len(kept)} keep their state ({len(kept)} in ' \
        'another group)' in tables[0]
    assert {(f, u) for _, f, u in match.restarted} == {
        ('exp_avg+exp_avg_sq+step', 'muon')}
    assert f'  {len(fresh)} start fresh for their new update ' \
        f'({len(fresh)} with exp_avg+exp_avg_sq+step now muon): ' in tables[0]
    trained(hybrid, m, 1)  # the first step runs
    assert set(state_by_name(hybrid)[fresh[0]]) == {'momentum_buffer'}


def test_the_hybrid_back_to_adamw_keeps_the_adamw_half():
    m = model()
    hybrid = MuonAdamW(groups(m, muon=True), lr=1e-3)
    saved = trained(hybrid, m)
    muon = {n for g in hybrid.param_groups if g['algorithm'] == 'muon'
            for n in g['param_names']}
    adamw = torch.optim.AdamW(groups(m))
    match = load_state_by_name(adamw, saved, warn=lambda msg: None)
    assert {n for n, _, _ in match.restarted} == muon
    assert {n for n in state_by_name(adamw)} == \
        {n for g in hybrid.param_groups if g['algorithm'] == 'adamw'
         for n in g['param_names']}
    trained(adamw, m, 1)


def test_adamw_to_sgd_and_to_amsgrad_start_fresh_without_a_key_error():
    for build, line in (
            (lambda g: torch.optim.SGD(g, momentum=0.9),
             'the optimizer changed: its per-parameter state and '
             'hyperparameters are not the saved ones'),
            (lambda g: torch.optim.AdamW(g, amsgrad=True),
             'layer_3_decay: amsgrad False -> True')):
        m = model()
        saved = trained(torch.optim.AdamW(groups(m)), m)
        optimizer = build(groups(m))  # the same groups, another optimizer
        tables = []
        match = load_state_by_name(optimizer, saved, warn=tables.append)
        assert line in tables[0]
        assert 'start fresh for their new update' in tables[0]
        assert len(match.restarted) == sum(len(g['params'])
                                           for g in optimizer.param_groups)
        trained(optimizer, m, 1)  # (KeyError: 'momentum' / 'max_exp_avg_sq')
