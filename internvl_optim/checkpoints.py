"""Checking a checkpoint against a model before using it."""
from typing import Mapping

import torch
from torch import nn

from .names import strip_wrapper_prefixes


def load_state_dict_file(path: str) -> Mapping[str, torch.Tensor]:
    """The weights of an MMEngine, timm-style (``model``) or plain
    checkpoint, loaded with ``weights_only=True``, wrapper prefixes removed."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint, dict) and isinstance(
                checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    return {strip_wrapper_prefixes(k): v for k, v in checkpoint.items()}


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
