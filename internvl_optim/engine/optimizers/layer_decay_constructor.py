"""The MMEngine optimizer-wrapper constructor: a thin adapter over the core.

Config::

    custom_imports = dict(imports=['internvl_optim'], allow_failed_imports=False)
    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=4e-5, weight_decay=0.05),
        constructor='LayerDecayOptimizerConstructor',
        paramwise_cfg=dict(num_layers=48, layer_decay_rate=0.95))
"""
import dataclasses
import inspect
from typing import Optional

from mmengine.dist import get_rank
from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS
from torch import nn

from ...guards.low_precision import (low_precision_message,
                                   low_precision_trainable)
from ...guards.optimizer_arguments import (check_optimizer_arguments,
                                         check_optimizer_numbers)
from ...core.pipeline import GroupPlan, build_param_groups
from ...runtime.freezing import apply_freezing
from ...core.phase_schedule import has_phases
from ...runtime.layer_phases import (require_phase_scheduler,
                                     steps_every_parameter)
from ...runtime.resume_guard import guard_load_state_dict
from ...core.settings import KEYS, LayerDecaySettings
from ...optim import MuonAdamW
from ...analysis.group_table import format_group_table


def read_optim_wrapper_cfg(optim_wrapper_cfg, paramwise_cfg=None):
    """``(settings, optimizer class)`` of an ``optim_wrapper`` that uses our
    constructor, every check done: the wrapper and optimizer entries, the
    optimizer's numbers and arguments, ``paramwise_cfg``.  The constructor
    calls it, and so do the tools before anything is built."""
    if not isinstance(optim_wrapper_cfg, dict):
        raise TypeError('optim_wrapper_cfg should be a dict, but got '
                        f'{type(optim_wrapper_cfg)}')
    if 'optimizer' not in optim_wrapper_cfg:
        raise ValueError('optim_wrapper needs an "optimizer" entry, e.g. '
                         "optimizer=dict(type='AdamW', lr=1e-4)")
    optimizer_cfg = optim_wrapper_cfg['optimizer']
    if not isinstance(optimizer_cfg, dict):
        raise TypeError(
            'optim_wrapper.optimizer must be a dict such as '
            "dict(type='AdamW', lr=1e-4, weight_decay=0.05), got "
            f'{optimizer_cfg!r}')
    if 'lr' not in optimizer_cfg:
        raise ValueError(
            'optim_wrapper.optimizer.lr is required by '
            'LayerDecayOptimizerConstructor: every group lr is base lr '
            'times its layer scale')
    check_optimizer_numbers(optim_wrapper_cfg)
    settings = LayerDecaySettings.from_paramwise_cfg(paramwise_cfg)
    optimizer_cls = optimizer_cfg.get('type')
    if optimizer_cls is not None and not isinstance(optimizer_cls, str) \
            and not inspect.isclass(optimizer_cls):
        raise TypeError(
            'optim_wrapper.optimizer.type must be the name of a registered '
            "optimizer (such as 'AdamW') or its class, got "
            f'{optimizer_cls!r}')
    if isinstance(optimizer_cls, str):
        with OPTIMIZERS.switch_scope_and_registry(None) as registry:
            optimizer_cls = registry.get(optimizer_cls)
    if optimizer_cls is None:
        raise ValueError(f'optim_wrapper.optimizer.type='
                         f'{optimizer_cfg.get("type")!r} is not a registered '
                         'optimizer')
    check_optimizer_arguments(optimizer_cfg, optimizer_cls)
    return with_hybrid_routing(settings, optimizer_cls, optimizer_cfg), \
        optimizer_cls


def with_hybrid_routing(settings: LayerDecaySettings, optimizer_cls,
                        optimizer_cfg: dict) -> LayerDecaySettings:
    """``MuonAdamW`` needs each group's update: the plan routes by role
    (``paramwise_cfg.muon``, its defaults when not given); routing asked
    for another optimizer, or under one that wraps another
    (``ZeroRedundancyOptimizer``), is an error naming both."""
    hybrid = optimizer_cls is MuonAdamW or \
        optimizer_cfg.get('optimizer_type') == 'MuonAdamW'
    if optimizer_cfg.get('optimizer_type') == 'MuonAdamW':
        raise ValueError(
            f"optim_wrapper.optimizer.type={optimizer_cfg.get('type')!r} "
            "with optimizer_type='MuonAdamW': ZeroRedundancyOptimizer "
            'partitions parameters across ranks, and Muon needs each matrix '
            "whole. Use type='MuonAdamW' under DDP")
    if hybrid:
        return settings if settings.muon is not None else \
            dataclasses.replace(settings, muon=True)
    if settings.muon is not None:
        raise ValueError(
            'paramwise_cfg.muon routes each parameter to Muon or AdamW for '
            "the hybrid optimizer, but optim_wrapper.optimizer.type is "
            f"{optimizer_cfg.get('type')!r}: set type='MuonAdamW', or "
            'remove paramwise_cfg.muon')
    return settings


def default_weight_decay(optimizer_cfg: dict, optimizer_cls) -> float:
    """The optimizer's own default weight decay (0 when it has none);
    MMEngine's ``ZeroRedundancyOptimizer`` forwards to ``optimizer_type``."""
    target = optimizer_cls
    if 'optimizer_type' in optimizer_cfg:
        target = OPTIMIZERS.get(optimizer_cfg['optimizer_type'])
    param = inspect.signature(target).parameters.get('weight_decay')
    if param is None or param.default is inspect.Parameter.empty:
        return 0.0
    return param.default


class LayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay and weight-decay exclusion for ViT backbones.

    ``lr = base_lr * layer_decay_rate ** (num_layers + 1 - layer_id)``:
    embeddings are layer 0, block ``i`` is layer ``i + 1``, and heads, necks
    and everything else outside the blocks are layer ``num_layers + 1`` and
    get ``base_lr``.  1-D parameters, biases, normalization layers and the
    model's ``no_weight_decay()`` names get zero weight decay.

    ``paramwise_cfg`` keys (all optional) are listed below, generated from
    :data:`internvl_optim.core.settings.KEYS`, the one place they are
    defined; unknown keys are an error naming them.

    Unlike MMEngine's default constructor, the groups are built even when
    ``paramwise_cfg`` is empty.  Each group carries absolute ``lr``,
    ``weight_decay``, ``layer_id``, ``lr_scale``, ``group_name`` and
    ``param_names``; frozen parameters are left out.  Loading optimizer
    state saved for a different group layout raises an error naming the
    groups that differ.
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None):
        self.settings, self.optimizer_cls = read_optim_wrapper_cfg(
            optim_wrapper_cfg, paramwise_cfg)
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)
        self.optimizer_cfg = dict(self.optim_wrapper_cfg.pop('optimizer'))
        self.paramwise_cfg = dict(paramwise_cfg or {})
        self.base_lr = self.optimizer_cfg['lr']
        #: the weight decay the groups are built with: the config's, else
        #: the optimizer's own default (AdamW: 0.01)
        self.base_weight_decay = self.optimizer_cfg.get(
            'weight_decay', default_weight_decay(self.optimizer_cfg,
                                                 self.optimizer_cls))
        self.plan: Optional[GroupPlan] = None

    def add_params(self, params, module, prefix='', **kwargs):
        """Fill ``params`` with our groups (for callers of MMEngine's API)."""
        params.extend(self._build(module).groups)

    def _build(self, model: nn.Module) -> GroupPlan:
        logger = MMLogger.get_current_instance()

        def warn(msg):
            if get_rank() == 0:
                print_log(msg, logger=logger, level=30)

        base_wd = self.base_weight_decay
        plan = build_param_groups(model, self.settings, self.base_lr, base_wd,
                                  warn=warn)
        apply_freezing(plan)
        if get_rank() == 0:
            rate = plan.rate
            first = (f'; rate {rate:.4g} between layers, first block lr '
                     f'{self.base_lr * rate ** plan.num_layers:.4e}'
                     if rate != 1.0 and plan.num_layers else '')
            title = (f'LayerDecayOptimizerConstructor: '
                     f'{plan.layer_rule}, num_layers={plan.num_layers}, '
                     f'{self.settings.rate_given_as()}, '
                     f'base lr={self.base_lr:g}, weight decay={base_wd:g}'
                     f'{first}')
            print_log('\n' + format_group_table(plan.groups, title,
                                                 plan.num_layers,
                                                 dict(plan.towers),
                                                 plan.units),
                      logger=logger)
        self.plan = plan
        return plan

    @staticmethod
    def _warn_low_precision(groups, wrapper_type: str) -> None:
        """16-bit trainable parameters (those in the groups) lose small
        updates unless DeepSpeed keeps float32 masters (see
        :mod:`internvl_optim.guards.low_precision`)."""
        found = low_precision_trainable(  # embeddings first, as the model
            (name, p) for g in sorted(groups,
                                      key=lambda g: g.get('layer_id', 0))
            for name, p in zip(g['param_names'], g['params']))
        if found and 'DeepSpeed' not in wrapper_type and get_rank() == 0:
            print_log(low_precision_message(found, wrapper_type),
                      logger=MMLogger.get_current_instance(), level=30)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        optim_wrapper_cfg = dict(self.optim_wrapper_cfg)
        optim_wrapper_cfg.setdefault('type', 'OptimWrapper')
        optimizer_cfg = dict(self.optimizer_cfg)
        first_arg = next(
            iter(inspect.signature(self.optimizer_cls).parameters))
        groups = self._build(model).groups
        optimizer_cfg[first_arg] = groups
        self._warn_low_precision(groups, str(optim_wrapper_cfg['type']))
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        guard_load_state_dict(optimizer)
        if has_phases(groups):
            require_phase_scheduler(optimizer)
            if _fsdp_wrapped(model):
                steps_every_parameter(optimizer, 'FSDP')
        return OPTIM_WRAPPERS.build(
            optim_wrapper_cfg, default_args=dict(optimizer=optimizer))


def _fsdp_wrapped(model: nn.Module) -> bool:
    """Whether FSDP (v1) wraps ``model`` or a module in it."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    return any(isinstance(m, FullyShardedDataParallel)
               for m in model.modules())


def _keys_docstring() -> str:
    """The ``paramwise_cfg`` keys as a docstring section."""
    lines = ['', '    ``paramwise_cfg`` keys:', '']
    for key, text in KEYS.items():
        lines.append(f'    - ``{key}``: {text}')
    return '\n'.join(lines) + '\n'


LayerDecayOptimizerConstructor.__doc__ += _keys_docstring()
