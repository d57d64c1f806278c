"""InternViT6B takes InternVL's arguments as each commit spells them (issue
22, item 3).

Facts (OpenGVLab/InternVL, ``classification/models/intern_vit_6b.py`` at
commit e9c5e34, and ``segmentation/mmseg_custom/models/backbones/
intern_vit_6b.py``): the earlier spelling is ``layerscale_force_fp32``
(default False: layer scale in the input's dtype); the later
``layerscale_no_force_fp32`` (default True) is its negation.  Both build
``LayerScale(dim, init_values, force_fp32=...) if init_values else
nn.Identity()``: ``init_values=None`` or ``0`` means no layer scale and no
``ls1``/``ls2`` parameters.
"""
import re

import pytest
import torch

from internvl_optim.models import InternViT6B

from internvit_references import InternVLSegmentationReference, randomize

TINY = dict(depth=4, embed_dim=32, num_heads=4, patch_size=8, img_size=64,
            pretrain_size=64, out_indices=(0, 1, 2, 3), with_cp=False)
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))


def force_fp32_of(model):
    return {block.ls1.force_fp32 for block in model.blocks}


@pytest.mark.parametrize('kwargs, force', [
    (dict(), False),
    (dict(layerscale_no_force_fp32=True), False),
    (dict(layerscale_no_force_fp32=False), True),
    (dict(layerscale_force_fp32=True), True),
    (dict(layerscale_force_fp32=False), False),
    (dict(layerscale_force_fp32=True, layerscale_no_force_fp32=False), True),
])
def test_both_spellings_with_their_meanings(kwargs, force):
    assert force_fp32_of(InternViT6B(**TINY, **kwargs)) == {force}


def test_contradicting_spellings_are_an_error():
    with pytest.raises(ValueError, match=re.escape(
            'InternViT6B layerscale_force_fp32=True and '
            'layerscale_no_force_fp32=True contradict each other')):
        InternViT6B(**TINY, layerscale_force_fp32=True,
                    layerscale_no_force_fp32=True)
    with pytest.raises(TypeError, match=re.escape(
            "InternViT6B layerscale_force_fp32 must be True or False, got "
            "'yes'")):
        InternViT6B(**TINY, layerscale_force_fp32='yes')


@pytest.mark.parametrize('init_values', [None, 0, 0.0])
def test_no_layer_scale_as_internvl(init_values):
    model = InternViT6B(**TINY, init_values=init_values).eval()
    keys = list(model.state_dict())
    assert not any('.ls1.' in k or '.ls2.' in k for k in keys)
    # InternVL's keys otherwise: the reference's minus its layer scales
    reference = randomize(InternVLSegmentationReference(with_fpn=False))
    with torch.no_grad():
        for block in reference.blocks:
            block.ls1.gamma.fill_(1.0)  # x * 1: the same as no layer scale
            block.ls2.gamma.fill_(1.0)
    state = {k: v for k, v in reference.state_dict().items()
             if '.ls1.' not in k and '.ls2.' not in k}
    assert keys == list(state)
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        got, want = model(X), reference(X, (0, 1, 2, 3))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


#: InternVL's segmentation InternViT6B.__init__ (OpenGVLab/InternVL
#: ``segmentation/mmseg_custom/models/backbones/intern_vit_6b.py``, last
#: changed in 3d78d4d, unchanged at 2410d1d): every argument and default
INTERNVL_SEGMENTATION_ARGUMENTS = dict(
    in_chans=3, patch_size=14, img_size=224, pretrain_size=224,
    qkv_bias=False, drop_path_rate=0.0, embed_dim=3200, num_heads=25,
    mlp_ratio=4, init_values=0.1, qk_normalization=True, depth=48,
    use_flash_attn=True, with_cp=True, layerscale_force_fp32=False,
    out_indices=[7, 11, 15, 23], freeze_vit=False, with_fpn=False,
    with_final_norm=False, pretrained=None)


def test_every_argument_of_internvl_segmentation_is_accepted():
    args = dict(INTERNVL_SEGMENTATION_ARGUMENTS, embed_dim=8, num_heads=2,
                depth=24, patch_size=4, img_size=16, pretrain_size=16,
                with_cp=False)  # tiny, every other value InternVL's default
    with torch.device('meta'):
        model = InternViT6B(**args)
    assert model.out_indices == (7, 11, 15, 23)
    assert force_fp32_of(model) == {False}
    assert model.layer_scale and model.qk_normalization
