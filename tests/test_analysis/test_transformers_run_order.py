"""A sample of transformers' encoders (transformers 5.24.0, tiny random
weights, nothing downloaded) run once: every layer id follows the order
the modules run in (:func:`check_run_order` finds nothing), and the ids
the rules give are the declared ones.  ``benchmarks/transformers_zoo.py``
runs the same check on every type."""
import pytest
import torch

from internvl_optim.analysis.run_order import check_run_order

from helpers import build_plan, with_head

T = pytest.importorskip('transformers')


def image(size, channels=3):
    return torch.randn(1, channels, size, size)


def yolos():
    return T.YolosModel(T.YolosConfig(
        hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=32, image_size=[32, 32], patch_size=8,
        num_detection_tokens=2, use_mid_position_embeddings=True)), \
        dict(pixel_values=image(32)), 3


def pp_lcnet():
    return T.PPLCNetBackbone(T.PPLCNetConfig()), \
        dict(pixel_values=image(64)), 13


def levit():
    config = T.LevitConfig(hidden_sizes=[16, 32, 48], num_attention_heads=[
        1, 2, 3], depths=[1, 1, 1], key_dim=[8, 8, 8],
        down_ops=[['Subsample', 8, 1, 4, 2, 2], ['Subsample', 8, 2, 4, 2, 2]],
        image_size=64)
    return T.LevitModel(config), dict(pixel_values=image(64)), 3


def mllama_vision():
    config = T.MllamaVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_global_layers=2, attention_heads=2, image_size=16, patch_size=8,
        intermediate_layers_indices=[0, 1])
    tiles = config.max_num_tiles
    return T.MllamaVisionModel(config), dict(
        pixel_values=torch.randn(1, 1, tiles, 3, 16, 16),
        aspect_ratio_ids=torch.tensor([[1]]),
        aspect_ratio_mask=torch.ones(1, 1, tiles, dtype=torch.long)), 4


def swiftformer():
    return T.SwiftFormerModel(T.SwiftFormerConfig(
        depths=[1, 1, 2, 1], embed_dims=[8, 8, 16, 16])), \
        dict(pixel_values=image(64)), 5


@pytest.mark.parametrize('build', [yolos, pp_lcnet, levit, mllama_vision,
                                   swiftformer])
def test_the_ids_follow_the_run(build):
    torch.manual_seed(0)
    backbone, inputs, depth = build()
    model = with_head(backbone)
    messages = []
    plan = build_plan(model, layer_decay_rate=0.5, warn=messages.append)
    assert messages == []
    assert plan.num_layers == depth
    assert check_run_order(model, plan.groups,
                           lambda m: m.backbone(**inputs)) == []
