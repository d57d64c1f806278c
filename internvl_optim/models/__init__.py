"""Models, registered in MMSegmentation's ``MODELS`` registry."""
from mmseg.registry import MODELS

from .backbones import InternViT6B

MODELS.register_module(module=InternViT6B, force=True)

__all__ = ['InternViT6B']
