"""GroupViT's vision encoder (transformers 5.24, ``GroupViTVisionModel``):
stages of layers, each after the first taking the previous stage's group
tokens through ``group_projector`` (registered after ``layers``, run before
them, in ``GroupViTStage.forward``) and ending in a grouping block
(``downsample``). Ids follow the run order: the projector is its stage's
first id, the grouping block the next stage's."""
import pytest
import torch

from internvl_optim import param_groups
from internvl_optim.analysis.run_order import check_run_order

T = pytest.importorskip('transformers')


def groupvit():
    torch.manual_seed(0)
    config = T.GroupViTVisionConfig(
        hidden_size=32, intermediate_size=64, depths=[2, 1, 1],
        num_group_tokens=[8, 4, 0], num_output_groups=[8, 4, 4],
        num_attention_heads=4, image_size=32, patch_size=8,
        num_hidden_layers=4)
    return T.GroupViTVisionModel(config)


def test_ids_follow_the_run_order():
    model = groupvit()
    groups = param_groups(model, lr=1.0, layer_decay_rate=0.5)
    ids = {n: g['layer_id'] for g in groups for n in g['param_names']}
    s = 'vision_model.encoder.stages.'
    assert ids['vision_model.embeddings.patch_embeddings.projection.weight'] \
        == 0
    assert ids[s + '0.group_token'] == 0
    assert ids[s + '0.layers.1.self_attn.q_proj.weight'] == 2
    assert ids[s + '0.downsample.assign.proj.weight'] == 3
    assert ids[s + '1.group_projector.0.weight'] == 3  # before its layers
    assert ids[s + '1.layers.0.self_attn.q_proj.weight'] == 3
    assert ids[s + '2.layers.0.self_attn.q_proj.weight'] == 4
    messages = check_run_order(
        model, groups,
        lambda m: m(pixel_values=torch.randn(1, 3, 32, 32)))
    assert messages == []
