"""Checking a checkpoint against a model before using it, and finding the
one to resume from."""
import glob
import os
import os.path as osp
import re
import zipfile
from typing import Callable, Mapping, Optional

import torch
from torch import nn

from ..runtime.safe_checkpoint_loading import (ZIP_MAGIC, CheckpointError,
                                load_checkpoint_file)
from ..core.names import strip_wrapper_prefixes


def load_state_dict_file(path: str) -> Mapping[str, torch.Tensor]:
    """The weights of an MMEngine, timm-style (``model``) or plain
    checkpoint, loaded with ``weights_only=True``, wrapper prefixes removed."""
    checkpoint = load_checkpoint_file(path)
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
        from ..runtime.safe_checkpoint_loading import allow_deepspeed_checkpoints
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


#: checkpoints MMEngine's CheckpointHook writes: files, or directories for
#: DeepSpeed and sharded FSDP
CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def is_complete_checkpoint(path: str) -> bool:
    """A non-empty zip archive with its central directory (what ``torch.save``
    writes last), or a directory of such files; cheap (reads no tensors)."""
    if osp.isdir(path):
        files = [osp.join(path, f) for f in os.listdir(path)
                 if f.endswith(('.pt', '.pth'))]
        return bool(files) and all(map(is_complete_checkpoint, files))
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    with open(path, 'rb') as f:
        if f.read(4) != ZIP_MAGIC:
            return False
    return zipfile.is_zipfile(path)


def newest_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The complete ``iter_N.pth`` / ``epoch_N.pth`` with the largest N."""
    found = []
    for name in os.listdir(work_dir) if osp.isdir(work_dir) else []:
        match = CHECKPOINT_NAME.match(name)
        path = osp.join(work_dir, name)
        if match and is_complete_checkpoint(path):
            found.append((int(match.group(1)), osp.getmtime(path), path))
    return max(found)[2] if found else None


def resume_fallback(work_dir: str,
                    log: Callable[[str], None]) -> Optional[str]:
    """For ``--resume`` without a path: ``None`` where MMEngine's own
    auto-resume works (``work_dir/last_checkpoint`` names a complete
    checkpoint, or there is no such file: training starts from scratch);
    else (empty file, a path that is gone or truncated) the newest complete
    checkpoint in ``work_dir``, said through ``log``, or an error when there
    is none."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        named = f.read().strip()
    if named and is_complete_checkpoint(named):
        return None
    problem = (f'{record} is empty' if not named else
               f'{record} names {named!r}, which is '
               + ('incomplete' if osp.exists(named) else 'missing'))
    fallback = newest_complete_checkpoint(work_dir)
    if fallback is None:
        raise CheckpointError(
            f'Cannot resume: {problem}, and {work_dir} holds no other '
            'complete checkpoint (iter_N.pth / epoch_N.pth). Give one with '
            '--resume CHECKPOINT, or train without --resume')
    log(f'{problem}; resuming from the newest complete checkpoint in the '
        f'work dir, {fallback}')
    return fallback
