"""EoMT (transformers 5.24, ``EomtForUniversalSegmentation``): a ViT
whose last ``config.num_blocks`` blocks also process ``num_queries``
learned queries. Facts from the class: children registered as
``embeddings, layernorm, query, layers, upscale_block, mask_head,
class_predictor``; in ``forward`` the ``query`` embedding is concatenated
before block ``num_hidden_layers - num_blocks``, and ``layernorm``
normalizes the hidden states for the heads (in the last blocks and after
them). So the queries take the id of the block they join, the norm the
heads', never the embeddings' layer 0 their registration order would
give."""
import pytest
import torch

from internvl_optim import param_groups

T = pytest.importorskip('transformers')


def eomt():
    torch.manual_seed(0)
    return T.EomtForUniversalSegmentation(T.EomtConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=64, image_size=32, patch_size=8, num_blocks=2,
        num_queries=5, num_register_tokens=2))


def test_queries_join_their_block_and_the_norm_serves_the_heads():
    messages = []
    groups = param_groups(eomt(), lr=1.0, weight_decay=0.05,
                          layer_decay_rate=0.5, warn=messages.append)
    got = {n: (g['layer_id'], g['lr'], g['weight_decay'])
           for g in groups for n in g['param_names']}
    assert got['embeddings.patch_embeddings.projection.weight'] == (
        0, 0.03125, 0.05)
    assert got['embeddings.cls_token'][:2] == (0, 0.03125)
    assert got['layers.0.mlp.fc1.weight'] == (1, 0.0625, 0.05)
    assert got['layers.2.mlp.fc1.weight'] == (3, 0.25, 0.05)
    # the queries are concatenated before block 4 - 2 = 2 (layer 3)
    assert got['query.weight'][:2] == (3, 0.25)
    assert got['layernorm.weight'] == (5, 1.0, 0.0)
    assert got['class_predictor.weight'] == (5, 1.0, 0.05)
    assert not [m for m in messages if 'claimed by no layer rule' in m]
