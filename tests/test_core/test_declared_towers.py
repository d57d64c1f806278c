"""VLM towers found from what a transformers model declares: the module
built from each sub-config (``vision_config``, ``text_config``, ...) is a
tower, the module that maps vision into the language model's width is the
projector, ``lm_head`` stays at the base lr.

Facts (transformers 5.24.0): Qwen2.5-VL and Qwen3.5 keep their vision tower
at ``model.visual`` (blocks at ``model.visual.blocks``) with the projector
inside it (``model.visual.merger``, mapping to the vision config's
``out_hidden_size``), the language model at ``model.language_model``;
Qwen3.5's first text layer is a linear-attention layer; Idefics3 keeps
``model.vision_model`` (blocks at ``encoder.layers``, ``post_layernorm``
after them), ``model.connector`` and ``model.text_model``; Fuyu declares
only a ``text_config`` (its image patches go through one Linear)."""
import re

import pytest
import torch

from helpers import build_plan, lr_wd_by_name

T = pytest.importorskip('transformers')
WD = 0.05
TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, intermediate_size=64, vocab_size=100)


def on_meta(cls, config):
    with torch.device('meta'):
        return cls(config)


def qwen2_5_vl():
    return on_meta(T.Qwen2_5_VLForConditionalGeneration, T.Qwen2_5_VLConfig(
        vision_config=dict(depth=2, hidden_size=16, intermediate_size=32,
                           num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[1], window_size=28),
        text_config=TEXT))


def qwen3_5():
    return on_meta(T.Qwen3_5ForConditionalGeneration, T.Qwen3_5Config(
        vision_config=dict(depth=2, hidden_size=16, intermediate_size=32,
                           num_heads=2, out_hidden_size=32,
                           num_position_embeddings=16),
        text_config=dict(TEXT, layer_types=['linear_attention',
                                            'full_attention'],
                         linear_num_key_heads=2, linear_num_value_heads=2,
                         linear_key_head_dim=8, linear_value_head_dim=8,
                         head_dim=16)))


