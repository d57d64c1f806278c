"""Backbones."""
from .intern_vit_6b import InternViT6B

__all__ = ['InternViT6B']
