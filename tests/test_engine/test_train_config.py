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
    checkpoint = tmp_path / 'iter_4.pth'
    checkpoint.write_bytes(b'')  # (only its existence is checked here)
    cfg = prepare_train_config(
        demo(**{'optim_wrapper.optimizer.type': 'ZeroRedundancyOptimizer',
                'optim_wrapper.optimizer.optimizer_type': 'AdamW'}),
        '/x/my_config.py', resume=str(checkpoint))
    assert cfg.work_dir == os.path.join('./work_dirs', 'my_config')
    assert cfg.resume is True and cfg.load_from == str(checkpoint)
    assert cfg.custom_hooks == [dict(type='ZeroConsolidateHook'),
                                dict(type='LayerLrSpreadHook'),
                                dict(type='CheckpointTrustHook'),
                                dict(type='FreshWritesHook')]
    assert cfg.default_hooks.checkpoint.backend_args == dict(
        backend='rename_into_place')
    assert cfg.launcher == 'none' and 'model_wrapper_cfg' not in cfg


def test_the_config_checks_run_first(demo):
    cfg = demo(custom_imports=dict(imports=[]))
    with pytest.raises(ValueError, match='does not import internvl_optim'):
        prepare_train_config(cfg, 'c.py')


DEEPSPEED_DEMO = os.path.join(
    ROOT, 'configs/demo/internvit_tiny_upernet_synthetic_ade20k_deepspeed.py')
KEY = 'stage3_param_persistence_threshold'


def test_zero3_on_cpu_processes_has_no_persistent_params(demo):
    """DeepSpeed 0.15.4 re-gathers ZeRO-3's persistent parameters after each
    step with one asynchronous all-gather per parameter and waits for the
    last one only (``Init._allgather_params_coalesced``); on gloo the next
    forward can read a buffer not yet filled."""
    from internvl_optim.engine.train_config import \
        zero3_without_persistent_params
    said = []
    cfg = demo(DEEPSPEED_DEMO, **{'strategy.zero_optimization': dict(
        stage=3, overlap_comm=True)})
    zero3_without_persistent_params(cfg, said.append)
    assert cfg.strategy.zero_optimization == {
        'stage': 3, 'overlap_comm': True, KEY: 0}
    assert said == [f'strategy: ZeRO-3 on CPU processes (gloo): {KEY}=0 '
                    '(DeepSpeed does not wait for every gather of '
                    'persistent parameters there)']
    # set already: left as it is, nothing said
    zero3_without_persistent_params(cfg, said.append)
    assert len(said) == 1
    # ZeRO-1 (the demo's): untouched
    cfg = demo(DEEPSPEED_DEMO)
    zero3_without_persistent_params(cfg, said.append)
    assert cfg.strategy.zero_optimization == {'stage': 1} and len(said) == 1


def test_zero3_persistent_params_on_cpu_are_refused_naming_the_key(
        demo, tmp_path):
    from internvl_optim.engine.train_config import \
        zero3_without_persistent_params
    cfg = demo(DEEPSPEED_DEMO, **{'strategy.zero_optimization': dict(
        stage=3, **{KEY: 100000})})
    with pytest.raises(ValueError) as err:
        zero3_without_persistent_params(cfg, print)
    assert str(err.value).startswith(
        f'strategy.zero_optimization.{KEY}=100000 with ZeRO-3 on CPU '
        'processes (gloo): DeepSpeed 0.15.4 re-gathers persistent parameters')
    assert str(err.value).endswith('Set it to 0 (or leave it unset) on CPU')
    # the same in a DeepSpeed JSON file named by strategy.config
    path = tmp_path / 'ds.json'
    path.write_text('{"zero_optimization": {"stage": 3, "%s": 10}}' % KEY)
    cfg = demo(DEEPSPEED_DEMO)
    cfg.strategy.pop('zero_optimization')
    cfg.strategy.config = str(path)
    with pytest.raises(ValueError, match=(
            f"^zero_optimization.{KEY}=10 in the DeepSpeed config "
            f"'{path}' \\(strategy.config\\) with ZeRO-3 on CPU")):
        zero3_without_persistent_params(cfg, print)
    # through prepare_train_config on a CPU launch: before any process group
    cfg = demo(DEEPSPEED_DEMO, **{'strategy.zero_optimization': dict(
        stage=3, **{KEY: 5})})
    with pytest.raises(ValueError, match=f'^strategy.zero_optimization.{KEY}'
                                         '=5 with ZeRO-3'):
        prepare_train_config(cfg, 'ds.py', launcher='pytorch')
    import torch.distributed as dist
    assert not dist.is_initialized()
