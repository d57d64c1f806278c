"""Extra lr multipliers for deformable layers in the backbone (InternImage
recipes), composed with layer decay and custom keys.

* ``offset_lr_scale``: backbone names containing ``sampling_offsets`` or
  ``reference_points`` (deformable attention);
* ``dcn_lr_mul``: other backbone names containing ``offset`` (InternImage's
  DCNv3 ``offset``, MMCV's DCN ``conv_offset``), ``attention_weights``,
  ``center_feature_scale_proj`` or ``alpha_beta``.
"""
from typing import Optional, Tuple

OFFSET_KEYWORDS = ('sampling_offsets', 'reference_points')
DCN_KEYWORDS = ('offset', 'attention_weights', 'center_feature_scale_proj',
                'alpha_beta')


def deformable_lr_multiplier(rel_name: str, dcn_lr_mul: float,
                             offset_lr_scale: float
                             ) -> Tuple[float, Optional[str]]:
    """``(multiplier, tag)`` for a backbone-relative name; tag is
    ``'offset'``, ``'dcn'`` or ``None`` (multiplier 1).

    >>> deformable_lr_multiplier('levels.0.blocks.1.dcn.offset.weight', 0.1, 1.0)
    (0.1, 'dcn')
    >>> deformable_lr_multiplier('levels.0.blocks.1.dcn.input_proj.weight', 0.1, 1.0)
    (1.0, None)
    """
    if offset_lr_scale != 1.0 and any(k in rel_name
                                       for k in OFFSET_KEYWORDS):
        return offset_lr_scale, 'offset'
    if any(k in rel_name for k in OFFSET_KEYWORDS):
        return 1.0, None
    if dcn_lr_mul != 1.0 and any(k in rel_name for k in DCN_KEYWORDS):
        return dcn_lr_mul, 'dcn'
    return 1.0, None
