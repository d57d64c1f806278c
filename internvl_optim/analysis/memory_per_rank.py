"""Bytes per rank of parameters, gradients and optimizer state for a config's
training strategy, from the model's real parameter counts and dtypes
(activations, buffers and temporary buffers are not counted).

Accounting, per element of a parameter (P: all, T: trainable, N: ranks):

================================  ==========  ==========  ====================
strategy                          parameters  gradients   optimizer state
================================  ==========  ==========  ====================
DDP (``Runner``)                  P x dtype   T x dtype   T x dtype x states
DDP + ZeroRedundancyOptimizer     P x dtype   T x dtype   T x dtype x states / N
FSDP FULL_SHARD / HYBRID_SHARD    P x dtype/N T x dtype/N T x dtype x states / N
FSDP SHARD_GRAD_OP                P x dtype   T x dtype/N T x dtype x states / N
DeepSpeed, bf16/fp16, stage s     P x 2       T x 2       T x (4 + 4 x states)
DeepSpeed, float32, stage s       P x 4       T x 4       T x 4 x states
================================  ==========  ==========  ====================

DeepSpeed ZeRO divides the optimizer state (with the float32 master copy)
by N from stage 1, gradients from stage 2, parameters at stage 3 - the
accounting of the ZeRO paper (Rajbhandari et al., 2020, section 3: 2 + 2 +
12 bytes per parameter for mixed-precision Adam).  PyTorch optimizers keep
their state in the parameter's dtype; FSDP keeps parameters in their stored
dtype (its ``mixed_precision`` only changes the compute copies).
"""
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import torch

#: optimizer state tensors per parameter element
OPTIMIZER_STATES = {'Adam': 2, 'AdamW': 2, 'Lamb': 2, 'LAMB': 2,
                    'Adamax': 2, 'NAdam': 2, 'RAdam': 2, 'Lion': 1,
                    'Adagrad': 1, 'RMSprop': 1, 'SGD': 1}


@dataclass
class ParamCounts:
    all_elements: int
    trainable_elements: int
    all_bytes: int        # as stored
    trainable_bytes: int  # as stored


@dataclass
class Strategy:
    name: str
    kind: str          # 'ddp', 'fsdp' or 'deepspeed'
    shard_params: bool = False
    shard_grads: bool = False
    shard_states: bool = False
    low_precision: bool = False  # DeepSpeed bf16/fp16


def count_params(named_parameters: Iterable[Tuple[str, torch.Tensor]]
                 ) -> ParamCounts:
    """Elements and stored bytes (meta tensors work), each tensor once."""
    seen, counts = set(), ParamCounts(0, 0, 0, 0)
    for _, p in named_parameters:
        if id(p) in seen:
            continue
        seen.add(id(p))
        size = p.numel() * p.element_size()
        counts.all_elements += p.numel()
        counts.all_bytes += size
        if p.requires_grad:
            counts.trainable_elements += p.numel()
            counts.trainable_bytes += size
    return counts


def hybrid_states(groups: Iterable[dict]) -> float:
    """State tensors per trainable element of ``MuonAdamW``'s groups: one
    (Muon's momentum buffer) on the Muon half, two (AdamW's moments) on the
    other, weighted by their elements."""
    muon = adamw = 0
    for group in groups:
        elements = sum(p.numel() for p in group['params'])
        if group.get('algorithm') == 'muon':
            muon += elements
        else:
            adamw += elements
    return (muon + 2 * adamw) / max(muon + adamw, 1)


def optimizer_states(optimizer_cfg: dict, groups: Iterable[dict] = ()
                     ) -> Tuple[float, str]:
    """State tensors per element of the config's optimizer, and its name
    (``MuonAdamW``: from its ``groups``, :func:`hybrid_states`)."""
    name = optimizer_cfg.get('type', '')
    name = name if isinstance(name, str) else name.__name__
    if name == 'ZeroRedundancyOptimizer':
        name = optimizer_cfg.get('optimizer_type', 'AdamW')
    if name == 'MuonAdamW':
        return hybrid_states(groups), name
    if name not in OPTIMIZER_STATES:
        raise ValueError(f'optimizer {name!r}: state size unknown; known: '
                         f'{", ".join(sorted(OPTIMIZER_STATES))}')
    states = OPTIMIZER_STATES[name]
    if name == 'SGD' and not optimizer_cfg.get('momentum', 0):
        states = 0
    return states, name


