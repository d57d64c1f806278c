"""The glue's own checks, called directly: a scheduler's numbers in range
(config entry or saved state), the ratio guard on a real optimizer under
real PyTorch schedulers, and 16-bit trainable weights named."""
import pytest
import torch
from torch import nn

from internvl_optim import param_groups
from internvl_optim.guards.low_precision import low_precision_trainable
from internvl_optim.guards.ratio_guard import ratio_drift
from internvl_optim.guards.scheduler_numbers import check_scheduler_numbers
from toy_models import ToyInternViT, ToySegmentor


@pytest.mark.parametrize('scheduler, message', [
    (dict(type='LinearLR', start_factor=0), 'param_scheduler[0].start_factor'
     ' must be'),
    (dict(type='PolyLR', power='1'), "param_scheduler[0].power must be a "
     "number >= 0, got '1' (a string: write 1 without quotes)"),
    (dict(type='CosineAnnealingLR', begin=10, end=10),
     'param_scheduler[0]: begin=10 must be < end=10'),
    (dict(type='OneCycleLR', total_steps=float('inf')),
     'param_scheduler[0].total_steps must be a finite number, got inf'),
])
def test_scheduler_numbers_are_named(scheduler, message):
    with pytest.raises((TypeError, ValueError)) as err:
        check_scheduler_numbers(scheduler, 'param_scheduler[0]')
    assert message in str(err.value)


def test_scheduler_numbers_in_range_pass():
    check_scheduler_numbers(dict(type='LinearLR', start_factor=0.1, begin=0,
                                 end=100, last_step=-1), 'x')


def _optimizer():
    groups = param_groups(ToySegmentor(ToyInternViT(depth=2)), lr=1.0,
                          weight_decay=0.1,
                          layer_decay_rate=0.5)
    return torch.optim.AdamW(groups)


def test_cosine_keeps_the_ratios_and_a_flattening_is_named():
    optimizer = _optimizer()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    assert ratio_drift(optimizer.param_groups) is None
    optimizer.param_groups[-1]['lr'] = optimizer.param_groups[0]['lr']
    message = ratio_drift(optimizer.param_groups)
    name = optimizer.param_groups[-1]['group_name']
    assert message.startswith(f'group {name} is at lr ')


def test_low_precision_trainable_names_parameters():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    model[1].to(torch.bfloat16)
    model[1].bias.requires_grad_(False)
    assert low_precision_trainable(model.named_parameters()) == {
        'bfloat16': ['1.weight']}


def test_one_cycle_with_one_max_lr_is_named_though_it_rewrites_initial_lr():
    """OneCycleLR(max_lr=scalar) writes one lr and one initial_lr into
    every group: a guard reading initial_lr would see no drift; the
    groups' own lr_scale keeps the plan."""
    optimizer = _optimizer()
    torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01,
                                        total_steps=10)
    assert len({g['initial_lr'] for g in optimizer.param_groups}) == 1
    message = ratio_drift(optimizer.param_groups)
    assert message == ('group layer_0_decay is at lr 0.0004, while '
                       'layer_3_decay is at 0.0004: the ratio between them '
                       "is 1, the plan's 0.125 (their lr_scale 0.125 and 1)")


def test_a_nan_lr_and_a_rebuilt_optimizer_are_named():
    optimizer = _optimizer()
    names = [g['group_name'] for g in optimizer.param_groups]
    optimizer.param_groups[2]['lr'] = float('nan')
    assert ratio_drift(optimizer.param_groups) == (
        f'group {names[2]} is at lr nan: not a finite number')
    model = ToySegmentor(ToyInternViT(depth=2))
    rebuilt = torch.optim.AdamW(model.parameters(), lr=1.0)
    message = ratio_drift(rebuilt.param_groups, planned_names=names)
    assert message.startswith(
        f'the optimizer has 1 groups now, {len(names)} were planned '
        f'(missing: {names[0]}, {names[1]}, {names[2]}, ...): it was rebuilt')
    assert ratio_drift(optimizer.param_groups[:2] + [
        dict(optimizer.param_groups[3])], planned_names=names[:2] + [
        names[3]]) is None
