"""The algorithm of every named parameter for a hybrid optimizer
(``muon=True``), by role, on real models: a timm ViT, an MMSeg BEiT, our
InternViT, a transformers Qwen2.5-VL.  Every parameter of each model is
checked against the rule written out here:

* Muon: the weight matrices of the blocks (attention and MLP linears),
  the hidden layers of heads, necks and projectors (an FCN head's conv, a
  projector's linears), the language model's linears;
* AdamW: norms, biases, 1-D parameters, tokens, position tables, layer
  scales, patch and token embeddings (layer 0, ``nn.Embedding``), output
  layers (timm's ``head`` by ``get_classifier()``, MMSeg's ``conv_seg``,
  transformers' ``lm_head`` by ``get_output_embeddings()``).

Facts relied on: timm 1.0.31's ``VisionTransformer`` (``patch_embed.proj``,
``blocks.{i}.attn.qkv`` / ``proj``, ``mlp.fc1`` / ``fc2``, ``head``;
``get_classifier()`` returns ``head``); MMSeg 1.2.2's ``BEiT``
(``layers.{i}.attn.qkv``, ``ffn.layers.0.0`` and ``ffn.layers.1``,
``relative_position_bias_table``); transformers 5.24's Qwen2.5-VL
(``model.visual.blocks.{i}.attn.qkv``, ``mlp.gate_proj`` / ``up_proj`` /
``down_proj``, ``model.visual.merger.mlp.{0,2}``, ``model.language_model``,
``lm_head``)."""
import re

import pytest
import torch

from internvl_optim import param_groups

from toy_models import ToyInternViT, ToySegmentor


def algorithms(model, **kw):
    kw.setdefault('muon', True)
    groups = param_groups(model, lr=1.0, weight_decay=0.05,
                          layer_decay_rate=0.5, **kw)
    return {n: (g['algorithm'], g.get('matrix_view'))
            for g in groups for n in g['param_names']}


def check_every_parameter(got, muon_pattern, views=None):
    """Every parameter matching ``muon_pattern`` is Muon (with the view
    ``views`` gives by pattern, default whole), every other AdamW."""
    muon = re.compile(muon_pattern)
    wrong = []
    for name, (algorithm, view) in got.items():
        want = 'muon' if muon.search(name) else 'adamw'
        want_view = None
        if want == 'muon':
            want_view = next((v for p, v in (views or {}).items()
                              if re.search(p, name)), 'whole')
        if (algorithm, view) != (want, want_view):
            wrong.append((name, algorithm, view, want, want_view))
    assert wrong == []
    assert any(a == 'muon' for a, _ in got.values())


def test_timm_vit():
    from internvl_optim.analysis.timm_oracle import import_timm
    timm = import_timm()
    model = timm.create_model('vit_tiny_patch16_224', pretrained=False,
                              depth=2, img_size=32, num_classes=5)
    got = algorithms(model)
    check_every_parameter(
        got, r'^blocks\.\d+\.(attn\.(qkv|proj)|mlp\.fc[12])\.weight$')
    assert got['head.weight'] == ('adamw', None)  # the output layer
    assert got['patch_embed.proj.weight'] == ('adamw', None)  # layer 0


def test_mmseg_beit():
    pytest.importorskip('mmseg')
    from mmseg_models import tiny_segmentor
    model = tiny_segmentor('BEiT')
    got = algorithms(model)
    check_every_parameter(
        got, r'^backbone\.layers\.\d+\.(attn\.(qkv|proj)\.weight|'
        r'ffn\.layers\.(0\.0|1)\.weight)$|^decode_head\.convs\.0\.conv\.'
        r'weight$', views={r'^decode_head\.convs': 'flatten'})
    assert got['backbone.layers.0.attn.relative_position_bias_table'] == (
        'adamw', None)
    assert got['decode_head.conv_seg.weight'] == ('adamw', None)