def describe_strategy(cfg: dict) -> Strategy:
    """The strategy of an MMEngine config: ``strategy`` (FlexibleRunner;
    DeepSpeed settings as keys or in its ``config`` dict, as InternVL's
    ``deepspeed_config`` JSON becomes) or plain DDP, with MMEngine's
    ``ZeroRedundancyOptimizer`` recognised."""
    strategy = cfg.get('strategy') or {}
    kind = str(strategy.get('type', ''))
    if 'DeepSpeed' in kind:
        if isinstance(strategy.get('config'), dict):  # a DeepSpeed JSON,
            strategy = dict(strategy['config'], **strategy)  # keys win
        stage = int((strategy.get('zero_optimization') or {}).get('stage', 0))
        low = any((strategy.get(k) or {}).get('enabled', False)
                  for k in ('bf16', 'fp16'))
        return Strategy(
            f'DeepSpeed ZeRO-{stage}, {"bf16/fp16 + fp32 master" if low else "fp32"}',
            'deepspeed', shard_params=stage >= 3, shard_grads=stage >= 2,
            shard_states=stage >= 1, low_precision=low)
    if 'FSDP' in kind:
        wrapper = strategy.get('model_wrapper') or {}
        sharding = str(wrapper.get('sharding_strategy', 'FULL_SHARD'))
        sharding = sharding.rsplit('.', 1)[-1]
        if sharding == 'NO_SHARD':
            return Strategy('FSDP NO_SHARD', 'fsdp')
        return Strategy(f'FSDP {sharding}', 'fsdp',
                        shard_params=sharding != 'SHARD_GRAD_OP',
                        shard_grads=True, shard_states=True)
    optimizer = (cfg.get('optim_wrapper') or {}).get('optimizer') or {}
    if optimizer.get('type') == 'ZeroRedundancyOptimizer':
        return Strategy('DDP + ZeroRedundancyOptimizer', 'ddp',
                        shard_states=True)
    return Strategy('DDP', 'ddp')


def bytes_per_rank(counts: ParamCounts, strategy: Strategy, states: int,
                   world_size: int) -> Dict[str, float]:
    """``{'parameters', 'gradients', 'optimizer', 'total'}`` in bytes."""
    if world_size < 1:
        raise ValueError(f'world size {world_size} must be >= 1')
    if strategy.kind == 'deepspeed':
        width = 2 if strategy.low_precision else 4
        params = counts.all_elements * width
        grads = counts.trainable_elements * width
        optim = counts.trainable_elements * (
            4 * states + (4 if strategy.low_precision else 0))
    else:
        params, grads = counts.all_bytes, counts.trainable_bytes
        optim = counts.trainable_bytes * states
    params /= world_size if strategy.shard_params else 1
    grads /= world_size if strategy.shard_grads else 1
    optim /= world_size if strategy.shard_states else 1
    return dict(parameters=params, gradients=grads, optimizer=optim,
                total=params + grads + optim)


def memory_table(counts: ParamCounts, strategy: Strategy, states: int,
                 optimizer: str, world_sizes: List[int],
                 gpu_gib: Optional[float] = 80.0) -> Tuple[List[dict], str]:
    """Rows per world size and the printed table (GiB)."""
    rows = [dict(world_size=n, **bytes_per_rank(counts, strategy, states, n))
            for n in world_sizes]
    gib = 2**30
    lines = [f'memory per rank: {strategy.name}, {optimizer} ({states:.3g} '
             f'state tensor(s) per element); {counts.all_elements:,} '
             f'parameters, {counts.trainable_elements:,} trainable',
             f'{"ranks":>6} {"params GiB":>11} {"grads GiB":>10} '
             f'{"optim GiB":>10} {"total GiB":>10}']
    for row in rows:
        lines.append(f'{row["world_size"]:>6} {row["parameters"] / gib:>11.1f}'
                     f' {row["gradients"] / gib:>10.1f} '
                     f'{row["optimizer"] / gib:>10.1f} '
                     f'{row["total"] / gib:>10.1f}'
                     + (f'  > {gpu_gib:g} GiB' if gpu_gib and
                        row['total'] / gib > gpu_gib else ''))
    lines.append('activations, buffers and communication buffers not '
                 'included')
    if gpu_gib and rows and all(r['total'] / gib > gpu_gib for r in rows):
        lines.append(fits_hint(strategy.name, gpu_gib))
    return rows, '\n'.join(lines)


def fits_hint(strategy_name: str, gpu_gib: float) -> str:
    """What to use when no listed world size fits the GPU."""
    if 'DDP' in strategy_name or 'no strategy' in strategy_name or \
            'DistributedDataParallel' in strategy_name:
        return (f'no world size fits {gpu_gib:g} GiB with every rank holding '
                'the whole model: shard it. ZeRO/DeepSpeed '
                '(configs/intern_vit_6b/full_tuning/*_deepspeed.py) shards '
                'optimizer state, FSDP (*_fsdp.py) shards parameters, '
                'gradients and state; rerun with those configs to compare')
    return (f'no listed world size fits {gpu_gib:g} GiB: try more ranks '
            '(--world-size), a sharding strategy with more sharding (FSDP), '
            'or a frozen backbone (head_tuning)')
