"""Clear messages for a config without our import, a missing dataset
directory, and unsafe checkpoint content."""
import os
import pickle
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer

from internvl_optim.checkpoint.safe_loading import restricted_getattr
from internvl_optim.engine.config_checks import check_data_roots, check_our_import

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DEMO = os.path.join(ROOT, 'configs/demo/'
                    'internvit_tiny_upernet_synthetic_ade20k.py')


def test_config_without_our_import():
    cfg = Config(dict(
        model=dict(backbone=dict(type='InternViT6B')),
        optim_wrapper=dict(constructor='LayerDecayOptimizerConstructor')))
    with pytest.raises(ValueError, match=re.escape(
            "The config uses optim_wrapper.constructor="
            "'LayerDecayOptimizerConstructor' and model.backbone.type="
            "'InternViT6B' but does not import internvl_optim; add\n    "
            "custom_imports = dict(imports=['internvl_optim'], "
            'allow_failed_imports=False)')):
        check_our_import(cfg)
    cfg.custom_imports = dict(imports=['internvl_optim'])
    check_our_import(cfg)
    # the engine package registers whatever was imported before
    cfg.custom_imports = dict(imports=['mmdet.models', 'internvl_optim.engine'])
    check_our_import(cfg)
    cfg.custom_imports = dict(imports=['internvl_optimizers'])
    with pytest.raises(ValueError, match='does not import internvl_optim'):
        check_our_import(cfg)


def test_missing_dataset_directory(tmp_path):
    cfg = Config.fromfile(DEMO)
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"train_dataloader.dataset (ADE20KDataset): directory "
            f"'{tmp_path}/nowhere' does not exist. Prepare ADE20K")):
        check_data_roots(cfg)
    # other datasets are named as they are, not as ADE20K
    cfg.train_dataloader.dataset.type = 'CityscapesDataset'
    with pytest.raises(FileNotFoundError) as info:
        check_data_roots(cfg)
    assert str(info.value) == (
        f"train_dataloader.dataset (CityscapesDataset): directory "
        f"'{tmp_path}/nowhere' does not exist. Prepare the data as MMSeg "
        'documents for CityscapesDataset, or set '
        'train_dataloader.dataset.data_root')


def test_train_tool_reports_missing_dataset(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/train.py'), DEMO,
         '--work-dir', str(tmp_path), '--cfg-options',
         f'train_dataloader.dataset.data_root={tmp_path}/none'],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert 'tools/make_synthetic_ade20k.py' in result.stderr.splitlines()[-1]


def test_safe_loading_allows_history_buffer_and_nothing_else(tmp_path):
    buffer = HistoryBuffer([1.0, 2.0], [1, 1])
    path = tmp_path / 'hub.pth'
    torch.save({'buffer': buffer, 'w': torch.ones(2)}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded['buffer'].mean() == 1.5
    # getattr is allowed for HistoryBuffer statistics only
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        restricted_getattr(os, 'system')

    class Sneaky:

        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    torch.save({'x': Sneaky()}, path)
    with pytest.raises(pickle.UnpicklingError, match=re.escape(
            "refusing getattr(<class 'mmengine.logging.history_buffer."
            "HistoryBuffer'>, '__init__')")):
        torch.load(path, weights_only=True)


def test_bfloat16_backbone_with_fsdp_is_refused_before_training():
    from internvl_optim.engine.train_config import prepare_train_config
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                        '..')
    cfg = Config.fromfile(os.path.join(
        root, 'configs/intern_vit_6b/full_tuning/'
        'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_fsdp.py'))
    cfg.model.backbone.param_dtype = 'bfloat16'
    with pytest.raises(ValueError, match=re.escape(
            "model.backbone.param_dtype='bfloat16' with strategy "
            'ResumableFSDPStrategy: FSDP flattens each unit into one tensor '
            'of one dtype')):
        prepare_train_config(cfg, 'x.py')
    # the DeepSpeed recipe with the same setting passes this check
    from internvl_optim.engine.config_checks import \
        check_backbone_dtype_fits_strategy
    check_backbone_dtype_fits_strategy(Config.fromfile(os.path.join(
        root, 'configs/intern_vit_6b/full_tuning/'
        'upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_deepspeed.py')))


