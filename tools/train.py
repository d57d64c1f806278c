#!/usr/bin/env python
"""Train a segmentor with MMEngine's Runner (MMSeg 1.x conventions).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options k=v ...] [--launcher none|pytorch]
    torchrun --nproc_per_node N tools/train.py CONFIG --launcher pytorch
"""
import argparse
import logging
import os
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from internvl_optim.engine.checkpoint_files import resume_fallback  # noqa: E402
from internvl_optim.engine.collective_timeout import (  # noqa: E402
    CollectiveTimeoutError, Heartbeat, as_timedelta, configure_timeout,
    explain_timeout, is_timeout)
from internvl_optim.engine.config_checks import (check_data_roots,  # noqa: E402
                                          check_our_import,
                                          check_schedulers_keep_ratios)
from internvl_optim.engine.internvl_deepspeed_keys import \
    translate_internvl_deepspeed  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go; '
                        'default ./work_dirs/<config name>')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None,
        help='resume from CKPT, or (no value) from the latest checkpoint in '
        'the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (needs a GPU)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def log_once(message: str) -> None:
    """Log from the first process only (before the runner exists, every
    torchrun process would print it)."""
    if os.environ.get('RANK', '0') == '0':
        print_log(message, logger='current', level=logging.INFO)


def build_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    translate_internvl_deepspeed(cfg, log=log_once)
    check_our_import(cfg)
    check_schedulers_keep_ratios(cfg)
    check_data_roots(cfg, loaders=('train_dataloader', 'val_dataloader'))
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if not torch.cuda.is_available():
            raise RuntimeError('--amp needs a CUDA GPU: MMEngine\'s '
                               'AmpOptimWrapper does not run on CPU')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        # None: MMEngine finds work_dir/last_checkpoint itself
        cfg.load_from = resume_fallback(cfg.work_dir, log_once)
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.launcher != 'none':
        configure_timeout(cfg)
        if not torch.cuda.is_available():
            use_cpu_distributed(cfg)
    strategy_type = (cfg.get('strategy') or {}).get('type')
    if strategy_type in ('DeepSpeedStrategy', 'SafeResumeDeepSpeedStrategy'):
        # MMEngine's would execute a resumed checkpoint's meta.config.
        # FlexibleRunner sets DeepSpeed's micro batch size only for the
        # name 'DeepSpeedStrategy', so it is set here as it would be.
        cfg.strategy.type = 'SafeResumeDeepSpeedStrategy'
        loader = cfg.get('train_dataloader') or {}
        cfg.strategy.train_micro_batch_size_per_gpu = loader.get(
            'batch_size', 1)
        from internvl_optim.runtime.safe_checkpoint_loading import \
            allow_deepspeed_checkpoints
        allow_deepspeed_checkpoints()
    elif strategy_type in ('FSDPStrategy', 'ResumableFSDPStrategy'):
        # MMEngine 0.10.7's FSDPStrategy cannot resume on torch >= 2.1 nor
        # run without a GPU; ours can (internvl_optim/fsdp_strategy.py)
        if strategy_type == 'FSDPStrategy':
            cfg.strategy.type = 'ResumableFSDPStrategy'
            log_once('strategy: FSDPStrategy -> ResumableFSDPStrategy '
                     '(resumes on PyTorch >= 2.1, runs on CPU)')
        from internvl_optim.runtime.safe_checkpoint_loading import allow_fsdp_checkpoints
        allow_fsdp_checkpoints()
    if cfg.optim_wrapper.get('optimizer', {}).get(
            'type') == 'ZeroRedundancyOptimizer':
        # MMEngine saves checkpoints on rank 0 only; consolidate first
        hooks = cfg.get('custom_hooks') or []
        if not any(h.get('type') == 'ZeroConsolidateHook' for h in hooks):
            cfg.custom_hooks = hooks + [dict(type='ZeroConsolidateHook')]
    return cfg


def use_cpu_distributed(cfg):
    """Run the same distributed code on CPU: gloo instead of NCCL, and no
    ``device_ids`` for DDP.  MMEngine 0.10.7's ``init_dist`` calls
    ``torch.cuda.set_device`` unconditionally, so the process group is set
    up here and the Runner finds it initialized."""
    import torch.distributed as dist
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(
            backend='gloo',
            timeout=as_timedelta(cfg.env_cfg.dist_cfg.timeout))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    if 'runner_type' in cfg:  # e.g. FlexibleRunner with a strategy
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    print_log(f'work_dir: {cfg.work_dir}', logger='current',
              level=logging.INFO)
    train_naming_hung_ranks(runner, cfg)
    shut_down_distributed()


def train_naming_hung_ranks(runner, cfg):
    """``runner.train()``; in a distributed run every rank sends heartbeats,
    and a collective that times out is reported with the ranks that went
    silent (internvl_optim/collective_timeout.py)."""
    import torch.distributed as dist
    if not dist.is_initialized():
        runner.train()
        return
    rank, world_size = dist.get_rank(), dist.get_world_size()
    heartbeat = Heartbeat(rank).start()
    try:
        runner.train()
    except Exception as err:
        if not is_timeout(err):
            raise
        raise CollectiveTimeoutError(explain_timeout(
            cfg.env_cfg.dist_cfg.timeout, rank, world_size)) from err
    finally:
        heartbeat.stop()


def shut_down_distributed():
    """Leave the process group together: a rank that exits while another
    still tears down gloo can abort ("terminate called without an active
    exception") after training finished."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
