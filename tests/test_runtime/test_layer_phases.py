"""Phases over layers in plain PyTorch: the step at which each layer joins,
the exact lr it is updated with at every step (SGD on a gradient of ones:
the update is the lr), no update and no state before it joins, and a
resume in the middle equal bit for bit to an uninterrupted run."""
import copy

import pytest
import torch
from torch import nn

from internvl_optim import param_groups
from internvl_optim.core.phase_schedule import LayerPhases, phase_factor
from internvl_optim.core.settings import LayerDecaySettings
from internvl_optim.runtime.layer_phases import (NO_SCHEDULER, LayerPhaseLR,
                                                 require_phase_scheduler)

PHASES = dict(head_only=2, unfreeze_every=2, warmup=2)
#: with head_only=2, unfreeze_every=2: the head (layer 4) from step 0, then
#: block 2 (layer 3) at 2, block 1 at 4, block 0 at 6, embeddings at 8
JOIN = {'head': 0, 'backbone.blocks.2': 2, 'backbone.blocks.1': 4,
        'backbone.blocks.0': 6, 'backbone.cls_token': 8,
        'backbone.patch_embed': 8}
LAYER = {'head': 4, 'backbone.blocks.2': 3, 'backbone.blocks.1': 2,
         'backbone.blocks.0': 1, 'backbone.cls_token': 0,
         'backbone.patch_embed': 0}


def vit(depth=3, dim=2):
    torch.manual_seed(0)
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.patch_embed = nn.Linear(dim, dim)
    model.backbone.cls_token = nn.Parameter(torch.zeros(1, dim))
    model.backbone.blocks = nn.ModuleList(nn.Linear(dim, dim)
                                          for _ in range(depth))
    model.head = nn.Linear(dim, 1)
    return model.double()  # updates measured without float32 rounding


def prefix(name):
    return next(p for p in JOIN if name.startswith(p))


def expected_lr(name, step, rate=0.5):
    join = JOIN[prefix(name)]
    lr = rate ** (4 - LAYER[prefix(name)])
    return lr * phase_factor(join, PHASES['warmup'], step)


def sgd_run(steps, model=None, optimizer=None, phases=None):
    """SGD, lr 1, no momentum or decay, every gradient 1: each step moves
    a parameter by exactly its effective lr."""
    model = model or vit()
    if optimizer is None:
        optimizer = torch.optim.SGD(param_groups(
            model, lr=1.0, layer_decay_rate=0.5, layer_phases=PHASES),
            lr=1.0)
        phases = LayerPhaseLR(optimizer)
    moves = []
    for _ in range(steps):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()
        phases.step()
        moves.append({n: (before[n] - p.detach()).unique().tolist()
                      for n, p in model.named_parameters()})
    return model, optimizer, phases, moves


def test_each_layer_is_updated_with_its_phase_lr_at_every_step():
    _, optimizer, _, moves = sgd_run(12)
    for step, moved in enumerate(moves):
        for name, deltas in moved.items():
            lr = expected_lr(name, step)
            assert deltas == pytest.approx([lr] * len(deltas), rel=1e-12), \
                (step, name)
    # the schedule as written in the groups
    # (weight decay 0: every group is a no-decay one)
    assert [(g['group_name'], g['join_at'], g['join_warmup'])
            for g in optimizer.param_groups] == [
        ('layer_4_no_decay', 0, 2), ('layer_3_no_decay', 2, 2),
        ('layer_2_no_decay', 4, 2), ('layer_1_no_decay', 6, 2),
        ('layer_0_no_decay', 8, 2)]
    # outside the step the groups keep the plan's lr (schedulers see it)
    assert [g['lr'] for g in optimizer.param_groups] == [
        1.0, 0.5, 0.25, 0.125, 0.0625]


def test_no_state_and_no_weight_decay_before_a_layer_joins():
    model = vit()
    optimizer = torch.optim.AdamW(param_groups(
        model, lr=0.1, weight_decay=0.5, layer_decay_rate=0.5,
        layer_phases=PHASES))
    phases = LayerPhaseLR(optimizer)
    start = copy.deepcopy(model.state_dict())
    for _ in range(4):  # block 1 joins at 4, block 0 at 6
        model.head(model.backbone.blocks[0](
            model.backbone.patch_embed(torch.ones(1, 2).double()))).sum(
        ).backward()
        optimizer.step()
        optimizer.zero_grad()
        phases.step()
    block0 = model.backbone.blocks[0].weight
    assert torch.equal(block0, start['backbone.blocks.0.weight'])
    assert block0 not in optimizer.state
    assert block0.requires_grad  # DDP/ZeRO/FSDP see it from step 0
    assert float(optimizer.state[model.head.weight]['step']) == 4.0


