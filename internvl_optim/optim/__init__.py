"""Optimizers of this package (pure PyTorch): :class:`MuonAdamW`, the
hybrid that takes Muon's update on the groups the plan marks ``'muon'``
and AdamW's on the others."""
from .muon_adamw import MuonAdamW

__all__ = ['MuonAdamW']