def test_internvit():
    got = algorithms(ToySegmentor(ToyInternViT(depth=2)))
    # the FPN adapters (up1..up4: transposed convs, a conv) and the toy
    # head's convs are matrices: its last conv is named as no output layer
    # (MMSeg's heads name theirs conv_seg, as the BEiT test shows)
    check_every_parameter(
        got, r'^backbone\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.fc[12])\.'
        r'weight$|^backbone\.up(1\.0|2)\.weight$|^decode_head\.layers\.\d\.'
        r'weight$', views={r'^backbone\.up|^decode_head': 'flatten'})


def test_conv_kernels_to_adamw_by_key():
    got = algorithms(ToySegmentor(ToyInternViT(depth=2)),
                     muon=dict(conv='adamw'))
    assert got['backbone.up2.weight'] == ('adamw', None)
    assert got['backbone.blocks.0.attn.qkv.weight'] == ('muon', 'whole')


def test_qwen2_5_vl():
    pytest.importorskip('transformers')
    from test_declared_towers import qwen2_5_vl
    got = algorithms(qwen2_5_vl())
    check_every_parameter(
        got, r'^model\.visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.'
        r'(gate|up|down)_proj)\.weight$|^model\.visual\.merger\.mlp\.[02]\.'
        r'weight$|^model\.language_model\.layers\.\d+\.(self_attn\.[qkvo]_'
        r'proj|mlp\.(gate|up|down)_proj)\.weight$')
    assert got['lm_head.weight'] == ('adamw', None)
    assert got['model.language_model.embed_tokens.weight'] == ('adamw',
                                                               None)


def test_lora_adapters_take_adamw_unless_asked():
    model = ToySegmentor(ToyInternViT(depth=2))
    qkv = model.backbone.blocks[0].attn.qkv
    qkv.lora_A = torch.nn.ModuleDict(
        {'default': torch.nn.Linear(8, 2, bias=False)})
    got = algorithms(model)
    assert got['backbone.blocks.0.attn.qkv.lora_A.default.weight'] == (
        'adamw', None)
    got = algorithms(model, muon=dict(lora='muon'))
    assert got['backbone.blocks.0.attn.qkv.lora_A.default.weight'] == (
        'muon', 'whole')


def test_group_names_and_keys_say_the_algorithm():
    groups = param_groups(ToySegmentor(ToyInternViT(depth=2)), lr=1.0,
                          weight_decay=0.05, layer_decay_rate=0.5,
                          muon=True)
    by_name = {g['group_name']: g for g in groups}
    block = by_name['layer_2_decay_muon']
    assert block['algorithm'] == 'muon' and block['matrix_view'] == 'whole'
    assert block['shapes'] == [[24, 8], [8, 8], [16, 8], [8, 16]]
    assert by_name['layer_2_no_decay_adamw']['algorithm'] == 'adamw'
    assert 'shapes' not in by_name['layer_2_no_decay_adamw']
    # the same lr and weight decay as without the hybrid
    plain = {n: (g['lr'], g['weight_decay']) for g in param_groups(
        ToySegmentor(ToyInternViT(depth=2)), lr=1.0, weight_decay=0.05,
        layer_decay_rate=0.5) for n in g['param_names']}
    hybrid = {n: (g['lr'], g['weight_decay']) for g in groups
              for n in g['param_names']}
    assert hybrid == plain


def test_bad_muon_keys_are_named():
    with pytest.raises(ValueError, match=r"paramwise_cfg.muon.conv='flat' "
                       r"is not one of \('flatten', 'adamw'\)"):
        param_groups(ToySegmentor(ToyInternViT()), lr=1.0,
                     muon=dict(conv='flat'))
    with pytest.raises(ValueError, match=r"paramwise_cfg.muon has unknown "
                       r"key\(s\) \['experts'\]"):
        param_groups(ToySegmentor(ToyInternViT()), lr=1.0,
                     muon=dict(experts='whole'))