@pytest.mark.parametrize('milestones', ['a', [10, 'b'], [-1], 3, [True]])
def test_multistep_milestones_must_be_iterations(milestones):
    from internvl_optim.engine.config_checks import check_param_schedulers
    cfg = Config(dict(param_scheduler=[
        dict(type='LinearLR', start_factor=0.1, end=10),
        dict(type='MultiStepLR', milestones=milestones, gamma=0.1)]))
    with pytest.raises(TypeError, match=re.escape(
            'param_scheduler[1] (MultiStepLR).milestones must be a list of '
            'ints >= 0 (the iterations or epochs where the lr drops), got '
            f'{milestones!r}')):
        check_param_schedulers(cfg)
    cfg.param_scheduler[1].milestones = [100, 200]
    check_param_schedulers(cfg)  # a real list passes


@pytest.mark.parametrize('key, value, wanted', [
    ('max_iters', -1, 'an int > 0'), ('max_iters', 0, 'an int > 0'),
    ('max_epochs', 2.5, 'an int > 0'), ('val_interval', '100', 'an int > 0'),
    ('val_begin', -3, 'an int >= 0')])
def test_train_cfg_lengths_must_be_positive_ints(key, value, wanted):
    from internvl_optim.engine.config_checks import check_train_cfg
    cfg = Config(dict(train_cfg=dict(type='IterBasedTrainLoop',
                                     max_iters=100, val_interval=10)))
    cfg.train_cfg[key] = value
    with pytest.raises(ValueError, match=re.escape(
            f'train_cfg.{key} must be {wanted}, got {value!r}')):
        check_train_cfg(cfg)
    cfg.train_cfg[key] = 1
    check_train_cfg(cfg)


def test_phases_by_epoch_in_an_iteration_loop_are_refused():
    from mmengine.config import Config
    from internvl_optim.engine.config_checks import check_phases_fit_the_loop
    cfg = Config(dict(
        optim_wrapper=dict(paramwise_cfg=dict(layer_phases=dict(
            head_only=2, by_epoch=True))),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=100)))
    with pytest.raises(ValueError) as err:
        check_phases_fit_the_loop(cfg)
    assert str(err.value).startswith(
        'paramwise_cfg.layer_phases.by_epoch=True counts the phases in '
        'epochs, but train_cfg (IterBasedTrainLoop) runs by iterations')
    cfg.train_cfg = dict(by_epoch=True, max_epochs=3)
    check_phases_fit_the_loop(cfg)


def test_one_cycle_with_one_eta_max_is_refused_before_building(data_root):
    """MMEngine's OneCycleLR writes eta_max / div_factor into every group
    (checked on the real class), so with one eta_max the layer ratios
    would be gone from the first iteration: refused, naming the scheduler.
    """
    from mmengine.optim.scheduler.lr_scheduler import OneCycleLR
    from internvl_optim.engine.train_config import prepare_train_config
    groups = [dict(params=[torch.nn.Parameter(torch.ones(1))], lr=lr)
              for lr in (1.0, 0.25)]
    optimizer = torch.optim.AdamW(groups)
    OneCycleLR(optimizer, eta_max=1e-3, total_steps=10, by_epoch=False)
    first, second = [g['lr'] for g in optimizer.param_groups]
    assert first == second == pytest.approx(1e-3 / 25)

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                        '..')
    cfg = Config.fromfile(os.path.join(
        root, 'configs/demo/internvit_tiny_upernet_synthetic_ade20k.py'))
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.val_dataloader.dataset.data_root = data_root
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, end=2,
                                by_epoch=False),
                           dict(type='OneCycleLR', eta_max=1e-3,
                                total_steps=40, by_epoch=False)]
    with pytest.raises(ValueError) as err:
        prepare_train_config(cfg, 'x.py')
    assert str(err.value).startswith(
        'param_scheduler[1] (OneCycleLR) sets every param group to the same '
        'lr (eta_max=0.001 for all), erasing the layer-wise ratios of '
        'paramwise_cfg. Schedule with LinearLR (warm-up) and '
        'CosineAnnealingLR or PolyLR')
    # one value per group, or one lr for all groups, passes the check
    from internvl_optim.engine.config_checks import \
        check_one_cycle_keeps_ratios
    cfg.param_scheduler[1].eta_max = [1e-3, 9e-4]
    check_one_cycle_keeps_ratios(cfg)
    cfg.param_scheduler[1].eta_max = 1e-3
    cfg.optim_wrapper.paramwise_cfg.layer_decay_rate = 1.0
    check_one_cycle_keeps_ratios(cfg)


