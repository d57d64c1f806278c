"""Real multi-process runs (torchrun, gloo on CPU): ZeRO with layer-decay
groups, checkpoints that survive it, DDP with frozen parts, FSDP (v1 through
MMEngine's strategies, and FSDP2), DeepSpeed."""
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch

from internvl_optim.checkpoint.safe_loading import load_checkpoint_file


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
DEMO = os.path.join(ROOT, 'configs/demo/'
                    'internvit_tiny_upernet_synthetic_ade20k.py')
ZERO = ['optim_wrapper.optimizer.type=ZeroRedundancyOptimizer',
        'optim_wrapper.optimizer.optimizer_type=AdamW']

pytestmark = pytest.mark.slow


def torchrun(nproc, *args, timeout=240):
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         f'--nproc_per_node={nproc}', *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + \
        result.stderr[-4000:]
    return result.stdout + result.stderr


def train(nproc, data_root, work_dir, *options, resume=False, config=DEMO):
    args = [os.path.join(ROOT, 'tools/train.py'), config, '--launcher',
            'pytorch', '--work-dir', str(work_dir)]
    if resume:
        args.append('--resume')
    return torchrun(nproc, *args, '--cfg-options',
                    f'train_dataloader.dataset.data_root={data_root}',
                    f'val_dataloader.dataset.data_root={data_root}',
                    *options)


def evaluate(config, checkpoint, data_root, work_dir):
    """tools/test.py CONFIG CHECKPOINT on one process."""
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools/test.py'), config,
         str(checkpoint), '--work-dir', str(work_dir), '--cfg-options',
         f'test_dataloader.dataset.data_root={data_root}'],
        capture_output=True, text=True, timeout=240, cwd=ROOT)


def weights(path):
    return load_checkpoint_file(str(path))['state_dict']


def test_zero_partitions_state_and_keeps_ranks_identical():
    out = torchrun(2, os.path.join(ROOT, 'tests/scripts/zero_groups.py'))
    ranks = sorted((json.loads(line) for line in out.splitlines()
                    if line.startswith('{')), key=lambda r: r['rank'])
    assert [r['rank'] for r in ranks] == [0, 1]
    total = ranks[0]['ideal_total']
    assert sum(r['state_bytes'] for r in ranks) == total
    for r in ranks:
        assert abs(r['state_bytes'] - total / 2) <= 0.05 * total / 2
        assert r['identical'] and r['groups'] == 16
    # consolidated to rank 0 only, with every parameter's state and names
    assert ranks[0]['saved_groups'] == 16 and ranks[0]['saved_states'] > 0
    assert ranks[1]['saved_groups'] == 0
    assert ranks[0]['first_names'] == ['backbone.up1.0.weight',
                                       'backbone.up2.weight']


def test_zero_checkpoint_resumes_like_an_uninterrupted_run(data_root,
                                                           tmp_path):
    full, split = tmp_path / 'full', tmp_path / 'split'
    train(2, data_root, full, *ZERO)
    train(2, data_root, split, *ZERO, 'train_cfg.max_iters=20')
    log = train(2, data_root, split, *ZERO, resume=True)
    assert 'resumed epoch: 0, iter: 20' in log
    a, b = weights(full / 'iter_40.pth'), weights(split / 'iter_40.pth')
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    saved = load_checkpoint_file(str(full / 'iter_40.pth'))['optimizer']
    assert len(saved['param_groups']) == 12 and len(saved['state']) > 0

    # the consolidated checkpoint also resumes on another number of ranks
    one = tmp_path / 'one'
    one.mkdir()
    log = train(1, data_root, one, *ZERO,
                f'load_from={split / "iter_20.pth"}', 'resume=True')
    assert 'resumed epoch: 0, iter: 20' in log
    assert os.path.exists(one / 'iter_40.pth')


LINEAR_PROBE = os.path.join(ROOT, 'configs/demo/'
                            'internvit_tiny_linear_probe_synthetic_ade20k.py')


