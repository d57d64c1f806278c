"""``paramwise_cfg`` of :class:`LayerDecayOptimizerConstructor`, validated.

One declarative schema (:data:`SCHEMA`) defines every key: its text, the
settings field it fills, the check of its value and the reproduction
presets whose original reads it.  The key list, the "did you mean", the
preset key lists, the structural keys and the reference page are generated
from it, and each value is checked once, in
:meth:`LayerDecaySettings.__post_init__` (so settings built directly are
checked exactly as ``paramwise_cfg`` values are).

Keys of MMSeg's ``LearningRateDecayOptimizerConstructor`` and of InternVL's
``CustomLayerDecayOptimizerConstructor`` are accepted, so their configs run
unchanged.  Anything else is an error that names the key.
"""
import difflib
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from .phase_schedule import LayerPhases
from .algorithms import MuonRouting
from .layer_regex import RegexLayerRule
from .tower_schema import Tower, validate_towers
from .numbers import (LEARNING_RATE, NON_NEGATIVE, POSITIVE,
                      UNIT_OPEN_CLOSED, check_fields, check_number,
                      is_numeric_text)

#: the reproduction presets (``paramwise_cfg.reproduce``)
PRESETS = ('mmseg', 'internvl_segmentation', 'internimage_segmentation',
           'internimage_detection', 'internimage_classification')
_INTERNIMAGE_SEG_DET = ('internimage_segmentation', 'internimage_detection')
DECAY_TYPES = ('layer_wise', 'stage_wise')
CUSTOM_KEY_FIELDS = ('lr_mult', 'decay_mult')


@dataclass(frozen=True)
class Key:
    """One ``paramwise_cfg`` key."""
    name: str
    doc: str
    #: the :class:`LayerDecaySettings` field it fills (``mmengine_mults``:
    #: an entry of that dict)
    field: str = ''
    #: the presets whose original constructor reads it
    presets: Tuple[str, ...] = ()
    #: MMEngine's ``DefaultOptimWrapperConstructor`` key, with its meaning
    mmengine: bool = False
    #: shapes layer decay only: without a rate it changes nothing
    structural: bool = False

    @property
    def target(self) -> str:
        return self.field or self.name


