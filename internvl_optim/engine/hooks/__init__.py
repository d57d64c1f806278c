"""Hooks registered in MMEngine's ``HOOKS``."""
from .layer_lr_spread_hook import LayerLrSpreadHook
from .zero_consolidate_hook import ZeroConsolidateHook

__all__ = ['LayerLrSpreadHook', 'ZeroConsolidateHook']
