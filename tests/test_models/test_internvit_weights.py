"""InternViT6B against checkpoints written the way InternVL and HuggingFace
write them (reference layouts in tests/internvit_references.py): exact
keys, features equal to float tolerance, every mismatch an error."""
import json
import os
import re

import pytest
import torch
import torch.nn.functional as F

from internvl_optim.models import InternViT6B
from internvl_optim.checkpoint.safe_loading import CheckpointError

from internvit_references import (HFInternVisionReference,
                                  InternVLSegmentationReference, hf_config,
                                  randomize, write_hf_directory)

TINY = dict(depth=4, embed_dim=32, num_heads=4, patch_size=8, img_size=64,
            pretrain_size=64, out_indices=(0, 1, 2, 3), with_cp=False)
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def ours(**kw):
    return InternViT6B(**dict(TINY, **kw)).eval()


def assert_features_equal(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == torch.float32 and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# --- InternVL's segmentation layout ---------------------------------------

def test_internvl_segmentation_state_dict_loads_strictly_same_features():
    ref = randomize(InternVLSegmentationReference(with_final_norm=True))
    model = ours(with_fpn=True, with_final_norm=True)
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))
    # without the final norms InternVL's up3/up4 hold no parameter at all
    plain = ours(with_fpn=True)
    assert [k for k in plain.state_dict() if k.startswith('up')] == [
        'up1.0.weight', 'up1.0.bias', 'up1.1.weight', 'up1.1.bias',
        'up1.3.weight', 'up1.3.bias', 'up2.0.weight', 'up2.0.bias']
    plain.load_state_dict(
        InternVLSegmentationReference(with_final_norm=False).state_dict(),
        strict=True)


def test_internvl_pretrained_pth_with_module_key(tmp_path):
    ref = randomize(InternVLSegmentationReference(with_fpn=False))
    path = tmp_path / 'intern_vit_6b_224px.pth'
    torch.save({'module': ref.state_dict()}, path)
    model = ours(pretrained=str(path))
    model.init_weights()
    with torch.no_grad():
        assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))


def test_config_json_next_to_a_pth_is_not_applied(tmp_path):
    # a .pth is InternVL's segmentation file: a config.json in the same
    # folder describes something else (here: 2 heads) and is not read
    ref = randomize(InternVLSegmentationReference(with_fpn=False))
    torch.save(ref.state_dict(), tmp_path / 'vit.pth')
    (tmp_path / 'config.json').write_text(json.dumps(
        hf_config(num_attention_heads=2)))
    model = ours(pretrained=str(tmp_path / 'vit.pth'))
    model.init_weights()
    with torch.no_grad():
        assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))


def test_pos_and_patch_embed_resized_as_internvl(tmp_path):
    ref = randomize(InternVLSegmentationReference(with_fpn=False, patch=16,
                                                  img=64))  # 4x4 grid
    path = tmp_path / 'vit.pth'
    torch.save(ref.state_dict(), path)
    model = ours(pretrained=str(path), img_size=48)  # patch 8: 6x6 grid
    model.init_weights()
    kernel = F.interpolate(ref.patch_embed.proj.weight.detach(),
                           size=(8, 8), mode='bicubic', align_corners=False)
    assert torch.equal(model.patch_embed.proj.weight.detach(), kernel)
    grid = ref.pos_embed[:, 1:].detach().reshape(1, 4, 4, 32).permute(
        0, 3, 1, 2)
    grid = F.interpolate(grid, size=(6, 6), mode='bicubic',
                         align_corners=False).reshape(1, 32, 36).permute(
                             0, 2, 1)
    assert model.pos_embed.shape == (1, 37, 32)
    assert torch.equal(model.pos_embed[:, 0], ref.pos_embed[:, 0])
    torch.testing.assert_close(model.pos_embed[:, 1:].detach(), grid)


# --- HuggingFace layouts --------------------------------------------------

def hf_reference(seed=0, **config):
    cfg = hf_config(**config)
    return randomize(HFInternVisionReference(cfg), seed), cfg


@pytest.mark.parametrize('fmt,shards', [('safetensors', 1),
                                        ('safetensors', 3), ('bin', 1),
                                        ('bin', 2)])
