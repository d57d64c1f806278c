"""The towers a transformers multimodal model declares through its config.

A transformers VLM is built from one config holding a sub-config per tower
(``vision_config``, ``text_config``, and ``qformer_config``,
``audio_config``, ...); each tower module keeps the very sub-config object
it was built from as its ``config``.  So the towers are found by identity,
whatever the attributes are called (``model.visual``, ``model.vision_tower``,
``model.vision_model``; ``model.language_model``, ``model.text_model``):

* a tower: the outermost module whose ``config`` is that sub-config (the
  vision tower is ``vision``, the text one ``language``, every other
  sub-config a tower named after it: ``qformer``, ``audio``, ...);
* a model may have several vision towers, and each is a vision tower: a
  further sub-config named as one (DeepSeek-VL hybrid's
  ``high_res_vision_config``: ``vision_high_res``), and a further module
  built from the same vision sub-config that holds blocks of its own
  (Video-LLaVA's ``image_tower`` beside its ``video_tower``:
  ``vision_2``);
* the projector, whatever maps vision into the language model's space: a
  module beside the towers under their common parent that is neither
  (``model.connector``, ``model.multi_modal_projector``), else a direct
  child of the vision tower that changes the width to the language model's
  ``hidden_size`` (Qwen-VL's and GLM-4V's ``visual.merger``);
* ``lm_head`` (``get_output_embeddings()``) stays outside the towers: the
  base lr.

Pure PyTorch: configs are read by attribute, transformers is not imported.
"""
from typing import Dict, List, Mapping, Optional, Tuple

from torch import nn

#: sub-config attribute -> tower name (others: the attribute without
#: ``_config``)
TOWER_NAMES = {'vision_config': 'vision', 'text_config': 'language'}
#: sub-configs that do not make a tower (a detector's or segmenter's
#: ``backbone_config`` is its backbone, read by the layer rules)
NOT_TOWERS = ('backbone_config', 'quantization_config')


def config_of(module: nn.Module):
    """The ``config`` a transformers module keeps (a plain attribute: read
    from ``__dict__``, which costs nothing for the many modules without
    one), else None."""
    return vars(module).get('config')


def sub_configs(config) -> Dict[str, object]:
    """``{attribute: sub-config}`` of a composite config: attributes ending
    in ``_config`` that are configs themselves (they have ``to_dict``); a
    vision encoder-decoder's ``encoder`` and ``decoder`` as its vision and
    text configs."""
    if type(config).__name__.startswith('VisionEncoderDecoder'):
        return {'vision_config': config.encoder,
                'text_config': config.decoder}
    found = {}
    for attr in sorted(vars(config)) if hasattr(config, '__dict__') else ():
        if attr.endswith('_config') and attr not in NOT_TOWERS:
            value = getattr(config, attr, None)
            if value is not None and callable(getattr(value, 'to_dict',
                                                       None)):
                found[attr] = value
    return found


def tower_name(attr: str) -> str:
    """The tower a sub-config attribute makes: ``vision_config`` ->
    ``vision``, ``text_config`` -> ``language``, a further vision config
    ``high_res_vision_config`` -> ``vision_high_res``, any other
    ``x_config`` -> ``x``.

    >>> [tower_name(a) for a in ('vision_config', 'high_res_vision_config',
    ...                          'audio_config')]
    ['vision', 'vision_high_res', 'audio']
    """
    if attr in TOWER_NAMES:
        return TOWER_NAMES[attr]
    stem = attr[:-len('_config')]
    if stem.endswith('_vision'):
        return 'vision_' + stem[:-len('_vision')]
    return stem


def is_vision_tower(name: str) -> bool:
    """A tower name of a vision tower (``vision``, ``vision_2``,
    ``vision_high_res``)."""
    return name == 'vision' or name.startswith('vision_')


def _holds_blocks(module: nn.Module) -> bool:
    """Whether a list of two or more blocks is inside ``module``."""
    return any(isinstance(m, nn.ModuleList) and len(m) >= 2
               for m in module.modules())


