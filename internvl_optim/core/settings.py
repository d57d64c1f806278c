"""``paramwise_cfg`` of :class:`LayerDecayOptimizerConstructor`, validated.

Keys of MMSeg's ``LearningRateDecayOptimizerConstructor`` and of InternVL's
``CustomLayerDecayOptimizerConstructor`` are accepted, so their configs run
unchanged.  Anything else is an error that names the key.
"""
import difflib
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .layer_rules.regex import RegexLayerRule
from .towers import Tower, validate_towers
from .numbers import (NON_NEGATIVE, POSITIVE, UNIT_OPEN_CLOSED,
                      check_number, is_numeric_text)

#: ``paramwise_cfg`` keys and what they do (also shown in error messages).
KEYS = {
    'num_layers': 'number of transformer blocks; inferred from the model '
                  'when omitted, checked against it when given',
    'layer_decay_rate': 'lr ratio between consecutive layers, in (0, 1]; '
                        'default 1.0 (no decay)',
    'decay_rate': "alias of layer_decay_rate (MMSeg's name)",
    'decay_type': "'layer_wise' (default) or 'stage_wise' (MMSeg's ConvNeXt "
                  'rules; given explicitly, they apply to ConvNeXt)',
    'depths': 'stage depths of a hierarchical backbone; inferred, checked '
              'against the model when given',
    'backbone_name': 'sub-module holding the backbone, taken as given; by '
                     'default the first of backbone, img_backbone, '
                     'image_encoder, vision_model the model has (else the '
                     'whole model), and inside it the one child holding all '
                     "its parameters when it only wraps one (TIMMBackbone's "
                     'timm_model)',
    'layer_regex': "dict(embed=REGEX, blocks=REGEX_WITH_ONE_GROUP) for "
                   'backbones the built-in rules do not know',
    'custom_keys': 'dict(substring=dict(lr_mult=..., decay_mult=...)) as in '
                   'MMEngine; multiplies lr / weight decay of matching names',
    'dcn_lr_mul': 'lr multiplier for deformable-conv parameters of the '
                  'backbone (offset, attention_weights, '
                  'center_feature_scale_proj, alpha_beta, conv_offset); '
                  'default 1.0',
    'offset_lr_scale': 'lr multiplier for the backbone\'s sampling_offsets '
                       'and reference_points; default 1.0',
    'freeze_backbone': "stage/level (or ViT block) indices to freeze, or "
                       "'all' (True: InternVL chat's flag, the vision "
                       'tower); default none',
    'freeze_mlp': "InternVL chat's flag: freeze the projector of a VLM "
                  'layout; default False',
    'freeze_llm': "InternVL chat's flag: freeze the language model of a VLM "
                  'layout; default False',
    'unfreeze_vit_layers': "InternVL chat's flag: with freeze_backbone, keep "
                           'the vision blocks from index N on (Python slice '
                           '[N:], negative counts from the end) trainable; '
                           'default 0 (none)',
    'unfreeze_lm_head': "InternVL chat's flag: keep lm_head trainable under "
                        'freeze_llm; default False',
    'reproduce': "the original constructor to reproduce exactly, quirks "
                 "included: 'mmseg' (MMSeg's LearningRateDecayOptimizer"
                 "Constructor), 'internvl_segmentation' (InternVL's "
                 "segmentation constructor), 'internimage_segmentation', "
                 "'internimage_detection', 'internimage_classification' "
                 "(InternImage's); default none (our rules)",
    'towers': "dict(name=dict(module='path', layer_decay_rate=, num_layers=, "
              'lr_mult=, decay_mult=, freeze=)): towers of a multi-tower model '
              '(a VLM), each with its own layer decay and multipliers; known '
              'VLM layouts are recognised without it; default none',
}
#: InternImage's detection keys (its CustomLayerDecayOptimizerConstructor)
KEYS.update({
    'dino_head': "InternImage: x0.1 lr for the head's sampling_offsets and "
                 'reference_points (outside the backbone); default False',
    'backbone_small_lr': 'InternImage: x0.1 lr for every decayed backbone '
                         'layer (all but N + 1 when layer_decay_rate < 1); '
                         'default False',
})
#: MMEngine ``DefaultOptimWrapperConstructor`` keys, with its meaning,
#: composed with layer decay (see :mod:`.multipliers`)
MMENGINE_KEYS = {
    'norm_decay_mult': 'weight decay multiplier of norm layers (MMEngine)',
    'bias_decay_mult': 'weight decay multiplier of biases (MMEngine)',
    'dwconv_decay_mult': 'weight decay multiplier of depthwise convs '
                         '(MMEngine)',
    'flat_decay_mult': 'weight decay multiplier of 1-D parameters (MMEngine)',
    'bias_lr_mult': 'lr multiplier of biases (MMEngine)',
    'dcn_offset_lr_mult': 'lr multiplier of DCN conv_offset layers (MMEngine)',
    'bypass_duplicate': 'accepted (MMEngine); shared parameters are always '
                        'grouped once',
}
KEYS.update(MMENGINE_KEYS)
DECAY_TYPES = ('layer_wise', 'stage_wise')
CUSTOM_KEY_FIELDS = ('lr_mult', 'decay_mult')