#: every ``paramwise_cfg`` key, in the order the reference shows them
SCHEMA = (
    Key('num_layers', 'number of transformer blocks; inferred from the model '
        'when omitted, checked against it when given',
        presets=('mmseg', 'internvl_segmentation') + _INTERNIMAGE_SEG_DET,
        structural=True),
    Key('layer_decay_rate', 'lr ratio between consecutive layers, in (0, 1]; '
        'default 1.0 (no decay)', presets=PRESETS),
    Key('decay_rate', "alias of layer_decay_rate (MMSeg's name)",
        field='layer_decay_rate', presets=('mmseg',)),
    Key('layer_decay_reference_depth', 'the number of blocks '
        'layer_decay_rate was chosen for (BEiT-style 0.65 at 12): on a model '
        'of N blocks the rate applied is rate ** (reference / N), so the '
        'first block keeps the same lr ratio to the head; default none (the '
        'rate as given)'),
    Key('first_block_lr_ratio', 'instead of layer_decay_rate: the lr ratio '
        'wanted between the first block and the head, in (0, 1]; the rate '
        'is ratio ** (1 / N) for N blocks; default none'),
    Key('decay_type', "'layer_wise' (default) or 'stage_wise' (MMSeg's "
        'ConvNeXt rules; given explicitly, they apply to ConvNeXt)',
        presets=('mmseg',)),
    Key('depths', 'stage depths of a hierarchical backbone; inferred, '
        'checked against the model when given',
        presets=_INTERNIMAGE_SEG_DET, structural=True),
    Key('backbone_name', 'sub-module holding the backbone, taken as given; '
        'by default the first of backbone, img_backbone, image_encoder, '
        'vision_model the model has (else the whole model), and inside it '
        'the one child holding all its parameters when it only wraps one '
        "(TIMMBackbone's timm_model)"),
    Key('layer_regex', "dict(embed=REGEX, blocks=REGEX_WITH_ONE_GROUP) for "
        'backbones the built-in rules do not know', structural=True),
    Key('custom_keys', 'dict(substring=dict(lr_mult=..., decay_mult=...)) '
        'as in MMEngine; multiplies lr / weight decay of matching names'),
    Key('dcn_lr_mul', 'lr multiplier for deformable-conv parameters of the '
        'backbone (offset, attention_weights, center_feature_scale_proj, '
        'alpha_beta, conv_offset); default 1.0',
        presets=('internimage_classification',)),
    Key('offset_lr_scale', "lr multiplier for the backbone's "
        'sampling_offsets and reference_points; default 1.0',
        presets=_INTERNIMAGE_SEG_DET),
    Key('freeze_backbone', "stage/level (or ViT block) indices to freeze, or "
        "'all' (True: InternVL chat's flag, the vision tower); default none",
        presets=('internimage_classification',)),
    Key('freeze_mlp', "InternVL chat's flag: freeze the projector of a VLM "
        'layout; default False'),
    Key('freeze_llm', "InternVL chat's flag: freeze the language model of a "
        'VLM layout; default False'),
    Key('unfreeze_vit_layers', "InternVL chat's flag: with freeze_backbone, "
        'keep the vision blocks from index N on (Python slice [N:], negative '
        'counts from the end) trainable; default 0 (none)'),
    Key('unfreeze_lm_head', "InternVL chat's flag: keep lm_head trainable "
        'under freeze_llm; default False'),
    Key('reproduce', "the original constructor to reproduce exactly, quirks "
        "included: 'mmseg' (MMSeg's LearningRateDecayOptimizer"
        "Constructor), 'internvl_segmentation' (InternVL's "
        "segmentation constructor), 'internimage_segmentation', "
        "'internimage_detection', 'internimage_classification' "
        "(InternImage's); default none (our rules)", presets=PRESETS),
    Key('towers', "dict(name=dict(module='path', layer_decay_rate=, "
        'num_layers=, lr_mult=, decay_mult=, freeze=)): towers of a '
        'multi-tower model (a VLM), each with its own layer decay and '
        'multipliers; known VLM layouts are recognised without it; default '
        'none'),
    # the VLM trainers' per-tower lrs (absolute), as they name them
    Key('vision_tower_lr', "Qwen-VL fine-tuning's: the vision tower's lr "
        '(absolute; layer decay inside the tower still applies); default '
        'the base lr', field='tower_lrs'),
    Key('vit_lr', "ms-swift's name of vision_tower_lr", field='tower_lrs'),
    Key('mm_projector_lr', "LLaVA's and Qwen-VL fine-tuning's: the "
        "projector's lr (absolute); default the base lr",
        field='tower_lrs'),
    Key('aligner_lr', "ms-swift's name of mm_projector_lr",
        field='tower_lrs'),
    Key('layer_phases', 'dict(head_only=H, unfreeze_every=K, warmup=W, '
        "unit='layer', by_epoch=False): the head trains alone for H steps "
        '(LP-FT), then the layers (or towers) join from the top down, one '
        'every K steps, each warming up over W steps; applied by '
        'LayerPhaseScheduler (a param_scheduler entry); default none'),
    Key('muon', "True, or dict(conv='flatten'|'adamw', lora='adamw'|'muon'):"
        ' each parameter also gets the update it takes in a hybrid '
        'optimizer (MuonAdamW): Muon on the weight matrices of the blocks, '
        'heads and necks, AdamW on embeddings, norms, biases, tokens, '
        'position tables, output layers and LoRA adapters; set by the '
        'constructor when optimizer.type is MuonAdamW; default none'),
    # InternImage's detection keys (its CustomLayerDecayOptimizerConstructor)
    Key('dino_head', "InternImage: x0.1 lr for the head's sampling_offsets "
        'and reference_points (outside the backbone); default False',
        presets=_INTERNIMAGE_SEG_DET),
    Key('backbone_small_lr', 'InternImage: x0.1 lr for every decayed '
        'backbone layer (all but N + 1 when layer_decay_rate < 1); default '
        'False', presets=_INTERNIMAGE_SEG_DET),
    # MMEngine's, composed with layer decay (see :mod:`.multipliers`)
    Key('norm_decay_mult', 'weight decay multiplier of norm layers '
        '(MMEngine)', field='mmengine_mults', mmengine=True),
    Key('bias_decay_mult', 'weight decay multiplier of biases (MMEngine)',
        field='mmengine_mults', mmengine=True),
    Key('dwconv_decay_mult', 'weight decay multiplier of depthwise convs '
        '(MMEngine)', field='mmengine_mults', mmengine=True),
    Key('flat_decay_mult', 'weight decay multiplier of 1-D parameters '
        '(MMEngine)', field='mmengine_mults', mmengine=True),
    Key('bias_lr_mult', 'lr multiplier of biases (MMEngine)',
        field='mmengine_mults', mmengine=True),
    Key('dcn_offset_lr_mult', 'lr multiplier of DCN conv_offset layers '
        '(MMEngine)', field='mmengine_mults', mmengine=True),
    Key('bypass_duplicate', 'accepted (MMEngine); shared parameters are '
        'always grouped once', mmengine=True),
)
SCHEMA_BY_NAME = {key.name: key for key in SCHEMA}
#: ``paramwise_cfg`` keys and what they do (also shown in error messages)
KEYS = {key.name: key.doc for key in SCHEMA}
#: MMEngine ``DefaultOptimWrapperConstructor`` keys, with its meaning
MMENGINE_KEYS = {key.name: key.doc for key in SCHEMA if key.mmengine}
#: the keys that fill ``mmengine_mults``
MMENGINE_MULT_KEYS = tuple(key.name for key in SCHEMA
                           if key.field == 'mmengine_mults')
