"""Every directory and weight file the config names exists before
anything is built; a backbone's dtype the strategy can hold."""
import os
from typing import Optional

from ...checkpoint.work_dir import DIRECTORY_CHECKPOINT


def check_data_roots(cfg, loaders=('train_dataloader', 'val_dataloader',
                                   'test_dataloader')) -> None:
    """Every dataset directory the config names exists."""
    for loader in loaders:
        dataset = (cfg.get(loader) or {}).get('dataset')
        if not dataset:
            continue
        root = dataset.get('data_root', '')
        paths = [root] + [
            os.path.join(root, p)
            for p in (dataset.get('data_prefix') or {}).values()
        ]
        for path in paths:
            if path and not os.path.isdir(path):
                raise FileNotFoundError(
                    f'{loader}.dataset ({dataset.get("type", "dataset")}): '
                    f'directory {path!r} does not exist. '
                    + _how_to_prepare(dataset.get('type'), root, loader))


def _how_to_prepare(dataset_type, root: str, loader: str) -> str:
    if dataset_type == 'ADE20KDataset':
        return ("Prepare ADE20K in MMSeg's layout "
                '(data/ade/ADEChallengeData2016/{images,annotations}/'
                '{training,validation}), make the synthetic one with '
                '`python tools/make_synthetic_ade20k.py '
                f'{root or "DIR"}`, or set {loader}.dataset.data_root')
    return (f'Prepare the data as MMSeg documents for {dataset_type}, or set '
            f'{loader}.dataset.data_root')


#: checkpoint locations MMEngine resolves itself (not local files)
REMOTE_PREFIXES = ('http://', 'https://', 's3://', 'open-mmlab://',
                   'torchvision://', 'mmcls://', 'mmpretrain://', 'pavi://')


def weight_paths(cfg) -> list:
    """``(config key, path)`` of every local weight file the config names:
    ``pretrained=`` anywhere in ``model``, ``init_cfg=dict(type=
    'Pretrained', checkpoint=...)`` and ``load_from``."""
    found = []

    def walk(node, key):
        if isinstance(node, dict):
            for name, value in node.items():
                where = f'{key}.{name}'
                if name == 'pretrained' and isinstance(value, str):
                    found.append((where, value))
                elif (name == 'checkpoint' and isinstance(value, str)
                      and node.get('type') == 'Pretrained'):
                    found.append((where, value))
                else:
                    walk(value, where)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{key}[{i}]')

    walk(cfg.get('model') or {}, 'model')
    if isinstance(cfg.get('load_from'), str):
        found.append(('load_from', cfg.load_from))
    return [(key, path) for key, path in found
            if not path.startswith(REMOTE_PREFIXES)]


def missing_weight_files(cfg) -> list:
    """One message per local weight file the config names that does not
    exist, with the config key and the directory relative paths are read
    from."""
    return [f'{key}={path!r} does not exist'
            + ('' if os.path.isabs(path) else
               f' (relative to the working directory {os.getcwd()})')
            for key, path in weight_paths(cfg)
            if not os.path.exists(os.path.expanduser(path))]


def check_weight_files(cfg) -> None:
    """Every local ``pretrained=`` / ``init_cfg`` checkpoint / ``load_from``
    exists, before the model is built (``init_weights`` would fail late);
    ``load_from`` is a checkpoint (:func:`checkpoint_path_problem`)."""
    missing = missing_weight_files(cfg)
    if missing:
        raise FileNotFoundError(
            '; '.join(missing) + '. Download the weights there, give their '
            'path with --cfg-options, or set the key to None to start from '
            'random weights')
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and not load_from.startswith(
            REMOTE_PREFIXES):
        problem = checkpoint_path_problem(load_from)
        if problem:
            raise ValueError(f'load_from={load_from!r} {problem}')


def checkpoint_path_problem(path: str) -> Optional[str]:
    """What keeps an existing local ``path`` from being a checkpoint to
    load: a directory that holds no DeepSpeed or FSDP checkpoint, or
    something that is not a regular file (a FIFO would block the
    loader); ``None`` when it may be one."""
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        names = os.listdir(path)
        if any(DIRECTORY_CHECKPOINT.match(n) for n in names):
            return None
        return ('is a directory without a checkpoint in it (a DeepSpeed '
                'checkpoint directory holds mp_rank_00_model_states.pt, a '
                'sharded FSDP one rank0.pth, ...); give the .pth file')
    if os.path.exists(path) and not os.path.isfile(path):
        return ('is not a regular file (a FIFO, socket or device); give '
                'the .pth file')
    return None
def check_backbone_dtype_fits_strategy(cfg) -> None:
    """``InternViT6B(param_dtype='bfloat16')`` mixes bfloat16 (ViT) and
    float32 (FPN, heads) parameters; FSDP flattens each wrapped unit into
    one tensor of a single dtype and cannot take that mix."""
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    strategy = str((cfg.get('strategy') or {}).get('type', ''))
    if backbone.get('param_dtype') == 'bfloat16' and 'FSDP' in strategy:
        raise ValueError(
            f"model.backbone.param_dtype='bfloat16' with strategy "
            f"{strategy}: FSDP flattens each unit into one tensor of one "
            'dtype, and the root unit would mix the bfloat16 embeddings '
            "with float32 FPN and heads. Keep param_dtype='float32' and "
            "use FSDP's strategy.model_wrapper.mixed_precision="
            "dict(param_dtype='bfloat16') for bf16 compute")
