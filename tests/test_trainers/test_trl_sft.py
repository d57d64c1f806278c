"""TRL's ``SFTTrainer`` (trl 1.16.0, transformers 5.24.0, CPU) trains a
tiny Qwen2.5-VL-shaped model (random weights, nothing downloaded: a
word-level tokenizer built here, a pre-tokenized text dataset) with our
groups: after each step every group's lr is the plan's times the one
factor of the schedule ``Trainer`` creates, and weight decay is the
plan's.

Facts relied on: ``Trainer`` keeps an optimizer given in
``optimizers=(optimizer, None)`` and builds its scheduler on it
(``create_scheduler``: ``LambdaLR``, one multiplier for every group);
TRL's ``SFTTrainer`` takes a dataset that already has ``input_ids``."""
import pytest
import torch

pytest.importorskip('trl')
T = pytest.importorskip('transformers')
datasets = pytest.importorskip('datasets')
from tokenizers import Tokenizer, models  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from internvl_optim import param_groups  # noqa: E402
from internvl_optim.trainers.hf_callback import LayerRatioCallback  # noqa

TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, intermediate_size=64, vocab_size=100)
RATE, LR, WD = 0.5, 1e-3, 0.05


def tiny_qwen2_5_vl():
    torch.manual_seed(0)
    return T.Qwen2_5_VLForConditionalGeneration(T.Qwen2_5_VLConfig(
        vision_config=dict(depth=2, hidden_size=16, intermediate_size=32,
                           num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[1], window_size=28),
        text_config=dict(TEXT, rope_parameters=dict(
            rope_type='default', rope_theta=10000.0,
            mrope_section=[2, 3, 3]))))  # head_dim 16: sections sum to 8


def tokenizer():
    vocab = {f't{i}': i for i in range(100)}
    return T.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token='t0')),
        pad_token='t0', eos_token='t1', unk_token='t0')


class Seen(T.TrainerCallback):
    def __init__(self):
        self.lrs = []

    def on_step_end(self, args, state, control, optimizer=None, **kw):
        self.lrs.append([g['lr'] for g in optimizer.param_groups])


def test_sft_trainer_keeps_our_groups_and_ratios(tmp_path):
    model = tiny_qwen2_5_vl()
    groups = param_groups(model, lr=LR, weight_decay=WD,
                          layer_decay_rate=RATE)
    planned = [(g['group_name'], g['lr'], g['weight_decay'])
               for g in groups]
    optimizer = torch.optim.AdamW(groups)
    data = datasets.Dataset.from_dict(dict(
        input_ids=[[2 + (i + k) % 90 for k in range(12)] for i in range(8)]))
    seen = Seen()
    trainer = SFTTrainer(
        model=model, processing_class=tokenizer(), train_dataset=data,
        args=SFTConfig(output_dir=str(tmp_path), max_steps=3,
                       per_device_train_batch_size=2, logging_steps=1,
                       report_to=[], use_cpu=True, save_strategy='no',
                       warmup_steps=2, lr_scheduler_type='linear'),
        optimizers=(optimizer, None),
        callbacks=[seen, LayerRatioCallback()])
    trainer.train()
    live = trainer.optimizer.param_groups
    assert [(g['group_name'], g['initial_lr'], g['weight_decay'])
            for g in live] == planned
    # the vision blocks decayed, the merger (projector), language model
    # and lm_head at the base lr
    names = {g['group_name']: g for g in live}
    assert names['vision_layer_2_decay']['initial_lr'] == LR * RATE
    assert names['vision_layer_0_decay']['initial_lr'] == LR * RATE ** 3
    assert any('model.visual.merger.mlp.0.weight' in g['param_names']
               and g['initial_lr'] == LR for g in live)
    assert any('lm_head.weight' in g['param_names'] and g['initial_lr'] == LR
               for g in live)
    # each step: one schedule factor for every group (warm-up 1/2, then
    # linear decay: 2/2, then 1/3 of the remaining)
    assert len(seen.lrs) == 3
    for step, lrs in enumerate(seen.lrs):
        factors = {round(lr / p[1], 12) for lr, p in zip(lrs, planned)}
        assert len(factors) == 1, (step, factors)
    assert [round(lrs[0] / planned[0][1], 12) for lrs in seen.lrs] == [
        0.5, 1.0, 0.0]