def idefics3():
    return on_meta(T.Idefics3ForConditionalGeneration, T.Idefics3Config(
        vision_config=dict(hidden_size=16, intermediate_size=32,
                           num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        text_config=TEXT, scale_factor=2))


def expected(model, vision, blocks, projector, rate=0.5, n=2):
    """Every parameter's (lr, weight decay) by the rule: vision blocks
    ``i`` at ``rate ** (n - i)``, what runs before them at ``rate ** (n +
    1)``, the projector, language model, ``lm_head`` and what follows the
    blocks at 1.0; no weight decay for 1-D parameters and position
    tables."""
    out = {}
    for name, p in model.named_parameters():
        lr = 1.0
        if name.startswith(vision + '.') and \
                not name.startswith(projector + '.'):
            rel = name[len(vision) + 1:]
            if rel.startswith(blocks + '.'):
                lr = rate ** (n - int(rel[len(blocks) + 1:].split('.')[0]))
            elif rel.split('.')[0] in ('patch_embed', 'pos_embed',
                                       'embeddings'):
                lr = rate ** (n + 1)
        no_decay = p.ndim == 1 or 'pos_embed' in name or \
            'position_embedding' in name
        out[name] = (lr, 0.0 if no_decay else WD)
    return out


@pytest.mark.parametrize('build, vision, blocks, projector, language', [
    (qwen2_5_vl, 'model.visual', 'blocks', 'model.visual.merger',
     'model.language_model'),
    (qwen3_5, 'model.visual', 'blocks', 'model.visual.merger',
     'model.language_model'),
    (idefics3, 'model.vision_model', 'encoder.layers', 'model.connector',
     'model.text_model'),
])
def test_vlm_towers_from_the_config(build, vision, blocks, projector,
                                    language):
    model = build()
    plan = build_plan(model, layer_decay_rate=0.5, weight_decay=WD)
    assert lr_wd_by_name(plan.groups) == expected(model, vision, blocks,
                                                  projector)
    assert plan.layer_rule.startswith(
        f'towers ({type(model).__name__}: sub-configs): vision = {vision}, '
        f'ViT rule ({vision}.{blocks}), rate 0.5; ')
    assert f'projector = {projector}' in plan.layer_rule
    assert f'language = {language}' in plan.layer_rule
    towers = {p.name: p.tower for p in plan.params}
    assert towers[f'{projector}.' + next(
        n for n, _ in model.get_submodule(projector).named_parameters())] \
        == 'projector'
    assert towers['lm_head.weight'] is None  # outside the towers
    # the vision blocks in run order, decayed; everything else at 1.0
    vision_lrs = sorted({g['lr'] for g in plan.groups
                         if g.get('tower') == 'vision'})
    assert vision_lrs[:3] == [0.125, 0.25, 0.5]


def test_qwen3_5_is_no_longer_one_tower():
    # its language model starts with a linear-attention layer: seen as one
    # tower, module order put vision, projector and LLM at 0.25
    plan = build_plan(qwen3_5(), layer_decay_rate=0.5, weight_decay=WD)
    lrs = lr_wd_by_name(plan.groups)
    assert lrs['model.language_model.layers.0.linear_attn.in_proj_qkv.'
               'weight'][0] == 1.0
    assert lrs['lm_head.weight'] == (1.0, WD)


def test_towers_can_nest_and_the_innermost_wins():
    model = qwen2_5_vl()
    plan = build_plan(model, layer_decay_rate=0.5, weight_decay=WD, towers=dict(
        vision=dict(module='model.visual', layer_decay_rate=0.5),
        projector=dict(module='model.visual.merger', lr_mult=2.0),
        language=dict(module='model.language_model', lr_mult=0.1)))
    lrs = lr_wd_by_name(plan.groups)
    assert lrs['model.visual.merger.mlp.0.weight'] == (2.0, WD)
    assert lrs['model.visual.blocks.1.attn.qkv.weight'] == (0.5, WD)
    assert lrs['model.language_model.layers.0.mlp.up_proj.weight'] == \
        (pytest.approx(0.1), WD)
    assert lrs['lm_head.weight'] == (1.0, WD)


def test_a_vlm_without_a_vision_tower_is_refused_naming_towers():
    config = T.FuyuConfig(text_config=dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, vocab_size=100), hidden_size=32)
    model = on_meta(T.FuyuForCausalLM, config)
    with pytest.raises(ValueError, match=re.escape(
            'FuyuForCausalLM is a multimodal model without a vision tower '
            'that layer decay could apply to (towers built from its '
            "sub-configs: {'language': 'model.language_model'}); decayed as "
            'one model, its language model would be decayed. Say what to '
            'decay with paramwise_cfg.towers, e.g. towers=dict(language='
            "dict(module='model.language_model', layer_decay_rate=0.9)), or "
            'use layer_decay_rate=1.0')):
        build_plan(model, layer_decay_rate=0.5)
    # at rate 1.0 nothing is decayed: accepted
    assert build_plan(model).groups


# The VLM trainers' per-tower lrs, absolute as they define them (read in
# their files): LLaVA's ``mm_projector_lr`` (haotian-liu/LLaVA,
# llava/train/llava_trainer.py at 7f5287c: names with "mm_projector" get
# it, weight decay by the usual rule), Qwen-VL fine-tuning's
# ``mm_projector_lr`` ("merger" names) and ``vision_tower_lr`` ("visual"
# names), ms-swift's ``aligner_lr`` and ``vit_lr`` (its documented
# arguments: the aligner's and the ViT's lr, default the learning rate).

@pytest.mark.parametrize('vision_key, projector_key', [
    ('vision_tower_lr', 'mm_projector_lr'), ('vit_lr', 'aligner_lr')])
