"""Which towers a model has when ``paramwise_cfg.towers`` does not say:
the towers a transformers model declares through its sub-configs
(:mod:`.declared_towers`), else the known layouts of :data:`KNOWN_LAYOUTS`
(also under a prefix: PEFT's ``base_model.model.``, a wrapper's attribute
such as ``vlm.``).  The top-level ``layer_decay_rate``, ``num_layers``,
``depths`` and ``layer_regex`` apply inside the vision tower; projector,
language model and any other tower get the base lr.

A tower may sit inside another (Qwen-VL's projector ``model.visual.merger``
inside its vision tower): each parameter belongs to the innermost tower
holding it (:func:`~internvl_optim.core.model_view.region_of`).
"""
from dataclasses import replace
from typing import Mapping, Optional, Sequence, Tuple

from .declared_towers import (declared_towers, is_vision_tower,
                              towers_example)
from .tower_schema import Tower

#: (layout, vision tower, projector, language model): module paths
KNOWN_LAYOUTS = (
    ('InternVL chat', 'vision_model', 'mlp1', 'language_model'),
    ('transformers InternVL / LLaVA', 'model.vision_tower',
     'model.multi_modal_projector', 'model.language_model'),
    ('LLaVA', 'vision_tower', 'multi_modal_projector', 'language_model'),
)
#: what PEFT puts in front of every name
PEFT_PREFIX = 'base_model.model.'
def declared_layout(modules: Mapping, rate: float
                    ) -> Optional[Tuple[str, Tuple[Tower, ...]]]:
    """The towers a transformers model declares (:mod:`.declared_towers`)
    as ``(layout, towers)``, every vision tower at the top-level rate
    (filled in by :func:`find_towers`), else None.  A multimodal model that declares no
    vision tower is refused below rate 1: layer decay would fall on its
    language model."""
    found = declared_towers(modules)
    if found is None:
        return None
    root, paths = found
    if not any(map(is_vision_tower, paths)):
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
        0 if is_vision_tower(n) else 1 if n.startswith('projector') else
        2 if n == 'language' else 3))
    towers = [Tower(name, paths[name],
                    takes_backbone_keys=is_vision_tower(name))
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




def find_towers(modules: Mapping, settings
                ) -> Tuple[Tuple[Tower, ...], Optional[str]]:
    """``(towers, layout)``: the configured towers, else (without
    ``backbone_name``) the declared or recognised ones with the vision
    tower at the top-level rate; ``layout`` names what was recognised
    (None: nothing, or towers given)."""
    towers = settings.towers
    if towers or settings.backbone_name is not None:
        return towers, None
    found = declared_layout(modules, settings.layer_decay_rate) or \
        recognise_layout(list(modules), settings.layer_decay_rate)
    if found is None:
        return (), None
    layout, towers = found
    return tuple(replace(t, layer_decay_rate=settings.layer_decay_rate)
                 if t.takes_backbone_keys else t for t in towers), layout
