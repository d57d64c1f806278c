"""Every vision tower of a VLM is a vision tower, decayed inside by the
vision rate at its own depth, never a projector; the declared depth picks
the blocks, never a list of mergers.

Facts relied on (transformers 5.24.0, read from the model classes):

* ``VideoLlavaModel`` builds ``video_tower`` and ``image_tower`` (both
  ``AutoModel.from_config(config.vision_config)``, registered in that
  order) beside ``multi_modal_projector`` and ``language_model``;
* ``DeepseekVLHybridModel`` has ``vision_model`` (SigLIP, from
  ``vision_config``) and ``high_res_vision_model`` (SAM, from
  ``high_res_vision_config``, blocks at ``vision_encoder.layers``), then
  ``high_res_vision_neck``, ``high_res_vision_proj`` and ``aligner``;
* ``Qwen3OmniMoeVisionEncoder`` registers ``merger_list`` (one deep-stack
  merger per ``deepstack_visual_indexes`` entry, 3) before ``blocks``
  (``depth`` of them) and ``merger``; each merger maps into the language
  model's width.

Rate 0.5 and lr 1.0 make every lr a power of two."""
import pytest
import torch

from internvl_optim import param_groups

T = pytest.importorskip('transformers')


def lrs(model, **kw):
    groups = param_groups(model, lr=1.0, layer_decay_rate=0.5, **kw)
    return {n: (g['lr'], g.get('tower')) for g in groups
            for n in g['param_names']}


def video_llava():
    config = T.VideoLlavaConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64,
                           image_size=32, patch_size=8),
        text_config=dict(model_type='llama', hidden_size=32,
                         num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64,
                         vocab_size=100))
    return T.VideoLlavaForConditionalGeneration(config)


@pytest.mark.parametrize('tower, name', [('video_tower', 'vision'),
                                         ('image_tower', 'vision_2')])
def test_video_llava_decays_both_towers(tower, name):
    got = lrs(video_llava())
    t = f'model.{tower}.'
    assert got[t + 'embeddings.patch_embedding.weight'] == (0.125, name)
    assert got[t + 'embeddings.class_embedding'] == (0.125, name)
    assert got[t + 'encoder.layers.0.mlp.fc1.weight'] == (0.25, name)
    assert got[t + 'encoder.layers.1.self_attn.q_proj.weight'] == (0.5, name)
    assert got[t + 'post_layernorm.weight'] == (1.0, name)
    assert got['model.multi_modal_projector.linear_1.weight'] == (
        1.0, 'projector')
    assert got['model.language_model.layers.0.mlp.up_proj.weight'] == (
        1.0, 'language')
    assert got['lm_head.weight'] == (1.0, None)


def test_vision_tower_lr_applies_to_every_vision_tower():
    got = lrs(video_llava(), vision_tower_lr=0.25)
    for tower in ('video_tower', 'image_tower'):
        t = f'model.{tower}.encoder.layers.'
        assert got[t + '1.mlp.fc1.weight'][0] == 0.125  # 0.25 * 0.5
        assert got[t + '0.mlp.fc1.weight'][0] == 0.0625
    assert got['model.multi_modal_projector.linear_1.weight'][0] == 1.0


def test_the_head_outside_the_towers_is_named_head():
    groups = param_groups(video_llava(), lr=1.0, weight_decay=0.1,
                          layer_decay_rate=0.5)
    head = [g for g in groups if 'lm_head.weight' in g['param_names']]
    assert head[0]['group_name'] == 'head_decay'
    assert head[0]['lr'] == 1.0 and 'tower' not in head[0]


def deepseek_vl_hybrid():
    config = T.DeepseekVLHybridConfig()
    config.vision_config.num_hidden_layers = 2
    config.high_res_vision_config.num_hidden_layers = 2
    config.high_res_vision_config.global_attn_indexes = [1]
    config.text_config.num_hidden_layers = 2
    with torch.device('meta'):  # the default widths, no memory
        return T.DeepseekVLHybridForConditionalGeneration(config)


