"""MMEngine 0.10.7's ``DeepSpeedStrategy``, resuming without executing the
checkpoint's ``meta.config``.

``FlexibleRunner.resume`` passes ``checkpoint['meta']['config']`` to
``Config.fromstring``, which runs it as Python.  For other strategies the
checkpoint goes through MMEngine's ``CheckpointLoader``, whose local loader
``internvl_optim`` replaces (:func:`~internvl_optim.runtime.safe_checkpoint_loading.
load_from_local`); DeepSpeed reads its files itself and MMEngine's
``DeepSpeedStrategy.resume`` calls no ``after_load_checkpoint`` hook, so the
entry is dropped here.  ``tools/train.py`` uses this class for configs that
name ``DeepSpeedStrategy``.
"""
from mmengine._strategy import DeepSpeedStrategy
from mmengine.registry import STRATEGIES

from ...runtime.safe_checkpoint_loading import drop_executable_meta


@STRATEGIES.register_module()
class SafeResumeDeepSpeedStrategy(DeepSpeedStrategy):
    """``DeepSpeedStrategy`` whose ``resume`` drops executable ``meta``
    entries before ``FlexibleRunner`` reads them."""

    def resume(self, filename: str, **kwargs) -> dict:
        return drop_executable_meta(super().resume(filename, **kwargs),
                                    filename)
