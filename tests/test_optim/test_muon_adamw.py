"""``MuonAdamW`` against the optimizers it combines, built by hand on the
same split: ``torch.optim.Muon`` (torch 2.13) on the groups the plan marks
``muon``, ``torch.optim.AdamW`` on the others, each group at its planned lr
and weight decay; equal per parameter, bit for bit, after several steps.
Convolution kernels (flattened) and stacked experts (one matrix each) are
held against ``torch.optim.Muon`` on the same matrices taken apart."""
import copy

import pytest
import torch
from torch import nn

from internvl_optim import param_groups
from internvl_optim.optim import MuonAdamW
from internvl_optim.optim import muon_adamw

from toy_models import ToyInternViT, ToySegmentor

STEPS = 3


def model():
    torch.manual_seed(0)
    return ToySegmentor(ToyInternViT(depth=2))


def gradients(m, step):
    torch.manual_seed(100 + step)
    for p in m.parameters():
        p.grad = torch.randn_like(p)


def by_hand(m, groups, muon_kw, adamw_kw, scale=1.0):
    """torch.optim.Muon + torch.optim.AdamW on ``m``'s parameters, split
    and set as ``groups`` (the planned groups of an identical model)."""
    named = dict(m.named_parameters())
    muon, adamw = [], []
    for g in groups:
        params = [named[n] for n in g['param_names']]
        entry = dict(params=params, lr=g['lr'] * (scale if g['algorithm']
                                                  == 'muon' else 1.0),
                     weight_decay=g['weight_decay'])
        (muon if g['algorithm'] == 'muon' else adamw).append(entry)
    return (torch.optim.Muon(muon, **muon_kw),
            torch.optim.AdamW(adamw, **adamw_kw))


@pytest.mark.parametrize('adjust_lr_fn, muon_lr', [
    ('match_rms_adamw', None), ('original', 0.02)])
def test_equal_to_muon_and_adamw_built_by_hand(adjust_lr_fn, muon_lr):
    ours_model, hand_model = model(), model()
    groups = param_groups(ours_model, lr=1e-3, weight_decay=0.05,
                          layer_decay_rate=0.5, muon=dict(conv='adamw'))
    planned = [dict(g) for g in groups]  # (the optimizer owns the groups)
    ours = MuonAdamW(groups, lr=1e-3, adjust_lr_fn=adjust_lr_fn,
                     muon_lr=muon_lr)
    hand = by_hand(hand_model, planned,
                   dict(adjust_lr_fn=adjust_lr_fn, momentum=0.95,
                        nesterov=True),
                   dict(betas=(0.9, 0.999), eps=1e-8),
                   scale=1.0 if muon_lr is None else muon_lr / 1e-3)
    assert {g['algorithm'] for g in groups} == {'muon', 'adamw'}
    for step in range(STEPS):
        gradients(ours_model, step)
        gradients(hand_model, step)
        ours.step()
        for optimizer in hand:
            optimizer.step()
    hand_params = dict(hand_model.named_parameters())
    for name, p in ours_model.named_parameters():
        assert torch.equal(p, hand_params[name]), name
    # and the model moved
    assert not torch.equal(ours_model.backbone.blocks[0].attn.qkv.weight,
                           model().backbone.blocks[0].attn.qkv.weight)


def one_group(param, view, lr=0.1, wd=0.05):
    return MuonAdamW([dict(params=[param], lr=lr, weight_decay=wd,
                           algorithm='muon', matrix_view=view,
                           shapes=[list(param.shape)])], lr=lr)


def test_a_conv_kernel_is_orthogonalized_flattened():
    torch.manual_seed(1)
    kernel = nn.Parameter(torch.randn(6, 3, 3, 3))
    flat = nn.Parameter(kernel.detach().reshape(6, -1).clone())
    ours = one_group(kernel, 'flatten')
    hand = torch.optim.Muon([flat], lr=0.1, weight_decay=0.05,
                            adjust_lr_fn='match_rms_adamw')
    for step in range(STEPS):
        torch.manual_seed(step)
        kernel.grad = torch.randn_like(kernel)
        flat.grad = kernel.grad.reshape(6, -1).clone()
        ours.step()
        hand.step()
    assert torch.equal(kernel.detach().reshape(6, -1), flat.detach())


