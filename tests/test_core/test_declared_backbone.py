"""transformers detectors declare their image backbone by config
(``backbone_config``): the module built from that very config is the
backbone the layer rules decay; the detection transformer around it
(encoder, decoder, queries, heads) is outside it, at the base lr.  A
text-conditioned detector (Grounding DINO: ``backbone_config`` and
``text_config``) has that backbone as its vision tower.

Facts (transformers 5.24.0): ``DetrForObjectDetection`` builds
``model.backbone.model`` from ``config.backbone_config`` (an HF
``ResNetBackbone`` for a ``ResNetConfig``: stages at
``encoder.stages.{s}.layers.{b}``, stem at ``embedder``; DETR leaves those
parameters frozen, ``requires_grad=False``), beside ``model.encoder``,
``model.decoder``, ``model.query_position_embeddings`` and the heads
``class_labels_classifier`` / ``bbox_predictor``.  The default DETR config
holds a ``TimmBackboneConfig`` (a timm ``resnet50`` at the same path).
``GroundingDinoForObjectDetection`` builds its image backbone at
``model.backbone.conv_encoder.model`` (a ``SwinBackbone``, stages at
``swin.encoder.layers.{s}.blocks.{b}``) and its text model at
``model.text_backbone`` (BERT).  ``Sam2Model`` builds ``vision_encoder``
(a ``Sam2VisionModel`` whose config holds a ``Sam2HieraDetConfig`` as
``backbone_config``) as ``backbone`` (``patch_embed``, ``pos_embed``,
``pos_embed_window``, ``blocks``: ``sum(blocks_per_stage)`` = 12 by
default) and ``neck`` (the FPN), beside ``prompt_encoder`` and
``mask_decoder``."""
import pytest
import torch

from helpers import build_plan, layer_by_name, lr_wd_by_name

from internvl_optim.core.declared_towers import declared_backbone

T = pytest.importorskip('transformers')


def tiny_detr():
    backbone = T.ResNetConfig(
        depths=[1, 2, 1, 1], hidden_sizes=[8, 8, 16, 16], embedding_size=8,
        out_features=['stage2', 'stage3', 'stage4'])
    config = T.DetrConfig(
        backbone_config=backbone, d_model=16, encoder_layers=2,
        decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        num_queries=5, num_labels=3)
    with torch.device('meta'):
        model = T.DetrForObjectDetection(config)
    return model


def test_a_detector_is_decayed_inside_the_backbone_its_config_declares():
    model = tiny_detr()
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if n.startswith('model.backbone.'))
    for param in model.parameters():  # fine-tune the backbone too
        param.requires_grad_(True)
    assert declared_backbone(dict(model.named_modules())) == \
        'model.backbone.model'
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.layer_rule == ('stage rule (model.backbone.model.encoder.'
                               'stages, depths [1, 2, 1, 1])')
    ids, lrs = layer_by_name(plan.groups), lr_wd_by_name(plan.groups)
    stages = 'model.backbone.model.encoder.stages.'
    first = [1, 2, 4, 5]  # the id of each stage's first block
    for name, _ in model.named_parameters():
        if name.startswith(stages):
            s, b = int(name.split('.')[5]), int(name.split('.')[7])
            expected = first[s] + b
        elif name.startswith('model.backbone.model.embedder.'):
            expected = 0
        else:  # the detection transformer and heads: N + 1, the base lr
            expected = 6
        assert ids[name] == expected, name
        assert lrs[name][0] == 0.5 ** (6 - expected), name
    assert lrs['model.backbone.model.embedder.embedder.convolution.weight'] \
        == (0.015625, 0.05)
    assert lrs['model.encoder.layers.1.self_attn.q_proj.weight'] == \
        (1.0, 0.05)
    assert lrs['model.query_position_embeddings.weight'][0] == 1.0
    assert lrs['bbox_predictor.layers.2.weight'] == (1.0, 0.05)


