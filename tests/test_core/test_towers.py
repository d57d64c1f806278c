"""VLM towers: known layouts recognised without
configuration, ``paramwise_cfg.towers`` for the rest; every parameter in a
group or frozen, a tied embedding once; LoRA adapters take their layer's lr.

Facts (transformers 5.24, read from the built models):
``InternVLForConditionalGeneration`` holds ``model.vision_tower``
(``embeddings.*``, ``encoder.layer.{i}``), ``model.multi_modal_projector``
(``layer_norm``, ``linear_1``, ``linear_2``), ``model.language_model``
(``embed_tokens``, ``layers.{i}``, ``norm``) and ``lm_head``, tied to
``embed_tokens`` (``named_parameters`` lists it once).  InternVL chat
(remote code): ``vision_model``, ``mlp1``, ``language_model``.  PEFT wraps
as ``base_model.model.`` and adds ``lora_A``/``lora_B``.
"""
import functools
import re

import pytest
import torch
from torch import nn

from internvl_optim import LayerDecaySettings, build_param_groups

from helpers import build_plan, lr_wd_by_name
from tiny_vlms import tiny_internvl

T = pytest.importorskip('transformers')
WD = 0.05


plan = functools.partial(build_plan, weight_decay=WD)


def test_transformers_internvl_is_recognised():
    model = tiny_internvl()
    p = plan(model, layer_decay_rate=0.5)
    assert p.layer_rule.startswith(
        'towers (InternVLForConditionalGeneration: sub-configs): vision = '
        'model.vision_tower, ViT rule (model.vision_tower.encoder.layer), '
        'rate 0.5; projector = model.multi_modal_projector, ')
    lrs = lr_wd_by_name(p.groups)
    v = 'model.vision_tower.'
    # the vision tower: 2 blocks, embeddings 0.5 ** 3
    assert lrs[v + 'embeddings.cls_token'] == (0.125, 0.0)
    assert lrs[v + 'embeddings.position_embeddings'] == (0.125, 0.0)
    assert lrs[v + 'embeddings.patch_embeddings.projection.weight'] == \
        (0.125, WD)
    assert lrs[v + 'encoder.layer.0.attention.q_proj.weight'] == (0.25, WD)
    assert lrs[v + 'encoder.layer.0.attention.q_norm.weight'] == (0.25, 0.0)
    assert lrs[v + 'encoder.layer.0.lambda_1'] == (0.25, 0.0)
    assert lrs[v + 'encoder.layer.1.layernorm_after.weight'] == (0.5, 0.0)
    # projector and language model at the base lr, norms without decay
    assert lrs['model.multi_modal_projector.linear_1.weight'] == (1.0, WD)
    assert lrs['model.multi_modal_projector.layer_norm.weight'] == (1.0, 0.0)
    lm = 'model.language_model.'
    assert lrs[lm + 'layers.0.mlp.up_proj.weight'] == (1.0, WD)
    assert lrs[lm + 'layers.2.input_layernorm.weight'] == (1.0, 0.0)
    assert lrs[lm + 'norm.weight'] == (1.0, 0.0)
    # the tied lm_head / embed_tokens is one tensor, in one group
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert lrs[lm + 'embed_tokens.weight'] == (1.0, WD)
    assert 'lm_head.weight' not in lrs
    assert len(lrs) == len(list(model.parameters()))
    names = {g['group_name'] for g in p.groups}
    # decayed vision layers apart; the language model and projector at one
    # lr share a group per weight decay
    assert {n for n in names if n.startswith('vision_')} == {
        f'vision_layer_{i}_{d}' for i in range(3)
        for d in ('decay', 'no_decay')}
    assert {n for n in names if not n.startswith('vision_')} == {
        'language_layers_0-3_decay', 'language_layers_1-4_no_decay',
        'projector_layers_1-2_decay', 'projector_layers_0-2_no_decay'}
    assert p.towers == [('vision', 2), ('projector', 2), ('language', 3)]


