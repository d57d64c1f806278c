"""Parameter schedulers registered in MMEngine's ``PARAM_SCHEDULERS``."""
from .layer_phase_scheduler import LayerPhaseScheduler

__all__ = ['LayerPhaseScheduler']
