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


def test_old_import_paths_still_work():
    """Issue 11 moved the modules; what configs and users named before
    still resolves to the same objects."""
    import importlib

    from internvl_optim.analysis.meta_device import meta_device
    from internvl_optim.checkpoint.safe_loading import load_checkpoint_file
    from internvl_optim.checkpoint.weight_files import read_weights
    from internvl_optim.checkpoint.work_dir import resume_fallback
    from internvl_optim.engine.optimizers import \
        LayerDecayOptimizerConstructor
    old = {
        'internvl_optim.fsdp_wrap.wrap_module_classes': wrap_module_classes,
        'internvl_optim.models.intern_vit_6b.Block': Block,
        'internvl_optim.meta_build.meta_device': meta_device,
        'internvl_optim.runtime.safe_checkpoint_loading.'
        'load_checkpoint_file': load_checkpoint_file,
        'internvl_optim.engine.checkpoint_files.resume_fallback':
        resume_fallback,
        'internvl_optim.models.weights.weight_files.read_weights':
        read_weights,
        'internvl_optim.LayerDecayOptimizerConstructor':
        LayerDecayOptimizerConstructor,
    }
    import sys
    for path, obj in old.items():
        module, name = path.rsplit('.', 1)
        if module == 'internvl_optim':
            assert getattr(importlib.import_module(module), name) is obj
            continue
        sys.modules.pop(module, None)  # (imported before: warn again)
        with pytest.warns(DeprecationWarning, match=re.escape(
                f'{module} is an old import path; import ')):
            assert getattr(importlib.import_module(module), name) is obj, \
                path
    # a wrap policy as an old config names it
    assert wrap_module_classes(
        Block(dim=8, num_heads=2), False, 4,
        ['internvl_optim.models.intern_vit_6b.Block'])
