"""``MuonAdamW``: one optimizer, two updates.  Each group says which it
takes (``algorithm``: ``'muon'`` or ``'adamw'``, from the plan, see
:mod:`internvl_optim.core.algorithms`); every group keeps its own ``lr``
and ``weight_decay``, so layer decay, towers, multipliers, phases,
schedulers, the ratio guard and checkpoints see one optimizer with one
``param_groups`` list::

    from internvl_optim import param_groups
    from internvl_optim.optim import MuonAdamW

    optimizer = MuonAdamW(param_groups(model, lr=1e-4, weight_decay=0.05,
                                       layer_decay_rate=0.9, muon=True))

The Muon update is ``torch.optim.Muon``'s (torch 2.13): momentum ``buf =
lerp(buf, grad, 1 - momentum)``, Nesterov ``update = lerp(grad, buf,
momentum)``, five quintic Newton-Schulz steps in bfloat16 (coefficients
3.4445, -4.7750, 2.0315) after scaling to spectral norm at most 1,
decoupled weight decay ``p *= 1 - lr * weight_decay``, then ``p -=
adjusted_lr * update``.  The lr adjustment (``adjust_lr_fn``):

* ``'match_rms_adamw'`` (default): ``lr * 0.2 * sqrt(max(rows, cols))``,
  which gives the update the RMS of an AdamW step, so AdamW's lr and
  weight decay carry over to the Muon half unchanged;
* ``'original'`` (Keller Jordan's): ``lr * sqrt(max(1, rows / cols))``
  with a base lr of its own for the Muon half, ``muon_lr`` (each Muon
  group at ``muon_lr`` times its layer scale).

The AdamW update is ``torch.optim.AdamW``'s (``torch.optim.adam.adam``
with decoupled weight decay; state ``step``, ``exp_avg``,
``exp_avg_sq``).  Muon's state is ``momentum_buffer``.

Muon needs whole matrices: every Muon parameter must have the shape the
plan recorded (``group['shapes']``).  A wrapper that flattens or shards
parameters (DeepSpeed ZeRO, FSDP) is named at the first step, before any
update; ``tools/train.py`` refuses those strategies before anything is
built.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
from torch.optim.adam import adam

#: Keller Jordan's quintic coefficients, as ``torch.optim.Muon``'s
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
ALGORITHMS = ('muon', 'adamw')
ADJUST_LR_FNS = ('match_rms_adamw', 'original')
VIEWS = ('whole', 'flatten', 'per_matrix')


def newton_schulz(matrix: torch.Tensor, coefficients: Sequence[float],
                  steps: int, eps: float) -> torch.Tensor:
    """The orthogonalization of one 2-D update (the zeroth power by
    Newton-Schulz), in bfloat16, the wide way round."""
    a, b, c = coefficients
    x = matrix.bfloat16()
    tall = matrix.size(0) > matrix.size(1)
    if tall:
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, poly, x, beta=a)
    return x.T if tall else x


def adjusted_lr(lr: float, rows: int, cols: int, adjust_lr_fn: str) -> float:
    """The lr a Muon step of a ``rows x cols`` matrix is taken with."""
    if adjust_lr_fn == 'match_rms_adamw':
        return lr * 0.2 * math.sqrt(max(rows, cols))
    return lr * math.sqrt(max(1, rows / cols))


def orthogonalized(update: torch.Tensor, view: str, coefficients, steps,
                   eps) -> Tuple[torch.Tensor, int, int]:
    """``(update orthogonalized, rows, cols)`` of one parameter's update
    seen as matrices (:class:`~internvl_optim.core.algorithms.MatrixView`)."""
    if view == 'whole':
        return (newton_schulz(update, coefficients, steps, eps),
                *update.shape)
    if view == 'flatten':
        flat = update.reshape(update.size(0), -1)
        return (newton_schulz(flat, coefficients, steps, eps)
                .reshape(update.shape), *flat.shape)
    # per_matrix: one matrix per leading index (MoE experts)
    out = torch.stack([newton_schulz(m, coefficients, steps, eps)
                       for m in update.unbind(0)])
    return out, update.size(1), update.size(2)


class MuonAdamW(torch.optim.Optimizer):
    """Muon on the groups marked ``algorithm='muon'``, AdamW on the others.

    Args:
        params: groups from :func:`internvl_optim.param_groups` (with
            ``muon=True``) or the constructor; each group carries
            ``algorithm``, Muon groups also ``matrix_view`` and ``shapes``.
        lr (float): the base lr (groups carry their own). Default 1e-3.
        weight_decay (float): default for groups without one. Default 0.01.
        betas, eps: AdamW's. Default (0.9, 0.999), 1e-8.
        momentum (float), nesterov (bool): Muon's. Default 0.95, True.
        ns_coefficients, ns_steps, ns_eps: Newton-Schulz's. Default
            Keller Jordan's coefficients, 5 steps, 1e-7.
        adjust_lr_fn (str): ``'match_rms_adamw'`` (default) or
            ``'original'`` (then ``muon_lr`` is required).
        muon_lr (float): the Muon half's base lr with ``'original'``:
            each Muon group runs at ``muon_lr * group lr / lr``.
    """

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.01,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: Tuple[float, float, float] = NS_COEFFICIENTS,
                 ns_steps: int = 5, ns_eps: float = 1e-7,
                 adjust_lr_fn: str = 'match_rms_adamw',
                 muon_lr: Optional[float] = None):
        if adjust_lr_fn not in ADJUST_LR_FNS:
            raise ValueError(f'MuonAdamW: adjust_lr_fn={adjust_lr_fn!r} is '
                             f'not one of {ADJUST_LR_FNS}')
        if adjust_lr_fn == 'original' and muon_lr is None:
            raise ValueError(
                "MuonAdamW: adjust_lr_fn='original' takes Muon's own base lr"
                ' (Keller Jordan uses about 0.02): give muon_lr; or use '
                "adjust_lr_fn='match_rms_adamw', which carries AdamW's lr "
                'over')
        if muon_lr is not None and adjust_lr_fn != 'original':
            raise ValueError(
                "MuonAdamW: muon_lr is the Muon half's base lr of "
                "adjust_lr_fn='original'; with 'match_rms_adamw' the Muon "
                'groups run at their planned lr. Remove muon_lr, or set '
                "adjust_lr_fn='original'")
        if not 0 <= momentum < 1:
            raise ValueError(f'MuonAdamW: momentum must be in [0, 1), got '
                             f'{momentum}')
        defaults = dict(lr=lr, weight_decay=weight_decay, betas=betas,
                        eps=eps, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=tuple(ns_coefficients),
                        ns_steps=ns_steps, ns_eps=ns_eps,
                        adjust_lr_fn=adjust_lr_fn, amsgrad=False,
                        maximize=False)
        super().__init__(params, defaults)
        for index, group in enumerate(self.param_groups):
            _check_group(index, group)
            if muon_lr is not None and group['algorithm'] == 'muon' \
                    and not group.get('muon_lr_set'):
                group['lr'] = group['lr'] * (muon_lr / lr)
                if 'lr_scale' in group:  # (the plan's lr / the base lr)
                    group['lr_scale'] = group['lr_scale'] * (muon_lr / lr)
                group['muon_lr_set'] = True

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            if group['algorithm'] == 'muon':
                self._muon_step(index, group)
            else:
                self._adamw_step(group)
        return loss

    def _muon_step(self, index: int, group: dict) -> None:
        shapes = group['shapes']
        if len(shapes) != len(group['params']):
            raise RuntimeError(
                f'MuonAdamW: group {group.get("group_name", index)} holds '
                f'{len(group["params"])} parameters, planned '
                f'{len(shapes)}: a wrapper dropped or added parameters '
                'after the groups were built (DeepSpeed ZeRO and FSDP '
                'replace them with flat partitions). Use DDP, or AdamW '
                'under that strategy')
        for i, p in enumerate(group['params']):
            if p.grad is None:
                continue
            if tuple(p.shape) != tuple(shapes[i]):
                raise RuntimeError(
                    f'MuonAdamW: group {group.get("group_name", index)}: '
                    f'{_name(group, i)} is {tuple(p.shape)} here, planned '
                    f'{tuple(shapes[i])}: Muon needs whole matrices, and a '
                    'wrapper (DeepSpeed ZeRO, FSDP) flattened or sharded it. '
                    'Use DDP, or AdamW under that strategy')
            state = self.state[p]
            if 'momentum_buffer' not in state:
                state['momentum_buffer'] = torch.zeros_like(p.grad)
            buf = state['momentum_buffer']
            buf.lerp_(p.grad, 1 - group['momentum'])
            update = p.grad.lerp(buf, group['momentum']) \
                if group['nesterov'] else buf
            update, rows, cols = orthogonalized(
                update, group['matrix_view'], group['ns_coefficients'],
                group['ns_steps'], group['ns_eps'])
            lr = group['lr']
            p.mul_(1 - lr * group['weight_decay'])
            p.add_(update, alpha=-adjusted_lr(lr, rows, cols,
                                              group['adjust_lr_fn']))

    def _adamw_step(self, group: dict) -> None:
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for p in group['params']:
            if p.grad is None:
                continue
            state = self.state[p]
            if len(state) == 0:
                state['step'] = torch.tensor(0.0)
                state['exp_avg'] = torch.zeros_like(
                    p, memory_format=torch.preserve_format)
                state['exp_avg_sq'] = torch.zeros_like(
                    p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state['exp_avg'])
            exp_avg_sqs.append(state['exp_avg_sq'])
            steps.append(state['step'])
        if not params:
            return
        beta1, beta2 = group['betas']
        adam(params, grads, exp_avgs, exp_avg_sqs, [], steps,
             decoupled_weight_decay=True, amsgrad=False, beta1=beta1,
             beta2=beta2, lr=group['lr'], weight_decay=group['weight_decay'],
             eps=group['eps'], maximize=False)


def _name(group: dict, i: int) -> str:
    names = group.get('param_names')
    return names[i] if names and i < len(names) else f'parameter {i}'


def _check_group(index: int, group: dict) -> None:
    """Each group says its update; a Muon group its matrices."""
    where = f'MuonAdamW: param group {group.get("group_name", index)}'
    algorithm = group.get('algorithm')
    if algorithm not in ALGORITHMS:
        raise ValueError(
            f'{where} has algorithm={algorithm!r}; each group must say '
            f"'muon' or 'adamw'. Build the groups with param_groups(..., "
            "muon=True) or LayerDecayOptimizerConstructor with "
            "optimizer.type='MuonAdamW' (they route by role and shape)")
    if algorithm == 'adamw':
        return
    if group.get('matrix_view') not in VIEWS:
        raise ValueError(f'{where}: matrix_view={group.get("matrix_view")!r}'
                         f' is not one of {VIEWS}')
    shapes = group.get('shapes')
    if not isinstance(shapes, (list, tuple)) or \
            len(shapes) != len(group['params']):
        raise ValueError(
            f'{where}: a Muon group carries the shape of each parameter as '
            f"the model defined it ('shapes', one per parameter); it has "
            f'{len(shapes) if isinstance(shapes, (list, tuple)) else shapes!r}'
            f' for {len(group["params"])} parameters: the group was '
            'rewritten after it was built')
    for i, (p, shape) in enumerate(zip(group['params'], shapes)):
        need = 3 if group['matrix_view'] == 'per_matrix' else 2
        if len(shape) < need or (group['matrix_view'] != 'flatten'
                                 and len(shape) != need):
            raise ValueError(f'{where}: {_name(group, i)} of shape '
                             f'{tuple(shape)} cannot be seen as '
                             f'{group["matrix_view"]} matrices')

