"""MMEngine glue: the registered optimizer constructor (:mod:`.optimizers`),
the checkpoint-trust, ZeRO-consolidation and lr-spread hooks
(:mod:`.hooks`), the layer-phase scheduler (:mod:`.schedulers`), strategies (:mod:`.strategies`), the config checks
(:mod:`.config_checks`) and preparation of ``tools/train.py``
(:mod:`.train_config`), InternVL's DeepSpeed keys and the collective
timeout.  Importing it registers everything (:func:`register_all`), in any
import order."""


def register_all() -> None:
    """Register everything with MMEngine (and MMSeg, when installed) and turn
    on safe checkpoint loading; idempotent, called when this package is imported."""
    from ..checkpoint.safe_loading import \
        enable_safe_checkpoint_loading
    from ..runtime.import_watch import unwatch
    from .optimizers import register_constructor
    unwatch()  # registered from here on, in any import order
    register_constructor()
    enable_safe_checkpoint_loading()
    from . import hooks, schedulers, strategies  # noqa: F401  (register)
    from .. import multimodal  # noqa: F401  (TransformersVLM, its dataset)
    try:
        import mmseg  # noqa: F401
    except ImportError:  # pragma: no cover
        return
    from .. import models  # noqa: F401  (registers InternViT6B)


register_all()