@pytest.mark.parametrize('config, options, frozen_prefix', [
    (DEMO, ['model.backbone.freeze_vit=True'], 'backbone.blocks.'),
    (LINEAR_PROBE, [], 'backbone.'),
    (DEMO, ['optim_wrapper.paramwise_cfg.freeze_backbone=[0,1]',
            'find_unused_parameters=True'], 'backbone.blocks.1.'),
], ids=['head_tuning', 'linear_probing', 'partial_freezing'])
def test_ddp_with_frozen_parts(data_root, tmp_path, config, options,
                               frozen_prefix):
    train(2, data_root, tmp_path, 'train_cfg.max_iters=10',
          'default_hooks.checkpoint.interval=5', *options, config=config)
    early, late = (weights(tmp_path / f'iter_{i}.pth') for i in (5, 10))
    frozen = [k for k in early if k.startswith(frozen_prefix)]
    assert frozen and all(torch.equal(early[k], late[k]) for k in frozen)
    head = 'decode_head.conv_seg.weight'
    assert not torch.equal(early[head], late[head])


def test_fsdp2_sharded_model_gets_the_single_process_groups():
    # PyTorch's FSDP2 (fully_shard: DTensors with global shapes), for users
    # who shard outside MMEngine's strategies
    out = torchrun(2, os.path.join(ROOT, 'tests/scripts/fsdp2_groups.py'))
    ranks = sorted((json.loads(line) for line in out.splitlines()
                    if line.startswith('{')), key=lambda r: r['rank'])
    assert [r['equal'] for r in ranks] == [True, True]
    assert [r['groups'] for r in ranks] == [10, 10]
    # rank 1 holds empty shards of the 1-row embeddings: really sharded
    assert ranks[1]['some_local_shard_empty']


FSDP_DEMO = os.path.join(ROOT, 'configs/demo/'
                         'internvit_tiny_upernet_synthetic_ade20k_fsdp.py')
FSDP_RUN = ['train_cfg.max_iters=10', 'default_hooks.checkpoint.interval=5',
            'default_hooks.logger.interval=1', 'train_cfg.val_interval=100']


def test_fsdp_strategy_gets_the_single_process_groups():
    # MMEngine's FSDPStrategy (FSDP v1, use_orig_params=True) and ours,
    # one FSDP unit per block: every parameter is a 1-D view of its rank's
    # shard, yet lr / weight decay / group equal the unwrapped model's
    out = torchrun(2, os.path.join(ROOT, 'tests/scripts/fsdp1_groups.py'),
                   'FSDPStrategy', 'ResumableFSDPStrategy')
    runs = [json.loads(line) for line in out.splitlines()
            if line.startswith('{')]
    assert sorted((r['strategy'], r['rank']) for r in runs) == [
        ('FSDPStrategy', 0), ('FSDPStrategy', 1),
        ('ResumableFSDPStrategy', 0), ('ResumableFSDPStrategy', 1)]
    for r in runs:
        assert r['equal'], r['differing']
        assert r['params'] == 107 and r['block_units'] == 4
        assert r['all_1d'] and r['some_empty']
        # the (192, 64) qkv weight: 12288 values on rank 0, none on rank 1,
        # and still weight decay
        assert r['qkv_shape'] == ([12288] if r['rank'] == 0 else [0])
        assert r['qkv_wd'] == 0.05


