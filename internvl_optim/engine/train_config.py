"""What ``tools/train.py`` does to a config before building the runner, as
one tested function, :func:`prepare_train_config`, made of small steps."""
import os
import os.path as osp
from typing import Callable, Optional

import torch

from ..checkpoint.safe_loading import (allow_deepspeed_checkpoints,
                                               allow_fsdp_checkpoints)
from ..checkpoint.files import resume_fallback
from .collective_timeout import as_timedelta, configure_timeout
from .config_checks import (check_backbone_dtype_fits_strategy,
                            check_data_roots, check_deepspeed_scheduler,
                            check_hybrid_strategy,
                            check_one_cycle_keeps_ratios,
                            check_optim_wrapper, check_our_import,
                            check_param_schedulers,
                            check_phases_fit_the_loop, check_randomness,
                            check_schedulers_keep_ratios, check_train_cfg,
                            check_weight_files, deepspeed_config)
from .config_checks.files import REMOTE_PREFIXES, checkpoint_path_problem
from .internvl_deepspeed_keys import translate_internvl_deepspeed
from .optimizers.registration import NAMES


def prepare_train_config(cfg, config_path: str, work_dir: Optional[str] = None,
                         resume: Optional[str] = None, amp: bool = False,
                         launcher: str = 'none',
                         log: Callable[[str], None] = print):
    """Check and complete ``cfg`` (an MMEngine ``Config``) in place.

    Args:
        cfg: the loaded config, ``--cfg-options`` merged.
        config_path: its file (names the default work dir).
        work_dir: ``--work-dir``; default ``cfg.work_dir`` or
            ``./work_dirs/<config name>``.
        resume: ``'auto'`` (``--resume`` alone), a checkpoint path, or None.
        amp: ``--amp`` (needs a GPU).
        launcher: ``'none'`` or ``'pytorch'``.
        log: where the changes made are said.
    """
    translate_internvl_deepspeed(cfg, log=log)
    check_our_import(cfg)
    check_optim_wrapper(cfg)
    check_hybrid_strategy(cfg)
    check_param_schedulers(cfg)
    check_train_cfg(cfg)
    check_randomness(cfg)
    check_phases_fit_the_loop(cfg)
    check_schedulers_keep_ratios(cfg)
    check_deepspeed_scheduler(cfg)
    check_one_cycle_keeps_ratios(cfg)
    check_backbone_dtype_fits_strategy(cfg)
    check_data_roots(cfg, loaders=('train_dataloader', 'val_dataloader'))
    if not resume:  # with --resume, load_from is the checkpoint to resume
        check_weight_files(cfg)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(config_path))[0])
    if amp:
        use_amp(cfg)
    if resume:
        set_resume(cfg, resume, log)
    if launcher != 'none':
        configure_timeout(cfg)
        if not torch.cuda.is_available():
            zero3_without_persistent_params(cfg, log)
            use_cpu_distributed(cfg)
    use_safe_strategies(cfg, log)
    add_zero_consolidate_hook(cfg)
    add_lr_spread_hook(cfg)
    add_layer_phase_scheduler(cfg)
    add_checkpoint_trust_hook(cfg)
    write_checkpoints_by_rename(cfg)
    return cfg


#: the strategies whose setup needs a process group, even on one process
DEEPSPEED_STRATEGIES = ('DeepSpeedStrategy', 'SafeResumeDeepSpeedStrategy')
#: what a launcher sets for each process
LAUNCH_VARIABLES = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR',
                    'MASTER_PORT')


