"""Every field of a resumed optimizer and weight state checked against what
the optimizer and the model will do with it, refused naming the field (a
negative running square gives NaN weights at the next step, a complex
weight loses its imaginary part, a sparse tensor crashed the check
itself)."""
import copy
import re

import pytest
import torch
from torch import nn

from internvl_optim.checkpoint.errors import CheckpointError
from internvl_optim.checkpoint.resume_state import (ResumeContext,
                                                    check_optimizer,
                                                    check_weights)


@pytest.fixture(scope='module')
def trained():
    """A Linear(3, 2) after one AdamW step: its weights and optimizer
    state, and the live optimizer's groups."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    context = ResumeContext(model_state=model.state_dict(),
                            optimizer_groups=optimizer.param_groups)
    return dict(state_dict=model.state_dict(),
                optimizer=optimizer.state_dict()), context


def refused(trained, change, message, check=check_optimizer):
    checkpoint, context = trained
    crafted = copy.deepcopy(checkpoint)
    change(crafted)
    with pytest.raises(CheckpointError, match=re.escape(f"x.pth: {message}")):
        check(crafted, context, 'x.pth')


def test_an_untouched_state_passes(trained):
    checkpoint, context = trained
    check_optimizer(copy.deepcopy(checkpoint), context, 'x.pth')
    check_weights(copy.deepcopy(checkpoint), context, 'x.pth')


def state(c):
    return c['optimizer']['state'][0]  # the weight's


@pytest.mark.parametrize('change, message', [
    (lambda c: state(c).__setitem__('exp_avg_sq', -state(c)['exp_avg_sq']
                                    - 1),
     'optimizer.state[0].exp_avg_sq holds negative values; it is a running '
     'square, whose square root the next step takes (NaN weights)'),
    (lambda c: state(c).__setitem__('step', torch.tensor(-1.0)),
     'optimizer.state[0].step must be a count of steps (an int >= 0, or a '
     'one-value tensor of one), got tensor(-1.)'),
    (lambda c: state(c).__setitem__('step', True),
     'optimizer.state[0].step must be a count of steps'),
    (lambda c: state(c).__setitem__('step', 'one'),
     'optimizer.state[0].step must be a count of steps'),
    (lambda c: state(c).__setitem__('exp_avg', torch.zeros(5)),
     'optimizer.state[0].exp_avg has shape (5,), the parameter [2, 3]'),
    (lambda c: state(c).__setitem__('exp_avg', [[0.0] * 3] * 2),
     'optimizer.state[0].exp_avg must be a tensor, got a list'),
    (lambda c: state(c).__setitem__('exp_avg',
                                    torch.zeros(2, 3).to_sparse()),
     'optimizer.state[0].exp_avg is a sparse_coo tensor'),
    (lambda c: c['optimizer']['param_groups'][0].__setitem__('lr', 1e308),
     'optimizer.param_groups[0].lr must be at most 10000 (above it the '
     'first step overflows), got 1e+308'),
    (lambda c: c['optimizer']['param_groups'][0].__setitem__(
        'betas', (0.9, 1.5)),
     'optimizer.param_groups[0].betas[1] must be in [0, 1), got 1.5'),
    (lambda c: c['optimizer']['param_groups'][0].__setitem__('eps', 0.0),
     'optimizer.param_groups[0].eps must be a number > 0, got 0.0'),
])
def test_optimizer_fields_the_step_would_misuse(trained, change, message):
    refused(trained, change, message)


@pytest.mark.parametrize('change, message', [
    (lambda c: c['state_dict'].__setitem__(
        'weight', c['state_dict']['weight'].to(torch.complex64)),
     'weight (torch.complex64, the model holds torch.float32: the imaginary '
     'part would be dropped)'),
    (lambda c: c['state_dict'].__setitem__(
        'weight', torch.empty(2, 3, device='meta')),
     'weight (a meta tensor: it holds no values)'),
    (lambda c: c['state_dict'].__setitem__(
        'weight', c['state_dict']['weight'].to_sparse()),
     'weight (a sparse_coo tensor)'),
])
def test_weights_that_cannot_be_loaded_as_values(trained, change, message):
    checkpoint, context = trained
    crafted = copy.deepcopy(checkpoint)
    change(crafted)
    with pytest.raises(CheckpointError) as err:
        check_weights(crafted, context, 'x.pth')
    assert message in str(err.value)


@pytest.mark.parametrize('content, message', [
    ([torch.zeros(2)], 'holds a list, not a dict of weight tensors'),
    ('weights', 'holds a str, not a dict of weight tensors'),
    ({'module.weight': torch.zeros(2), 'weight': torch.ones(2)},
     "holds two different tensors for 'weight': 'module.weight' and "
     "'weight'; which one is meant is not known. Remove one"),
])
def test_a_weight_file_that_is_no_dict_of_tensors(tmp_path, content,
                                                   message):
    from internvl_optim.checkpoint.files import load_state_dict_file
    from internvl_optim.checkpoint.weight_files import read_weights
    path = tmp_path / 'weights.pth'
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_state_dict_file(str(path))
    with pytest.raises(CheckpointError, match=re.escape(message)):
        read_weights(str(path))  # what pretrained= reads


def test_the_same_tensor_under_two_names_is_one_weight(tmp_path):
    from internvl_optim.checkpoint.files import load_state_dict_file
    path = tmp_path / 'weights.pth'
    torch.save({'module.weight': torch.ones(2), 'weight': torch.ones(2)},
               path)
    assert list(load_state_dict_file(str(path))) == ['weight']