def test_huggingface_directory_same_features(tmp_path, fmt, shards):
    ref, cfg = hf_reference()
    write_hf_directory(tmp_path, ref.state_dict(), cfg, shards, fmt)
    names = sorted(os.listdir(tmp_path))
    if shards > 1:
        ext = 'safetensors' if fmt == 'safetensors' else 'bin'
        assert f'{"model" if ext == "safetensors" else "pytorch_model"}.' \
            f'{ext}.index.json' in names
    model = ours(pretrained=str(tmp_path))
    model.init_weights()
    with torch.no_grad():
        assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))
    assert torch.equal(model.blocks[2].ls1.gamma,
                       ref.encoder.layers[2].ls1)
    assert torch.equal(model.cls_token, ref.embeddings.class_embedding)


def test_single_safetensors_file_and_index_json_paths(tmp_path):
    ref, cfg = hf_reference()
    write_hf_directory(tmp_path / 'one', ref.state_dict(), cfg)
    write_hf_directory(tmp_path / 'many', ref.state_dict(), cfg, shards=2)
    for path in (tmp_path / 'one/model.safetensors',
                 tmp_path / 'many/model.safetensors.index.json'):
        model = ours(pretrained=str(path))
        model.init_weights()
        with torch.no_grad():
            assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))


def test_chat_checkpoint_vision_model_prefix_skips_language_shards(
        tmp_path):
    ref, cfg = hf_reference()
    state = dict(ref.state_dict())
    write_hf_directory(tmp_path, state, cfg, shards=2, prefix='vision_model.')
    # the language model lives in its own shard, which must never be read
    index_path = tmp_path / 'model.safetensors.index.json'
    index = json.loads(index_path.read_text())
    (tmp_path / 'model-llm.safetensors').write_bytes(b'not read')
    index['weight_map'].update({
        'language_model.model.embed_tokens.weight': 'model-llm.safetensors',
        'mlp1.0.weight': 'model-llm.safetensors'})
    index_path.write_text(json.dumps(index))
    model = ours(pretrained=str(tmp_path))
    model.init_weights()
    with torch.no_grad():
        assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))


def test_448px_grid_resized_to_the_crop_same_features_as_hf(tmp_path,
                                                          capsys):
    """A 4x4 checkpoint grid (image_size 32) used at 64px: HF interpolates
    at forward, we once at load; the features agree."""
    ref, cfg = hf_reference(image_size=32)
    write_hf_directory(tmp_path, ref.state_dict(), cfg)
    model = ours(pretrained=str(tmp_path), pretrain_size=32)
    model.init_weights()
    assert model.pos_embed.shape == (1, 65, 32)
    with torch.no_grad():
        assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))
    out = capsys.readouterr().out
    assert 'pos_embed resized from a 4x4 grid to 8x8' in out
    assert 'pretrain_size' not in out
    # a pretrain_size that does not match the checkpoint is said, and the
    # checkpoint's grid is used all the same
    model = ours(pretrained=str(tmp_path), pretrain_size=64)
    model.init_weights()
    assert ('InternViT6B: pretrain_size=64 means a 8x8 position grid, the '
            'checkpoint has 4x4 (pretrain_size=32)') in capsys.readouterr().out
    with torch.no_grad():
        assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))


def test_300m_style_layer_norm_checkpoint(tmp_path):
    ref, cfg = hf_reference(norm_type='layer_norm', qk_normalization=False,
                            qkv_bias=True)
    assert 'encoder.layers.0.norm1.bias' in ref.state_dict()
    write_hf_directory(tmp_path, ref.state_dict(), cfg)
    model = ours(pretrained=str(tmp_path), norm_type='layer_norm',
                 qk_normalization=False, qkv_bias=True)
    model.init_weights()
    assert isinstance(model.blocks[0].norm1, torch.nn.LayerNorm)
    with torch.no_grad():
        assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))


# --- every mismatch names the field and both values ------------------------

