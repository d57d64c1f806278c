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


def test_a_tower_at_one_lr_is_not_audited():
    """The BART language tower (encoder and decoder layers) is at rate 1.0:
    every parameter in it has the base lr whatever its layer, so the
    decoder no rule places is not worth a warning. With a rate there (or
    phases, which make it join with the heads) it is named."""
    config = T.Florence2Config()
    config.vision_config.depths = [1, 1, 2, 1]
    config.text_config.encoder_layers = config.text_config.decoder_layers = 2
    with torch.device('meta'):
        model = T.Florence2ForConditionalGeneration(config)
    said = []
    param_groups(model, lr=1.0, layer_decay_rate=0.5, warn=said.append)
    assert not [m for m in said if 'claimed by no layer rule' in m]
    param_groups(model, lr=1.0, layer_decay_rate=0.5, warn=said.append,
                 layer_phases=dict(head_only=2, unfreeze_every=1))
    unclaimed = [m for m in said if 'claimed by no layer rule' in m]
    assert len(unclaimed) == 1 and unclaimed[0].startswith(
        '52 backbone parameters are claimed by no layer rule and get the '
        "heads' layer N + 1: model.language_model.decoder.layers.0.")