def test_the_vlm_trainers_tower_lrs(vision_key, projector_key):
    model = qwen2_5_vl()
    plan = build_plan(model, lr=1e-4, weight_decay=WD, **{
        vision_key: 1e-6, projector_key: 1e-5})
    lrs = lr_wd_by_name(plan.groups)
    assert lrs['model.visual.blocks.1.attn.qkv.weight'] == \
        (pytest.approx(1e-6), WD)
    assert lrs['model.visual.patch_embed.proj.weight'] == \
        (pytest.approx(1e-6), WD)
    assert lrs['model.visual.merger.mlp.0.weight'] == \
        (pytest.approx(1e-5), WD)
    assert lrs['model.visual.merger.ln_q.weight'] == \
        (pytest.approx(1e-5), 0.0)
    assert lrs['model.language_model.layers.0.mlp.up_proj.weight'] == \
        (1e-4, WD)
    assert lrs['lm_head.weight'] == (1e-4, WD)
    # with layer decay inside the vision tower, its top block gets the lr
    plan = build_plan(model, lr=1e-4, weight_decay=WD, layer_decay_rate=0.5,
                      **{vision_key: 1e-6})
    lrs = lr_wd_by_name(plan.groups)
    assert lrs['model.visual.blocks.1.attn.qkv.weight'][0] == \
        pytest.approx(0.5e-6)
    assert lrs['model.visual.blocks.0.attn.qkv.weight'][0] == \
        pytest.approx(0.25e-6)


def test_a_tower_lr_without_the_tower_is_refused():
    from torch import nn
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.mm_projector_lr sets the lr of a VLM tower, but '
            'the model declares no towers and has no known VLM layout')):
        build_plan(nn.Sequential(nn.Linear(2, 2)), mm_projector_lr=1e-5)
    # a Qwen model has its projector; an lr_mult beside the key is refused
    with pytest.raises(ValueError, match=re.escape(
            'paramwise_cfg.vit_lr=1e-06 and paramwise_cfg.towers['
            "'vision'].lr_mult=0.1 both set the vision tower's lr; give one")):
        build_plan(qwen2_5_vl(), vit_lr=1e-6, towers=dict(
            vision=dict(module='model.visual', lr_mult=0.1),
            language=dict(module='model.language_model')))


def test_glm4v_post_conv_layernorm_runs_before_the_blocks():
    """GLM-4V (transformers 5.24.0) registers its vision children as
    embeddings, patch_embed, rotary_pos_emb, blocks, merger,
    post_conv_layernorm, downsample, post_layernorm, but its forward runs
    patch_embed -> post_conv_layernorm -> embeddings -> blocks: the norm
    after the patch convolution is layer 0 with the embeddings, by its
    name, not at the heads' lr by its registration."""
    model = on_meta(T.Glm4vForConditionalGeneration, T.Glm4vConfig(
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64,
                           num_heads=2, out_hidden_size=32, patch_size=14,
                           image_size=28),
        text_config=TEXT))
    assert [n for n, _ in model.model.visual.named_children()].index(
        'post_conv_layernorm') > [n for n, _ in model.model.visual.
                                  named_children()].index('blocks')
    lrs = lr_wd_by_name(build_plan(model, weight_decay=WD,
                                   layer_decay_rate=0.5).groups)
    v = 'model.visual.'
    assert lrs[v + 'post_conv_layernorm.weight'] == (0.125, 0.0)
    assert lrs[v + 'patch_embed.proj.weight'] == (0.125, WD)
    assert lrs[v + 'blocks.0.mlp.up_proj.weight'] == (0.25, WD)
    assert lrs[v + 'post_layernorm.weight'] == (1.0, 0.0)
    assert lrs[v + 'merger.up_proj.weight'] == (1.0, WD)