@pytest.mark.parametrize('config,model_kw,line', [
    (dict(num_hidden_layers=3), {},
     'depth: model 4, checkpoint 3 (from tensors)'),
    (dict(num_attention_heads=2), {},
     'num_heads: model 4, checkpoint 2 (from config.json '
     'num_attention_heads)'),
    (dict(norm_type='layer_norm'), {},
     "norm_type: model 'rms_norm', checkpoint 'layer_norm' (from tensors)"),
    (dict(qk_normalization=False), {},
     'qk_normalization: model True, checkpoint False (from tensors)'),
    (dict(qkv_bias=True), {},
     'qkv_bias: model False, checkpoint True (from tensors)'),
    (dict(intermediate_size=64), {},
     'mlp_ratio: model hidden width 128, checkpoint 64 (mlp_ratio=2; from '
     'tensors)'),
    (dict(layer_norm_eps=1e-5), {},
     'layer_norm_eps: model 1e-06, checkpoint 1e-05 (from config.json '
     'layer_norm_eps)'),
    ({}, dict(init_values=0),
     'init_values: the model has layer scale: False, the checkpoint: True'),
])
def test_architecture_mismatch_errors(tmp_path, config, model_kw, line):
    ref, cfg = hf_reference(**config)
    write_hf_directory(tmp_path, ref.state_dict(), cfg)
    with pytest.raises(ValueError) as err:
        ours(pretrained=str(tmp_path), **model_kw).init_weights()
    message = str(err.value)
    assert message.startswith(
        f'InternViT6B: {tmp_path}/model.safetensors (huggingface naming) '
        'does not fit the configured architecture; set these in the '
        'backbone config:\n  ')
    assert line in message


def test_width_mismatch_is_reported_with_its_field(tmp_path):
    ref, cfg = hf_reference(hidden_size=16, num_attention_heads=2,
                            intermediate_size=64)
    write_hf_directory(tmp_path, ref.state_dict(), cfg)
    with pytest.raises(ValueError, match=re.escape(
            'embed_dim: model 32, checkpoint 16 (from tensors)')):
        ours(pretrained=str(tmp_path)).init_weights()


def test_not_an_internvit_checkpoint(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'encoder.weight': torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=re.escape(
            "(segmentation naming) has no 'patch_embed.proj.weight': not an "
            "InternViT checkpoint (its keys look like ['encoder.weight'])")):
        ours(pretrained=str(path)).init_weights()


def test_missing_vit_tensor_is_an_error(tmp_path):
    state = dict(randomize(InternVLSegmentationReference(
        with_fpn=False)).state_dict())
    del state['blocks.1.attn.proj.bias']
    path = tmp_path / 'vit.pth'
    torch.save(state, path)
    with pytest.raises(ValueError, match=re.escape(
            "lacks 1 tensor(s) of the ViT, e.g. ['blocks.1.attn.proj.bias']")):
        ours(pretrained=str(path)).init_weights()


# --- files that must not be trusted or cannot be read ----------------------

def test_shard_names_must_stay_in_the_directory(tmp_path):
    ref, cfg = hf_reference()
    write_hf_directory(tmp_path, ref.state_dict(), cfg, shards=2)
    index_path = tmp_path / 'model.safetensors.index.json'
    index = json.loads(index_path.read_text())
    key = next(iter(index['weight_map']))
    index['weight_map'][key] = '../model-00001-of-00002.safetensors'
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=re.escape(
            "shard '../model-00001-of-00002.safetensors' of "
            f"'{key}' is not a file name in the index directory")):
        ours(pretrained=str(tmp_path)).init_weights()


def test_missing_shard_and_damaged_safetensors(tmp_path):
    ref, cfg = hf_reference()
    write_hf_directory(tmp_path, ref.state_dict(), cfg, shards=2)
    second = tmp_path / 'model-00002-of-00002.safetensors'
    second.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":')
    with pytest.raises(CheckpointError,
                       match='is not a valid safetensors file'):
        ours(pretrained=str(tmp_path)).init_weights()
    second.unlink()
    with pytest.raises(CheckpointError, match=re.escape(
            "names shard 'model-00002-of-00002.safetensors', which is "
            'missing from')):
        ours(pretrained=str(tmp_path)).init_weights()