def test_towers_with_their_own_rates_multipliers_and_freezing():
    model = tiny_internvl()
    p = plan(model, towers=dict(
        vision=dict(module='model.vision_tower', layer_decay_rate=0.5),
        projector=dict(module='model.multi_modal_projector', lr_mult=2.0),
        language=dict(module='model.language_model', layer_decay_rate=0.5,
                      lr_mult=0.1, decay_mult=0.0)))
    lrs = lr_wd_by_name(p.groups)
    assert lrs['model.vision_tower.encoder.layer.0.mlp.fc1.weight'] == \
        (0.25, WD)
    assert lrs['model.multi_modal_projector.linear_2.weight'] == (2.0, WD)
    lm = 'model.language_model.'
    # QLLaMA-style decay in the LLM: 3 layers, embeddings 0.5 ** 4
    assert lrs[lm + 'embed_tokens.weight'] == (pytest.approx(0.00625), 0.0)
    assert lrs[lm + 'layers.0.mlp.up_proj.weight'] == (pytest.approx(0.0125),
                                                       0.0)
    assert lrs[lm + 'layers.2.mlp.up_proj.weight'] == (pytest.approx(0.05),
                                                       0.0)
    assert lrs[lm + 'norm.weight'] == (pytest.approx(0.1), 0.0)
    by_name = {pl.name: pl for pl in p.params}
    assert by_name[lm + 'layers.2.mlp.up_proj.weight'].no_decay_reason == \
        "towers['language'].decay_mult=0"
    frozen = plan(model, towers=dict(
        vision=dict(module='model.vision_tower', freeze=True),
        language=dict(module='model.language_model', freeze=True)))
    kept = set(lr_wd_by_name(frozen.groups))
    assert all(n.startswith('model.multi_modal_projector.') for n in kept)
    assert frozen.to_freeze == [model.model.vision_tower,
                                model.model.language_model]
    # the core changes nothing
    assert all(q.requires_grad for q in model.parameters())


class ChatLike(nn.Module):
    """InternVL chat's names (remote code): vision_model, mlp1,
    language_model."""

    def __init__(self):
        super().__init__()
        self.vision_model = nn.Module()
        self.vision_model.embeddings = nn.Module()
        self.vision_model.embeddings.class_embedding = nn.Parameter(
            torch.zeros(1, 1, 4))
        self.vision_model.encoder = nn.Module()
        self.vision_model.encoder.layers = nn.ModuleList(
            nn.Linear(4, 4) for _ in range(2))
        self.mlp1 = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 4))
        self.language_model = nn.Module()
        self.language_model.layers = nn.ModuleList(
            nn.Linear(4, 4) for _ in range(2))


def test_internvl_chat_and_peft_prefix_are_recognised():
    lrs = lr_wd_by_name(plan(ChatLike(), layer_decay_rate=0.5).groups)
    assert lrs['vision_model.embeddings.class_embedding'] == (0.125, 0.0)
    assert lrs['vision_model.encoder.layers.1.weight'] == (0.5, WD)
    assert lrs['mlp1.1.weight'] == (1.0, WD)
    assert lrs['language_model.layers.0.weight'] == (1.0, WD)

    peft = nn.Module()
    peft.base_model = nn.Module()
    peft.base_model.model = ChatLike()
    lrs = lr_wd_by_name(plan(peft, layer_decay_rate=0.5).groups)
    assert lrs['base_model.model.vision_model.encoder.layers.0.weight'] == \
        (0.25, WD)
    assert lrs['base_model.model.language_model.layers.0.weight'] == \
        (1.0, WD)


