"""Released InternViT weights: reading every published file layout, mapping
their names to InternVL's segmentation naming, checking the architecture,
resizing embeddings."""
from .intern_vit_architecture import (Architecture, architecture_mismatches,
                                      checkpoint_architecture)
from .intern_vit_naming import (OLD_LAYOUT_MESSAGE, old_fpn_layout_keys,
                                to_internvl_names)
from .resize import resize_patch_kernel, resize_pos_embed
from ...checkpoint.weight_files import WeightFile, read_hf_config, read_weights

__all__ = [
    'Architecture', 'architecture_mismatches', 'checkpoint_architecture',
    'OLD_LAYOUT_MESSAGE', 'old_fpn_layout_keys', 'to_internvl_names',
    'resize_patch_kernel', 'resize_pos_embed', 'WeightFile',
    'read_hf_config', 'read_weights'
]