#: per reproduction preset, the keys its original reads
PRESET_KEYS = {preset: tuple(key.name for key in SCHEMA
                             if preset in key.presets and
                             key.name != 'reproduce') + ('reproduce',)
               for preset in PRESETS}
#: keys that only shape layer decay: without a rate they change nothing;
#: the layer rule must use each one that is configured (``num_layers`` is
#: used by every rule)
STRUCTURAL_KEYS = tuple(key.name for key in SCHEMA if key.structural)


@dataclass(frozen=True)
class LayerDecaySettings:
    """Validated settings: from ``paramwise_cfg`` with
    :meth:`from_paramwise_cfg`, or built directly; every value is checked
    once, here, whichever way."""
    num_layers: Optional[int] = None
    layer_decay_rate: float = 1.0
    layer_decay_reference_depth: Optional[int] = None
    first_block_lr_ratio: Optional[float] = None
    decay_type: Optional[str] = None  # None: not configured (layer_wise)
    depths: Optional[Tuple[int, ...]] = None
    backbone_name: Optional[str] = None
    layer_regex: Optional[Mapping] = None
    custom_keys: Dict[str, Dict[str, float]] = field(default_factory=dict)
    dcn_lr_mul: float = 1.0
    offset_lr_scale: float = 1.0
    freeze_backbone: Union[None, str, Tuple[int, ...]] = None
    mmengine_mults: Dict[str, float] = field(default_factory=dict)
    bypass_duplicate: bool = False
    dino_head: bool = False
    backbone_small_lr: bool = False
    towers: Tuple = ()
    freeze_mlp: bool = False
    freeze_llm: bool = False
    unfreeze_vit_layers: int = 0
    unfreeze_lm_head: bool = False
    reproduce: Optional[str] = None
    #: the VLM trainers' absolute tower lrs (``vision_tower_lr``, ...)
    tower_lrs: Dict[str, float] = field(default_factory=dict)
    layer_phases: Optional[LayerPhases] = None
    #: the routing of a hybrid optimizer (None: one algorithm for all)
    muon: Optional[MuonRouting] = None
    #: field -> the ``paramwise_cfg`` key that gave it, where an alias did
    #: (``decay_rate``), so that messages name what the user wrote
    given_as: Mapping[str, str] = field(default_factory=dict, compare=False,
                                        repr=False)

    def __post_init__(self):
        for f in fields(self):
            check = FIELD_CHECKS.get(f.name)
            if check is None:
                continue
            where = f'paramwise_cfg.{self.given_as.get(f.name, f.name)}'
            value = check(self, where, getattr(self, f.name))
            object.__setattr__(self, f.name, value)

    def rate_for(self, num_layers: int) -> float:
        """The rate applied between consecutive layers of a rule with
        ``num_layers`` blocks (``layer_decay_rate`` carried from its
        reference depth, or from ``first_block_lr_ratio``).

        >>> round(LayerDecaySettings(layer_decay_rate=0.65,
        ...       layer_decay_reference_depth=12).rate_for(48), 4)
        0.8979
        >>> round(LayerDecaySettings(layer_decay_rate=0.1,
        ...       first_block_lr_ratio=0.1).rate_for(24) ** 24, 12)
        0.1
        """
        if not num_layers:
            return self.layer_decay_rate
        if self.first_block_lr_ratio is not None:
            return self.first_block_lr_ratio ** (1 / num_layers)
        if self.layer_decay_reference_depth:
            return self.layer_decay_rate ** (
                self.layer_decay_reference_depth / num_layers)
        return self.layer_decay_rate

    def rate_given_as(self) -> str:
        """How the rate was given, as the user wrote it."""
        if self.first_block_lr_ratio is not None:
            return f'first_block_lr_ratio={self.first_block_lr_ratio}'
        if self.layer_decay_reference_depth:
            return (f'layer_decay_rate={self.layer_decay_rate} at '
                    f'{self.layer_decay_reference_depth} blocks')
        return f'layer_decay_rate={self.layer_decay_rate}'

    @classmethod
    def from_paramwise_cfg(cls, cfg: Optional[Mapping]) -> 'LayerDecaySettings':
        """Map ``paramwise_cfg`` keys to fields (aliases, MMEngine's
        multipliers), check what only the keys together tell (unknown keys,
        a preset's keys, an alias given twice, structure without a rate),
        then build (which checks every value)."""
        if cfg is not None and not isinstance(cfg, Mapping):
            raise TypeError(
                'optim_wrapper.paramwise_cfg must be a dict of keys such as '
                f'layer_decay_rate and num_layers, got a {type(cfg).__name__}'
                f': {cfg!r}')
        cfg = dict(cfg or {})
        _check_known_keys(cfg)
        _check_preset_keys(cfg)
        _check_aliases_agree(cfg)
        values, given_as = {}, {}
        for name, value in cfg.items():
            key = SCHEMA_BY_NAME[name]
            if key.target in ('mmengine_mults', 'tower_lrs'):
                if value is not None:
                    values.setdefault(key.target, {})[name] = value
            elif key.field:  # an alias
                values[key.target] = value
                given_as[key.target] = name
            else:
                values[name] = value
        _check_rate_forms(cfg, values)
        settings = cls(**values, given_as=given_as)
        _check_structure_has_a_rate(cfg)
        _check_towers_take_their_own(cfg, settings)
        _check_lr_of_frozen_tower(cfg, settings)
        return settings