def one_process_deepspeed(cfg, launcher: str,
                          log: Callable[[str], None]) -> str:
    """A DeepSpeed strategy started without a launcher (``python
    tools/train.py CONFIG``) runs as ``tools/dist_train.sh CONFIG 1`` does:
    one process of a process group (DeepSpeed would otherwise look for MPI
    to find its peers, and fail without mpi4py after the model is built).
    Sets the launcher's variables in this process's environment and returns
    the launcher to use (``'pytorch'``); any other config, or a launched
    process, is left alone.  ``tools/train.py`` calls it, a process of its
    own: a library caller keeps its environment by not calling it."""
    strategy = cfg.get('strategy') or {}
    if launcher != 'none' or strategy.get('type') not in \
            DEEPSPEED_STRATEGIES:
        return launcher
    given = [k for k in ('RANK', 'WORLD_SIZE') if k in os.environ]
    if given and os.environ.get('WORLD_SIZE', '1') != '1':
        raise ValueError(
            f'{", ".join(f"{k}={os.environ[k]}" for k in given)} is set '
            'but tools/train.py was started with --launcher none: start '
            'each process with --launcher pytorch (tools/dist_train.sh '
            'CONFIG NPROC does)')
    import socket
    with socket.socket() as probe:  # a free port for the one-process group
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    defaults = dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
                    MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    for key in LAUNCH_VARIABLES:
        os.environ.setdefault(key, defaults[key])
    log(f'strategy: {strategy.get("type")} without a launcher: one process '
        '(as tools/dist_train.sh CONFIG 1)')
    return 'pytorch'


def use_amp(cfg) -> None:
    if not torch.cuda.is_available():
        raise RuntimeError('--amp needs a CUDA GPU: MMEngine\'s '
                           'AmpOptimWrapper does not run on CPU')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def set_resume(cfg, resume: str, log: Callable[[str], None]) -> None:
    """``'auto'``: MMEngine's own auto-resume (``load_from=None``) unless
    ``last_checkpoint`` is empty or stale, then the newest complete
    checkpoint; else the given checkpoint."""
    if resume != 'auto' and not resume.startswith(REMOTE_PREFIXES):
        if not osp.lexists(osp.expanduser(resume)):
            raise FileNotFoundError(f'--resume {resume}: no such checkpoint'
                                    + ('' if osp.isabs(resume) else
                                       ' (relative to the working directory '
                                       f'{os.getcwd()})'))
        problem = checkpoint_path_problem(resume)
        if problem:
            raise ValueError(f'--resume {resume} {problem}')
    cfg.resume = True
    cfg.load_from = (resume_fallback(cfg.work_dir, log)
                     if resume == 'auto' else resume)


def use_cpu_distributed(cfg) -> None:
    """Run the same distributed code on CPU: gloo instead of NCCL, and no
    ``device_ids`` for DDP.  MMEngine 0.10.7's ``init_dist`` calls
    ``torch.cuda.set_device`` unconditionally, so the process group is set
    up here (with the configured timeout) and the Runner finds it
    initialized."""
    import torch.distributed as dist
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


#: DeepSpeed's key for the size under which ZeRO-3 keeps a parameter whole
PERSISTENCE_KEY = 'stage3_param_persistence_threshold'


def zero3_without_persistent_params(cfg,
                                    log: Callable[[str], None]) -> None:
    """DeepSpeed ZeRO-3 on gloo processes: no persistent parameters.

    DeepSpeed 0.15.4 gathers ZeRO-3's persistent parameters (those under
    ``stage3_param_persistence_threshold`` elements, 100k by default) after
    every step with one asynchronous all-gather each and waits for the last
    one only; gloo runs them on several threads, so the next forward can
    read a buffer not filled yet and the run ends with inf, then NaN,
    weights.  An unset threshold is set to 0 (and said); any other value is
    an error naming the key."""
    strategy = cfg.get('strategy') or {}
    if strategy.get('type') not in ('DeepSpeedStrategy',
                                    'SafeResumeDeepSpeedStrategy'):
        return
    zero = strategy.get('zero_optimization')
    field, where = f'strategy.zero_optimization.{PERSISTENCE_KEY}', ''
    if zero is None:
        config, where = deepspeed_config(strategy)
        if where == 'strategy.config':
            field, where = f'{where}.zero_optimization.{PERSISTENCE_KEY}', ''
        else:
            field = f'zero_optimization.{PERSISTENCE_KEY}'
            where = ' in ' + where
        zero = (config.get('zero_optimization') if isinstance(
            config, dict) else None) or {}
    if not isinstance(zero, dict) or zero.get('stage') != 3:
        return
    threshold = zero.get(PERSISTENCE_KEY)
    if threshold is None:
        cfg.strategy.zero_optimization = {**zero, PERSISTENCE_KEY: 0}
        log(f'strategy: ZeRO-3 on CPU processes (gloo): {PERSISTENCE_KEY}=0 '
            '(DeepSpeed does not wait for every gather of persistent '
            'parameters there)')
    elif threshold != 0:
        raise ValueError(
            f'{field}={threshold!r}{where} with ZeRO-3 on CPU processes '
            '(gloo): '
            'DeepSpeed 0.15.4 re-gathers persistent parameters after each '
            'step without waiting for every gather there, and the weights '
            'become inf/NaN. Set it to 0 (or leave it unset) on CPU')


