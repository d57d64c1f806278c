"""Checking a checkpoint against a model before using it, and finding the
one to resume from."""
import glob
import os
import os.path as osp
from typing import Mapping

import torch
from torch import nn

from .work_dir import (CHECKPOINT_NAME,  # noqa: F401
                                   is_complete_checkpoint,
                                   newest_complete_checkpoint, resume_fallback)
from .errors import CheckpointError
from .safe_loading import load_checkpoint_file
from ..core.names import strip_wrapper_prefixes


def load_state_dict_file(path: str) -> Mapping[str, torch.Tensor]:
    """The weights of an MMEngine, timm-style (``model``) or plain
    checkpoint, loaded with ``weights_only=True``, wrapper prefixes removed."""
    checkpoint = load_checkpoint_file(path)
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f'{path} holds a {type(checkpoint).__name__}, not a dict of '
            'weight tensors (nor one under state_dict, model or module)')
    state, given_as = {}, {}
    for key, value in checkpoint.items():
        if not isinstance(key, str):
            raise CheckpointError(f'{path}: a weight name is a '
                                  f'{type(key).__name__} ({key!r}), not a str')
        name = strip_wrapper_prefixes(key)
        if name in state and not _same(state[name], value):
            # (module.x and x: one would silently replace the other)
            raise CheckpointError(
                f'{path} holds two different tensors for {name!r}: '
                f'{given_as[name]!r} and {key!r}; which one is meant is not '
                'known. Remove one')
        state[name], given_as[name] = value, key
    return state


def _same(a, b) -> bool:
    return a is b or (isinstance(a, torch.Tensor) and isinstance(
        b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
        and bool(torch.equal(a, b)))


def check_checkpoint_matches(model: nn.Module, path: str) -> None:
    """Raise ``ValueError`` naming the differing keys unless the checkpoint
    holds exactly the model's parameters and buffers with the same shapes."""
    state = load_state_dict_file(path)
    own = {strip_wrapper_prefixes(k): v for k, v in model.state_dict().items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state)
                    if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        def show(keys):
            return f'{len(keys)} (e.g. {keys[:3]})' if keys else '0'
        raise ValueError(
            f'Checkpoint {path} does not match the model of this config: '
            f'missing keys {show(missing)}, unexpected keys '
            f'{show(unexpected)}, shape mismatches {show(shapes)}. Is it the '
            'checkpoint of this config?')


DEEPSPEED_MODEL_FILE = 'mp_rank_00_model_states.pt'


def evaluable_checkpoint(path: str, work_dir: str) -> str:
    """One checkpoint file that ``tools/test.py`` (MMEngine's ``load_from``)
    can load.

    A file is returned as is.  A DeepSpeed checkpoint directory
    (``iter_N.pth/`` with ``mp_rank_00_model_states.pt``; ZeRO-1/2 keep the
    whole model there under ``module``) has its weights written to
    ``work_dir`` as ``{'state_dict': ...}``.  A sharded FSDP directory
    (``rank{i}.pth``, ``state_dict_cfg='local'``) cannot be evaluated
    outside FSDP: the error says how to get one file.
    """
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        raise FileNotFoundError(f'checkpoint {path!r} not found')
    if osp.isfile(osp.join(path, DEEPSPEED_MODEL_FILE)):
        from .safe_loading import allow_deepspeed_checkpoints
        allow_deepspeed_checkpoints()
        weights = load_state_dict_file(osp.join(path, DEEPSPEED_MODEL_FILE))
        os.makedirs(work_dir, exist_ok=True)
        out = osp.join(work_dir, osp.basename(osp.normpath(path)) +
                       '.weights.pth')
        torch.save({'state_dict': dict(weights)}, out)
        return out
    ranks = sorted(glob.glob(osp.join(path, 'rank*.pth')))
    if ranks:
        raise ValueError(
            f'{path} is a sharded FSDP checkpoint ({len(ranks)} files '
            "rank{i}.pth, strategy.state_dict_cfg='local'); only an FSDP "
            f'run on {len(ranks)} ranks can load it. Train with '
            "strategy.state_dict_cfg='full' for one file that test.py can "
            'evaluate.')
    raise ValueError(f'{path} is a directory but neither a DeepSpeed '
                     f'({DEEPSPEED_MODEL_FILE}) nor an FSDP (rank*.pth) '
                     'checkpoint; give a checkpoint file')