def _check_known_keys(cfg: Mapping) -> None:
    for key in cfg:
        if key in KEYS:
            continue
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ''
        raise ValueError(
            f'Unknown key paramwise_cfg.{key}.{hint} Valid keys: '
            f'{", ".join(KEYS)}')


def _check_preset_keys(cfg: Mapping) -> None:
    """``paramwise_cfg.reproduce``: next to only the keys its original
    reads (the value itself is checked with the others)."""
    preset = cfg.get('reproduce')
    if not isinstance(preset, str) or preset not in PRESET_KEYS:
        return
    other = [k for k in cfg if k not in PRESET_KEYS[preset]]
    if other:
        raise ValueError(
            f'paramwise_cfg.reproduce={preset!r} reproduces a constructor '
            f'that reads only {PRESET_KEYS[preset][:-1]}; {other} would be '
            'ignored by it. Remove them, or leave reproduce out')


#: keys that mean the same (another trainer's name)
ALIASES = (('layer_decay_rate', 'decay_rate'), ('vision_tower_lr', 'vit_lr'),
           ('mm_projector_lr', 'aligner_lr'))


def _check_aliases_agree(cfg: Mapping) -> None:
    for a, b in ALIASES:
        if a in cfg and b in cfg and cfg[a] != cfg[b]:
            raise ValueError(
                f'paramwise_cfg.{a} and paramwise_cfg.{b} are aliases but '
                f'differ: {cfg[a]} != {cfg[b]}; give one')


