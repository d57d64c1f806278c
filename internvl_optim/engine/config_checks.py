"""Checks run by ``tools/train.py`` / ``tools/test.py`` before any work, so a
misconfigured run fails in a second with a message that says what to change."""
import os
import sys
from typing import List

from ..core.numbers import \
    check_scheduler_arguments as check_scheduler_arguments_of
from ..checkpoint.json_files import read_json
from ..core.ratio_guard import deepspeed_scheduler_problem
from ..core.schedule_floor import judge_floor
from .optimizers.registration import NAMES

IMPORT_LINE = ("custom_imports = dict(imports=['internvl_optim'], "
               'allow_failed_imports=False)')
OUR_MODELS = ('InternViT6B', )

#: what the checks before any work raise; a tool turns them into one line
#: on stderr and exit code 1 (:func:`stop`)
CHECK_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError)


def stop(tool: str, config: str, err: Exception) -> None:
    """End a tool with one line, ``TOOL CONFIG: Type: message``, and exit
    code 1 (no traceback: the message says what to change)."""
    print(f'{tool} {config}: {type(err).__name__}: {err}',
          file=sys.stderr)
    sys.exit(1)


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
    ours = [name for name in _imports(cfg) if isinstance(name, str) and (
        name == 'internvl_optim' or name.startswith('internvl_optim.'))]
    if uses and not ours:
        raise ValueError(
            f'The config uses {" and ".join(uses)} but does not import '
            f'internvl_optim; add\n    {IMPORT_LINE}\n(without it, MMSeg '
            'silently builds its own deprecated LayerDecayOptimizerConstructor)')


def check_schedulers_keep_ratios(cfg) -> None:
    """An absolute ``eta_min`` at or above the base lr makes every group's
    lr rise during training: an error before anything is built.  Lower
    floors are judged against the real groups when training starts
    (:class:`~internvl_optim.engine.hooks.LayerLrSpreadHook`,
    :mod:`internvl_optim.core.schedule_floor`)."""
    wrapper = cfg.get('optim_wrapper') or {}
    paramwise = wrapper.get('paramwise_cfg') or {}
    if not isinstance(paramwise, dict):
        return  # check_optim_wrapper names it
    rate = paramwise.get('layer_decay_rate', paramwise.get('decay_rate', 1.0))
    base_lr = (wrapper.get('optimizer') or {}).get('lr')
    if rate == 1.0 or not isinstance(base_lr, (int, float)):
        return
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for i, scheduler in enumerate(schedulers):
        if not isinstance(scheduler, dict) or not scheduler.get('eta_min'):
            continue
        error, _ = judge_floor(f'param_scheduler[{i}] ({scheduler.get("type")})',
                               str(scheduler.get('type')),
                               scheduler['eta_min'], {'heads': base_lr})
        if error:
            raise ValueError(error)


#: ``paramwise_cfg`` keys that give groups different lrs
LR_KEYS = ('custom_keys', 'towers', 'vision_tower_lr', 'vit_lr',
           'mm_projector_lr', 'aligner_lr', 'dcn_lr_mul', 'offset_lr_scale',
           'layer_phases', 'bias_lr_mult', 'dcn_offset_lr_mult',
           'backbone_small_lr', 'dino_head', 'reproduce')


def deepspeed_config(strategy) -> tuple:
    """The DeepSpeed config a strategy names (``strategy.config``: a dict,
    or a JSON file read safely) and how a message names it."""
    config, where = strategy.get('config'), 'strategy.config'
    if isinstance(config, str):
        where = f'the DeepSpeed config {config!r} (strategy.config)'
        config = read_json(config)
    return config, where


