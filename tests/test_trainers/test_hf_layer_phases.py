"""Phases over layers in a real HF ``Trainer`` (transformers 5.24, CPU)
that builds its own cosine schedule after it is handed the optimizer
(``optimizers=(optimizer, None)``): no crash, and at every step each
group moves by exactly ``-lr * factor * grad`` (SGD, no momentum, no
weight decay), with ``lr`` the one Trainer's scheduler set and ``factor``
the phase's: 0 before the layer joins, 1 after."""
import pytest
import torch

pytest.importorskip('transformers')
pytest.importorskip('accelerate')
from transformers import (Trainer, TrainerCallback,  # noqa: E402
                          TrainingArguments)

from internvl_optim import param_groups  # noqa: E402
from internvl_optim.trainers.layer_phase_callback import \
    LayerPhaseCallback  # noqa: E402
from test_hf_ratio_callback import DATA, Toy  # noqa: E402

#: head_only=2, unfreeze_every=1 on 3 blocks: the head from step 0,
#: block 2 at 2, block 1 at 3, block 0 at 4, the cls token (layer 0) at 5
JOIN_AT = {'head.weight': 0, 'backbone.blocks.2.weight': 2,
           'backbone.blocks.1.weight': 3, 'backbone.blocks.0.weight': 4,
           'backbone.cls_token': 5}


class Moves(TrainerCallback):
    """Each step: the lr Trainer's scheduler set for each parameter, its
    gradient and how far it moved."""

    def __init__(self, model):
        self.named = dict(model.named_parameters())
        self.steps = []

    def on_pre_optimizer_step(self, args, state, control, optimizer=None,
                              **kw):
        lrs = {n: g['lr'] for g in optimizer.param_groups
               for n in g['param_names']}
        self.before = {n: (self.named[n].detach().clone(),
                           self.named[n].grad.detach().clone(), lrs[n])
                       for n in JOIN_AT}

    def on_optimizer_step(self, args, state, control, **kw):
        self.steps.append({n: (w - self.named[n].detach(), grad, lr)
                           for n, (w, grad, lr) in self.before.items()})


def test_phases_beside_trainers_own_cosine_schedule(tmp_path):
    torch.manual_seed(0)
    model = Toy()
    optimizer = torch.optim.SGD(param_groups(
        model, lr=0.05, layer_decay_rate=0.5,
        layer_phases=dict(head_only=2, unfreeze_every=1)))
    moves = Moves(model)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=7,
                             per_device_train_batch_size=2, report_to=[],
                             use_cpu=True, save_strategy='no',
                             lr_scheduler_type='cosine', warmup_steps=0)
    trainer = Trainer(model=model, args=args, train_dataset=DATA * 2,
                      optimizers=(optimizer, None),
                      callbacks=[LayerPhaseCallback(optimizer), moves])
    trainer.train()
    assert len(moves.steps) == 7
    cosine = [moves.steps[s]['head.weight'][2] for s in range(7)]
    assert cosine[0] == pytest.approx(0.05) and cosine[6] < cosine[1] < 0.05
    for step, seen in enumerate(moves.steps):
        for name, join_at in JOIN_AT.items():
            moved, grad, lr = seen[name]
            assert grad.abs().sum() > 0, (step, name)
            if step < join_at:  # not joined: not moved at all
                assert torch.equal(moved, torch.zeros_like(moved)), (step,
                                                                     name)
            else:  # float32 weights near 0.5 resolve about 6e-8
                torch.testing.assert_close(moved, lr * grad, rtol=1e-4,
                                           atol=2e-7,
                                           msg=f'step {step}, {name}')