def _check_rate_forms(cfg: Mapping, values: dict) -> None:
    """One way to give the rate: ``first_block_lr_ratio`` replaces
    ``layer_decay_rate`` (which then marks layer decay as on, with the
    ratio standing for the rate until the depth is known);
    ``layer_decay_reference_depth`` needs a rate to carry."""
    ratio = cfg.get('first_block_lr_ratio')
    rate_key = next((k for k in ('layer_decay_rate', 'decay_rate')
                     if k in cfg), None)
    if ratio is not None:
        if rate_key:
            raise ValueError(
                f'paramwise_cfg.first_block_lr_ratio and paramwise_cfg.'
                f'{rate_key} both set the rate; give one')
        if cfg.get('layer_decay_reference_depth') is not None:
            raise ValueError(
                'paramwise_cfg.layer_decay_reference_depth carries a '
                'layer_decay_rate to another depth; first_block_lr_ratio '
                'needs none. Give one of them')
        values['layer_decay_rate'] = check_number(
            'paramwise_cfg.first_block_lr_ratio', ratio, UNIT_OPEN_CLOSED)
    elif cfg.get('layer_decay_reference_depth') is not None and not rate_key:
        raise ValueError(
            'paramwise_cfg.layer_decay_reference_depth is set but '
            'layer_decay_rate is not: it says at which depth the rate was '
            'chosen. Add layer_decay_rate')


def _check_lr_of_frozen_tower(cfg: Mapping, settings) -> None:
    """An lr for a tower the same config freezes would be dropped."""
    frozen = []
    if settings.freeze_mlp:
        frozen.append(('freeze_mlp', ('mm_projector_lr', 'aligner_lr')))
    if settings.freeze_backbone == 'all' and not settings.unfreeze_vit_layers:
        frozen.append(('freeze_backbone', ('vision_tower_lr', 'vit_lr')))
    for flag, keys in frozen:
        given = [k for k in keys if k in cfg]
        if given:
            raise ValueError(
                f'paramwise_cfg.{given[0]}={cfg[given[0]]!r} sets the lr of '
                f'a tower that paramwise_cfg.{flag} freezes: it would train '
                f'at no lr. Remove {given[0]}, or {flag}')


def _check_towers_take_their_own(cfg: Mapping, settings) -> None:
    """With ``towers`` given, each tower takes its own rate and module: a
    top-level rate that no tower has, or a ``backbone_name``, would be
    ignored, so they are errors naming what to write."""
    if not settings.towers:
        return
    if cfg.get('backbone_name') is not None:
        raise ValueError(
            f"paramwise_cfg.backbone_name={cfg['backbone_name']!r} is not "
            'used with paramwise_cfg.towers: each tower names its module. '
            'Remove backbone_name, or name that module in a tower '
            "(towers['vision'].module)")
    key = next((k for k in ('layer_decay_rate', 'decay_rate',
                            'first_block_lr_ratio',
                            'layer_decay_reference_depth') if k in cfg), None)
    if key is None or (key in ('layer_decay_rate', 'decay_rate') and (
            cfg[key] == 1.0 or any(t.layer_decay_rate == cfg[key]
                                   for t in settings.towers))):
        return
    raise ValueError(
        f'paramwise_cfg.{key}={cfg[key]!r} applies to no tower: with '
        'paramwise_cfg.towers each tower takes its own rate '
        f"({', '.join(f'{t.name}: {t.layer_decay_rate:g}' for t in settings.towers)}). "
        f"Set towers['vision'].layer_decay_rate, and remove {key}")


