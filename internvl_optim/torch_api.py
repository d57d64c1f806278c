"""One call for plain PyTorch (and HF ``Trainer``): parameter groups for any
``torch.optim`` optimizer, validated exactly as the MMEngine config path.

    import torch
    from internvl_optim import param_groups

    groups = param_groups(model, lr=1e-4, weight_decay=0.05,
                          layer_decay_rate=0.9)
    optimizer = torch.optim.AdamW(groups)

The common ``paramwise_cfg`` keys are keyword-only parameters (an editor
completes them; their text comes from the one schema,
:data:`internvl_optim.core.settings.SCHEMA`); every other key is accepted
through ``**paramwise_cfg``.  Every group carries an absolute ``lr`` and
``weight_decay`` (so any scheduler scales them alike) plus ``layer_id``,
``lr_scale``, ``group_name`` and ``param_names``.  Anything the user should
know is a :class:`LayerDecayWarning` (shown by default).  The one change
made to the model is ``freeze_backbone``'s, when asked for.
"""
import inspect
import textwrap
import warnings
from typing import Callable, List, Mapping, Optional, Sequence, Union

from torch import nn

from .core.numbers import LEARNING_RATE, NON_NEGATIVE, check_number
from .core.pipeline import build_param_groups
from .core.settings import SCHEMA_BY_NAME, LayerDecaySettings
from .runtime.freezing import apply_freezing
from .runtime.layer_phases import require_phases_applied


class LayerDecayWarning(UserWarning):
    """Something about the groups the user should know (a parameter no
    rule claims, custom keys matching nothing, frozen parameters, ...)."""


def _warn(message: str) -> None:
    warnings.warn(message, LayerDecayWarning, stacklevel=3)


def param_groups(model: nn.Module, lr: float, weight_decay: float = 0.0,
                 warn: Optional[Callable[[str], None]] = None, *,
                 layer_decay_rate: Optional[float] = None,
                 num_layers: Optional[int] = None,
                 layer_decay_reference_depth: Optional[int] = None,
                 first_block_lr_ratio: Optional[float] = None,
                 backbone_name: Optional[str] = None,
                 depths: Optional[Sequence[int]] = None,
                 layer_regex: Optional[Mapping[str, str]] = None,
                 custom_keys: Optional[Mapping[str, Mapping[str, float]]]
                 = None,
                 freeze_backbone: Union[None, bool, str, Sequence[int]]
                 = None,
                 towers: Optional[Mapping[str, Mapping]] = None,
                 vision_tower_lr: Optional[float] = None,
                 mm_projector_lr: Optional[float] = None,
                 freeze_mlp: Optional[bool] = None,
                 freeze_llm: Optional[bool] = None,
                 unfreeze_vit_layers: Optional[int] = None,
                 unfreeze_lm_head: Optional[bool] = None,
                 layer_phases: Optional[Mapping[str, Union[int, bool, str]]]
                 = None,
                 dcn_lr_mul: Optional[float] = None,
                 offset_lr_scale: Optional[float] = None,
                 reproduce: Optional[str] = None,
                 muon: Union[None, bool, Mapping[str, str]] = None,
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
{keys}
        **paramwise_cfg: any other ``paramwise_cfg`` key (aliases such as
            ``decay_rate``, ``vit_lr``, ``aligner_lr``; MMEngine's
            ``*_mult`` keys; ``decay_type``; InternImage's ``dino_head``,
            ``backbone_small_lr``), checked as in a config.

    A keyword left at ``None`` is not given (the key's default applies).

    Returns:
        list of dict: groups ready for any ``torch.optim`` optimizer.
    """
    named = {name: value for name, value in locals().items()
             if name in NAMED_KEYS and value is not None}
    check_number('lr', lr, LEARNING_RATE)
    check_number('weight_decay', weight_decay, NON_NEGATIVE)
    settings = LayerDecaySettings.from_paramwise_cfg({**named,
                                                      **paramwise_cfg})
    plan = build_param_groups(model, settings, lr, weight_decay,
                              warn=warn or _warn)
    apply_freezing(plan)
    if settings.layer_phases is not None:
        require_phases_applied()
    return plan.groups


#: the ``paramwise_cfg`` keys :func:`param_groups` names as parameters
NAMED_KEYS = tuple(
    p.name for p in inspect.signature(param_groups).parameters.values()
    if p.kind is p.KEYWORD_ONLY)


def _keys_doc() -> str:
    """The Args entries of :data:`NAMED_KEYS`, from the schema's text."""
    return '\n'.join(
        textwrap.fill(f'{name}: {SCHEMA_BY_NAME[name].doc}.', 76,
                      initial_indent=' ' * 8, subsequent_indent=' ' * 12)
        for name in NAMED_KEYS)


param_groups.__doc__ = param_groups.__doc__.replace('{keys}', _keys_doc())
