"""InternVL's way of switching DeepSpeed ZeRO on, for MMEngine.

InternVL's segmentation configs (MMSeg 0.x) turn on DeepSpeed with two
top-level keys::

    deepspeed = True
    deepspeed_config = 'zero_configs/adam_zero1_bf16.json'

MMEngine ignores top-level keys it does not know, so such a config would
silently train without ZeRO.  :func:`translate_internvl_deepspeed` turns them
into MMEngine's ``FlexibleRunner`` + ``DeepSpeedStrategy(config=<the JSON>)``
+ ``DeepSpeedOptimWrapper``; ``tools/train.py`` calls it.  The JSON's
``optimizer`` section is dropped: the optimizer and its layer-decay groups
come from ``optim_wrapper`` (DeepSpeed uses a client optimizer when given
one, as InternVL's runner does).
"""
import os.path as osp
from typing import Callable, Optional

from ..checkpoint.errors import CheckpointError
from ..checkpoint.json_files import read_json

KEYS = ('deepspeed', 'deepspeed_config')


def _find(path: str, config_file: Optional[str]) -> str:
    tried = [path]
    if config_file and not osp.isabs(path):
        tried.append(osp.join(osp.dirname(config_file), path))
    for candidate in tried:
        if osp.exists(candidate):  # read_json names what is not a file
            return candidate
    raise FileNotFoundError(
        f'deepspeed_config={path!r}: no such file (tried '
        f'{", ".join(repr(t) for t in tried)}); give a DeepSpeed JSON path '
        'relative to the working directory or to the config file')


def translate_internvl_deepspeed(cfg, log: Callable[[str], None] = print
                                 ) -> bool:
    """Rewrite InternVL's ``deepspeed`` / ``deepspeed_config`` keys of an
    MMEngine ``Config`` in place; returns whether DeepSpeed was switched on.

    ``deepspeed=False`` (InternVL's frozen-backbone configs) just removes
    the keys.  Errors name the key and what would be valid.
    """
    if not any(key in cfg for key in KEYS):
        return False
    enabled = cfg.get('deepspeed', False)
    path = cfg.get('deepspeed_config')
    if not isinstance(enabled, bool):
        raise ValueError(f'deepspeed={enabled!r}: InternVL\'s key takes True '
                         'or False')
    if not enabled:
        for key in KEYS:
            cfg.pop(key, None)
        return False
    if not path:
        raise ValueError(
            "deepspeed=True needs deepspeed_config='path/to/zero.json' (a "
            'DeepSpeed JSON such as InternVL\'s zero_configs/'
            'adam_zero1_bf16.json)')
    if cfg.get('strategy') or cfg.get('runner_type'):
        raise ValueError(
            "deepspeed=True (InternVL's key) and MMEngine's runner_type / "
            'strategy are both set; keep one: either drop deepspeed and '
            "deepspeed_config, or drop runner_type and strategy")
    json_path = _find(path, getattr(cfg, 'filename', None))
    try:
        ds_config = read_json(json_path)
    except CheckpointError as err:
        raise ValueError(f'deepspeed_config: {err}') from None
    if not isinstance(ds_config, dict):
        raise ValueError(f'deepspeed_config={path!r} must hold a JSON object')
    dropped = ds_config.pop('optimizer', None)
    for key in KEYS:
        cfg.pop(key)
    cfg.runner_type = 'FlexibleRunner'
    cfg.strategy = dict(type='DeepSpeedStrategy', config=ds_config)
    cfg.optim_wrapper.type = 'DeepSpeedOptimWrapper'
    stage = (ds_config.get('zero_optimization') or {}).get('stage', 0)
    log(f'deepspeed=True: FlexibleRunner + DeepSpeedStrategy (ZeRO stage '
        f'{stage}) from {json_path}' + (
            f'; its optimizer section ({dropped.get("type")}) is ignored, '
            'optim_wrapper builds the optimizer' if dropped else ''))
    return True
