"""``paramwise_cfg.towers``: the towers of a multi-tower model (a VLM:
vision tower, projector, language model), each with its own layer decay,
lr and weight-decay multipliers and freezing, validated.

``paramwise_cfg.towers`` names them by module path::

    towers=dict(
        vision=dict(module='model.vision_tower', layer_decay_rate=0.9),
        projector=dict(module='model.multi_modal_projector', lr_mult=1.0),
        language=dict(module='model.language_model', lr_mult=0.1))

Per tower: ``module`` (required), ``layer_decay_rate`` (default 1.0; the
number of layers is inferred inside the tower as for a backbone, or given
as ``num_layers``), ``lr_mult`` and ``decay_mult`` (default 1.0),
``freeze`` (default False).  Parameters in no tower (``lm_head``) get the
base lr and weight decay.  Which towers a model has when none are given is
:mod:`.tower_layouts`; the regions they make, :mod:`.model_view`.
"""
from dataclasses import dataclass, replace
from typing import Mapping, Optional, Tuple

from .numbers import (NON_NEGATIVE, UNIT_OPEN_CLOSED, check_fields,
                      check_number)

TOWER_FIELDS = ('module', 'layer_decay_rate', 'num_layers', 'lr_mult',
                'decay_mult', 'freeze')


@dataclass(frozen=True)
class Tower:
    """One tower of ``paramwise_cfg.towers`` (validated)."""
    name: str
    module: str
    layer_decay_rate: float = 1.0
    num_layers: Optional[int] = None
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    freeze: bool = False
    #: the vision tower of a recognised layout takes the top-level
    #: ``num_layers``/``depths``/``layer_regex``
    takes_backbone_keys: bool = False
    #: an absolute lr for the tower (the VLM trainers' ``vision_tower_lr``,
    #: ``mm_projector_lr``, ...): its factor is ``lr / base lr``, layer
    #: decay inside the tower still applies; None: ``lr_mult`` decides
    lr: Optional[float] = None


def validate_towers(spec) -> Tuple[Tower, ...]:
    """``paramwise_cfg.towers`` as :class:`Tower` s, each field checked."""
    if spec is None:
        return ()
    if not isinstance(spec, Mapping) or not spec:
        raise TypeError('paramwise_cfg.towers must be a non-empty dict of '
                        "name -> dict(module='path.in.model', "
                        f'layer_decay_rate=..., lr_mult=...), got {spec!r}')
    towers = []
    for name, fields in spec.items():
        where = f'paramwise_cfg.towers[{name!r}]'
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f'paramwise_cfg.towers: a tower name must be an '
                             f'identifier (it names groups), got {name!r}')
        check_fields(where, fields, TOWER_FIELDS)
        module = fields.get('module')
        if not isinstance(module, str) or not module:
            raise TypeError(f"{where}.module must name a sub-module ('a.b'), "
                            f'got {module!r}')
        num_layers = fields.get('num_layers')
        if num_layers is not None and (
                not isinstance(num_layers, int) or isinstance(num_layers, bool)
                or num_layers <= 0):
            raise ValueError(f'{where}.num_layers must be a positive int, got '
                             f'{num_layers!r}')
        freeze = fields.get('freeze', False)
        if not isinstance(freeze, bool):
            raise TypeError(f'{where}.freeze must be True or False, got '
                            f'{freeze!r}')
        towers.append(Tower(
            name, module,
            check_number(f'{where}.layer_decay_rate',
                         fields.get('layer_decay_rate', 1.0),
                         UNIT_OPEN_CLOSED),
            num_layers,
            check_number(f'{where}.lr_mult', fields.get('lr_mult', 1.0),
                         NON_NEGATIVE),
            check_number(f'{where}.decay_mult',
                         fields.get('decay_mult', 1.0), NON_NEGATIVE),
            freeze))
    modules = [t.module for t in towers]
    for tower in towers:
        twins = [t.name for t in towers if t.module == tower.module]
        if len(twins) > 1:
            raise ValueError(
                f'paramwise_cfg.towers: {twins} all name module '
                f'{tower.module!r}; each module belongs to one tower (merge '
                'their settings into one entry)')
    return tuple(towers)


#: the VLM trainers' per-tower lrs (``paramwise_cfg`` keys) -> the tower
#: they set: LLaVA's and Qwen-VL fine-tuning's ``mm_projector_lr`` and
#: Qwen-VL's ``vision_tower_lr``, ms-swift's ``aligner_lr`` and ``vit_lr``
TOWER_LR_KEYS = {'vision_tower_lr': 'vision', 'vit_lr': 'vision',
                 'mm_projector_lr': 'projector', 'aligner_lr': 'projector'}


def tower_kind(name: str) -> str:
    """What a tower is, by its name: ``vision_2`` and ``vision_high_res``
    are vision towers, ``projector_2`` a projector.

    >>> [tower_kind(n) for n in ('vision', 'vision_2', 'projector_2', 'qformer')]
    ['vision', 'vision', 'projector', 'qformer']
    """
    for kind in ('vision', 'projector'):
        if name == kind or name.startswith(kind + '_'):
            return kind
    return name


def with_tower_lrs(towers: Tuple[Tower, ...], lrs: Mapping[str, float]
                   ) -> Tuple[Tower, ...]:
    """``towers`` with the absolute lrs of :data:`TOWER_LR_KEYS` set
    (``lrs``: key -> lr, as configured) on every tower of the kind the key
    names (``vision_tower_lr``: each vision tower); a key whose kind of
    tower the model does not have, or that a tower's own ``lr_mult``
    contradicts, is an error."""
    kinds = {tower_kind(t.name) for t in towers}
    for key, lr in lrs.items():
        kind = TOWER_LR_KEYS[key]
        if kind not in kinds:
            raise ValueError(
                f'paramwise_cfg.{key}={lr:g} sets the lr of the {kind} '
                f'tower, but the model has none (its towers: '
                f'{sorted(t.name for t in towers) or "none"}); name it in '
                f"paramwise_cfg.towers['{kind}']")
    out = []
    for tower in towers:
        given = {k: v for k, v in lrs.items()
                 if TOWER_LR_KEYS[k] == tower_kind(tower.name)}
        if given:
            key, lr = next(iter(given.items()))
            if tower.lr_mult != 1.0:
                raise ValueError(
                    f'paramwise_cfg.{key}={lr:g} and paramwise_cfg.towers['
                    f'{tower.name!r}].lr_mult={tower.lr_mult:g} both set the '
                    f'{tower.name} tower\'s lr; give one')
            tower = replace(tower, lr=lr)
        out.append(tower)
    return tuple(out)
