"""transformers-native InternVL weights (the ``OpenGVLab/InternVL3-*-hf``
layout) load through ``InternViT6B(pretrained=...)``:
features equal to transformers' own ``InternVLVisionModel``; a whole VLM
directory opens only the vision tower's shards.

Facts (transformers 5.24 ``models/internvl/modeling_internvl.py``): q, k,
v are separate ``q_proj``/``k_proj``/``v_proj``; ``q_norm``/``k_norm``
normalise the full width before the head split; ``layernorm_before`` ->
attention -> ``lambda_1`` -> residual -> ``layernorm_after`` -> MLP ->
``lambda_2`` -> residual; ``hidden_states[i + 1]`` is the output of layer
i.  ``save_pretrained`` of ``InternVLForConditionalGeneration`` writes
``vision_tower.*``, ``multi_modal_projector.*`` and
``language_model.model.*``; its config.json nests ``vision_config`` with
``attention_bias``, ``use_qk_norm``, ``image_size``/``patch_size`` as
``[h, w]``.
"""
import json

import pytest
import torch

from internvl_optim.checkpoint import CheckpointError
from internvl_optim.models import InternViT6B

T = pytest.importorskip('transformers')

VISION = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
              intermediate_size=128, image_size=64, patch_size=8,
              use_qk_norm=True, norm_type='rms_norm', layer_norm_eps=1e-6,
              layer_scale_init_value=0.1)
OURS = dict(depth=4, embed_dim=32, num_heads=4, patch_size=8, img_size=64,
            pretrain_size=64, out_indices=(0, 1, 2, 3), with_cp=False,
            with_fpn=False)
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


def randomized(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2
                    + (1.0 if p.ndim == 1 else 0.0))
    return model.eval()


def reference_features(model):
    with torch.no_grad():
        hidden = model(pixel_values=X, output_hidden_states=True
                       ).hidden_states
    return [h[:, 1:].reshape(2, 8, 8, 32).permute(0, 3, 1, 2)
            for h in hidden[1:]]


def ours_from(path, **kw):
    model = InternViT6B(**dict(OURS, pretrained=str(path), **kw))
    model.init_weights()
    return model.eval()


def assert_same(model, want):
    with torch.no_grad():
        got = model(X)
    assert len(got) == len(want) == 4
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_vision_model_directory_gives_transformers_features(tmp_path):
    vision = randomized(T.InternVLVisionModel(
        T.InternVLVisionConfig(**VISION)))
    vision.save_pretrained(tmp_path / 'vision')
    assert_same(ours_from(tmp_path / 'vision'), reference_features(vision))


def test_whole_vlm_opens_only_the_vision_shards(tmp_path):
    config = T.InternVLConfig(
        vision_config=VISION,
        text_config=dict(model_type='qwen2', hidden_size=32,
                         num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64,
                         vocab_size=100),
        image_token_id=99)
    vlm = T.InternVLForConditionalGeneration(config)
    randomized(vlm.model.vision_tower)
    directory = tmp_path / 'vlm'
    vlm.save_pretrained(directory, max_shard_size='20KB')
    index = json.loads((directory / 'model.safetensors.index.json')
                       .read_text())['weight_map']
    language_only = {
        shard for shard in set(index.values())
        if all(k.startswith('language_model.') for k, s in index.items()
               if s == shard)}
    assert language_only  # some shards hold only the language model
    for shard in language_only:  # garbage: must never be opened
        (directory / shard).write_bytes(b'not a safetensors file')
    model = ours_from(directory)
    assert_same(model, reference_features(vlm.model.vision_tower))


def test_transformers_config_is_checked_in_its_own_names(tmp_path):
    vision = randomized(T.InternVLVisionModel(
        T.InternVLVisionConfig(**VISION)))
    vision.save_pretrained(tmp_path / 'vision')
    # the model asks for layer norms and qkv bias: both named
    with pytest.raises(ValueError) as err:
        ours_from(tmp_path / 'vision', norm_type='layer_norm')
    assert "norm_type: model 'layer_norm', checkpoint 'rms_norm' (from " \
        'tensors)' in str(err.value)
    assert '(transformers naming)' in str(err.value)
    config = json.loads((tmp_path / 'vision' / 'config.json').read_text())
    config['num_hidden_layers'] = 7
    (tmp_path / 'vision' / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ValueError, match='config.json num_hidden_layers=7, '
                       'but its tensors have blocks: 4'):
        ours_from(tmp_path / 'vision')


def test_a_block_without_v_proj_is_named(tmp_path):
    from safetensors.torch import load_file, save_file
    vision = randomized(T.InternVLVisionModel(
        T.InternVLVisionConfig(**VISION)))
    vision.save_pretrained(tmp_path / 'vision')
    path = tmp_path / 'vision' / 'model.safetensors'
    state = load_file(str(path))
    del state['encoder.layer.2.attention.v_proj.weight']
    save_file(state, str(path))
    with pytest.raises(ValueError, match=r'encoder\.layer\.2\.attention has '
                       r'no v_proj\.weight; q_proj, k_proj and v_proj are '
                       'needed together'):
        ours_from(tmp_path / 'vision')


def test_nan_in_a_transformers_file_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file
    vision = randomized(T.InternVLVisionModel(
        T.InternVLVisionConfig(**VISION)))
    vision.save_pretrained(tmp_path / 'vision')
    path = tmp_path / 'vision' / 'model.safetensors'
    state = load_file(str(path))
    state['encoder.layer.0.attention.k_proj.weight'][0, 0] = float('nan')
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r'blocks\.0\.attn\.qkv\.weight '
                       r'\(1 of 3072 values\)'):
        ours_from(tmp_path / 'vision')
