"""MMEngine 0.10.7's ``DeepSpeedStrategy``, resuming without executing the
checkpoint's ``meta.config``.

``FlexibleRunner.resume`` passes ``checkpoint['meta']['config']`` to
``Config.fromstring``, which runs it as Python.  For other strategies the
checkpoint goes through MMEngine's ``CheckpointLoader``, whose local loader
``internvl_optim`` replaces (:func:`~internvl_optim.checkpoint.safe_loading.
load_from_local`); DeepSpeed reads its files itself and MMEngine's
``DeepSpeedStrategy.resume`` calls no ``after_load_checkpoint`` hook, so the
entry is dropped here.  ``tools/train.py`` uses this class for configs that
name ``DeepSpeedStrategy``.
"""
from mmengine._strategy import DeepSpeedStrategy
from mmengine.registry import STRATEGIES

from ...checkpoint.safe_loading import drop_executable_meta


@STRATEGIES.register_module()
class SafeResumeDeepSpeedStrategy(DeepSpeedStrategy):
    """``DeepSpeedStrategy`` whose ``resume`` drops executable ``meta``
    entries before ``FlexibleRunner`` reads them, and has the rest checked
    by :class:`~internvl_optim.engine.hooks.CheckpointTrustHook` (which
    sets :attr:`checkpoint_trust` before the run) before the runner uses
    it."""

    #: ``callable(extra_state, source)`` that raises on an untrusted state
    checkpoint_trust = None

    def resume(self, filename: str, **kwargs) -> dict:
        extra = drop_executable_meta(super().resume(filename, **kwargs),
                                     filename)
        if self.checkpoint_trust is not None:
            self.checkpoint_trust(extra, f'checkpoint {filename!r}')
        return extra
