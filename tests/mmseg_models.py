"""Real, tiny MMSeg segmentors for the tests."""
from mmengine.registry import init_default_scope

WD = 0.1


def tiny_segmentor(backbone_type, **backbone_kwargs):
    """EncoderDecoder(tiny backbone, FCNHead) built through MMSeg's registry.
    Backbones have 2 blocks of width 16."""
    import mmseg.models  # noqa: F401  (registers MMSeg's models)
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    backbone = dict(
        type=backbone_type, img_size=(32, 32), patch_size=16, embed_dims=16,
        num_layers=2, num_heads=2, mlp_ratio=2, out_indices=(1, ),
        **backbone_kwargs)
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=backbone,
            decode_head=dict(
                type='FCNHead', in_channels=16, channels=8, num_convs=1,
                num_classes=3, in_index=-1, concat_input=False,
                norm_cfg=dict(type='BN', requires_grad=True),
                loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))))


# FCNHead parameters: all at the head lr (1.0 with lr 1.0).
HEAD = {
    'decode_head.conv_seg.weight': (1.0, WD),
    'decode_head.conv_seg.bias': (1.0, 0.0),
    'decode_head.convs.0.conv.weight': (1.0, WD),
    'decode_head.convs.0.bn.weight': (1.0, 0.0),
    'decode_head.convs.0.bn.bias': (1.0, 0.0),
}