def test_resume_between_and_at_phase_boundaries_is_bit_identical():
    straight_model, *_ = sgd_run(12)
    for stop in (3, 4):  # inside a warm-up; at a layer's join step
        model, optimizer, phases, _ = sgd_run(stop)
        saved = (copy.deepcopy(model.state_dict()),
                 copy.deepcopy(optimizer.state_dict()), phases.state_dict())
        resumed = vit()
        resumed.load_state_dict(saved[0])
        new_optimizer = torch.optim.SGD(param_groups(
            resumed, lr=1.0, layer_decay_rate=0.5, layer_phases=PHASES),
            lr=1.0)
        new_optimizer.load_state_dict(saved[1])
        new_phases = LayerPhaseLR(new_optimizer)
        new_phases.load_state_dict(saved[2])
        sgd_run(12 - stop, resumed, new_optimizer, new_phases)
        for (n, p), (_, q) in zip(resumed.named_parameters(),
                                  straight_model.named_parameters()):
            assert torch.equal(p, q), (stop, n)


def test_rate_one_keeps_one_group_per_layer_with_phases():
    """Layers of equal lr share a group without phases; with phases each
    layer keeps its own (it joins at its own time)."""
    flat = param_groups(vit(), lr=1.0, weight_decay=0.05,
                        layer_decay_rate=1.0)
    phased = param_groups(vit(), lr=1.0, weight_decay=0.05,
                          layer_decay_rate=1.0, layer_phases=PHASES)
    assert [g['group_name'] for g in flat] == [
        'layers_0-4_decay', 'layers_0-4_no_decay']
    assert [(g['group_name'], g['join_at']) for g in phased] == [
        ('layer_4_decay', 0), ('layer_4_no_decay', 0),
        ('layer_3_decay', 2), ('layer_3_no_decay', 2),
        ('layer_2_decay', 4), ('layer_2_no_decay', 4),
        ('layer_1_decay', 6), ('layer_1_no_decay', 6),
        ('layer_0_decay', 8), ('layer_0_no_decay', 8)]


def test_phases_without_a_scheduler_stop_at_the_first_step():
    optimizer = torch.optim.SGD(param_groups(
        vit(), lr=1.0, layer_phases=PHASES), lr=1.0)
    require_phase_scheduler(optimizer)
    with pytest.raises(RuntimeError, match='no layer-phase scheduler'):
        optimizer.step()
    LayerPhaseLR(optimizer)  # the scheduler takes the original step
    optimizer.step()
    assert 'LayerPhaseScheduler' in NO_SCHEDULER


@pytest.mark.parametrize('value, message', [
    (dict(head_only=-1), 'layer_phases.head_only must be an int >= 0, '
     'got -1'),
    (dict(unfreeze_every=1.5), 'layer_phases.unfreeze_every must be an int '
     '>= 0, got 1.5'),
    (dict(warm_up=3), "layer_phases has unknown key 'warm_up'; valid: "
     "('head_only', 'unfreeze_every', 'warmup', 'by_epoch', 'unit')"),
    (dict(head_only=0), 'layer_phases sets no phase'),
    (dict(head_only=2, by_epoch='yes'), 'layer_phases.by_epoch must be True '
     'or False'),
    (100, 'layer_phases must be a dict such as dict(head_only=500'),
])
def test_bad_phases_are_named(value, message):
    with pytest.raises((TypeError, ValueError), match=message.replace(
            '(', r'\(').replace(')', r'\)').replace('.', r'\.')):
        LayerDecaySettings.from_paramwise_cfg(dict(layer_phases=value))


def test_loading_a_bad_phase_state_is_refused():
    optimizer = torch.optim.SGD(param_groups(
        vit(), lr=1.0, layer_phases=PHASES), lr=1.0)
    phases = LayerPhaseLR(optimizer)
    for bad in (-1, 2.5, True, None, 10 ** 9):
        with pytest.raises(ValueError) as err:
            phases.load_state_dict(dict(last_step=bad))
        assert str(err.value) == (
            'LayerPhaseLR state: last_step must be the count of steps '
            f'taken, an int from 0 to 100,000,000, got {bad!r}')
    with pytest.raises(ValueError, match='got an int of 1329 bits'):
        phases.load_state_dict(dict(last_step=10 ** 400))
    assert LayerPhases(head_only=1).join_at(5, top=5) == 0


def test_whole_towers_join_the_last_first():
    """unit='tower' on transformers' InternVL (towers vision, projector,
    language, in that order): the language model joins first, at 0 with
    head_only=0, the projector at 3, the vision tower at 6, each tower as
    one unit whatever its layers."""
    pytest.importorskip('transformers')
    from tiny_vlms import tiny_internvl
    groups = param_groups(tiny_internvl(), lr=1.0, weight_decay=0.05,
                          layer_decay_rate=0.5,
                          layer_phases=dict(unfreeze_every=3, unit='tower'))
    joins = {}
    for g in groups:
        joins.setdefault(g['tower'], set()).add(g['join_at'])
    assert joins == {'language': {0}, 'projector': {3}, 'vision': {6}}
    with pytest.raises(ValueError, match=(
            'layer_phases.head_only trains the parameters outside the towers '
            'first, but every trainable parameter is in a tower \\(vision, '
            'projector, language\\)')):
        param_groups(tiny_internvl(), lr=1.0, layer_decay_rate=0.5,
                     layer_phases=dict(head_only=5, unit='tower'))
    with pytest.raises(ValueError, match="unit='tower' lets whole towers "
                       'join, but the model has no towers'):
        param_groups(vit(), lr=1.0, layer_phases=dict(head_only=5,
                                                      unit='tower'))
