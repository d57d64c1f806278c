"""Reading released weights from disk, in every layout they are published
in, without running anything from the files.

* a PyTorch file (``.pth``, ``.pt``, ``pytorch_model.bin``): read with
  ``weights_only=True`` (:func:`load_state_dict_file`), unwrapped from
  ``state_dict`` / ``model`` / ``module``;
* a ``.safetensors`` file (a JSON header and raw bytes; no pickle at all);
* a sharded checkpoint: ``model.safetensors.index.json`` or
  ``pytorch_model.bin.index.json``, whose ``weight_map`` names the shard of
  every tensor; only the shards that hold wanted tensors are opened;
* a HuggingFace model directory holding one of the above and its
  ``config.json`` (for a chat model the vision tower's settings are under
  ``vision_config``).

Shard names are checked to stay inside the checkpoint's directory.
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch

from .errors import CheckpointError
from .files import load_state_dict_file
from .json_files import CONFIG_MAX_BYTES, INDEX_MAX_BYTES, read_json

#: files looked for in a model directory, most preferred first
DIRECTORY_FILES = ('model.safetensors.index.json', 'model.safetensors',
                   'pytorch_model.bin.index.json', 'pytorch_model.bin')

#: files a HuggingFace config.json next to them describes
HF_SUFFIXES = ('.safetensors', '.bin', '.index.json')

KeyFilter = Callable[[str], bool]


@dataclass
class WeightFile:
    """What was read: tensors by name, the HuggingFace ``config.json``
    (``None`` when there is none) and the files they came from."""
    state: Dict[str, torch.Tensor]
    hf_config: Optional[dict]
    source: str


def read_weights(path: str, wanted: KeyFilter = lambda key: True
                 ) -> WeightFile:
    """Tensors of ``path`` (file, index json or model directory) whose names
    pass ``wanted``."""
    path = osp.expanduser(str(path))
    if osp.isdir(path):
        found = [name for name in DIRECTORY_FILES
                 if osp.isfile(osp.join(path, name))]
        if not found:
            raise FileNotFoundError(
                f'{path!r} is a directory without weights: expected one of '
                f'{", ".join(DIRECTORY_FILES)}')
        path = osp.join(path, found[0])
    elif not osp.isfile(path):
        raise FileNotFoundError(f'weights {path!r} do not exist')
    if path.endswith('.index.json'):
        state = _read_sharded(path, wanted)
    elif path.endswith('.safetensors'):
        state = _read_safetensors(path, wanted)
    else:
        state = {k: v for k, v in load_state_dict_file(path).items()
                 if wanted(k)}
    # config.json describes HuggingFace files only, not a .pth next to it
    hf_file = path.endswith(HF_SUFFIXES)
    return WeightFile(state, read_hf_config(osp.dirname(path))
                      if hf_file else None, path)


def read_hf_config(directory: str) -> Optional[dict]:
    """The vision settings of ``directory/config.json``: the file itself,
    or its ``vision_config`` for a chat model; ``None`` without one."""
    path = osp.join(directory, 'config.json')
    if not osp.isfile(path):
        return None
    config = read_json(path, CONFIG_MAX_BYTES)
    if not isinstance(config, dict):
        raise CheckpointError(f'{path!r} holds a {type(config).__name__}, '
                              'not a JSON object')
    vision = config.get('vision_config', config)
    if not isinstance(vision, dict):
        raise CheckpointError(f"{path!r}: 'vision_config' is not an object")
    return vision


def _read_safetensors(path: str, wanted: KeyFilter) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            return {k: f.get_tensor(k) for k in f.keys() if wanted(k)}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f'{path!r} ({os.path.getsize(path):,} bytes) is not a valid '
            f'safetensors file: {err}') from None


def _read_sharded(index_path: str, wanted: KeyFilter
                  ) -> Dict[str, torch.Tensor]:
    directory = osp.dirname(index_path)
    index = read_json(index_path, INDEX_MAX_BYTES)
    try:
        weight_map = index['weight_map']
        if not isinstance(weight_map, dict):
            raise TypeError('weight_map is not an object')
    except (KeyError, TypeError) as err:
        raise CheckpointError(
            f'{index_path!r} is not a shard index (a JSON object with a '
            f"'weight_map' of tensor name -> file): {err}") from None
    shards: Dict[str, list] = {}
    for key, shard in weight_map.items():
        if not wanted(key):
            continue
        if (not isinstance(shard, str) or osp.basename(shard) != shard
                or shard in ('', '.', '..')):
            raise CheckpointError(
                f'{index_path!r}: shard {shard!r} of {key!r} is not a file '
                'name in the index directory')
        shards.setdefault(shard, []).append(key)
    state: Dict[str, torch.Tensor] = {}
    for shard, keys in shards.items():
        shard_path = osp.join(directory, shard)
        if not osp.isfile(shard_path):
            raise CheckpointError(
                f'{index_path!r} names shard {shard!r}, which is missing '
                f'from {directory!r} (it holds e.g. {keys[0]!r})')
        in_shard = set(keys).__contains__
        if shard.endswith('.safetensors'):
            tensors = _read_safetensors(shard_path, in_shard)
        else:
            tensors = {k: v for k, v in load_state_dict_file(
                shard_path).items() if in_shard(k)}
        absent = [k for k in keys if k not in tensors]
        if absent:
            raise CheckpointError(
                f'{shard_path!r} lacks {len(absent)} tensor(s) that '
                f'{osp.basename(index_path)} places there, e.g. {absent[0]!r}')
        state.update(tensors)
    return state