@pytest.mark.parametrize('given', ['resume', 'load_from'])
def test_a_checkpoint_path_that_is_no_checkpoint_is_named(data_root,
                                                          tmp_path, given):
    """--resume / load_from naming a directory without a checkpoint, a
    device or a FIFO (which would block the loader): refused before
    anything is built; a DeepSpeed checkpoint directory is accepted."""
    from internvl_optim.engine.train_config import prepare_train_config
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                        '..')
    demo = os.path.join(
        root, 'configs/demo/internvit_tiny_upernet_synthetic_ade20k.py')

    def prepare(path):
        cfg = Config.fromfile(demo)
        cfg.train_dataloader.dataset.data_root = data_root
        cfg.val_dataloader.dataset.data_root = data_root
        if given == 'load_from':
            cfg.load_from = path
        prepare_train_config(cfg, demo, work_dir=str(tmp_path / 'work'),
                             resume=path if given == 'resume' else None)
    where = '--resume ' if given == 'resume' else 'load_from='
    quote = (lambda p: p) if given == 'resume' else repr
    empty = tmp_path / 'run'
    empty.mkdir()
    fifo = tmp_path / 'iter_4.pth'
    os.mkfifo(fifo)
    for path, problem in [
            (empty, 'is a directory without a checkpoint in it'),
            (fifo, 'is not a regular file (a FIFO, socket or device)')]:
        with pytest.raises(ValueError) as err:
            prepare(str(path))
        assert str(err.value).startswith(f'{where}{quote(str(path))} '
                                         f'{problem}')
    (empty / 'mp_rank_00_model_states.pt').write_bytes(b'x')
    prepare(str(empty))  # a DeepSpeed checkpoint directory


@pytest.mark.parametrize('key, value, exc, message', [
    ('optim_wrapper.optimizer.type', 3, TypeError,
     "optim_wrapper.optimizer.type must be the name of a registered "
     "optimizer (such as 'AdamW') or its class, got 3"),
    ('optim_wrapper.constructor', 3, TypeError,
     'optim_wrapper.constructor must be the name of a registered '
     "constructor (such as 'LayerDecayOptimizerConstructor') or its class, "
     'got 3'),
    ('optim_wrapper.clip_grad', 'x', TypeError,
     "optim_wrapper.clip_grad must be a dict such as dict(max_norm=1.0) or "
     "None, got 'x'"),
    ('optim_wrapper.accumulative_counts', 41, ValueError,
     'optim_wrapper.accumulative_counts=41 is more than '
     'train_cfg.max_iters=40: the optimizer would never step'),
    ('optim_wrapper.accumulative_counts', 10 ** 30, ValueError,
     'optim_wrapper.accumulative_counts=(an int of 100 bits) is more than '
     'train_cfg.max_iters=40'),
    ('randomness.seed', 2 ** 32, ValueError,
     'randomness.seed must be None or an int in [0, 4294967295], got '
     '4294967296'),
    ('randomness.seed', '0', ValueError,
     "randomness.seed must be None or an int in [0, 4294967295], got '0'"),
    ('optim_wrapper.paramwise_cfg.layer_decay_rate', 10 ** 400, ValueError,
     'paramwise_cfg.layer_decay_rate must be in (0, 1], got an integer of '
     '1329 bits'),
])
def test_careless_run_keys_are_named_before_building(data_root, key, value,
                                                     exc, message):
    from internvl_optim.engine.train_config import prepare_train_config
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                        '..')
    demo = os.path.join(
        root, 'configs/demo/internvit_tiny_upernet_synthetic_ade20k.py')
    cfg = Config.fromfile(demo)
    cfg.merge_from_dict({key: value,
                         'train_dataloader.dataset.data_root': data_root,
                         'val_dataloader.dataset.data_root': data_root})
    with pytest.raises(exc) as err:
        prepare_train_config(cfg, demo)
    assert str(err.value).startswith(message)