def test_a_given_backbone_name_is_taken_as_it_is():
    model = tiny_detr()
    for param in model.parameters():
        param.requires_grad_(True)
    plan = build_plan(model, layer_decay_rate=0.5,
                      backbone_name='model.encoder')
    assert plan.layer_rule == 'ViT rule (model.encoder.layers)'


def test_a_text_conditioned_detector_has_its_backbone_as_vision_tower():
    swin = T.SwinConfig(
        embed_dim=8, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2],
        image_size=32, patch_size=4, window_size=2,
        out_features=['stage2', 'stage3', 'stage4'])
    bert = T.BertConfig(hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32,
                        vocab_size=50)
    config = T.GroundingDinoConfig(
        backbone_config=swin, text_config=bert, d_model=32, encoder_layers=1,
        decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        num_queries=5, encoder_n_points=1, decoder_n_points=1)
    with torch.device('meta'):
        model = T.GroundingDinoForObjectDetection(config)
    plan = build_plan(model, layer_decay_rate=0.5)
    assert plan.towers == [('vision', 5), ('language', 2)]
    swin_ = 'model.backbone.conv_encoder.model.'
    assert plan.layer_rule == (
        'towers (GroundingDinoForObjectDetection: sub-configs): vision = '
        'model.backbone.conv_encoder.model, stage rule '
        f'({swin_}swin.encoder.layers, depths [1, 1, 2, 1]), rate 0.5; '
        'language = model.text_backbone, ViT rule '
        '(model.text_backbone.encoder.layer), rate 1')
    lrs = lr_wd_by_name(plan.groups)
    assert lrs[swin_ + 'swin.embeddings.patch_embeddings.projection.'
               'weight'] == (0.5 ** 6, 0.05)
    assert lrs[swin_ + 'swin.encoder.layers.2.blocks.1.attention.q_proj.'
               'weight'] == (0.5 ** 2, 0.05)
    assert lrs[swin_ + 'hidden_states_norms.stage4.weight'] == (1.0, 0.0)
    assert lrs['model.text_backbone.encoder.layer.0.attention.self.'
               'query.weight'] == (1.0, 0.05)
    # the detection transformer is no projector: outside the towers
    towers = {n: g.get('tower') for g in plan.groups
              for n in g['param_names']}
    for name in ('model.encoder.layers.0.text_enhancer_layer.self_attn.'
                 'query.weight', 'model.text_projection.weight',
                 'model.level_embed'):
        assert towers[name] is None and lrs[name][0] == 1.0, name


def test_a_tower_that_declares_its_backbone_is_decayed_inside_it():
    with torch.device('meta'):
        model = T.Sam2Model(T.Sam2Config())
    messages = []
    plan = build_plan(model, layer_decay_rate=0.5, warn=messages.append)
    assert messages == []
    assert plan.towers == [('vision', 12), ('mask_decoder', 2)]
    assert plan.layer_rule.startswith(
        'towers (Sam2Model: sub-configs): vision = vision_encoder, ViT rule '
        '(vision_encoder.backbone.blocks), rate 0.5; ')
    lrs = lr_wd_by_name(plan.groups)
    trunk = 'vision_encoder.backbone.'
    assert lrs[trunk + 'patch_embed.projection.weight'] == (0.5 ** 13, 0.05)
    assert lrs[trunk + 'pos_embed'] == (0.5 ** 13, 0.0)
    assert lrs[trunk + 'pos_embed_window'] == (0.5 ** 13, 0.0)
    for i in range(12):
        assert lrs[trunk + f'blocks.{i}.attn.qkv.weight'] == \
            (0.5 ** (12 - i), 0.05)
    # the neck runs after the trunk: the tower's top, the base lr
    assert lrs['vision_encoder.neck.convs.0.weight'] == (1.0, 0.05)
    assert lrs['mask_decoder.transformer.layers.0.self_attn.q_proj.'
               'weight'] == (1.0, 0.05)
    assert lrs['prompt_encoder.point_embed.weight'][0] == 1.0
