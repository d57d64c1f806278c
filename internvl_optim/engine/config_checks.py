"""Checks run by ``tools/train.py`` / ``tools/test.py`` before any work, so a
misconfigured run fails in a second with a message that says what to change."""
import os
from typing import List

from .optimizers.registration import NAMES

IMPORT_LINE = ("custom_imports = dict(imports=['internvl_optim'], "
               'allow_failed_imports=False)')
OUR_MODELS = ('InternViT6B', )


def _imports(cfg) -> List[str]:
    custom = cfg.get('custom_imports') or {}
    imports = custom.get('imports', [])
    return [imports] if isinstance(imports, str) else list(imports)


def check_our_import(cfg) -> None:
    """A config that names our constructor or backbone must import us;
    otherwise MMSeg's own tools build MMSeg's deprecated constructor of the
    same name (or fail on the unknown backbone)."""
    uses = []
    constructor = (cfg.get('optim_wrapper') or {}).get('constructor')
    if constructor in NAMES:
        uses.append(f"optim_wrapper.constructor='{constructor}'")
    backbone = ((cfg.get('model') or {}).get('backbone') or {}).get('type')
    if backbone in OUR_MODELS:
        uses.append(f"model.backbone.type='{backbone}'")
    if uses and 'internvl_optim' not in _imports(cfg):
        raise ValueError(
            f'The config uses {" and ".join(uses)} but does not import '
            f'internvl_optim; add\n    {IMPORT_LINE}\n(without it, MMSeg '
            'silently builds its own deprecated LayerDecayOptimizerConstructor)')


def check_schedulers_keep_ratios(cfg) -> None:
    """An absolute ``eta_min > 0`` pulls every param group to the same floor
    and erases the layer-decay ratios; ``eta_min=0`` or ``eta_min_ratio``
    keep them."""
    paramwise = (cfg.get('optim_wrapper') or {}).get('paramwise_cfg') or {}
    rate = paramwise.get('layer_decay_rate', paramwise.get('decay_rate', 1.0))
    if rate == 1.0:
        return
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for i, scheduler in enumerate(schedulers):
        if scheduler.get('eta_min'):
            raise ValueError(
                f"param_scheduler[{i}] ({scheduler.get('type')}) has an "
                f"absolute eta_min={scheduler['eta_min']}: it drives every "
                'layer-decay group to the same lr and erases the layer '
                'ratios. Use eta_min=0.0, or eta_min_ratio where the '
                'scheduler has it (CosineAnnealingLR)')


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