@pytest.mark.parametrize('towers, exc, message', [
    ([1], TypeError, 'paramwise_cfg.towers must be a non-empty dict'),
    (dict(vision=dict(module='model.vision_tower', rate=0.9)), ValueError,
     "paramwise_cfg.towers['vision'] has unknown keys ['rate']; valid: "
     "('module', 'layer_decay_rate', 'num_layers', 'lr_mult', "
     "'decay_mult', 'freeze')"),
    (dict(vision=dict(layer_decay_rate=0.9)), TypeError,
     "paramwise_cfg.towers['vision'].module must name a sub-module"),
    (dict(vision=dict(module='a', layer_decay_rate=1.5)), ValueError,
     "paramwise_cfg.towers['vision'].layer_decay_rate must be in (0, 1], "
     'got 1.5'),
    (dict(vision=dict(module='a', lr_mult='2')), TypeError,
     "paramwise_cfg.towers['vision'].lr_mult must be a number >= 0, got "
     "'2' (a string: write 2 without quotes)"),
    (dict(a=dict(module='model'), b=dict(module='model')),
     ValueError, "paramwise_cfg.towers: ['a', 'b'] all name module 'model'"),
])
def test_bad_towers_are_named(towers, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        LayerDecaySettings.from_paramwise_cfg(dict(towers=towers))


def test_a_tower_that_is_not_in_the_model_is_named():
    with pytest.raises(ValueError, match=re.escape(
            "paramwise_cfg.towers['vision'].module='vision_tower': the model "
            "has no such sub-module; its top-level sub-modules are "
            "['lm_head', 'model']")):
        plan(tiny_internvl(), towers=dict(vision=dict(module='vision_tower')))


class LoraLinear(nn.Module):
    """PEFT's layout: base_layer plus lora_A / lora_B (adapter 'default')."""

    def __init__(self):
        super().__init__()
        self.base_layer = nn.Linear(4, 4)
        self.lora_A = nn.ModuleDict(dict(default=nn.Linear(4, 2, bias=False)))
        self.lora_B = nn.ModuleDict(dict(default=nn.Linear(2, 4, bias=False)))


def test_lora_adapters_take_their_layers_lr_and_no_weight_decay():
    model = ChatLike()
    model.vision_model.encoder.layers[1] = LoraLinear()
    model.vision_model.encoder.layers[1].base_layer.requires_grad_(False)
    lrs = lr_wd_by_name(plan(model, layer_decay_rate=0.5).groups)
    layer = 'vision_model.encoder.layers.1.'
    assert lrs[layer + 'lora_A.default.weight'] == (0.5, 0.0)
    assert lrs[layer + 'lora_B.default.weight'] == (0.5, 0.0)
    assert layer + 'base_layer.weight' not in lrs  # frozen by PEFT
    # a custom key sets their weight decay
    lrs = lr_wd_by_name(plan(model, layer_decay_rate=0.5, custom_keys={
        'lora_': dict(decay_mult=1.0)}).groups)
    assert lrs[layer + 'lora_A.default.weight'] == (0.5, WD)


def test_hf_trainer_trains_with_the_groups(tmp_path, single_process):
    """From HF Trainer: optimizers=(AdamW(param_groups(...)), None); after
    training steps every group keeps its lr and weight decay."""
    from torch.utils.data import Dataset

    from internvl_optim import param_groups

    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.vlm = ChatLike()

        def forward(self, x, labels=None):
            v = self.vlm
            h = v.mlp1(v.vision_model.encoder.layers[1](
                v.vision_model.encoder.layers[0](x)))
            h = v.language_model.layers[1](v.language_model.layers[0](h))
            return dict(loss=((h - labels) ** 2).mean())

    class Data(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return dict(x=torch.randn(4, generator=g),
                        labels=torch.randn(4, generator=g))

    model = WithLoss()
    groups = param_groups(model, lr=1e-3, weight_decay=WD,
                          layer_decay_rate=0.5, backbone_name='vlm.'
                          'vision_model', custom_keys={
                              'vlm.language_model': dict(lr_mult=0.1)})
    optimizer = torch.optim.AdamW(groups)
    before = lr_wd_by_name(optimizer.param_groups)
    args = T.TrainingArguments(output_dir=str(tmp_path), max_steps=3,
                               per_device_train_batch_size=4,
                               report_to=[], save_strategy='no',
                               lr_scheduler_type='constant', use_cpu=True,
                               disable_tqdm=True)
    trainer = T.Trainer(model=model, args=args, train_dataset=Data(),
                        optimizers=(optimizer, None))
    weight = model.vlm.vision_model.encoder.layers[0].weight.detach().clone()
    trainer.train()
    assert trainer.state.global_step == 3
    assert not torch.equal(weight, model.vlm.vision_model.encoder.layers[0]
                           .weight.detach())
    after = lr_wd_by_name(trainer.optimizer.param_groups)
    assert after == before
    assert after['vlm.vision_model.embeddings.class_embedding'] == \
        (pytest.approx(1.25e-4), 0.0)
    assert after['vlm.vision_model.encoder.layers.0.weight'] == \
        (pytest.approx(2.5e-4), WD)
    assert after['vlm.language_model.layers.0.weight'] == \
        (pytest.approx(1e-4), WD)
    assert after['vlm.mlp1.1.weight'] == (pytest.approx(1e-3), WD)


# --- InternVL chat's flags (internvl_chat/internvl/train/
# internvl_chat_finetune.py: freeze_backbone, freeze_mlp, freeze_llm,
# unfreeze_vit_layers -> vision_model.encoder.layers[N:] trainable,
# unfreeze_lm_head) --------------------------------------------------------

def trainable_after(model, **paramwise):
    from internvl_optim.runtime.freezing import apply_freezing
    p = plan(model, layer_decay_rate=0.5, **paramwise)
    apply_freezing(p)
    in_groups = set(lr_wd_by_name(p.groups))
    trainable = {n for n, q in model.named_parameters() if q.requires_grad}
    assert in_groups == trainable  # every parameter in a group or frozen
    return trainable


@pytest.mark.parametrize('n, kept', [(1, {1}), (-1, {1}), (0, set())])
def test_freeze_backbone_with_unfreeze_vit_layers_from_n_on(n, kept):
    model = ChatLike()
    trainable = trainable_after(model, freeze_backbone=True,
                                unfreeze_vit_layers=n)
    vision = {t for t in trainable if t.startswith('vision_model.')}
    assert vision == {f'vision_model.encoder.layers.{i}.{w}'
                      for i in kept for w in ('weight', 'bias')}
    assert 'mlp1.1.weight' in trainable
    assert 'language_model.layers.0.weight' in trainable


def test_freeze_mlp_and_llm_keep_the_lm_head_on_request():
    model = tiny_internvl()
    model.lm_head = nn.Linear(32, 100, bias=False)  # untied for this test
    trainable = trainable_after(model, freeze_mlp=True, freeze_llm=True)
    assert not any(t.startswith(('model.multi_modal_projector.',
                                 'model.language_model.')) for t in trainable)
    assert 'lm_head.weight' in trainable  # outside the language model
    chat = ChatLike()
    chat.language_model.lm_head = nn.Linear(4, 10, bias=False)
    trainable = trainable_after(chat, freeze_llm=True, unfreeze_lm_head=True)
    assert {t for t in trainable if t.startswith('language_model.')} == {
        'language_model.lm_head.weight'}
    trainable = trainable_after(ChatLike(), freeze_llm=True)
    assert not any(t.startswith('language_model.') for t in trainable)


@pytest.mark.parametrize('prefix', ['vlm', 'base_model.model'])
def test_unfreeze_lm_head_under_a_wrapper_prefix(prefix):
    """The shipped VLM config wraps the model as ``vlm`` (TransformersVLM);
    PEFT puts ``base_model.model.`` in front: ``unfreeze_lm_head`` finds
    the one ``lm_head`` under the prefix."""
    model = nn.Module()
    inner = tiny_internvl()
    inner.lm_head = nn.Linear(32, 100, bias=False)  # untied for this test
    holder = model
    for part in prefix.split('.'):
        child = nn.Module() if part != prefix.split('.')[-1] else inner
        setattr(holder, part, child)
        holder = child
    trainable = trainable_after(model, freeze_llm=True, unfreeze_lm_head=True)
    assert f'{prefix}.lm_head.weight' in trainable
    assert not any(t.startswith(f'{prefix}.model.language_model.')
                   for t in trainable)


def test_a_tied_lm_head_cannot_be_kept_under_freeze_llm():
    """tiny_internvl ties lm_head to the language model's embed_tokens
    (tie_word_embeddings=True): one tensor; keeping lm_head trainable
    would train the frozen embedding."""
    model = tiny_internvl()
    assert model.lm_head.weight is \
        model.model.language_model.embed_tokens.weight
    with pytest.raises(ValueError) as err:
        trainable_after(model, freeze_llm=True, unfreeze_lm_head=True)
    assert str(err.value).startswith(
        'paramwise_cfg.freeze_llm with unfreeze_lm_head: lm_head is tied to '
        "the language model's embed_tokens (one tensor)")


def test_internvl_flags_need_a_vlm():
    with pytest.raises(ValueError, match=re.escape(
            "paramwise_cfg.freeze_mlp / freeze_llm / unfreeze_vit_layers / "
            "unfreeze_lm_head are InternVL chat's flags for a VLM, but the "
            "model has no tower named ['vision', 'projector', 'language']")):
        plan(nn.Sequential(nn.Linear(2, 2)), freeze_mlp=True)


@pytest.mark.parametrize('n, keeps', [(2, 'none'), (100, 'none'),
                                      (-2, 'all'), (-100, 'all')])
def test_unfreeze_vit_layers_out_of_the_towers_range_is_refused(n, keeps):
    # ChatLike's vision tower has 2 blocks: [n:] keeps none or all of them
    with pytest.raises(ValueError, match=re.escape(
            f"paramwise_cfg.unfreeze_vit_layers={n}: the vision tower "
            f"'vision_model' has 2 blocks, so [{n}:] keeps {keeps} of them; "
            'valid: 1..1 (blocks from N on) or -1..-1 (the last -N)')):
        plan(ChatLike(), layer_decay_rate=0.5, freeze_backbone=True,
             unfreeze_vit_layers=n)


def test_unfreeze_vit_layers_without_freeze_backbone_is_refused():
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.unfreeze_vit_layers=1 keeps vision blocks '
            'trainable inside a frozen vision tower, but nothing freezes it: '
            'add paramwise_cfg.freeze_backbone=True')):
        plan(ChatLike(), layer_decay_rate=0.5, unfreeze_vit_layers=1)


def test_two_towers_naming_one_module_are_refused():
    with pytest.raises(ValueError, match=re.escape(
            "paramwise_cfg.towers: ['vision', 'eyes'] all name module "
            "'vision_model'; each module belongs to one tower")):
        LayerDecaySettings.from_paramwise_cfg(dict(towers=dict(
            vision=dict(module='vision_model', layer_decay_rate=0.9),
            eyes=dict(module='vision_model', lr_mult=0.1))))
