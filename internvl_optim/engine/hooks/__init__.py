"""Hooks registered in MMEngine's ``HOOKS``."""
from .zero_consolidate_hook import ZeroConsolidateHook

__all__ = ['ZeroConsolidateHook']
