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

# first, before MMEngine: DeepSpeed stays out of this process unless the
# config or the command line uses it (internvl_optim.runtime.deepspeed_import)
from internvl_optim.runtime.deepspeed_import import \
    deepspeed_only_if_used  # noqa: E402

if __name__ == '__main__':
    deepspeed_only_if_used(sys.argv[1:])

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from internvl_optim.engine.collective_timeout import (  # noqa: E402
    train_naming_hung_ranks)
from internvl_optim.checkpoint.work_dir import (  # noqa: E402
    WorkDirBusy, WorkDirLock, checkpoint_out_dir)
from internvl_optim.engine.config_checks import (CHECK_ERRORS,  # noqa: E402
                                                 stop)
from internvl_optim.engine.internvl_deepspeed_keys import (  # noqa: E402
    translate_internvl_deepspeed)
from internvl_optim.engine.train_config import (  # noqa: E402
    one_process_deepspeed, prepare_train_config)


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
    """The config, checked and completed for this run
    (:func:`internvl_optim.engine.train_config.prepare_train_config`)."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # InternVL's deepspeed=True becomes a DeepSpeed strategy first, so a
    # run without a launcher sees it
    translate_internvl_deepspeed(cfg, log=log_once)
    launcher = one_process_deepspeed(cfg, args.launcher, log_once)
    return prepare_train_config(cfg, args.config, work_dir=args.work_dir,
                                resume=args.resume, amp=args.amp,
                                launcher=launcher, log=log_once)


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = build_config(args)
        # one trainer per work dir (the first process of a distributed job
        # holds it for all); released when the process ends
        # (MMEngine dumps the config under its own name in the work dir)
        out_dir = checkpoint_out_dir(cfg)
        lock = (WorkDirLock(cfg.work_dir, also=[osp.basename(args.config)],
                            checkpoint_dirs=[out_dir] if out_dir else [])
                .acquire(log_once)
                if os.environ.get('RANK', '0') == '0' else None)
    except CONFIG_ERRORS as err:  # before anything was built: no traceback
        stop('tools/train.py', args.config, err)
    if 'runner_type' in cfg:  # e.g. FlexibleRunner with a strategy
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    print_log(f'work_dir: {cfg.work_dir}', logger='current',
              level=logging.INFO)
    train_naming_hung_ranks(runner, cfg.env_cfg.dist_cfg.timeout
                            if cfg.launcher != 'none' else None)
    shut_down_distributed()
    if lock is not None:
        lock.release()


#: what the checks before any work raise: one line, exit code 1
CONFIG_ERRORS = CHECK_ERRORS + (WorkDirBusy, )


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