def _check_structure_has_a_rate(cfg: Mapping) -> None:
    """``num_layers`` (or ``depths``, ``layer_regex``) without any
    ``layer_decay_rate`` trains every layer at the base lr: almost surely
    a forgotten rate.  An explicit ``layer_decay_rate=1.0`` (InternVL's
    head-tuning configs) is a choice and is accepted."""
    if 'layer_decay_rate' in cfg or 'decay_rate' in cfg or \
            'first_block_lr_ratio' in cfg:
        return
    given = [k for k in STRUCTURAL_KEYS if cfg.get(k) is not None]
    if given:
        raise ValueError(
            f'paramwise_cfg.{given[0]} is set but layer_decay_rate is not: '
            'without a rate below 1 every layer trains at the base lr and '
            f'{given[0]} changes nothing. Add layer_decay_rate (e.g. 0.9), '
            f'or layer_decay_rate=1.0 to say that no decay is meant')


# --- the check of each field's value: (settings, where, value) -> value --

def _check_rate(settings, where, value):
    # an original constructor checks no range (MMSeg's own test uses 2)
    return check_number(where, value, POSITIVE if settings.reproduce
                        else UNIT_OPEN_CLOSED)


def _one_of(valid: Tuple[str, ...], is_not: str):
    """The check of a value that must be one of ``valid`` (or None)."""
    def check(settings, where, value):
        if value is not None and (not isinstance(value, str)
                                  or value not in valid):
            raise ValueError(f'{where}={value!r} is {is_not}; valid: '
                             f'{valid}')
        return value
    return check


def _check_backbone_name(settings, where, value):
    if value is not None and not isinstance(value, str):
        raise TypeError(f'{where} must be a str, got {value!r}')
    return value


def _check_layer_regex(settings, where, value):
    if value is not None:  # checked even where a model method wins
        RegexLayerRule(value)
    return value


def _check_mmengine_mults(settings, where, value):
    if not isinstance(value, Mapping):
        raise TypeError(f'mmengine_mults must be a dict, got {value!r}')
    for key, mult in value.items():
        if key not in MMENGINE_MULT_KEYS:
            raise ValueError(f'mmengine_mults has unknown key {key!r}')
    return {key: check_number(f'paramwise_cfg.{key}', mult, NON_NEGATIVE)
            for key, mult in value.items()}


def _check_towers(settings, where, value):
    """A ``paramwise_cfg.towers`` dict becomes :class:`Tower` s; towers
    already built (the tower of a region) are kept."""
    if isinstance(value, tuple) and all(isinstance(t, Tower) for t in value):
        return value
    return validate_towers(value)


def _check_tower_lrs(settings, where, value):
    if not isinstance(value, Mapping):
        raise TypeError(f'tower_lrs must be a dict, got {value!r}')
    checked = {}
    for key, lr in value.items():
        if SCHEMA_BY_NAME.get(key, Key('', '')).field != 'tower_lrs':
            raise ValueError(f'tower_lrs has unknown key {key!r}')
        checked[key] = check_number(f'paramwise_cfg.{key}', lr,
                                    LEARNING_RATE)
    # one entry per tower (an alias given twice agrees)
    for a, b in ALIASES[1:]:
        if a in checked and b in checked:
            del checked[b]
    return checked


def _bool(settings, where, value):
    return _validate_bool(where.split('.', 1)[1], value)


