"""The config's parameter schedulers: their numbers in range, and
nothing that would erase the layer ratios (an ``eta_min`` at the base lr,
a DeepSpeed config's own scheduler)."""
from ...checkpoint.json_files import read_json
from ...guards.ratio_guard import deepspeed_scheduler_problem
from ...guards.schedule_floor import judge_floor
from ...guards.scheduler_numbers import check_scheduler_numbers
from ..optimizers.registration import NAMES

def check_param_schedulers(cfg) -> None:
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
        check_scheduler_numbers(scheduler, where)
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


def check_schedulers_keep_ratios(cfg) -> None:
    """An absolute ``eta_min`` at or above the base lr makes every group's
    lr rise during training: an error before anything is built.  Lower
    floors are judged against the real groups when training starts
    (:class:`~internvl_optim.engine.hooks.LayerLrSpreadHook`,
    :mod:`internvl_optim.guards.schedule_floor`)."""
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


def _groups_differ_in_lr(wrapper) -> bool:
    """Whether ``optim_wrapper`` (a config dict) builds groups with our
    constructor and gives them different lrs."""
    paramwise = wrapper.get('paramwise_cfg') or {}
    if wrapper.get('constructor') not in NAMES or not isinstance(paramwise,
                                                                dict):
        return False
    rate = paramwise.get('layer_decay_rate', paramwise.get('decay_rate', 1.0))
    return rate != 1.0 or any(paramwise.get(k) for k in LR_KEYS)


#: MMEngine's schedulers that write one absolute lr into every group
ONE_CYCLE = ('OneCycleLR', 'OneCycleParamScheduler')


def check_one_cycle_keeps_ratios(cfg) -> None:
    """MMEngine's ``OneCycleLR`` with one ``eta_max`` sets every group to
    the same lr (``eta_max / div_factor`` at the start, then the cycle):
    the layer-wise ratios would be gone from the first iteration.  An error
    before anything is built when our constructor's groups have different
    lrs."""
    if not _groups_differ_in_lr(cfg.get('optim_wrapper') or {}):
        return
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for i, scheduler in enumerate(schedulers):
        if not isinstance(scheduler, dict) or \
                scheduler.get('type') not in ONE_CYCLE or \
                scheduler.get('param_name', 'lr') != 'lr' or \
                isinstance(scheduler.get('eta_max'), (list, tuple)):
            continue
        raise ValueError(
            f'param_scheduler[{i}] ({scheduler["type"]}) sets every param '
            f'group to the same lr (eta_max={scheduler.get("eta_max")!r} '
            'for all), erasing the layer-wise ratios of paramwise_cfg. '
            'Schedule with LinearLR (warm-up) and CosineAnnealingLR or '
            'PolyLR, which scale each group\'s own lr, or give eta_max as '
            'a list with one value per param group (the order '
            'tools/analyze_param_groups.py prints)')


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
    if 'DeepSpeed' not in str(strategy.get('type', '')):
        return
    if not _groups_differ_in_lr(wrapper):
        return  # one lr for all: nothing to erase
    config, where = deepspeed_config(strategy)
    problem = deepspeed_scheduler_problem(config, where)
    if problem:
        raise ValueError(problem)


def check_phases_fit_the_loop(cfg) -> None:
    """``paramwise_cfg.layer_phases`` counted in epochs (``by_epoch=True``)
    under an iteration-based loop would never advance: the backbone would
    never join. An error naming both keys."""
    paramwise = (cfg.get('optim_wrapper') or {}).get('paramwise_cfg') or {}
    phases = paramwise.get('layer_phases') if isinstance(
        paramwise, dict) else None
    train_cfg = cfg.get('train_cfg') or {}
    if not isinstance(phases, dict) or not phases.get('by_epoch') or \
            not isinstance(train_cfg, dict):
        return
    loop = str(train_cfg.get('type', ''))
    by_iters = 'IterBased' in loop or (
        'max_iters' in train_cfg and 'max_epochs' not in train_cfg)
    if by_iters:
        raise ValueError(
            'paramwise_cfg.layer_phases.by_epoch=True counts the phases in '
            f'epochs, but train_cfg ({loop or "max_iters"}) runs by '
            'iterations and never ends an epoch for the phase scheduler: '
            'the layers after the head would never join. Set '
            'layer_phases.by_epoch=False (steps are iterations), or train '
            "with an epoch-based loop (train_cfg=dict(by_epoch=True, ...))")