@dataclass(frozen=True)
class LayerDecaySettings:
    """Validated settings; build with :meth:`from_paramwise_cfg`."""
    num_layers: Optional[int] = None
    layer_decay_rate: float = 1.0
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

    def __post_init__(self):
        """Built directly (``LayerDecaySettings(layer_decay_rate=0.9)``),
        the values are checked as ``paramwise_cfg`` values are."""
        _validate_num_layers(self.num_layers)
        check_number('paramwise_cfg.layer_decay_rate', self.layer_decay_rate,
                     POSITIVE if self.reproduce else UNIT_OPEN_CLOSED)
        if self.decay_type is not None and self.decay_type not in DECAY_TYPES:
            raise ValueError(
                f'paramwise_cfg.decay_type={self.decay_type!r} is not '
                f'supported; valid: {DECAY_TYPES}')
        _validate_depths(None if self.depths is None else list(self.depths))
        if self.backbone_name is not None and \
                not isinstance(self.backbone_name, str):
            raise TypeError('paramwise_cfg.backbone_name must be a str, got '
                            f'{self.backbone_name!r}')
        if self.layer_regex is not None:
            RegexLayerRule(self.layer_regex)
        _validate_custom_keys(self.custom_keys)
        for key in ('dcn_lr_mul', 'offset_lr_scale'):
            check_number(f'paramwise_cfg.{key}', getattr(self, key), POSITIVE)
        _validate_freeze(self.freeze_backbone)
        for key, value in self.mmengine_mults.items():
            if key not in MMENGINE_KEYS:
                raise ValueError(f'mmengine_mults has unknown key {key!r}')
            check_number(f'paramwise_cfg.{key}', value, NON_NEGATIVE)
        for key in ('bypass_duplicate', 'dino_head', 'backbone_small_lr'):
            _validate_bool(key, getattr(self, key))
        if not isinstance(self.towers, tuple) or not all(
                isinstance(t, Tower) for t in self.towers):
            raise TypeError('towers must be a tuple of Tower (build them '
                            'from paramwise_cfg.towers with '
                            'LayerDecaySettings.from_paramwise_cfg)')

    @classmethod
    def from_paramwise_cfg(cls, cfg: Optional[Mapping]) -> 'LayerDecaySettings':
        if cfg is not None and not isinstance(cfg, Mapping):
            raise TypeError(
                'optim_wrapper.paramwise_cfg must be a dict of keys such as '
                f'layer_decay_rate and num_layers, got a {type(cfg).__name__}'
                f': {cfg!r}')
        cfg = dict(cfg or {})
        _check_known_keys(cfg)
        reproduce = _validate_reproduce(cfg)
        decay_type = cfg.get('decay_type')
        if decay_type is not None and decay_type not in DECAY_TYPES:
            raise ValueError(
                f'paramwise_cfg.decay_type={decay_type!r} is not supported; '
                f'valid: {DECAY_TYPES}')
        backbone_name = cfg.get('backbone_name')
        if backbone_name is not None and not isinstance(backbone_name, str):
            raise TypeError('paramwise_cfg.backbone_name must be a str, got '
                            f'{backbone_name!r}')
        multipliers = {
            key: check_number(f'paramwise_cfg.{key}', cfg.get(key, 1.0),
                              POSITIVE)
            for key in ('dcn_lr_mul', 'offset_lr_scale')}
        layer_regex = cfg.get('layer_regex')
        if layer_regex is not None:  # checked even where a model method wins
            RegexLayerRule(layer_regex)

        settings = cls(
            num_layers=_validate_num_layers(cfg.get('num_layers')),
            layer_decay_rate=_validate_rate(cfg, reproduce),
            decay_type=decay_type,
            depths=_validate_depths(cfg.get('depths')),
            backbone_name=backbone_name,
            layer_regex=layer_regex,
            custom_keys=_validate_custom_keys(cfg.get('custom_keys', {})),
            freeze_backbone=_validate_freeze(cfg.get('freeze_backbone')),
            mmengine_mults={
                key: check_number(f'paramwise_cfg.{key}', cfg[key],
                                  NON_NEGATIVE)
                for key in MMENGINE_KEYS
                if key != 'bypass_duplicate' and cfg.get(key) is not None},
            bypass_duplicate=_validate_bool('bypass_duplicate',
                                            cfg.get('bypass_duplicate',
                                                    False)),
            dino_head=_validate_bool('dino_head',
                                     cfg.get('dino_head', False)),
            backbone_small_lr=_validate_bool(
                'backbone_small_lr', cfg.get('backbone_small_lr', False)),
            towers=validate_towers(cfg.get('towers')),
            freeze_mlp=_validate_bool('freeze_mlp',
                                      cfg.get('freeze_mlp', False)),
            freeze_llm=_validate_bool('freeze_llm',
                                      cfg.get('freeze_llm', False)),
            unfreeze_vit_layers=_validate_int(
                'unfreeze_vit_layers', cfg.get('unfreeze_vit_layers', 0)),
            unfreeze_lm_head=_validate_bool(
                'unfreeze_lm_head', cfg.get('unfreeze_lm_head', False)),
            reproduce=reproduce,
            **multipliers)
        _check_structure_has_a_rate(cfg)
        return settings


