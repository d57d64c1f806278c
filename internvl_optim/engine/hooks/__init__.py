"""Hooks registered in MMEngine's ``HOOKS``."""
from .checkpoint_trust_hook import CheckpointTrustHook
from .fresh_writes_hook import FreshWritesHook, RenameIntoPlaceBackend
from .layer_lr_spread_hook import LayerLrSpreadHook
from .zero_consolidate_hook import ZeroConsolidateHook

__all__ = ['CheckpointTrustHook', 'FreshWritesHook', 'LayerLrSpreadHook',
           'RenameIntoPlaceBackend', 'ZeroConsolidateHook']