def use_safe_strategies(cfg, log: Callable[[str], None]) -> None:
    """MMEngine's DeepSpeed strategy would execute a resumed checkpoint's
    ``meta.config``; its FSDP strategy cannot resume on torch >= 2.1 nor run
    without a GPU: ours replace them, and their checkpoint types are
    allow-listed."""
    strategy_type = (cfg.get('strategy') or {}).get('type')
    if strategy_type in ('DeepSpeedStrategy', 'SafeResumeDeepSpeedStrategy'):
        cfg.strategy.type = 'SafeResumeDeepSpeedStrategy'
        # FlexibleRunner sets this only for the name 'DeepSpeedStrategy'
        loader = cfg.get('train_dataloader') or {}
        cfg.strategy.train_micro_batch_size_per_gpu = loader.get(
            'batch_size', 1)
        allow_deepspeed_checkpoints()
    elif strategy_type in ('FSDPStrategy', 'ResumableFSDPStrategy'):
        if strategy_type == 'FSDPStrategy':
            cfg.strategy.type = 'ResumableFSDPStrategy'
            log('strategy: FSDPStrategy -> ResumableFSDPStrategy '
                '(resumes on PyTorch >= 2.1, runs on CPU)')
        allow_fsdp_checkpoints()


def _add_hook(cfg, hook_type: str) -> None:
    hooks = cfg.get('custom_hooks') or []
    if not any(h.get('type') == hook_type for h in hooks):
        cfg.custom_hooks = hooks + [dict(type=hook_type)]


def add_checkpoint_trust_hook(cfg) -> None:
    """Check every checkpoint the run loads before MMEngine acts on it
    (:class:`~internvl_optim.engine.hooks.CheckpointTrustHook`)."""
    _add_hook(cfg, 'CheckpointTrustHook')


def write_checkpoints_by_rename(cfg) -> None:
    """Checkpoints to a local directory are written to a new name and
    renamed into place, and ``last_checkpoint`` made anew at each save
    (:mod:`internvl_optim.engine.hooks.fresh_writes_hook`): no write goes
    through a link left in the work dir.  A ``CheckpointHook`` given its
    own ``backend_args`` / ``file_client_args`` or a remote ``out_dir`` is
    left as it is."""
    from .hooks.fresh_writes_hook import BACKEND
    _add_hook(cfg, 'FreshWritesHook')
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not isinstance(hook, dict) or hook.get('backend_args') or \
            hook.get('file_client_args'):
        return
    out_dir = hook.get('out_dir')
    if isinstance(out_dir, str) and '://' in out_dir:
        return
    hook['backend_args'] = dict(backend=BACKEND)


def add_lr_spread_hook(cfg) -> None:
    """With our constructor, log ``min_lr`` (the smallest group lr) next to
    MMEngine's ``lr`` (the head's)."""
    if (cfg.get('optim_wrapper') or {}).get('constructor') in NAMES:
        _add_hook(cfg, 'LayerLrSpreadHook')


def add_layer_phase_scheduler(cfg) -> None:
    """``paramwise_cfg.layer_phases`` is applied by a ``LayerPhaseScheduler``
    entry of ``param_scheduler``: added when missing."""
    paramwise = (cfg.get('optim_wrapper') or {}).get('paramwise_cfg') or {}
    if not paramwise.get('layer_phases'):
        return
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    if not any(isinstance(s, dict) and s.get('type') == 'LayerPhaseScheduler'
               for s in schedulers):
        cfg.param_scheduler = list(schedulers) + [
            dict(type='LayerPhaseScheduler')]


def add_zero_consolidate_hook(cfg) -> None:
    """MMEngine saves checkpoints on rank 0 only, while ZeRO's state
    consolidation is collective: consolidate on all ranks first."""
    optimizer = cfg.optim_wrapper.get('optimizer', {})
    if optimizer.get('type') == 'ZeroRedundancyOptimizer':
        _add_hook(cfg, 'ZeroConsolidateHook')
