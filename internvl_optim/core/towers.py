"""Several towers in one model (a VLM: vision tower, projector, language
model), each with its own layer decay, lr and weight-decay multipliers and
freezing.

``paramwise_cfg.towers`` names them by module path::

    towers=dict(
        vision=dict(module='model.vision_tower', layer_decay_rate=0.9),
        projector=dict(module='model.multi_modal_projector', lr_mult=1.0),
        language=dict(module='model.language_model', lr_mult=0.1))

Per tower: ``module`` (required), ``layer_decay_rate`` (default 1.0; the
number of layers is inferred inside the tower as for a backbone, or given
as ``num_layers``), ``lr_mult`` and ``decay_mult`` (default 1.0),
``freeze`` (default False).  Parameters in no tower (``lm_head``) get the
base lr and weight decay.

A tower may sit inside another (Qwen-VL's projector ``model.visual.merger``
inside its vision tower): each parameter belongs to the innermost tower
holding it.

Without ``towers`` and without ``backbone_name``, the towers a transformers
model declares through its sub-configs are used
(:mod:`.declared_towers`), else the known layouts of :data:`KNOWN_LAYOUTS`
are recognised (also under a prefix: PEFT's ``base_model.model.``, a
wrapper's attribute such as ``vlm.``): the top-level ``layer_decay_rate``,
``num_layers``, ``depths`` and ``layer_regex`` apply inside the vision
tower; projector, language model and any other tower get the base lr.
"""
from dataclasses import dataclass, replace
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from .backbone_probe import holder_within
from .declared_towers import (declared_backbone, declared_towers,
                              towers_example)
from .layer_rules import LayerRule, resolve_layer_rule
from .names import relative_name
from .numbers import (NON_NEGATIVE, UNIT_OPEN_CLOSED, check_fields,
                      check_number)

#: (layout, vision tower, projector, language model): module paths
KNOWN_LAYOUTS = (
    ('InternVL chat', 'vision_model', 'mlp1', 'language_model'),
    ('transformers InternVL / LLaVA', 'model.vision_tower',
     'model.multi_modal_projector', 'model.language_model'),
    ('LLaVA', 'vision_tower', 'multi_modal_projector', 'language_model'),
)
#: what PEFT puts in front of every name
PEFT_PREFIX = 'base_model.model.'
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


def declared_layout(modules: Mapping, rate: float
                    ) -> Optional[Tuple[str, Tuple[Tower, ...]]]:
    """The towers a transformers model declares (:mod:`.declared_towers`)
    as ``(layout, towers)``, the vision tower at the top-level rate (filled
    in by :func:`regions`), else None.  A multimodal model that declares no
    vision tower is refused below rate 1: layer decay would fall on its
    language model."""
    found = declared_towers(modules)
    if found is None:
        return None
    root, paths = found
    if 'vision' not in paths:
        if rate == 1.0:
            return None
        what = ('decayed as one model, its language model would be '
                'decayed' if 'language' in paths or not paths else
                'which of them layer decay applies to is not declared')
        raise ValueError(
            f'{root} is a multimodal model without a vision tower that '
            'layer decay could apply to (towers built from its sub-configs: '
            f'{paths or "none"}); {what}. Say what to decay with '
            'paramwise_cfg.towers, '
            f'e.g. {towers_example(paths, modules)}, or use '
            'layer_decay_rate=1.0')
    # vision, projector(s), language, then any other tower
    order = sorted(paths, key=lambda n: (
        0 if n == 'vision' else 1 if n.startswith('projector') else
        2 if n == 'language' else 3))
    towers = [Tower(name, paths[name], takes_backbone_keys=name == 'vision')
              for name in order]
    return f'{root}: sub-configs', tuple(towers)


def recognise_layout(module_names: Sequence[str], rate: float
                     ) -> Optional[Tuple[str, Tuple[Tower, ...]]]:
    """``(layout, towers)`` for a model of :data:`KNOWN_LAYOUTS`, else
    None.  The vision tower gets ``rate``; the others the base lr."""
    names = set(module_names)
    for layout, vision, projector, language in KNOWN_LAYOUTS:
        # the layout at the top, or under a prefix (PEFT's
        # ``base_model.model.``, a wrapper's attribute), shortest first
        prefixes = sorted({n[:len(n) - len(vision)] for n in names
                           if n == vision or n.endswith('.' + vision)},
                          key=len)
        for prefix in prefixes:
            paths = [prefix + p for p in (vision, projector, language)]
            if all(p in names for p in paths):
                note = (' (PEFT)' if prefix.endswith(PEFT_PREFIX) else
                        f' under {prefix[:-1]}' if prefix else '')
                return (layout + note, (
                    Tower('vision', paths[0], rate,
                          takes_backbone_keys=True),
                    Tower('projector', paths[1]),
                    Tower('language', paths[2])))
    return None


def tower_settings(settings, tower: Tower):
    """The settings a tower's own layer rule is resolved with."""
    backbone_keys = tower.takes_backbone_keys
    return replace(
        settings, backbone_name=tower.module,
        layer_decay_rate=tower.layer_decay_rate,
        num_layers=settings.num_layers if backbone_keys else tower.num_layers,
        depths=settings.depths if backbone_keys else None,
        layer_regex=settings.layer_regex if backbone_keys else None,
        decay_type=settings.decay_type if backbone_keys else None,
        freeze_backbone=settings.freeze_backbone if backbone_keys else None,
        layer_decay_reference_depth=settings.layer_decay_reference_depth
        if backbone_keys else None,
        first_block_lr_ratio=settings.first_block_lr_ratio
        if backbone_keys else None,
        towers=())