def test_a_sub_config_of_settings_is_no_tower():
    """Sapiens2 (transformers 5.24.0) is one ViT (``embeddings``,
    ``model.layer.{i}``, ``norm``) whose config also holds a
    ``head_config`` from which no module is built: a plain backbone, its
    blocks decayed, not a multimodal model refused."""
    config = T.Sapiens2Config(
        hidden_size=16, intermediate_size=32, num_hidden_layers=3,
        num_attention_heads=2, num_key_value_attention_heads=1,
        num_first_full_attention_layers=1, num_last_full_attention_layers=1,
        image_size=32, patch_size=16, num_register_tokens=2,
        out_features=['stage3'])
    model = torch.nn.Module()
    model.backbone = on_meta(T.Sapiens2Backbone, config)
    model.head = torch.nn.Linear(16, 2)
    plan = build_plan(model, weight_decay=WD, layer_decay_rate=0.5)
    lrs = lr_wd_by_name(plan.groups)
    assert plan.num_layers == 3
    blocks = sorted({n.split('.')[3] for n in lrs
                     if n.startswith('backbone.model.layer.')})
    assert blocks == ['0', '1', '2']
    for i in range(3):
        assert {lrs[n][0] for n in lrs if n.startswith(
            f'backbone.model.layer.{i}.')} == {0.5 ** (3 - i)}
    assert {lrs[n][0] for n in lrs if n.startswith('backbone.embeddings.')
            } == {0.5 ** 4}
    assert lrs['head.weight'] == (1.0, WD)


def test_two_vision_encoders_without_a_language_model_are_refused():
    """Depth Pro declares ``image_model_config``, ``patch_model_config``
    and ``fov_model_config`` (transformers 5.24.0), two of them built as
    DINOv2 encoders, none as ``vision_config``: which one to decay is not
    declared, and the message says so rather than blaming a language
    model."""
    config = T.AutoConfig.for_model('depth_pro')
    for sub in (config.image_model_config, config.patch_model_config,
                config.fov_model_config):
        sub.num_hidden_layers = 2
    model = torch.nn.Module()
    model.backbone = on_meta(T.DepthProModel, config)
    model.head = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=re.escape(
            'DepthProModel is a multimodal model without a vision tower that '
            'layer decay could apply to (towers built from its sub-configs: '
            "{'image_model': 'backbone.encoder.image_encoder.model', "
            "'patch_model': 'backbone.encoder.patch_encoder.model'}); which "
            'of them layer decay applies to is not declared. Say what to '
            'decay with paramwise_cfg.towers, e.g. towers=dict(image_model='
            "dict(module='backbone.encoder.image_encoder.model', "
            'layer_decay_rate=0.9), patch_model=dict(module='
            "'backbone.encoder.patch_encoder.model')), or use "
            'layer_decay_rate=1.0')):
        build_plan(model, layer_decay_rate=0.5)


def test_ovis2_embeddings_nested_beside_the_encoder_are_layer_0():
    """Ovis2 (transformers 5.24.0): ``model.vision_tower`` holds
    ``transformer`` (children ``embeddings``, ``encoder``, ``rms_norm``,
    the blocks at ``transformer.encoder.layers``), then ``head_linear`` and
    ``head_norm``.  The embeddings, two levels above the blocks and
    registered before them, run first: layer 0 (they were at the heads'
    lr); the final norm and the visual head after them: the base lr."""
    config = T.AutoConfig.for_model('ovis2')
    config.vision_config.num_hidden_layers = 2
    config.text_config.num_hidden_layers = 2
    model = on_meta(T.Ovis2ForConditionalGeneration, config)
    lrs = lr_wd_by_name(build_plan(model, weight_decay=WD,
                                   layer_decay_rate=0.5).groups)
    v = 'model.vision_tower.'
    assert lrs[v + 'transformer.embeddings.patch_embedding.weight'] == (
        0.125, WD)
    assert lrs[v + 'transformer.embeddings.position_embedding.weight'] == (
        0.125, 0.0)
    assert lrs[v + 'transformer.embeddings.rms_norm.weight'] == (0.125, 0.0)
    assert lrs[v + 'transformer.encoder.layers.0.ffn.up_proj.weight'] == (
        0.25, WD)
    assert lrs[v + 'transformer.encoder.layers.1.ffn.up_proj.weight'] == (
        0.5, WD)
    assert lrs[v + 'transformer.rms_norm.weight'] == (1.0, 0.0)
    assert lrs[v + 'head_linear.weight'] == (1.0, WD)
