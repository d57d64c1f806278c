"""One call for plain PyTorch (and HF ``Trainer``): parameter groups for any
``torch.optim`` optimizer, validated exactly as the MMEngine config path.

    import torch
    from internvl_optim import param_groups

    groups = param_groups(model, lr=1e-4, weight_decay=0.05,
                          layer_decay_rate=0.9)
    optimizer = torch.optim.AdamW(groups)

Keyword arguments beyond ``lr`` and ``weight_decay`` are the
``paramwise_cfg`` keys (``num_layers``, ``layer_decay_rate``,
``backbone_name``, ``custom_keys``, ``freeze_backbone``, ...).  Every group
carries an absolute ``lr`` and ``weight_decay`` (so any scheduler scales
them alike) plus ``layer_id``, ``lr_scale``, ``group_name`` and
``param_names``.  Anything the user should know is a
:class:`LayerDecayWarning` (shown by default).  The one change made to the
model is ``freeze_backbone``'s, when asked for.
"""
import warnings
from typing import Callable, List, Optional

from torch import nn

from .core.numbers import LEARNING_RATE, NON_NEGATIVE, check_number
from .core.pipeline import build_param_groups
from .core.settings import LayerDecaySettings
from .runtime.freezing import apply_freezing


class LayerDecayWarning(UserWarning):
    """Something about the groups the user should know (a parameter no
    rule claims, custom keys matching nothing, frozen parameters, ...)."""


def _warn(message: str) -> None:
    warnings.warn(message, LayerDecayWarning, stacklevel=3)


def param_groups(model: nn.Module, lr: float, weight_decay: float = 0.0,
                 warn: Optional[Callable[[str], None]] = None,
                 **paramwise_cfg) -> List[dict]:
    """Layer-decay parameter groups of ``model`` for ``torch.optim``.

    Args:
        model: any ``nn.Module`` (wrapped by DDP/FSDP/``torch.compile``
            too).
        lr: the base lr; heads get exactly this, layer ``i`` gets
            ``lr * layer_decay_rate ** (num_layers + 1 - i)``.
        weight_decay: for weights; norms, biases, 1-D parameters, tokens and
            position embeddings get 0.
        warn: where messages go; default a :class:`LayerDecayWarning`.
        **paramwise_cfg: the ``paramwise_cfg`` keys.

    Returns:
        list of dict: groups ready for any ``torch.optim`` optimizer.
    """
    check_number('lr', lr, LEARNING_RATE)
    check_number('weight_decay', weight_decay, NON_NEGATIVE)
    settings = LayerDecaySettings.from_paramwise_cfg(paramwise_cfg)
    plan = build_param_groups(model, settings, lr, weight_decay,
                              warn=warn or _warn)
    apply_freezing(plan)
    return plan.groups