def regions(modules: Mapping, names: List[str], settings,
            warn: Callable[[str], None]
            ) -> Tuple[List[Tuple[Optional[Tower], LayerRule, object]],
                       Optional[str]]:
    """``([(tower or None, rule, settings)], layout)``: one region (the
    backbone rule over the whole model) without towers; else one per tower
    and one for the rest of the model (base lr).  ``layout`` names the
    recognised layout (None: none, or towers given)."""
    towers = settings.towers
    layout = None
    if not towers and settings.backbone_name is None:
        found = declared_layout(modules, settings.layer_decay_rate) or \
            recognise_layout(list(modules), settings.layer_decay_rate)
        if found is not None:
            layout, towers = found
            towers = tuple(replace(t, layer_decay_rate=settings.
                                   layer_decay_rate)
                           if t.takes_backbone_keys else t for t in towers)
    if not towers:
        if settings.tower_lrs:
            key = next(iter(settings.tower_lrs))
            raise ValueError(
                f'paramwise_cfg.{key} sets the lr of a VLM tower, but the '
                'model declares no towers and has no known VLM layout; name '
                'them with paramwise_cfg.towers')
        return [(None, resolve_layer_rule(modules, names, settings, warn),
                 settings)], None
    towers = with_tower_lrs(towers, settings.tower_lrs)
    if settings.freeze_backbone and not any(t.takes_backbone_keys
                                            for t in towers):
        raise ValueError(
            'paramwise_cfg.freeze_backbone with paramwise_cfg.towers: say '
            "which tower to freeze with towers[NAME].freeze=True")
    regions = []
    for tower in towers:
        if tower.module not in modules:
            raise ValueError(
                f'paramwise_cfg.towers[{tower.name!r}].module='
                f'{tower.module!r}: the model has no such sub-module; its '
                'top-level sub-modules are '
                f'{sorted(n for n in modules if n and "." not in n)}')
        # a tower that only wraps its model (GIT's image_encoder.vision_model,
        # Kosmos-2's vision_model.model) is read inside the wrapper
        # a found tower that declares its own backbone (SAM 2's vision
        # encoder: a Hiera trunk by backbone_config, then its neck) is
        # decayed inside that backbone; the rest of the tower is its head
        inner = (declared_backbone(modules, tower.module)
                 if layout is not None else None) or tower.module
        tsettings = replace(tower_settings(settings, tower),
                            backbone_name=holder_within(modules, inner))
        regions.append((tower, resolve_layer_rule(modules, names, tsettings,
                                                  warn), tsettings))
    rest = LayerRule(0, 'outside the towers: base lr', '',
                     lambda name: 1)
    regions.append((None, rest, replace(
        settings, layer_decay_rate=1.0, towers=(), freeze_backbone=None)))
    return regions, layout


def region_of(name: str, regions) -> int:
    """The index of the region holding parameter ``name``: the innermost
    tower holding it, else the last region (the rest, or the only one)."""
    best, depth = len(regions) - 1, -1
    for index, (tower, _, _) in enumerate(regions):
        if tower is None:
            return index if len(regions) == 1 else best
        if relative_name(name, tower.module) is not None and \
                len(tower.module) > depth:
            best, depth = index, len(tower.module)
    return best


def tower_factors(tower: Optional[Tower],
                  base_lr: float) -> Tuple[float, float]:
    """``(lr factor, weight-decay factor)`` of a tower (1, 1 outside)."""
    if tower is None:
        return 1.0, 1.0
    lr_factor = tower.lr_mult if tower.lr is None else tower.lr / base_lr
    return lr_factor, tower.decay_mult


#: the VLM trainers' per-tower lrs (``paramwise_cfg`` keys) -> the tower
#: they set: LLaVA's and Qwen-VL fine-tuning's ``mm_projector_lr`` and
#: Qwen-VL's ``vision_tower_lr``, ms-swift's ``aligner_lr`` and ``vit_lr``
TOWER_LR_KEYS = {'vision_tower_lr': 'vision', 'vit_lr': 'vision',
                 'mm_projector_lr': 'projector', 'aligner_lr': 'projector'}


def with_tower_lrs(towers: Tuple[Tower, ...], lrs: Mapping[str, float]
                   ) -> Tuple[Tower, ...]:
    """``towers`` with the absolute lrs of :data:`TOWER_LR_KEYS` set
    (``lrs``: key -> lr, as configured); a key whose tower the model does
    not have, or that a tower's own ``lr_mult`` contradicts, is an
    error."""
    names = {t.name for t in towers}
    for key, lr in lrs.items():
        name = TOWER_LR_KEYS[key]
        if name not in names:
            raise ValueError(
                f'paramwise_cfg.{key}={lr:g} sets the lr of the {name} '
                f'tower, but the model has none (its towers: '
                f'{sorted(names) or "none"}); name it in paramwise_cfg.'
                f"towers['{name}']")
    out = []
    for tower in towers:
        given = {k: v for k, v in lrs.items() if TOWER_LR_KEYS[k] == tower.name}
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
