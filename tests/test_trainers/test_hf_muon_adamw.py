"""MuonAdamW in a real HF ``Trainer`` (transformers 5.24, CPU) with its own
cosine schedule (``optimizers=(optimizer, None)``): the blocks' matrices
take Muon (a momentum buffer), the rest AdamW (two moments), the schedule
keeps the layer ratios (the ratio guard stays silent)."""
import pytest
import torch

pytest.importorskip('transformers')
pytest.importorskip('accelerate')
from transformers import Trainer, TrainingArguments  # noqa: E402

from internvl_optim import param_groups  # noqa: E402
from internvl_optim.optim import MuonAdamW  # noqa: E402
from internvl_optim.trainers.hf_callback import LayerRatioCallback  # noqa
from test_hf_ratio_callback import DATA, Toy  # noqa: E402


def test_trainer_steps_both_halves(tmp_path, recwarn):
    torch.manual_seed(0)
    model = Toy()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = MuonAdamW(param_groups(model, lr=0.01, weight_decay=0.05,
                                       layer_decay_rate=0.5, muon=True),
                          lr=0.01)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3,
                             per_device_train_batch_size=2, report_to=[],
                             use_cpu=True, save_strategy='no',
                             lr_scheduler_type='cosine', logging_steps=1)
    Trainer(model=model, args=args, train_dataset=DATA,
            optimizers=(optimizer, None),
            callbacks=[LayerRatioCallback()]).train()
    state = {n: set(optimizer.state[p]) for g in optimizer.param_groups
             for n, p in zip(g['param_names'], g['params'])}
    assert state['backbone.blocks.1.weight'] == {'momentum_buffer'}
    assert state['backbone.blocks.1.bias'] == {'step', 'exp_avg',
                                               'exp_avg_sq'}
    assert state['head.weight'] == {'step', 'exp_avg', 'exp_avg_sq'}
    for name, p in model.named_parameters():
        assert not torch.equal(p.detach(), start[name]), name
    assert not [w for w in recwarn if 'lr ratios' in str(w.message)]
