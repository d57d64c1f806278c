"""The FSDP auto-wrap policy that text configs name, and the safe loading
of FSDP checkpoints (multi-process runs are in test_distributed.py)."""
import pickle
import re

import pytest
import torch
from torch import nn
from torch.distributed._shard.sharded_tensor.api import ShardedTensor

from internvl_optim.checkpoint.safe_loading import (allow_fsdp_checkpoints,
                                              restricted_getattr)
from internvl_optim.engine.strategies.fsdp_wrap_policy import wrap_module_classes
from internvl_optim.models.backbones.intern_vit_6b import Block

BLOCK = 'internvl_optim.models.backbones.intern_vit_6b.Block'


def test_wraps_exactly_the_named_classes():
    block = Block(dim=8, num_heads=2)
    # FSDP asks with recurse=True on the way down (always descend) and
    # recurse=False for the decision
    assert wrap_module_classes(nn.Linear(2, 2), True, 4, [BLOCK])
    assert wrap_module_classes(block, False, 4, [BLOCK])
    assert not wrap_module_classes(block.attn, False, 4, [BLOCK])
    assert not wrap_module_classes(nn.Linear(2, 2), False, 4, [BLOCK])
    assert wrap_module_classes(nn.Linear(2, 2), False, 4,
                               [BLOCK, 'torch.nn.Linear'])


@pytest.mark.parametrize('classes, message', [
    ([], 'auto_wrap_policy.module_classes is empty'),
    (['internvl_optim.models.backbones.intern_vit_6b.Blok'],
     "cannot import 'internvl_optim.models.backbones.intern_vit_6b.Blok'"),
    (['no_such_package.Block'], "cannot import 'no_such_package.Block'"),
    (['Block'], "cannot import 'Block'"),
    (['internvl_optim.engine.strategies.fsdp_wrap_policy.import_classes'],
     "'internvl_optim.engine.strategies.fsdp_wrap_policy.import_classes' is not an nn.Module "
     'subclass'),
])
def test_bad_module_classes_are_named(classes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        wrap_module_classes(nn.Linear(2, 2), False, 4, classes)


def test_fsdp_checkpoints_may_look_up_process_group_state_only():
    allow_fsdp_checkpoints()
    assert restricted_getattr(ShardedTensor, 'ProcessGroupState') is \
        ShardedTensor.ProcessGroupState
    with pytest.raises(pickle.UnpicklingError, match=re.escape(
            "refusing getattr(<class 'torch.distributed._shard.sharded_tensor"
            ".api.ShardedTensor'>, '__init__')")):
        restricted_getattr(ShardedTensor, '__init__')
    with pytest.raises(pickle.UnpicklingError,
                       match='ShardedTensor.ProcessGroupState'):
        restricted_getattr(torch, 'load')


def test_wrap_policy_names_the_block_class_by_its_module_path():
    """A wrap policy as a config names it: the dotted path of the block
    class resolves to InternViT's ``Block``."""
    assert wrap_module_classes(
        Block(dim=8, num_heads=2), False, 4,
        ['internvl_optim.models.backbones.intern_vit_6b.Block'])
    assert not wrap_module_classes(
        nn.Linear(2, 2), False, 4,
        ['internvl_optim.models.backbones.intern_vit_6b.Block'])