#: per reproduction preset, the keys its original reads
PRESET_KEYS = {'mmseg': ('num_layers', 'layer_decay_rate', 'decay_rate',
                         'decay_type', 'reproduce'),
               'internvl_segmentation': ('num_layers', 'layer_decay_rate',
                                         'reproduce')}
PRESET_KEYS.update({preset: (
    'num_layers', 'layer_decay_rate', 'depths', 'backbone_small_lr',
    'dino_head', 'offset_lr_scale', 'reproduce') for preset in (
        'internimage_segmentation', 'internimage_detection')})
PRESET_KEYS['internimage_classification'] = (
    'layer_decay_rate', 'dcn_lr_mul', 'freeze_backbone', 'reproduce')


def _validate_reproduce(cfg: Mapping) -> Optional[str]:
    """``paramwise_cfg.reproduce``: a known preset, next to only the keys
    its original reads."""
    preset = cfg.get('reproduce')
    if preset is None:
        return None
    if preset not in PRESET_KEYS:
        raise ValueError(f'paramwise_cfg.reproduce={preset!r} is not a '
                         f'preset; valid: {tuple(PRESET_KEYS)}')
    other = [k for k in cfg if k not in PRESET_KEYS[preset]]
    if other:
        raise ValueError(
            f'paramwise_cfg.reproduce={preset!r} reproduces a constructor '
            f'that reads only {PRESET_KEYS[preset][:-1]}; {other} would be '
            'ignored by it. Remove them, or leave reproduce out')
    return preset


def _check_known_keys(cfg: Mapping) -> None:
    for key in cfg:
        if key in KEYS:
            continue
        close = difflib.get_close_matches(key, KEYS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ''
        raise ValueError(
            f'Unknown key paramwise_cfg.{key}.{hint} Valid keys: '
            f'{", ".join(KEYS)}')


#: keys that only shape layer decay: without a rate they change nothing
STRUCTURAL_KEYS = ('num_layers', 'depths', 'layer_regex')


def _check_structure_has_a_rate(cfg: Mapping) -> None:
    """``num_layers`` (or ``depths``, ``layer_regex``) without any
    ``layer_decay_rate`` trains every layer at the base lr: almost surely
    a forgotten rate.  An explicit ``layer_decay_rate=1.0`` (InternVL's
    head-tuning configs) is a choice and is accepted."""
    if 'layer_decay_rate' in cfg or 'decay_rate' in cfg:
        return
    given = [k for k in STRUCTURAL_KEYS if cfg.get(k) is not None]
    if given:
        raise ValueError(
            f'paramwise_cfg.{given[0]} is set but layer_decay_rate is not: '
            'without a rate below 1 every layer trains at the base lr and '
            f'{given[0]} changes nothing. Add layer_decay_rate (e.g. 0.9), '
            f'or layer_decay_rate=1.0 to say that no decay is meant')


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


def _validate_rate(cfg: Mapping, reproduce=None) -> float:
    """``layer_decay_rate`` or its alias ``decay_rate``."""
    rate_keys = [k for k in ('layer_decay_rate', 'decay_rate') if k in cfg]
    if len(rate_keys) == 2 and cfg['layer_decay_rate'] != cfg['decay_rate']:
        raise ValueError(
            'paramwise_cfg.layer_decay_rate and paramwise_cfg.decay_rate '
            'are aliases but differ: '
            f"{cfg['layer_decay_rate']} != {cfg['decay_rate']}; give one")
    if not rate_keys:
        return 1.0
    # an original constructor checks no range (MMSeg's own test uses 2)
    return check_number(f'paramwise_cfg.{rate_keys[0]}', cfg[rate_keys[0]],
                        POSITIVE if reproduce else UNIT_OPEN_CLOSED)


def _validate_bool(key: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f'paramwise_cfg.{key} must be True or False, got '
                        f'{value!r}')
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
        if not isinstance(mults, Mapping):
            raise TypeError(f'{where} must be a dict with keys '
                            f'{CUSTOM_KEY_FIELDS}, got {mults!r}')
        unknown = sorted(set(mults) - set(CUSTOM_KEY_FIELDS))
        if unknown:
            raise ValueError(f'{where} has unknown keys {unknown}; valid: '
                             f'{CUSTOM_KEY_FIELDS}')
        checked[key] = {name: check_number(f'{where}.{name}', value,
                                           NON_NEGATIVE)
                        for name, value in mults.items()}
    return checked