def _all_outermost(modules: Mapping[str, nn.Module], root: str,
                   config) -> List[str]:
    """Every module under ``root`` whose ``config`` is ``config`` and that
    no other such module holds, in model order."""
    found: List[str] = []
    for name, module in modules.items():
        if name != root and (not root or name.startswith(root + '.')) and \
                config_of(module) is config and \
                not any(name.startswith(f + '.') for f in found):
            found.append(name)
    return found


def _outermost(modules: Mapping[str, nn.Module], root: str,
               config) -> Optional[str]:
    """The first module under ``root`` (model order: parents first) whose
    ``config`` is ``config``."""
    for name, module in modules.items():
        if name != root and (not root or name.startswith(root + '.')) and \
                config_of(module) is config:
            return name
    return None


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _linears(module: nn.Module) -> List[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _common_parent(a: str, b: str) -> str:
    parts = []
    for x, y in zip(a.split('.'), b.split('.')):
        if x != y:
            break
        parts.append(x)
    return '.'.join(parts)


def language_widths(config) -> Tuple[int, ...]:
    """The widths a projector maps vision features to, as the config
    declares them: the language model's ``hidden_size``, and the vision
    config's ``out_hidden_size`` (Qwen2.5-VL and later) or, beside an
    ``embed_dim``, its ``hidden_size`` (Qwen2-VL)."""
    subs = sub_configs(config)
    vision, text = subs['vision_config'], subs['text_config']
    widths = [getattr(text, 'hidden_size', None),
              getattr(vision, 'out_hidden_size', None)]
    embed_dim = getattr(vision, 'embed_dim', None)
    if isinstance(embed_dim, int) and \
            getattr(vision, 'hidden_size', embed_dim) != embed_dim:
        widths.append(vision.hidden_size)
    return tuple(w for w in widths if isinstance(w, int))


def find_projectors(modules: Mapping[str, nn.Module], towers: Mapping[str, str],
                    widths: Tuple[int, ...], skip: Tuple[str, ...] = ()
                    ) -> List[str]:
    """Module paths of the projector(s) (see the module docstring)."""
    vision, language = towers.get('vision'), towers.get('language')
    if vision is None or language is None:
        return []
    parent = _common_parent(vision, language)
    taken = set(towers.values()) | set(skip)
    prefix = parent + '.' if parent else ''
    # (a module beside them may hold a tower of its own: Idefics2's
    # connector holds the perceiver)
    beside = [name for name, module in modules.items()
              if name.startswith(prefix) and name != parent
              and '.' not in name[len(prefix):]
              and name not in taken
              and not vision.startswith(name + '.')
              and not language.startswith(name + '.')
              and _has_parameters(module)]
    if beside:
        return beside
    # inside the vision tower: a direct child that maps to the LLM's width
    # (which differs from the tower's own, or the child changes the width)
    own = getattr(getattr(modules[vision], 'config', None), 'hidden_size',
                  None)
    def maps_to_language(module: nn.Module) -> bool:
        linears = _linears(module)
        return bool(linears) and linears[-1].out_features in widths and (
            linears[-1].out_features != own or
            linears[0].in_features != linears[-1].out_features)

    inside = []
    for name, module in modules.items():
        if not name.startswith(vision + '.') or \
                '.' in name[len(vision) + 1:]:
            continue
        if isinstance(module, (nn.ModuleList, nn.ModuleDict)):
            # a list of mergers, each mapping into the language model
            # (Qwen3-VL's and Qwen3-Omni's deep-stack mergers, fed by
            # chosen blocks): a projector, never blocks of the tower
            items = list(module.children())
            if items and all(maps_to_language(i) for i in items):
                inside.append(name)
        elif maps_to_language(module):
            inside.append(name)
    return inside


def declared_backbone(modules: Mapping[str, nn.Module], root: str = ''
                      ) -> Optional[str]:
    """The path of the backbone a transformers detector or segmenter
    declares by its ``backbone_config`` (DETR, Deformable DETR, RT-DETR,
    Grounding DINO, UperNet, Mask2Former): the outermost module under
    ``root`` built from that very config, or, for a timm backbone
    (``TimmBackboneConfig``: DETR's default ``resnet50``), the outermost
    timm module under ``root``.  None when the module at ``root`` declares
    no backbone config, or no module was built from it."""
    module = modules.get(root)
    config = config_of(module) if module is not None else None
    backbone = getattr(config, 'backbone_config', None) \
        if config is not None else None
    if backbone is None or not callable(getattr(backbone, 'to_dict', None)):
        return None
    found = _outermost(modules, root, backbone)
    if found is not None or 'Timm' not in type(backbone).__name__:
        return found
    for name, candidate in modules.items():
        if name != root and (not root or name.startswith(root + '.')) and \
                type(candidate).__module__.startswith('timm.'):
            return name
    return None


def declared_towers(modules: Mapping[str, nn.Module]
                    ) -> Optional[Tuple[str, Dict[str, str]]]:
    """``(root class, {tower name: module path})`` for the outermost
    module whose config declares sub-configs (a vision, text, protein,
    audio, ... one; not a ``backbone_config``): each
    sub-config built as a module is a tower (without a vision sub-config,
    the backbone declared by ``backbone_config`` is the vision tower: a
    text-conditioned detector, whose detection transformer stays outside
    the towers), and with both a vision and a
    language tower the projector is ``projector`` (a second one
    ``projector_2``, ...).  None for a model without such a config, or
    whose only sub-configs are neither vision nor text and build no module
    (settings, as Sapiens2's ``head_config``).  The
    caller decides what a model without a vision tower means."""
    for root, module in modules.items():
        config = config_of(module)
        if config is None or not sub_configs(config):
            continue
        towers = {}
        for attr, sub in sub_configs(config).items():
            name = tower_name(attr)
            paths = _all_outermost(modules, root, sub)
            if paths:
                towers[name] = paths[0]
            if is_vision_tower(name):  # a further tower of the same config
                more = [p for p in paths[1:] if _holds_blocks(modules[p])]
                for i, path in enumerate(more):
                    towers[f'{name}_{i + 2}'] = path
        backbone = declared_backbone(modules, root)
        if 'vision' not in towers and backbone is not None:
            # a text-conditioned detector (Grounding DINO): the declared
            # image backbone is its vision tower
            towers['vision'] = backbone
        if not towers and not any(a in TOWER_NAMES
                                  for a in sub_configs(config)):
            continue  # settings only (Sapiens2's head_config): no towers
        if 'vision' not in towers or 'language' not in towers or \
                towers['vision'] == backbone:
            # (a detector's encoder and decoder are no projector: they stay
            # outside the towers, at the base lr as heads)
            return type(module).__name__, towers
        heads = _output_embeddings(module, modules)
        for i, path in enumerate(find_projectors(
                modules, towers, language_widths(config), heads)):
            towers['projector' if i == 0 else f'projector_{i + 1}'] = path
        return type(module).__name__, towers
    return None


def _output_embeddings(model: nn.Module,
                       modules: Mapping[str, nn.Module]) -> Tuple[str, ...]:
    """The path of the model's declared output embeddings (``lm_head``)."""
    get = getattr(model, 'get_output_embeddings', None)
    try:
        head = get() if callable(get) else None
    except (AttributeError, NotImplementedError):
        head = None
    return tuple(name for name, m in modules.items() if m is head)


def towers_example(paths: Mapping[str, str], modules: Mapping = ()) -> str:
    """A ``paramwise_cfg.towers`` entry to write for the towers found
    (``{name: module path}``), the first decayed: text for messages."""
    if not paths:
        top = [n for n in modules if n and '.' not in n][:2] or ['MODULE']
        paths = {f'tower{i}': n for i, n in enumerate(top)}
    entries = [f"{name}=dict(module='{path}'"
               + (', layer_decay_rate=0.9' if i == 0 else '') + ')'
               for i, (name, path) in enumerate(paths.items())]
    return f'towers=dict({", ".join(entries)})'
