"""``pretrained=`` trusts nothing it reads: weights finite and
floating, config.json size- and depth-capped with every architecture field
type- and range-checked and consistent with the tensors, malformed
embedding shapes an error naming the tensor and the expected shape.  Files
are written by the tests in the real formats (safetensors, torch.save)."""
import json

import pytest
import torch

from internvl_optim.checkpoint import CheckpointError
from internvl_optim.checkpoint.json_files import CONFIG_MAX_BYTES
from internvl_optim.models import InternViT6B

from internvit_references import (HFInternVisionReference,
                                  InternVLSegmentationReference, hf_config,
                                  randomize, write_hf_directory)

TINY = dict(depth=4, embed_dim=32, num_heads=4, patch_size=8, img_size=64,
            pretrain_size=64, out_indices=(0, 1, 2, 3), with_cp=False)


def load(path):
    model = InternViT6B(**dict(TINY, pretrained=str(path)))
    model.init_weights()
    return model


def segmentation_state():
    return randomize(InternVLSegmentationReference(with_fpn=False)
                     ).state_dict()


def save_pth(tmp_path, state):
    path = tmp_path / 'vit.pth'
    torch.save(state, path)
    return path


def test_nan_and_inf_weights_are_refused(tmp_path):
    state = segmentation_state()
    state['blocks.1.attn.qkv.weight'][0, 0] = float('nan')
    state['pos_embed'][0, 3, 1] = float('-inf')
    path = save_pth(tmp_path, state)
    with pytest.raises(CheckpointError) as err:
        load(path)
    assert str(err.value) == (
        f'InternViT6B: {path} (segmentation naming): 2 tensor(s) hold NaN or '
        'Inf: pos_embed (1 of 2080 values), blocks.1.attn.qkv.weight (1 of '
        '3072 values). Training from them gives a NaN loss at the first '
        'step; the file is damaged or was saved after training diverged')


@pytest.mark.parametrize('dtype', [torch.int64, torch.bool])
def test_integer_and_bool_weights_are_refused(tmp_path, dtype):
    state = segmentation_state()
    state['blocks.0.mlp.fc2.weight'] = torch.ones(32, 128, dtype=dtype)
    path = save_pth(tmp_path, state)
    with pytest.raises(CheckpointError) as err:
        load(path)
    assert str(err.value) == (
        f'InternViT6B: {path} (segmentation naming): 1 entry of the weights '
        'cannot be loaded into floating parameters: blocks.0.mlp.fc2.weight '
        f'({dtype}, the model holds torch.float32). load_state_dict would '
        'cast them silently; this is not a checkpoint of this model, or it '
        'is damaged')


def hf_directory(tmp_path, **config):
    ref = randomize(HFInternVisionReference(hf_config()))
    directory = tmp_path / 'hf'
    write_hf_directory(directory, ref.state_dict(), hf_config(**config))
    return directory


@pytest.mark.parametrize('field, value, message', [
    ('num_hidden_layers', 10 ** 9,
     'config.json num_hidden_layers=1000000000 is not valid: it must be an '
     'int in [1, 1,000,000]'),
    ('hidden_size', -1, 'config.json hidden_size=-1 is not valid: it must '
                        'be an int in [1, 1,000,000]'),
    ('num_attention_heads', '4', "config.json num_attention_heads='4' is not "
                                 'valid: it must be an int in [1, 1,000,000]'),
    ('qk_normalization', 'yes', "config.json qk_normalization='yes' is not "
                                'valid: it must be true or false'),
    ('norm_type', 'batch_norm', "config.json norm_type='batch_norm' is not "
     "valid: it must be one of ('rms_norm', 'layer_norm')"),
    ('layer_norm_eps', 5.0, 'config.json layer_norm_eps=5.0 is not valid: '
                            'it must be a number in (0, 1)'),
    ('num_hidden_layers', 7, 'config.json num_hidden_layers=7, but its '
     'tensors have blocks: 4; the file is damaged or not the config of these '
     'weights'),
    ('intermediate_size', 64, 'config.json intermediate_size=64, but its '
     'tensors have an MLP width of 128; the file is damaged or not the '
     'config of these weights'),
    ('num_attention_heads', 5, 'config.json num_attention_heads=5 does not '
                               'divide the width 32'),
])
def test_every_config_field_is_checked(tmp_path, field, value, message):
    directory = hf_directory(tmp_path, **{field: value})
    with pytest.raises(ValueError) as err:
        load(directory)
    assert str(err.value) == (f'{directory / "model.safetensors"} '
                              f'(huggingface naming): {message}')


def test_an_oversized_config_json_is_refused_before_reading(tmp_path):
    directory = hf_directory(tmp_path)
    config = hf_config(padding='x' * (CONFIG_MAX_BYTES + 1))
    (directory / 'config.json').write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        load(directory)
    size = (directory / 'config.json').stat().st_size
    assert str(err.value) == (
        f"'{directory / 'config.json'}' is {size:,} bytes; a file of this "
        f'kind is at most {CONFIG_MAX_BYTES:,} bytes. It is not the file it '
        'is named after')


@pytest.mark.parametrize('depth', [40, 100_000])
def test_deeply_nested_json_is_refused(tmp_path, depth):
    directory = hf_directory(tmp_path)
    (directory / 'config.json').write_text('[' * depth + ']' * depth)
    with pytest.raises(CheckpointError) as err:
        load(directory)
    assert str(err.value) == (f"'{directory / 'config.json'}' is nested more "
                              'than 32 levels deep; not a model config')


@pytest.mark.parametrize('key, shape, message', [
    ('pos_embed', (1, 18, 32), 'pos_embed has shape (1, 18, 32); expected '
     '(1, 1 + s*s, 32): a class position and a square grid of s x s patch '
     'positions'),
    ('pos_embed', (1, 1, 32), 'pos_embed has shape (1, 1, 32); expected '
     '(1, 1 + s*s, 32): a class position and a square grid of s x s patch '
     'positions'),
    ('pos_embed', (65, 32), 'pos_embed has shape (65, 32); expected '
     '(1, 1 + s*s, 32): a class position and a square grid of s x s patch '
     'positions'),
    ('patch_embed.proj.weight', (32, 3, 8, 0), 'patch_embed.proj.weight has '
     'shape (32, 3, 8, 0); expected (C, in_chans, p, p) with a square patch '
     'p >= 1'),
    ('patch_embed.proj.weight', (32, 3, 8), 'patch_embed.proj.weight has '
     'shape (32, 3, 8); expected (C, in_chans, p, p) with a square patch '
     'p >= 1'),
    ('cls_token', (1, 2, 32), 'cls_token has shape (1, 2, 32); expected '
                              '(1, 1, 32)'),
])
def test_malformed_embeddings_name_the_tensor(tmp_path, key, shape, message):
    state = segmentation_state()
    state[key] = torch.zeros(shape)
    path = save_pth(tmp_path, state)
    with pytest.raises(ValueError) as err:
        load(path)
    assert str(err.value) == f'{path} (segmentation naming): {message}'


def test_a_good_file_still_loads(tmp_path):
    state = segmentation_state()
    path = save_pth(tmp_path, state)
    model = load(path)
    torch.testing.assert_close(model.pos_embed.detach(), state['pos_embed'])
    directory = hf_directory(tmp_path)
    load(directory)