FIELD_CHECKS: Dict[str, Callable[[Any, str, Any], Any]] = {
    'num_layers': lambda s, w, v: _validate_num_layers(v),
    'layer_decay_rate': _check_rate,
    'decay_type': _one_of(DECAY_TYPES, 'not supported'),
    'depths': lambda s, w, v: _validate_depths(
        None if v is None else list(v) if isinstance(v, tuple) else v),
    'backbone_name': _check_backbone_name,
    'layer_regex': _check_layer_regex,
    'custom_keys': lambda s, w, v: _validate_custom_keys(v),
    'dcn_lr_mul': lambda s, w, v: check_number(w, v, POSITIVE),
    'offset_lr_scale': lambda s, w, v: check_number(w, v, POSITIVE),
    'freeze_backbone': lambda s, w, v: _validate_freeze(v),
    'mmengine_mults': _check_mmengine_mults,
    'bypass_duplicate': _bool,
    'dino_head': _bool,
    'backbone_small_lr': _bool,
    'towers': _check_towers,
    'freeze_mlp': _bool,
    'freeze_llm': _bool,
    'unfreeze_vit_layers': lambda s, w, v: _validate_int(
        'unfreeze_vit_layers', v),
    'unfreeze_lm_head': _bool,
    'reproduce': _one_of(PRESETS, 'not a preset'),
    'tower_lrs': _check_tower_lrs,
    'layer_phases': lambda s, w, v: LayerPhases.from_cfg(v, w),
    'muon': lambda s, w, v: MuonRouting.from_cfg(v, w),
    'layer_decay_reference_depth': lambda s, w, v: None if v is None else
    _validate_positive_int(w, v),
    'first_block_lr_ratio': lambda s, w, v: None if v is None else
    check_number(w, v, UNIT_OPEN_CLOSED),
}


def _validate_num_layers(num_layers):
    if num_layers is None:
        return None
    if not isinstance(num_layers, int) or isinstance(num_layers, bool):
        hint = (f' (a string: write {num_layers} without quotes)'
                if is_numeric_text(num_layers) else '')
        raise TypeError('paramwise_cfg.num_layers must be a positive '
                        f'int, got {num_layers!r}{hint}')
    if num_layers <= 0:
        raise ValueError('paramwise_cfg.num_layers must be a positive '
                         f'int, got {num_layers}')
    return num_layers


def _validate_bool(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f'paramwise_cfg.{key} must be True or False, got '
                        f'{value!r}')
    return value


def _validate_positive_int(where: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f'{where} must be a positive int, got {value!r}')
    return value


def _validate_int(key: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f'paramwise_cfg.{key} must be an int, got {value!r}')
    return value


def _validate_depths(depths):
    if depths is None:
        return None
    if not isinstance(depths, (list, tuple)) or not depths or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0
            for d in depths):
        raise ValueError('paramwise_cfg.depths must be a list of positive '
                         f'ints, got {depths!r}')
    return tuple(depths)


def _validate_freeze(spec):
    if spec is None or spec is False or spec == 'all':
        return None if spec is False else spec
    if spec is True:  # InternVL chat's boolean flag
        return 'all'
    if isinstance(spec, (list, tuple)) and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0
            for i in spec):
        return tuple(sorted(set(spec)))
    raise ValueError(
        "paramwise_cfg.freeze_backbone must be 'all' or a list of stage/level "
        f'indices >= 0, got {spec!r}')


def _validate_custom_keys(custom_keys: Any) -> Dict[str, Dict[str, float]]:
    if not isinstance(custom_keys, Mapping):
        raise TypeError('paramwise_cfg.custom_keys must be a dict of '
                        'name substring -> dict(lr_mult=..., decay_mult=...), '
                        f'got {type(custom_keys).__name__}')
    checked = {}
    for key, mults in custom_keys.items():
        where = f'paramwise_cfg.custom_keys[{key!r}]'
        if not isinstance(key, str) or not key:
            raise TypeError('paramwise_cfg.custom_keys keys must be non-empty '
                            f'str, got {key!r}')
        check_fields(where, mults, CUSTOM_KEY_FIELDS)
        checked[key] = {name: check_number(f'{where}.{name}', value,
                                           NON_NEGATIVE)
                        for name, value in mults.items()}
    return checked
