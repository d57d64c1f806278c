"""The ratio guard in a real HF ``Trainer`` (transformers 5.24, CPU, a toy
model, three steps): the scheduler ``Trainer`` creates keeps the ratios;
a scheduler that sets one lr for all groups is named at step 0; a
DeepSpeed config with a ``scheduler`` stops the run before the first step
(called as ``Trainer`` calls its callbacks)."""
import json

import pytest
import torch
from torch import nn

pytest.importorskip('transformers')
pytest.importorskip('accelerate')
from transformers import (Trainer, TrainerCallback,  # noqa: E402
                          TrainingArguments)

from internvl_optim import param_groups  # noqa: E402
from internvl_optim.trainers.hf_callback import LayerRatioCallback  # noqa


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.cls_token = nn.Parameter(torch.zeros(1, 2))
        self.backbone.blocks = nn.ModuleList(nn.Linear(2, 2)
                                             for _ in range(3))
        self.head = nn.Linear(2, 1)

    def forward(self, x, labels=None):
        x = x + self.backbone.cls_token
        for block in self.backbone.blocks:
            x = block(x)
        loss = ((self.head(x).squeeze(-1) - labels) ** 2).mean()
        return dict(loss=loss)


DATA = [dict(x=torch.tensor([float(i), 1.0]), labels=torch.tensor(1.0))
        for i in range(8)]


def trainer(tmp_path, scheduler=None):
    torch.manual_seed(0)
    model = Toy()
    optimizer = torch.optim.AdamW(param_groups(
        model, lr=0.01, weight_decay=0.05, layer_decay_rate=0.5))
    if scheduler is not None:
        scheduler = scheduler(optimizer)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3,
                             per_device_train_batch_size=2, logging_steps=1,
                             report_to=[], use_cpu=True, save_strategy='no')
    return Trainer(model=model, args=args, train_dataset=DATA,
                   optimizers=(optimizer, scheduler),
                   callbacks=[LayerRatioCallback()])


class Lrs(TrainerCallback):
    """The groups' lrs at each step."""

    def __init__(self):
        self.seen = []

    def on_step_begin(self, args, state, control, optimizer=None, **kw):
        self.seen.append([g['lr'] for g in optimizer.param_groups])


def test_trainers_own_schedule_keeps_the_ratios(tmp_path, recwarn):
    run = trainer(tmp_path)
    lrs = Lrs()
    run.add_callback(lrs)
    run.train()
    assert len(lrs.seen) == 3
    for seen in lrs.seen:  # (decay and no-decay groups alternate)
        assert [round(lr / seen[0], 12) for lr in seen[::2]] == [
            1.0, 0.5, 0.25, 0.125, 0.0625]
    assert not [w for w in recwarn if 'lr ratios' in str(w.message)]


def test_a_flattening_scheduler_is_named(tmp_path):
    class Flat(torch.optim.lr_scheduler.LRScheduler):
        """One absolute lr for every group, as DeepSpeed's WarmupLR."""

        def get_lr(self):
            return [0.01 for _ in self.optimizer.param_groups]

    def flat(optimizer):
        return Flat(optimizer)
    with pytest.warns(UserWarning) as caught:
        trainer(tmp_path, flat).train()
    (message,) = [str(w.message) for w in caught
                  if 'lr ratios' in str(w.message)]
    assert message.startswith(
        "Step 0: the layer-wise lr ratios are no longer the plan's: group "
        'layer_0_no_decay is at lr 0.01, while layer_4_decay is at 0.01: the '
        "ratio between them is 1, the plan's 0.0625 (their lr_scale 0.0625 "
        'and 1)')


def test_a_deepspeed_config_scheduler_stops_before_step_one(tmp_path):
    config = tmp_path / 'ds.json'
    config.write_text(json.dumps(dict(scheduler=dict(type='WarmupLR'))))
    run = trainer(tmp_path)
    run.args.deepspeed = str(config)  # as Trainer passes it on
    with pytest.raises(ValueError, match=(
            f"the DeepSpeed config '{config}'.scheduler \\(WarmupLR\\) sets "
            'every param group to the same lr')):
        LayerRatioCallback().on_train_begin(run.args, run.state, None,
                                            optimizer=run.optimizer)


def test_a_deepspeed_config_that_is_no_json_file_is_named(tmp_path):
    """Read as any JSON from elsewhere: a FIFO never blocks, broken JSON
    names the file."""
    import os
    from internvl_optim.checkpoint.errors import CheckpointError
    run = trainer(tmp_path)
    broken = tmp_path / 'broken.json'
    broken.write_text('{"zero_optimization": ')
    fifo = tmp_path / 'fifo.json'
    os.mkfifo(fifo)
    for path, message in [(broken, 'is not valid JSON: Expecting value'),
                          (fifo, 'is not a regular file (a FIFO')]:
        run.args.deepspeed = str(path)
        with pytest.raises(CheckpointError) as err:
            LayerRatioCallback().on_train_begin(run.args, run.state, None,
                                                optimizer=run.optimizer)
        assert str(err.value).startswith(f"'{path}' {message}")