def test_fsdp_on_cuda():
    """tests/scripts/fsdp_cuda_check.py: on CUDA where present (both
    strategies, NCCL), else on CPU (ours only).  See README 'On a GPU'."""
    script = os.path.join(ROOT, 'tests/scripts/fsdp_cuda_check.py')
    lines = torchrun(1, script, 'train').splitlines()
    for rank in (0, 1):  # one process as rank 0 / 1 of 2 (fake group)
        result = subprocess.run([sys.executable, script, 'shard', str(rank)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        lines += result.stdout.splitlines()
    runs = [json.loads(line) for line in lines if line.startswith('{')]
    cuda = torch.cuda.is_available()
    kinds = {'FSDPStrategy', 'ResumableFSDPStrategy'} if cuda else {
        'ResumableFSDPStrategy'}
    groups = [r for r in runs if r['check'] == 'groups']
    assert {(r['strategy'], r['mode'], r['rank']) for r in groups} == {
        (k, m, r) for k in kinds
        for m, r in [('train', 0), ('shard', 0), ('shard', 1)]}
    for r in groups:
        assert r['equal'] and r['qkv_wd'] == 0.05
        assert r['device'] == ('cuda:0' if cuda else 'cpu')
        if r['mode'] == 'shard':
            assert r['all_1d'] and r['world_size'] == 2
            assert r['qkv_shape'] == ([192] if r['rank'] == 0 else [0])
    resumes = {(r['strategy'], r['state_dict_cfg']): r
               for r in runs if r['check'] == 'resume'}
    for cfg in ('local', 'full'):
        ours = resumes['ResumableFSDPStrategy', cfg]
        assert ours['resumed'] and ours['same_names']
        assert ours['max_abs_diff'] == 0.0 and ours['moved_from_init'] > 0
    if cuda:  # MMEngine 0.10.7's own cannot resume on PyTorch >= 2.1
        assert resumes['FSDPStrategy', 'local']['error'] == \
            "TypeError: unhashable type: 'dict'"


def scalars(work_dir):
    """{iter: (loss, lr, base_lr)} from a run's vis_data/scalars.json."""
    out = {}
    for path in work_dir.glob('*/vis_data/scalars.json'):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if 'loss' in row:
                out[row['iter']] = (row['loss'], row['lr'], row['base_lr'])
    return out


def resume_dir(tmp_path, name, checkpoint):
    """A fresh work dir whose last checkpoint is a copy of ``checkpoint``."""
    import shutil
    work_dir = tmp_path / name
    work_dir.mkdir()
    copy = shutil.copytree if checkpoint.is_dir() else shutil.copy
    copy(checkpoint, work_dir / checkpoint.name)
    (work_dir / 'last_checkpoint').write_text(str(work_dir /
                                                  checkpoint.name))
    return work_dir


def test_fsdp_local_checkpoint_resumes_like_an_uninterrupted_run(
        data_root, tmp_path):
    full = tmp_path / 'full'
    log = train(2, data_root, full, *FSDP_RUN, 'strategy.type=FSDPStrategy',
                config=FSDP_DEMO)
    assert 'FSDPStrategy -> ResumableFSDPStrategy' in log
    assert sorted(os.listdir(full / 'iter_5.pth')) == ['rank0.pth',
                                                       'rank1.pth']
    split = resume_dir(tmp_path, 'split', full / 'iter_5.pth')
    log = train(2, data_root, split, *FSDP_RUN, config=FSDP_DEMO,
                resume=True)
    assert 'resumed epoch: 0, iter: 5' in log
    expected = scalars(full)
    # loss, lr and the logged base_lr of iterations 6..10, bit for bit
    assert scalars(split) == {i: expected[i] for i in range(6, 11)}

    one = resume_dir(tmp_path, 'one', full / 'iter_5.pth')
    with pytest.raises(AssertionError, match=(
            r"saved by 2 ranks \(state_dict_cfg='local'\); it can only be "
            r'resumed on 2 ranks, not 1')):
        train(1, data_root, one, *FSDP_RUN, config=FSDP_DEMO, resume=True)
    result = evaluate(FSDP_DEMO, full / 'iter_10.pth', data_root,
                      tmp_path / 'eval')
    assert result.returncode != 0
    assert 'is a sharded FSDP checkpoint (2 files' in result.stderr


def test_fsdp_with_layer_phases_saves_and_resumes_like_an_uninterrupted_run(
        data_root, tmp_path):
    """FSDP saves the optimizer state of all the parameters of a flat
    parameter or of none: a layer not joined yet keeps its gradients and
    steps at lr 0 there, so every save holds each parameter's state (the
    embeddings share the root unit with the heads and join last)."""
    phases = ['optim_wrapper.paramwise_cfg.layer_phases.head_only=4',
              'optim_wrapper.paramwise_cfg.layer_phases.unfreeze_every=1',
              'optim_wrapper.paramwise_cfg.layer_phases.warmup=2',
              'strategy.state_dict_cfg=full']
    full = tmp_path / 'full'
    log = train(2, data_root, full, *FSDP_RUN, *phases, config=FSDP_DEMO)
    assert 'Saving checkpoint at 10 iterations' in log
    state = load_checkpoint_file(str(full / 'iter_5.pth'))['optimizer']
    # the embeddings (joining at iteration 8) have moments at iteration 5
    saved = {name for group in state['param_groups']
             for name in group['param_names']}
    assert {'backbone.pos_embed', 'backbone.cls_token'} <= saved
    assert len(state['state']) == len(saved)
    split = resume_dir(tmp_path, 'split', full / 'iter_5.pth')
    log = train(2, data_root, split, *FSDP_RUN, *phases, config=FSDP_DEMO,
                resume=True)
    assert 'resumed epoch: 0, iter: 5' in log
    expected = scalars(full)
    assert scalars(split) == {i: expected[i] for i in range(6, 11)}


def test_fsdp_full_checkpoint_resumes_on_any_number_of_ranks(data_root,
                                                             tmp_path):
    run = [*FSDP_RUN, 'strategy.state_dict_cfg=full']
    full = tmp_path / 'full'
    train(2, data_root, full, *run, config=FSDP_DEMO)
    split = resume_dir(tmp_path, 'split', full / 'iter_5.pth')
    train(2, data_root, split, *run, config=FSDP_DEMO, resume=True)
    a, b = weights(full / 'iter_10.pth'), weights(split / 'iter_10.pth')
    assert a.keys() == b.keys() and len(a) > 100
    assert [k for k in a if not torch.equal(a[k], b[k])] == []

    one = resume_dir(tmp_path, 'one', full / 'iter_5.pth')
    log = train(1, data_root, one, *run, config=FSDP_DEMO, resume=True)
    assert 'resumed epoch: 0, iter: 5' in log
    # same schedule on one rank (the data split, hence the loss, differs)
    expected = scalars(full)
    assert {i: s[1:] for i, s in scalars(one).items()} == {
        i: expected[i][1:] for i in range(6, 11)}
    assert os.path.exists(one / 'iter_10.pth')
    # and on 3 ranks: the full state is keyed by name, FSDP shards it anew
    three = resume_dir(tmp_path, 'three', full / 'iter_5.pth')
    log = train(3, data_root, three, *run, config=FSDP_DEMO, resume=True)
    assert 'resumed epoch: 0, iter: 5' in log
    assert {i: s[1:] for i, s in scalars(three).items()} == {
        i: expected[i][1:] for i in range(6, 11)}
    assert len(weights(three / 'iter_10.pth')) == len(a)
    # a 'full' checkpoint is one file that tools/test.py evaluates
    result = evaluate(FSDP_DEMO, full / 'iter_10.pth', data_root,
                      tmp_path / 'eval')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'mIoU' in result.stdout + result.stderr


def deepspeed_groups(checkpoint_dir):
    """The param groups DeepSpeed saved for rank 0's ZeRO partition."""
    from internvl_optim.checkpoint.safe_loading import allow_deepspeed_checkpoints
    allow_deepspeed_checkpoints()
    state = load_checkpoint_file(str(
        checkpoint_dir / 'zero_pp_rank_0_mp_rank_00_optim_states.pt')
    )['optimizer_state_dict']
    return state['base_optimizer_state']['param_groups']


def test_deepspeed_zero1_keeps_layer_decay_groups_and_resumes(data_root,
                                                              tmp_path):
    config = os.path.join(ROOT, 'configs/demo/'
                          'internvit_tiny_upernet_synthetic_ade20k_deepspeed.py')
    train(2, data_root, tmp_path, 'train_cfg.max_iters=10',
          'default_hooks.checkpoint.interval=5', config=config)
    # a meta.config planted in the DeepSpeed checkpoint is not
    # executed by FlexibleRunner.resume (SafeResumeDeepSpeedStrategy)
    from malicious_checkpoints import with_config_payload

    from internvl_optim.checkpoint.safe_loading import allow_deepspeed_checkpoints
    allow_deepspeed_checkpoints()
    marker = tmp_path / 'config_ran'
    model_states = tmp_path / 'iter_10.pth' / 'mp_rank_00_model_states.pt'
    torch.save(with_config_payload(
        load_checkpoint_file(str(model_states)), marker), model_states)
    log = train(2, data_root, tmp_path, 'train_cfg.max_iters=15',
                'default_hooks.checkpoint.interval=5', config=config,
                resume=True)
    assert 'resumed epoch: 0, iter: 10' in log
    assert not marker.exists()
    assert 'ignored meta.config (a config stored in a checkpoint is never ' \
        'executed)' in log
    groups = deepspeed_groups(tmp_path / 'iter_15.pth')
    assert [g['group_name'] for g in groups][:3] == [
        'layer_5_decay', 'layer_5_no_decay', 'layer_4_decay']
    assert [g['lr_scale'] for g in groups[::2]] == pytest.approx(
        [1.0, 0.9, 0.81, 0.729, 0.6561, 0.59049])
    for group in groups:  # the schedule scaled every group alike
        assert group['lr'] == pytest.approx(groups[0]['lr'] *
                                            group['lr_scale'])
    assert [g['weight_decay'] for g in groups[:2]] == [0.05, 0.0]

    # weights of another model: named and counted, not load_state_dict's
    # list of every key
    model_states = tmp_path / 'iter_15.pth' / 'mp_rank_00_model_states.pt'
    states = load_checkpoint_file(str(model_states))
    states['module']['extra.weight'] = states['module'].pop(
        'backbone.cls_token')
    torch.save(states, model_states)
    with pytest.raises(AssertionError) as err:
        train(2, data_root, tmp_path, 'train_cfg.max_iters=20',
              config=config, resume=True)
    assert ('mp_rank_00_model_states.pt: its weights do not match the model '
            'being resumed: missing 1 (backbone.cls_token), unexpected 1 '
            '(extra.weight), shape mismatches 0') in str(err.value)
    assert 'Error(s) in loading state_dict' not in str(err.value)


def test_internvl_deepspeed_keys_train_with_our_groups(data_root, tmp_path):
    # InternVL's deepspeed=True + deepspeed_config JSON (with its own
    # optimizer section, which must not replace our groups)
    ds_json = tmp_path / 'adam_zero1.json'
    ds_json.write_text(json.dumps({
        'train_batch_size': 8, 'gradient_accumulation_steps': 1,
        'optimizer': {'type': 'Adam', 'params': {'lr': 0.00004}},
        'zero_optimization': {'stage': 1}}))
    log = train(2, data_root, tmp_path, 'train_cfg.max_iters=5',
                'default_hooks.checkpoint.interval=5', 'deepspeed=True',
                f'deepspeed_config={ds_json}')
    assert 'FlexibleRunner + DeepSpeedStrategy (ZeRO stage 1)' in log
    groups = deepspeed_groups(tmp_path / 'iter_5.pth')
    assert len(groups) == 12
    assert [g['group_name'] for g in groups][:2] == ['layer_5_decay',
                                                     'layer_5_no_decay']
    assert [g['weight_decay'] for g in groups[:2]] == [0.05, 0.0]
    # AdamW from optim_wrapper with the config's lr schedule, not the
    # JSON's Adam at 4e-5
    assert groups[0]['lr'] == pytest.approx(5e-3)
    assert groups[-1]['lr'] == pytest.approx(5e-3 * 0.9**5)
    # tools/test.py evaluates the DeepSpeed checkpoint directory
    result = evaluate(DEMO, tmp_path / 'iter_5.pth', data_root,
                      tmp_path / 'eval')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'mIoU' in result.stdout + result.stderr
    assert os.path.exists(tmp_path / 'eval' / 'iter_5.pth.weights.pth')


def test_dist_train_sh(data_root, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    result = subprocess.run(
        ['bash', os.path.join(ROOT, 'tools/dist_train.sh'), DEMO, '2',
         '--work-dir', str(tmp_path), '--cfg-options',
         f'train_dataloader.dataset.data_root={data_root}',
         f'val_dataloader.dataset.data_root={data_root}',
         'train_cfg.max_iters=5', 'default_hooks.checkpoint.interval=5'],
        capture_output=True, text=True, timeout=240,
        env=dict(os.environ, PORT=str(port)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Iter(train) [5/5]' in result.stdout + result.stderr
    assert os.path.exists(tmp_path / 'iter_5.pth')


def test_deepspeed_bf16_with_bfloat16_backbone(data_root, tmp_path):
    """InternVL's setting on 2 CPU processes: DeepSpeed ZeRO-1 in
    bf16 mode, InternViT6B(param_dtype='bfloat16'), inputs cast by
    inputs_to_half; float32 masters in the ZeRO partitions, our groups kept,
    no low-precision warning (DeepSpeed keeps masters)."""
    config = os.path.join(ROOT, 'configs/demo/'
                          'internvit_tiny_upernet_synthetic_ade20k_deepspeed.py')
    log = train(2, data_root, tmp_path, 'train_cfg.max_iters=10',
                'train_cfg.val_interval=10',
                'default_hooks.checkpoint.interval=10',
                'strategy.bf16.enabled=True',
                'strategy.inputs_to_half=[inputs]',
                'model.backbone.param_dtype=bfloat16', config=config)
    losses = [float(x) for x in re.findall(r'Iter\(train\).*?\sloss: ([\d.]+)',
                                           log)]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert re.search(r'Iter\(val\).*mIoU: [\d.]+', log)
    assert 'not float32' not in log
    from internvl_optim.checkpoint.safe_loading import \
        allow_deepspeed_checkpoints
    allow_deepspeed_checkpoints()
    states = load_checkpoint_file(
        str(tmp_path / 'iter_10.pth' / 'mp_rank_00_model_states.pt'))
    assert states['module']['backbone.blocks.0.attn.qkv.weight'].dtype == \
        torch.bfloat16
    for rank in (0, 1):
        optim = load_checkpoint_file(str(
            tmp_path / 'iter_10.pth' /
            f'bf16_zero_pp_rank_{rank}_mp_rank_00_optim_states.pt')
        )['optimizer_state_dict']
        assert {t.dtype for t in optim['single_partition_of_fp32_groups']} \
            == {torch.float32}
        groups = optim['base_optimizer_state']['param_groups']
        assert [g['group_name'] for g in groups][:2] == [
            'layer_5_decay', 'layer_5_no_decay']
        assert [g['lr_scale'] for g in groups[::2]] == pytest.approx(
            [1.0, 0.9, 0.81, 0.729, 0.6561, 0.59049])


def test_zero3_partitioned_parameters_get_the_same_groups():
    """under DeepSpeed ZeRO-3 zero.Init a parameter's own shape is
    empty (its shard), the model's shape is ds_shape; the groups equal the
    unpartitioned model's on both ranks (ndim rules read ds_shape)."""
    out = torchrun(2, os.path.join(ROOT, 'tests/scripts/zero3_groups.py'))
    ranks = sorted((json.loads(line) for line in out.splitlines()
                    if line.startswith('{')), key=lambda r: r['rank'])
    assert [r['rank'] for r in ranks] == [0, 1]
    for r in ranks:
        assert r['shape'] == [0] and r['ds_shape'] == [24, 8]
        assert r['identical'] and r['tensors'] > 40
        assert r['qkv'] == [0.125, 0.05]  # a weight keeps its weight decay
        assert r['cls'] == [0.0625, 0.0]
