"""The registered optimizer-wrapper constructor."""
from .layer_decay_constructor import LayerDecayOptimizerConstructor
from .registration import NAMES, register

CustomLayerDecayOptimizerConstructor = LayerDecayOptimizerConstructor


def register_constructor() -> None:
    """Register under :data:`NAMES` (see :mod:`.registration`)."""
    register(LayerDecayOptimizerConstructor)


__all__ = ['LayerDecayOptimizerConstructor',
           'CustomLayerDecayOptimizerConstructor', 'NAMES',
           'register_constructor']
