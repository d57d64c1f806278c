"""The registered optimizer-wrapper constructor (and the hybrid optimizer
``MuonAdamW`` under its name)."""
from .layer_decay_constructor import LayerDecayOptimizerConstructor
from .registration import NAMES, register

CustomLayerDecayOptimizerConstructor = LayerDecayOptimizerConstructor


def register_constructor() -> None:
    """Register under :data:`NAMES` (see :mod:`.registration`), and the
    hybrid optimizer ``MuonAdamW`` in MMEngine's optimizer registry."""
    register(LayerDecayOptimizerConstructor)
    from mmengine.registry import OPTIMIZERS
    from ...optim import MuonAdamW
    OPTIMIZERS.register_module(name='MuonAdamW', module=MuonAdamW,
                               force=True)


__all__ = ['LayerDecayOptimizerConstructor',
           'CustomLayerDecayOptimizerConstructor', 'NAMES',
           'register_constructor']