def check_deepspeed_scheduler(cfg) -> None:
    """A ``scheduler`` in the DeepSpeed config (``strategy.config``, a dict
    or a JSON file) sets every group to one lr: an error before training
    when our constructor's groups have different lrs."""
    wrapper = cfg.get('optim_wrapper') or {}
    strategy = cfg.get('strategy') or {}
    if wrapper.get('constructor') not in NAMES or 'DeepSpeed' not in str(
            strategy.get('type', '')):
        return
    paramwise = wrapper.get('paramwise_cfg') or {}
    rate = paramwise.get('layer_decay_rate', paramwise.get('decay_rate', 1.0))
    if rate == 1.0 and not any(paramwise.get(k) for k in LR_KEYS):
        return  # one lr for all: nothing to erase
    config, where = deepspeed_config(strategy)
    problem = deepspeed_scheduler_problem(config, where)
    if problem:
        raise ValueError(problem)


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


def check_scheduler_arguments(cfg) -> None:
    """Scheduler arguments that divide or multiply every step in range
    (:data:`internvl_optim.core.numbers.SCHEDULER_RANGES`):
    ``LinearLR(start_factor=0)`` would divide by zero after the first
    iteration."""
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    if not isinstance(schedulers, (list, tuple)):
        raise TypeError('param_scheduler must be a dict or a list of dicts, '
                        f'got {schedulers!r}')
    for i, scheduler in enumerate(schedulers):
        if not isinstance(scheduler, dict):
            raise TypeError(f'param_scheduler[{i}] must be a dict such as '
                            "dict(type='PolyLR', power=1.0), got "
                            f'{scheduler!r}')
        where = f'param_scheduler[{i}] ({scheduler.get("type")})'
        check_scheduler_arguments_of(scheduler, where)
        check_milestones(scheduler.get('milestones'), f'{where}.milestones')


def check_milestones(milestones, where: str) -> None:
    """MultiStepLR's ``milestones``: a list of iteration (or epoch) indices
    >= 0; a string would be read character by character and never reached.
    """
    if milestones is None:
        return
    if not isinstance(milestones, (list, tuple)) or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 0
            for m in milestones):
        raise TypeError(f'{where} must be a list of ints >= 0 (the '
                        'iterations or epochs where the lr drops), got '
                        f'{milestones!r}')


#: ``train_cfg`` lengths and intervals: positive ints
TRAIN_CFG_COUNTS = ('max_iters', 'max_epochs', 'val_interval', 'val_begin')


def check_train_cfg(cfg) -> None:
    """``train_cfg`` lengths and intervals as MMEngine's loops need them:
    ``max_iters=-1`` would train nothing and save a checkpoint at -1."""
    train_cfg = cfg.get('train_cfg')
    if train_cfg is None:
        return
    if not isinstance(train_cfg, dict):
        raise TypeError('train_cfg must be a dict such as '
                        "dict(type='IterBasedTrainLoop', max_iters=80000), "
                        f'got {train_cfg!r}')
    for key in TRAIN_CFG_COUNTS:
        value = train_cfg.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or (
                value <= 0 if key != 'val_begin' else value < 0):
            wanted = 'an int >= 0' if key == 'val_begin' else 'an int > 0'
            raise ValueError(f'train_cfg.{key} must be {wanted}, got '
                             f'{value!r}')


def check_optim_wrapper(cfg) -> None:
    """The ``optim_wrapper`` of a config that uses our constructor, as the
    constructor checks it, before anything is built: ``paramwise_cfg``
    keys and values, the optimizer's numbers and arguments."""
    wrapper = cfg.get('optim_wrapper')
    if wrapper is None:
        return
    if not isinstance(wrapper, dict):
        raise TypeError(f'optim_wrapper must be a dict, got {wrapper!r}')
    if wrapper.get('constructor') not in NAMES:
        return
    from .optimizers.layer_decay_constructor import read_optim_wrapper_cfg
    read_optim_wrapper_cfg(wrapper, wrapper.get('paramwise_cfg'))


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
    exists, before the model is built (``init_weights`` would fail late)."""
    missing = missing_weight_files(cfg)
    if missing:
        raise FileNotFoundError(
            '; '.join(missing) + '. Download the weights there, give their '
            'path with --cfg-options, or set the key to None to start from '
            'random weights')
