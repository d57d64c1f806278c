"""Florence-2's vision tower (transformers 5.24, DaViT): ``convs`` (one
``Florence2VisionConvEmbed`` per stage, registered before ``blocks``) beside
``blocks`` (one list of blocks per stage); each stage's conv embedding runs
before its blocks, so ``convs.0`` (the patch embedding) is layer 0 and
``convs.s`` the first id of stage s."""
import pytest
import torch

from internvl_optim import param_groups

T = pytest.importorskip('transformers')


def test_the_patch_embedding_is_layer_0():
    config = T.Florence2Config()
    vision = config.vision_config
    vision.depths = [1, 1, 2, 1]
    config.text_config.encoder_layers = config.text_config.decoder_layers = 1
    with torch.device('meta'):
        model = T.Florence2ForConditionalGeneration(config)
    groups = param_groups(model, lr=1.0, layer_decay_rate=0.5)
    ids = {n: (g['layer_id'], g.get('tower')) for g in groups
           for n in g['param_names']}
    v = 'model.vision_tower.'
    assert ids[v + 'convs.0.conv.weight'] == (0, 'vision')
    assert ids[v + 'blocks.0.0.spatial_block.window_attn.proj.weight'] == (
        1, 'vision')
    assert ids[v + 'blocks.2.1.spatial_block.window_attn.qkv.weight'] == (
        4, 'vision')
    assert ids[v + 'convs.1.conv.weight'] == (2, 'vision')
    assert ids[v + 'convs.2.conv.weight'] == (3, 'vision')
    assert ids[v + 'convs.3.conv.weight'] == (5, 'vision')