def test_bin_shard_with_code_is_refused(tmp_path):
    from malicious_checkpoints import (save_payload,
                                       statistics_widening_payload)
    ref, cfg = hf_reference()
    write_hf_directory(tmp_path, ref.state_dict(), cfg, shards=2, fmt='bin')
    marker = tmp_path / 'pwned'
    save_payload(statistics_widening_payload(marker),
                 tmp_path / 'pytorch_model-00002-of-00002.bin')
    with pytest.raises(CheckpointError, match='refused by safe loading'):
        ours(pretrained=str(tmp_path)).init_weights()
    assert not marker.exists()


def test_directory_without_weights_and_bad_config_json(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(
            'is a directory without weights: expected one of '
            'model.safetensors.index.json, model.safetensors, '
            'pytorch_model.bin.index.json, pytorch_model.bin')):
        ours(pretrained=str(tmp_path)).init_weights()
    ref, cfg = hf_reference()
    write_hf_directory(tmp_path, ref.state_dict(), cfg)
    (tmp_path / 'config.json').write_text('{"hidden_size": ')
    with pytest.raises(CheckpointError, match='config.json.* is not valid '
                       'JSON'):
        ours(pretrained=str(tmp_path)).init_weights()


# --- checkpoints of the layout before this one -----------------------------

def old_layout_state():
    state = dict(ours(with_fpn=True).state_dict())
    for key in [k for k in state if k.startswith(('up1.1', 'up2.'))]:
        del state[key]
    state.update({'up1.1.weight': torch.ones(32), 'up1.1.bias': torch.zeros(32),
                  'up1.1.running_mean': torch.zeros(32),
                  'up1.1.running_var': torch.ones(32),
                  'up1.1.num_batches_tracked': torch.tensor(3),
                  'up2.weight': torch.zeros(32, 32, 2, 2),
                  'up2.bias': torch.zeros(32)})
    return state


def test_old_layout_refused_by_load_state_dict():
    model = torch.nn.Module()
    model.backbone = ours(with_fpn=True)
    state = {f'backbone.{k}': v for k, v in old_layout_state().items()}
    with pytest.raises(ValueError) as err:
        model.load_state_dict(state, strict=False)
    assert str(err.value).startswith(
        'InternViT6B: this checkpoint was written by internvl_optim before '
        'InternViT6B followed InternVL (it has backbone.up1.1.'
        'num_batches_tracked, backbone.up1.1.running_mean, backbone.up1.1.'
        'running_var, backbone.up2.bias, backbone.up2.weight). The FPN '
        'adapters changed: up1.1 is now a channels-first LayerNorm')


def test_old_layout_as_pretrained_loads_the_vit_only(tmp_path):
    state = old_layout_state()
    path = tmp_path / 'old_demo.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in state.items()}},
               path)
    model = ours(with_fpn=True, pretrained=str(path))
    fpn_before = model.up2[0].weight.detach().clone()
    model.init_weights()
    assert torch.equal(model.blocks[3].mlp.fc2.weight, state[
        'blocks.3.mlp.fc2.weight'])
    assert torch.equal(model.up2[0].weight, fpn_before)


def test_bfloat16_release_loads_into_float32_and_bfloat16_models(tmp_path):
    """The releases are stored in bfloat16 (config.json torch_dtype): the
    values load exactly, cast to the model's dtype."""
    ref, cfg = hf_reference()
    ref = ref.to(torch.bfloat16).float()  # the values a bf16 file holds
    write_hf_directory(tmp_path, {k: v.to(torch.bfloat16) for k, v in
                                  ref.state_dict().items()}, cfg, shards=2)
    model = ours(pretrained=str(tmp_path))
    model.init_weights()
    assert model.blocks[0].attn.qkv.weight.dtype == torch.float32
    with torch.no_grad():
        assert_features_equal(model(X), ref(X, (0, 1, 2, 3)))
    bf16 = ours(pretrained=str(tmp_path), param_dtype='bfloat16')
    bf16.init_weights()
    assert torch.equal(bf16.blocks[0].attn.qkv.weight.float(),
                       ref.encoder.layers[0].attn.qkv.weight)
