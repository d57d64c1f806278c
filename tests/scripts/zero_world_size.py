"""Run under torchrun: DeepSpeed ZeRO-{1,2,3} state saved by name at one
world size and put back at another.

``zero_world_size.py STAGE MODE OUT STEPS [FROM]``; MODE is

* ``straight``: 2 * STEPS steps, the final fp32 masters to OUT/straight.pt;
* ``save``: STEPS steps, each rank's fragment file into OUT/ckpt/, and
  DeepSpeed's own view of every parameter's full state
  (``safe_get_full_fp32_param`` / ``safe_get_full_optimizer_state``) to
  OUT/at_save.pt;
* ``resume``: the fragments of FROM/ckpt/ (default OUT) put into a fresh
  engine, DeepSpeed's
  view of them to OUT/at_resume.pt, STEPS more steps, the final masters to
  OUT/resumed.pt.

Every step's global batch is the same 6 samples whatever the world size
(rank r takes rows r*6/W .. (r+1)*6/W), and DeepSpeed averages the ranks'
gradients, so runs at different world sizes differ only by the order of
float sums.
"""
import os
import sys
import traceback

import torch
import torch.distributed as dist

sys.path[:0] = [os.path.join(os.path.dirname(__file__), '..'),
                os.path.join(os.path.dirname(__file__), '..', '..')]

from helpers import run_leaving_together  # noqa: E402
from mmengine_toys import TinyViT  # noqa: E402

from internvl_optim import param_groups  # noqa: E402
from internvl_optim.checkpoint.state_fragments import (  # noqa: E402
    fragment_file, read_fragments)
from internvl_optim.runtime.zero_state_by_name import (  # noqa: E402
    apply_fragments, local_fragments)

GLOBAL_BATCH = 6


def build(stage, world_size):
    import deepspeed
    zero = dict(stage=stage)
    if stage == 3:
        # DeepSpeed 0.15.4 re-gathers ZeRO-3's persistent (small)
        # parameters after every step with one asynchronous all-gather per
        # parameter and waits for the last one only
        # (Init._allgather_params_coalesced); gloo runs them on several
        # threads, so the next forward can read a buffer not filled yet
        # (inf, then NaN weights on every rank). No parameter persistent:
        # each is gathered by one waited all-gather before its module runs
        zero.update(stage3_param_persistence_threshold=0)
    config = dict(train_batch_size=GLOBAL_BATCH,
                  train_micro_batch_size_per_gpu=GLOBAL_BATCH // world_size,
                  gradient_accumulation_steps=1, zero_optimization=zero)
    torch.manual_seed(0)
    if stage == 3:
        # (zero.Init sees one rank before deepspeed.initialize: no batch
        # split here)
        with deepspeed.zero.Init(config_dict_or_path=dict(
                train_batch_size=GLOBAL_BATCH, zero_optimization=dict(
                    stage=3))):
            model = TinyViT(depth=3, dim=6)
    else:
        model = TinyViT(depth=3, dim=6)
    groups = param_groups(model, lr=1e-2, weight_decay=0.05,
                          layer_decay_rate=0.5)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=torch.optim.AdamW(groups, lr=1e-2),
        config=config)
    return engine


def train(engine, first, steps):
    rank, world_size = dist.get_rank(), dist.get_world_size()
    per_rank = GLOBAL_BATCH // world_size
    for step in range(first, first + steps):
        batch = torch.randn(GLOBAL_BATCH, 2,
                            generator=torch.Generator().manual_seed(step))
        loss = engine(batch[rank * per_rank:(rank + 1) * per_rank],
                      mode='loss')['loss']
        engine.backward(loss)
        engine.step()


def full_state(engine):
    """DeepSpeed's own gathering of each parameter's full state."""
    from deepspeed.utils import (safe_get_full_fp32_param,
                                 safe_get_full_optimizer_state)
    optimizer = engine.optimizer
    if hasattr(optimizer, '_lazy_init_hp_params_optimizer_state'):
        # ZeRO-1/2 links the moments to the parameters after stepping its
        # first group only, so the other groups' moments stay unlinked
        # (DeepSpeed 0.15.4 _optimizer_step): link them all
        optimizer._hp_optimizer_states_linked = False
        optimizer._lazy_init_hp_params_optimizer_state()
    out = {}
    for name, p in engine.module.named_parameters():
        out[name] = dict(fp32=safe_get_full_fp32_param(p).clone(), **{
            key: safe_get_full_optimizer_state(p, key).clone()
            for key in ('exp_avg', 'exp_avg_sq')})
    steps = sorted({int(s['step']) for s in
                    optimizer.optimizer.state.values()})
    return out, steps


def main(stage, mode, out, steps, source=None):
    os.environ.setdefault('LOCAL_SIZE', os.environ['LOCAL_WORLD_SIZE'])
    dist.init_process_group('gloo')
    rank, world_size = dist.get_rank(), dist.get_world_size()
    engine = build(stage, world_size)
    ckpt = os.path.join(source or out, 'ckpt')
    if mode == 'resume':
        saved = read_fragments(ckpt, os.listdir(ckpt), lambda path:
                               torch.load(path, weights_only=True))
        kept, added, removed = apply_fragments(engine.optimizer,
                                               engine.module, saved)
        state, step_values = full_state(engine)
        if rank == 0:
            torch.save(dict(state=state, steps=step_values, kept=kept,
                            added=added, removed=removed,
                            saved_world_size=saved.world_size),
                       os.path.join(out, 'at_resume.pt'))
        train(engine, steps, steps)
    else:
        train(engine, 0, 2 * steps if mode == 'straight' else steps)
    if mode == 'save':
        os.makedirs(ckpt, exist_ok=True)
        torch.save(local_fragments(engine.optimizer, engine.module,
                                   world_size), fragment_file(ckpt, rank))
        state, step_values = full_state(engine)
        if rank == 0:
            torch.save(dict(state=state, steps=step_values),
                       os.path.join(out, 'at_save.pt'))
    else:
        state, _ = full_state(engine)
        if rank == 0:
            torch.save({n: s['fp32'] for n, s in state.items()},
                       os.path.join(out, dict(straight='straight.pt',
                                                   resume='resumed.pt')[mode]))


def fail_fast(*args):
    """A rank that fails exits at once (torchrun then stops the others),
    instead of waiting in a collective the others never reach."""
    try:
        main(*args)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


if __name__ == '__main__':
    run_leaving_together(fail_fast, int(sys.argv[1]), sys.argv[2], sys.argv[3],
                         int(sys.argv[4]), *sys.argv[5:])