def test_deepseek_vl_hybrid_decays_the_high_resolution_tower():
    got = lrs(deepseek_vl_hybrid())
    sam = 'model.high_res_vision_model.vision_encoder.'
    assert got[sam + 'patch_embed.projection.weight'] == (0.125,
                                                          'vision_high_res')
    assert got[sam + 'layers.0.mlp.lin1.weight'] == (0.25, 'vision_high_res')
    assert got[sam + 'layers.1.mlp.lin1.weight'] == (0.5, 'vision_high_res')
    siglip = 'model.vision_model.'
    assert got[siglip + 'embeddings.patch_embedding.weight'] == (0.125,
                                                                 'vision')
    assert got[siglip + 'encoder.layers.1.mlp.fc1.weight'] == (0.5,
                                                               'vision')
    for name, (lr, tower) in got.items():
        if name.startswith(('model.aligner.', 'model.high_res_vision_neck.',
                            'model.high_res_vision_proj.')):
            assert lr == 1.0 and tower.startswith('projector'), name


def qwen3_omni_thinker():
    config = T.Qwen3OmniMoeThinkerConfig()
    vision = config.vision_config
    vision.depth = vision.num_hidden_layers = 3  # as many as the mergers
    config.text_config.num_hidden_layers = 2
    config.audio_config.encoder_layers = 2
    with torch.device('meta'):
        return T.Qwen3OmniMoeThinkerForConditionalGeneration(config)


def test_declared_depth_picks_the_blocks_not_the_merger_list():
    messages = []
    got = lrs(qwen3_omni_thinker(), warn=messages.append)
    v = 'model.visual.'
    assert got[v + 'patch_embed.proj.weight'] == (0.0625, 'vision')
    assert got[v + 'blocks.0.mlp.linear_fc1.weight'] == (0.125, 'vision')
    assert got[v + 'blocks.2.attn.qkv.weight'] == (0.5, 'vision')
    # the deep-stack mergers and the final merger map into the language
    # model: projectors at the base lr, never layer 0 of the tower
    for i in range(3):
        lr, tower = got[f'{v}merger_list.{i}.mlp.0.weight']
        assert lr == 1.0 and tower.startswith('projector')
    lr, tower = got[v + 'merger.mlp.0.weight']
    assert lr == 1.0 and tower.startswith('projector')
    assert not [m for m in messages if 'claimed by no layer rule' in m]


def test_tower_lr_keys_apply_to_towers_given_by_name():
    """With towers= given, vision_tower_lr still sets every vision tower
    (vision, vision_2, ...); per-tower lrs are each tower's lr_mult, and
    both on one tower is refused."""
    def towers(**image):
        return dict(
            vision=dict(module='model.video_tower', layer_decay_rate=0.5),
            vision_2=dict(module='model.image_tower', layer_decay_rate=0.5,
                          **image),
            projector=dict(module='model.multi_modal_projector'),
            language=dict(module='model.language_model'))
    model = video_llava()

    def got(**kw):
        groups = param_groups(model, lr=1.0, **kw)
        return {n: g['lr'] for g in groups for n in g['param_names']}
    layer = 'model.{}.encoder.layers.1.mlp.fc1.weight'
    both = got(towers=towers(), vision_tower_lr=0.25)
    assert both[layer.format('video_tower')] == 0.125
    assert both[layer.format('image_tower')] == 0.125
    assert both['model.multi_modal_projector.linear_1.weight'] == 1.0
    one_by_one = got(towers=towers(lr_mult=0.25))
    assert one_by_one[layer.format('video_tower')] == 0.5
    assert one_by_one[layer.format('image_tower')] == 0.125
    with pytest.raises(ValueError, match=(
            r"paramwise_cfg.vision_tower_lr=0.25 and paramwise_cfg.towers\["
            r"'vision_2'\].lr_mult=0.25 both set the vision_2 tower's lr; "
            'give one')):
        got(towers=towers(lr_mult=0.25), vision_tower_lr=0.25)
