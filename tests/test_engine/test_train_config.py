"""``prepare_train_config``: what tools/train.py does to a config, called as
a package function."""
import os

import pytest
from mmengine.config import Config

from internvl_optim.engine.train_config import prepare_train_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DEMO = os.path.join(ROOT, 'configs/demo/'
                    'internvit_tiny_upernet_synthetic_ade20k.py')


@pytest.fixture
def demo(tmp_path):
    from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k
    root = make_synthetic_ade20k(str(tmp_path / 'data'), num_train=1,
                                 num_val=1)

    def load(config=DEMO, **options):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict({'train_dataloader.dataset.data_root': root,
                             'val_dataloader.dataset.data_root': root,
                             **options})
        return cfg
    return load


def test_strategies_are_swapped_and_said(demo, tmp_path):
    said = []
    cfg = prepare_train_config(
        demo(os.path.join(ROOT, 'configs/demo/internvit_tiny_upernet_'
                               'synthetic_ade20k_fsdp.py'),
             **{'strategy.type': 'FSDPStrategy'}),  # MMEngine's name
        'fsdp.py', work_dir=str(tmp_path), log=said.append)
    assert cfg.strategy.type == 'ResumableFSDPStrategy'
    assert said == ['strategy: FSDPStrategy -> ResumableFSDPStrategy '
                    '(resumes on PyTorch >= 2.1, runs on CPU)']
    cfg = prepare_train_config(
        demo(os.path.join(ROOT, 'configs/demo/internvit_tiny_upernet_'
                               'synthetic_ade20k_deepspeed.py')),
        'ds.py', work_dir=str(tmp_path), log=said.append)
    assert cfg.strategy.type == 'SafeResumeDeepSpeedStrategy'
    assert cfg.strategy.train_micro_batch_size_per_gpu == \
        cfg.train_dataloader.batch_size == 4


def test_resume_zero_hook_and_work_dir(demo, tmp_path):
    cfg = prepare_train_config(
        demo(**{'optim_wrapper.optimizer.type': 'ZeroRedundancyOptimizer',
                'optim_wrapper.optimizer.optimizer_type': 'AdamW'}),
        '/x/my_config.py', resume='/ckpt/iter_4.pth')
    assert cfg.work_dir == os.path.join('./work_dirs', 'my_config')
    assert cfg.resume is True and cfg.load_from == '/ckpt/iter_4.pth'
    assert cfg.custom_hooks == [dict(type='ZeroConsolidateHook'),
                                dict(type='LayerLrSpreadHook'),
                                dict(type='CheckpointTrustHook')]
    assert cfg.launcher == 'none' and 'model_wrapper_cfg' not in cfg


def test_the_config_checks_run_first(demo):
    cfg = demo(custom_imports=dict(imports=[]))
    with pytest.raises(ValueError, match='does not import internvl_optim'):
        prepare_train_config(cfg, 'c.py')
