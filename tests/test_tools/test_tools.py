"""tools/train.py and tools/test.py refuse bad input before any work."""
import os
import re
import subprocess
import sys

import pytest
import torch

from helpers import load_tool

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DEMO = os.path.join(ROOT, 'configs/demo/'
                    'internvit_tiny_upernet_synthetic_ade20k.py')


def test_amp_without_gpu_is_refused(tmp_path):
    from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k
    root = make_synthetic_ade20k(str(tmp_path), num_train=1, num_val=1)
    train = load_tool('train')
    args = train.parse_args([DEMO, '--amp', '--cfg-options',
                             f'train_dataloader.dataset.data_root={root}',
                             f'val_dataloader.dataset.data_root={root}'])
    if torch.cuda.is_available():
        pytest.skip('has a GPU')
    with pytest.raises(RuntimeError, match=re.escape(
            "--amp needs a CUDA GPU: MMEngine's AmpOptimWrapper does not run "
            'on CPU')):
        train.build_config(args)


def test_train_adds_zero_hook_and_resume_flags(tmp_path):
    from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k
    root = make_synthetic_ade20k(str(tmp_path), num_train=1, num_val=1)
    train = load_tool('train')
    args = train.parse_args([
        DEMO, '--resume', '--cfg-options',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        'optim_wrapper.optimizer.type=ZeroRedundancyOptimizer',
        'optim_wrapper.optimizer.optimizer_type=AdamW'])
    cfg = train.build_config(args)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.custom_hooks == [dict(type='ZeroConsolidateHook'),
                                dict(type='LayerLrSpreadHook'),
                                dict(type='CheckpointTrustHook'),
                                dict(type='FreshWritesHook')]
    assert cfg.work_dir == os.path.join(
        './work_dirs', 'internvit_tiny_upernet_synthetic_ade20k')


def test_test_tool_rejects_a_checkpoint_of_another_model(tmp_path):
    from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k
    root = make_synthetic_ade20k(str(tmp_path / 'data'), num_train=1,
                                 num_val=1)
    ckpt = tmp_path / 'other.pth'
    torch.save({'state_dict': {'backbone.layers.0.weight': torch.zeros(2)}},
               ckpt)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/test.py'), DEMO,
         str(ckpt), '--cfg-options',
         f'test_dataloader.dataset.data_root={root}'],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    # one line, no traceback
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f'tools/test.py {DEMO}: ValueError: Checkpoint '
                           f'{ckpt} does not match the model of this config: '
                           'missing keys ')
    assert "unexpected keys 1 (e.g. ['backbone.layers.0.weight'])" in last


def test_test_tool_checkpoint_paths(tmp_path):
    from internvl_optim.checkpoint.files import evaluable_checkpoint
    work_dir = str(tmp_path / 'work')
    plain = tmp_path / 'iter_5.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}}, plain)
    assert evaluable_checkpoint(str(plain), work_dir) == str(plain)
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"checkpoint '{tmp_path / 'nope.pth'}' not found")):
        evaluable_checkpoint(str(tmp_path / 'nope.pth'), work_dir)
    fsdp = tmp_path / 'fsdp' / 'iter_5.pth'
    fsdp.mkdir(parents=True)
    for rank in range(4):
        (fsdp / f'rank{rank}.pth').touch()
    with pytest.raises(ValueError, match=re.escape(
            f"{fsdp} is a sharded FSDP checkpoint (4 files rank{{i}}.pth, "
            "strategy.state_dict_cfg='local'); only an FSDP run on 4 ranks "
            "can load it. Train with strategy.state_dict_cfg='full'")):
        evaluable_checkpoint(str(fsdp), work_dir)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='is a directory but neither a '
                       'DeepSpeed'):
        evaluable_checkpoint(str(tmp_path / 'empty'), work_dir)
    # DeepSpeed: the model states file keeps the weights under 'module'
    ds = tmp_path / 'ds' / 'iter_5.pth'
    ds.mkdir(parents=True)
    torch.save({'module': {'module.backbone.w': torch.arange(3.)},
                'ds_version': '0.15.4'}, ds / 'mp_rank_00_model_states.pt')
    out = evaluable_checkpoint(str(ds), work_dir)
    assert out == os.path.join(work_dir, 'iter_5.pth.weights.pth')
    saved = torch.load(out, weights_only=True)
    assert list(saved) == ['state_dict']
    assert torch.equal(saved['state_dict']['backbone.w'], torch.arange(3.))