def test_stacked_experts_are_orthogonalized_one_by_one():
    torch.manual_seed(2)
    experts = nn.Parameter(torch.randn(4, 8, 5))
    apart = [nn.Parameter(e.detach().clone()) for e in experts]
    ours = one_group(experts, 'per_matrix')
    hand = torch.optim.Muon(apart, lr=0.1, weight_decay=0.05,
                            adjust_lr_fn='match_rms_adamw')
    for step in range(STEPS):
        torch.manual_seed(step)
        experts.grad = torch.randn_like(experts)
        for e, g in zip(apart, experts.grad):
            e.grad = g.clone()
        ours.step()
        hand.step()
    assert torch.equal(experts.detach(), torch.stack([e.detach()
                                                      for e in apart]))
    # never as one flattened (32, 5) matrix
    flat = nn.Parameter(torch.randn(4, 8, 5))
    assert not torch.equal(experts.detach(), flat)


def test_one_orthogonalization_per_optimizer_step(monkeypatch):
    """MMEngine's OptimWrapper with accumulative_counts=4 steps once per
    four backward passes: Newton-Schulz runs once per Muon matrix per
    step."""
    from mmengine.optim import OptimWrapper
    calls = []
    real = muon_adamw.newton_schulz
    monkeypatch.setattr(muon_adamw, 'newton_schulz',
                        lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    m = nn.Module()
    m.blocks = nn.Sequential(*(nn.Linear(4, 4) for _ in range(3)))
    m.head = nn.Linear(4, 2)
    groups = param_groups(m, lr=1e-3, weight_decay=0.05,
                          layer_decay_rate=0.5, muon=True)
    matrices = sum(len(g['params']) for g in groups
                   if g['algorithm'] == 'muon')
    assert matrices == 3  # the blocks' weights; the head is the output
    wrapper = OptimWrapper(MuonAdamW(groups, lr=1e-3),
                           accumulative_counts=4)
    for _ in range(8):
        wrapper.update_params(m.head(m.blocks(torch.randn(2, 4))).pow(2)
                              .mean())
    assert len(calls) == 2 * matrices


def test_resume_is_bit_identical():
    full_model, split_model = model(), model()
    def build(m):
        return MuonAdamW(param_groups(m, lr=1e-3, weight_decay=0.05,
                                      layer_decay_rate=0.5, muon=True),
                         lr=1e-3)
    full, split = build(full_model), build(split_model)
    for step in range(4):
        gradients(full_model, step)
        full.step()
    for step in range(2):
        gradients(split_model, step)
        split.step()
    state = copy.deepcopy(split.state_dict())
    resumed = build(split_model)
    resumed.load_state_dict(state)
    kinds = {k for s in resumed.state.values() for k in s}
    assert kinds == {'momentum_buffer', 'step', 'exp_avg', 'exp_avg_sq'}
    for step in range(2, 4):
        gradients(split_model, step)
        resumed.step()
    for (name, a), b in zip(full_model.named_parameters(),
                            split_model.parameters()):
        assert torch.equal(a, b), name


def test_errors_name_the_group_and_the_parameter():
    p = nn.Parameter(torch.randn(4, 4))
    with pytest.raises(ValueError, match=(
            r"MuonAdamW: param group 0 has algorithm=None; each group must "
            r"say 'muon' or 'adamw'")):
        MuonAdamW([dict(params=[p])])
    with pytest.raises(ValueError, match=(
            r"MuonAdamW: adjust_lr_fn='original' takes Muon's own base lr")):
        MuonAdamW([dict(params=[p], algorithm='adamw')],
                  adjust_lr_fn='original')
    # a wrapper that flattened the matrix after the plan recorded it
    flat = nn.Parameter(torch.randn(16))
    optimizer = MuonAdamW([dict(params=[flat], algorithm='muon',
                                matrix_view='whole', shapes=[[4, 4]],
                                param_names=['blocks.0.fc.weight'],
                                group_name='layer_1_decay_muon')])
    flat.grad = torch.ones(16)
    before = flat.detach().clone()
    with pytest.raises(RuntimeError, match=(
            r'MuonAdamW: group layer_1_decay_muon: blocks.0.fc.weight is '
            r'\(16,\) here, planned \(4, 4\): Muon needs whole matrices')):
        optimizer.step()
    assert torch.equal(flat.detach(), before)
    # a wrapper that drops a parameter from a group after it was built
    a, b = nn.Parameter(torch.randn(4, 4)), nn.Parameter(torch.randn(3, 4))
    optimizer = MuonAdamW([dict(params=[a, b], algorithm='muon',
                                matrix_view='whole', shapes=[[4, 4], [3, 4]],
                                group_name='layer_2_decay_muon')])
    optimizer.param_groups[0]['params'] = [a]
    a.grad = torch.ones(4, 4)
    with pytest.raises(RuntimeError, match=(
            r'MuonAdamW: group layer_2_decay_muon holds 1 parameters, '
            r'planned 2: a wrapper dropped or added parameters')):
        optimizer.step()

