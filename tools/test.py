#!/usr/bin/env python
"""Evaluate a checkpoint (MMSeg 1.x conventions).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--cfg-options k=v ...] [--launcher none|pytorch]
"""
import argparse
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
from mmengine.registry import MODELS, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from internvl_optim.checkpoint.files import (  # noqa: E402
    check_checkpoint_matches, evaluable_checkpoint)
from internvl_optim.engine.config_checks import (  # noqa: E402
    CHECK_ERRORS, check_data_roots, check_our_import, stop)
from internvl_optim.engine.train_config import \
    add_checkpoint_trust_hook  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--launcher', choices=['none', 'pytorch'],
                        default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))

    try:  # every check before the runner builds anything
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        check_our_import(cfg)
        check_data_roots(cfg, loaders=('test_dataloader', ))
        cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0])
        checkpoint = evaluable_checkpoint(args.checkpoint, cfg.work_dir)
        init_default_scope(cfg.get('default_scope', 'mmseg'))
        check_checkpoint_matches(MODELS.build(cfg.model), checkpoint)
    except CHECK_ERRORS as err:
        stop('tools/test.py', args.config, err)
    cfg.launcher = args.launcher
    cfg.load_from = checkpoint
    add_checkpoint_trust_hook(cfg)
    Runner.from_cfg(cfg).test()
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
