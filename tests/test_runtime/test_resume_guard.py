"""Loading optimizer state saved for another group layout fails with a
message naming the groups that differ, instead of PyTorch's count error or
silently misplaced Adam moments."""
import re

import pytest
import torch

from internvl_optim import LayerDecayOptimizerConstructor

from toy_models import ToyInternViT, ToySegmentor


def wrapper_for(model, **paramwise):
    return LayerDecayOptimizerConstructor(
        dict(optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.1)),
        dict(layer_decay_rate=0.5, **paramwise))(model)


def trained_state(**paramwise):
    torch.manual_seed(0)
    model = ToySegmentor(ToyInternViT(depth=3))
    wrapper = wrapper_for(model, **paramwise)
    wrapper.update_params(sum(p.sum() for p in model.parameters()))
    return wrapper.state_dict()


def test_same_layout_loads_and_restores_moments():
    state = trained_state()
    model = ToySegmentor(ToyInternViT(depth=3))
    wrapper = wrapper_for(model)
    wrapper.load_state_dict(state)
    qkv = model.backbone.blocks[0].attn.qkv.weight
    assert torch.equal(wrapper.optimizer.state[qkv]['exp_avg'],
                       state['state'][
                           _index_of(wrapper, 'backbone.blocks.0.attn.qkv.'
                                     'weight')]['exp_avg'])


def _index_of(wrapper, name):
    index = 0
    for group in wrapper.optimizer.param_groups:
        for n in group['param_names']:
            if n == name:
                return index
            index += 1
    raise KeyError(name)


def test_changed_rate_names_the_groups():
    state = trained_state()
    wrapper = wrapper_for(ToySegmentor(ToyInternViT(depth=3)))
    state['param_groups'][2]['lr_scale'] = 0.25  # as if saved with rate .25
    with pytest.raises(ValueError, match=re.escape(
            'Cannot resume: the optimizer state in the checkpoint was saved '
            'for a different parameter-group layout')) as err:
        wrapper.load_state_dict(state)
    assert 'layer_3_decay: lr_scale 0.25 in the checkpoint, 0.5 now' in \
        str(err.value)


def test_changed_depth_and_freezing_name_the_groups():
    state = trained_state()
    deeper = wrapper_for(ToySegmentor(ToyInternViT(depth=4)))
    with pytest.raises(ValueError) as err:
        deeper.load_state_dict(state)
    message = str(err.value)
    assert '- groups only in the current model: layer_5_decay, ' \
        'layer_5_no_decay' in message
    assert 'layer_4_decay: position 0 in the checkpoint, 2 now' in message

    model = ToySegmentor(ToyInternViT(depth=3))
    frozen = wrapper_for(model, freeze_backbone=[0])
    with pytest.raises(ValueError) as err:
        frozen.load_state_dict(state)
    assert '- groups only in the checkpoint: layer_1_decay, ' \
        'layer_1_no_decay' in str(err.value)


def test_same_count_different_params_is_caught():
    # counts match, so PyTorch alone would load moments into wrong tensors
    state = trained_state()
    wrapper = wrapper_for(ToySegmentor(ToyInternViT(depth=3)))
    names = state['param_groups'][0]['param_names']
    names[0], names[1] = names[1], names[0]
    with pytest.raises(ValueError, match=re.escape(
            'layer_4_decay: parameters differ (checkpoint 5, now 5; only in '
            'checkpoint: -; only now: -; or their order changed)')):
        wrapper.load_state_dict(state)


def test_empty_state_from_an_unconsolidated_zero_checkpoint():
    wrapper = wrapper_for(ToySegmentor(ToyInternViT(depth=3)))
    with pytest.raises(ValueError, match=re.escape(
            'The checkpoint holds no optimizer state (empty state dict). A '
            'ZeroRedundancyOptimizer checkpoint must be consolidated')):
        wrapper.load_state_dict({})


def test_guard_is_idempotent():
    import torch

    from internvl_optim.runtime.resume_guard import guard_load_state_dict
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    guard_load_state_dict(optimizer)
    guarded = optimizer.load_state_dict
    guard_load_state_dict(optimizer)
    assert optimizer.load_state_dict is guarded
    with pytest.raises(ValueError, match='holds no optimizer state'):
        optimizer.load_state_dict({})
