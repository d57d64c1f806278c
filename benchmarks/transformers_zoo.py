#!/usr/bin/env python
"""Every transformers model type against the rules, as ``timm_zoo.py`` does
for timm: each built tiny from its default config (depths cut to 3) on the
meta device, nothing downloaded.

Vision encoders (the base model of every image-classification type, else
the image feature extractor or backbone class of every other vision type,
as the ``backbone`` of a model with a head) are grouped at rate 0.5; the table
gives the rule that placed the layers, ``N`` against the depth the config
declares (``num_hidden_layers`` or ``sum(depths)``), and a status:
``declared`` (N is the declared depth), ``other rule`` (N differs: the
model declares something else, e.g. timm's grouping or a stage count),
``module order`` (the CNN fallback), ``refused``.

Image-text-to-text models (VLMs): ``towers`` (recognised, with the towers),
``refused`` (with the start of the message), ``one model`` (the config
declares no tower: decayed along its one block list, as a text model or a
single multimodal encoder), ``silent`` (towers declared but neither
recognised nor refused: what this package must never do).

Vision task models of every other type (detectors, segmenters, depth
estimators, mask generators, zero-shot models) are grouped whole, as a
user passes them: the rules find their backbone (a declared
``backbone_config``) or towers; the same checks.

    python benchmarks/transformers_zoo.py [--only vlm|encoders|tasks]
        [--types a b] [--no-run]
"""
import argparse
import contextlib
import inspect
import copy
import io
import os.path as osp
import re
import sys
import warnings
from collections import Counter

import torch
from torch import nn

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

from internvl_optim import LayerDecaySettings, build_param_groups  # noqa
from internvl_optim.analysis.run_order import check_run_order  # noqa
from internvl_optim.analysis.timm_oracle import import_timm  # noqa
from internvl_optim.core.backbone_probe import declared_depths  # noqa
from internvl_optim.core.declared_towers import declared_towers  # noqa

DEPTH_KEYS = ('num_hidden_layers', 'depth', 'num_layers')


def tiny(config, cut_lists=False):
    """Depths cut to 3 in the config and its sub-configs; with
    ``cut_lists``, a per-layer list (``layer_types``) cut with it, keeping
    its last entry (the full attention layer a hybrid stack ends with)."""
    subs = [config] + [getattr(config, a) for a in list(vars(config))
                       if a.endswith('_config') and
                       hasattr(getattr(config, a), 'to_dict')]
    for sub in subs:
        if sub is not config and (getattr(sub, 'out_indices', None) or
                                  getattr(sub, 'out_features', None)):
            continue  # a backbone sub-config: its outputs name its layers
            # (a top-level one that breaks is built uncut, see build)
        # (an alias of another field, as ConvNeXt's num_hidden_layers of
        # num_stages, is left alone: cutting it breaks the config)
        aliases = getattr(type(sub), 'attribute_map', {}) or {}
        for key in (k for k in DEPTH_KEYS if k not in aliases):
            value = getattr(sub, key, None)
            if isinstance(value, int) and not isinstance(value, bool) \
                    and value > 3:
                setattr(sub, key, 3)
                for attr, indices in list(vars(sub).items()):
                    if ('indices' in attr or 'indexes' in attr) and \
                            isinstance(indices, list) and all(
                                isinstance(i, int) for i in indices):
                        # layers named by index (Mllama's intermediate
                        # layers): those left
                        setattr(sub, attr, [i for i in indices if i < 3]
                                or indices[:1] and [0])
                for attr, per_layer in list(vars(sub).items()) * cut_lists:
                    if isinstance(per_layer, list) and \
                            len(per_layer) == value:
                        setattr(sub, attr, per_layer[:2] + per_layer[-1:])
                if cut_lists and getattr(sub, 'num_kv_shared_layers', 0):
                    sub.num_kv_shared_layers = 0  # (Gemma 3n)
    return config


def timm_backed_models():
    """Let transformers build its timm-backed models (DETR's default
    backbone, FastVLM, Gemma 3n, ...): timm is imported with the
    torchvision stand-in (torchvision cannot be imported beside this torch),
    and transformers' check for torchvision, which only these models' image
    processors need, is answered yes."""
    import_timm()
    from transformers.utils import import_utils
    import transformers.utils
    available = lambda: True  # noqa: E731
    import_utils.is_timm_available = available
    transformers.utils.is_timm_available = available
    import_utils.BACKENDS_MAPPING['timm'] = (
        available, import_utils.BACKENDS_MAPPING['timm'][1])


def build(transformers, model_type, class_name, device='meta'):
    cls = getattr(transformers, class_name, None)
    if cls is None:
        raise RuntimeError(f'{class_name} not in transformers')
    config = transformers.AutoConfig.for_model(model_type)
    wanted = getattr(cls, 'config_class', None)
    if isinstance(wanted, type) and not isinstance(config, wanted):
        # a vision model of a multimodal type (Llama 4's): its sub-config
        config = next((getattr(config, a) for a in vars(config)
                       if isinstance(getattr(config, a), wanted)), config)
    for key, sub_class in (getattr(type(config), 'sub_configs', None)
                           or {}).items():
        if getattr(config, key, 0) is None and key in ('vision_config',
                                                       'audio_config') \
                and sub_class.__name__ != 'AutoConfig':
            # a tower the default config leaves out (Gemma 4's vision)
            setattr(config, key, sub_class())
    try:
        return _build(cls, tiny(copy.deepcopy(config)), device)
    except Exception:  # noqa: BLE001  (Gemma 4: its layer_types too long)
        pass
    try:
        return _build(cls, tiny(copy.deepcopy(config), cut_lists=True),
                      device)
    except Exception:  # noqa: BLE001  (a backbone whose outputs name its
        # layers: ViTPose's out_indices) at its own depth
        return _build(cls, config, device)


def _build(cls, config, device):
    torch.manual_seed(0)
    with torch.device(device), contextlib.redirect_stdout(io.StringIO()):
        return cls(config)


def plan(model):
    messages = []
    groups = build_param_groups(
        model, LayerDecaySettings(layer_decay_rate=0.5), 1.0, 0.05,
        warn=messages.append)
    return groups, messages


def encoder_sources(auto):
    """``{type: class name}`` of every vision encoder: the classifier of
    each image-classification type, else the image feature extractor (a
    base model), else the backbone class."""
    sources = {}
    for mapping in (auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
                    auto.MODEL_FOR_IMAGE_MAPPING_NAMES,
                    auto.MODEL_FOR_BACKBONE_MAPPING_NAMES):
        for model_type, class_name in mapping.items():
            if isinstance(class_name, (list, tuple)):
                class_name = class_name[0]
            sources.setdefault(model_type, class_name)
    return sources


#: a parameter that is a token or position table by its own name (the
#: last part), or an ``nn.Embedding`` named as a position table; relative
#: position tables (Swin's bias tables, SAM's ``rel_pos_h/w``) are decayed
#: by design (see the docs' rule) and not listed
TOKEN = re.compile(r'(^|_)token(s)?$')
POSITION = re.compile(r'^(?!relative_|rel_pos_)(.*_)?(pos|position|'
                      r'positional)(_|$)|^pos_embed')


#: the largest encoder (parameters) built with weights for the run-order check
MAX_RUN = 600_000_000


def pixel_input(config):
    """A batch of one image (or clip) of the size the config declares
    (or its vision sub-config: SAM's 1024)."""
    vision = getattr(config, 'vision_config', None)
    size = getattr(config, 'image_size', None) or getattr(
        vision, 'image_size', None) or 224
    size = size if isinstance(size, (list, tuple)) else (size, size)
    if isinstance(size[0], (list, tuple)):
        size = size[0]
    channels = getattr(config, 'num_channels', 3)
    frames = getattr(config, 'num_frames', None)
    shape = (1, channels) + tuple(size)
    if isinstance(frames, int):
        shape = (1, frames) + shape[1:]
    return torch.randn(shape)


def run_once(base, built):
    """One forward pass of the encoder on an image (ImageGPT: on pixel
    tokens; a timm model: positionally)."""
    config = built.config
    if getattr(config, 'model_type', '') == 'imagegpt':
        return base(input_ids=torch.randint(config.vocab_size - 1, (1, 64)))
    parameters = inspect.signature(base.forward).parameters
    grid = next((p for p in ('grid_thw', 'image_grid_thw')
                 if p in parameters), None)
    if 'spatial_shapes' in parameters:  # SigLIP 2: patches of one image
        vision = getattr(config, 'vision_config', None) or config
        patch, side = vision.patch_size, 4
        patches = torch.randn(1, side * side,
                              vision.num_channels * patch * patch)
        return base(pixel_values=patches,
                    pixel_attention_mask=torch.ones(1, side * side,
                                                    dtype=torch.long),
                    spatial_shapes=torch.tensor([[side, side]]))
    if 'pixel_position_ids' in parameters:  # Gemma 4: patches and (x, y)
        patch = config.patch_size
        side = 2 * (getattr(config, 'pooling_kernel_size', 1) or 1)
        ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side),
                                indexing='ij')
        positions = torch.stack([xs.flatten(), ys.flatten()], -1)[None]
        patches = torch.rand(1, side * side, 3 * patch * patch)
        return base(pixel_values=patches, pixel_position_ids=positions)
    if grid is not None:  # Qwen-VL-style: flattened patches
        patch = getattr(config, 'patch_size', 14)
        frames = getattr(config, 'temporal_patch_size', 1) or 1
        channels = getattr(config, 'in_channels',
                           getattr(config, 'in_chans', 3))
        side = 2 * (getattr(config, 'spatial_merge_size', 2) or 1)
        patches = torch.randn(side * side, channels * frames * patch * patch)
        first = next(iter(parameters))
        return base(**{first: patches,
                       grid: torch.tensor([[1, side, side]])})
    if 'aspect_ratio_ids' in parameters:  # Mllama: tiles of one image
        tiles = config.max_num_tiles
        size = config.image_size
        return base(pixel_values=torch.randn(1, 1, tiles, config.num_channels,
                                             size, size),
                    aspect_ratio_ids=torch.tensor([[1]]),
                    aspect_ratio_mask=torch.ones(1, 1, tiles,
                                                 dtype=torch.long))
    x = pixel_input(config)
    if not hasattr(base, 'config') or \
            next(iter(parameters)) == 'hidden_states':
        return base(x)  # a timm model inside a wrapper; Florence-2's DaViT
    return base(pixel_values=x)


def static_checks(model, plan_, encoder):
    """Names failing the checks that need no forward: a norm, bias, 1-D
    parameter, token or position table with weight decay; the input
    embeddings not at layer 0."""
    named = dict(model.named_parameters())
    modules = dict(model.named_modules())
    wd = []
    for p in plan_.params:
        owner, _, leaf = p.name.rpartition('.')
        table = POSITION.search(leaf) or TOKEN.search(leaf) or (
            isinstance(modules.get(owner), nn.Embedding)
            and POSITION.search(owner.rpartition('.')[2]))
        if p.weight_decay and (named[p.name].ndim <= 1 or table):
            wd.append(p.name)
    embeddings = getattr(encoder, 'get_input_embeddings', None)
    try:
        embedding = embeddings() if embeddings else None
    except Exception:  # noqa: BLE001  (not implemented by the model)
        embedding = None
    names = {id(p): n for n, p in model.named_parameters()}
    not_zero = []
    if isinstance(embedding, nn.Module):
        ids = {p.name: p.layer_id for p in plan_.params}
        not_zero = [names[id(p)] for p in embedding.parameters()
                    if ids.get(names.get(id(p)), 0) != 0]
    return wd, not_zero


def encoder_row(transformers, model_type, class_name, run=True):
    """(type, status, rule, N, declared, checks); with ``run`` the model is
    built with weights on the CPU and run once on an image to check the
    ids against the order its modules run in."""
    try:
        built = build(transformers, model_type, class_name)
        if run and sum(p.numel() for p in built.parameters()) > MAX_RUN:
            run = False  # too large to allocate: checked without the run
        if run:
            built = build(transformers, model_type, class_name, 'cpu')
        base = built
        if class_name.endswith('ForImageClassification'):
            prefix = getattr(built, 'base_model_prefix', '')
            base = getattr(built, prefix, None) if prefix else None
            if not isinstance(base, nn.Module):
                base = built  # (a classifier without a base model)
        model = nn.Module()
        model.backbone = base
        model.head = nn.Linear(2, 2)
    except Exception as err:  # a default config that does not build
        return model_type, 'build failed', str(err).strip()[:60], '', '', ''
    depths = declared_depths(base)
    declared = sum(depths) if depths else None
    try:
        groups, messages = plan(model)
    except ValueError as err:
        return model_type, 'refused', str(err)[:60], '', declared, ''
    rule = groups.layer_rule
    if rule.startswith('module order'):
        status = 'module order'
    elif declared == groups.num_layers:
        status = 'declared'
    else:
        status = 'other rule'
    if messages:
        status += ' (warned)'
    return (model_type, status, rule[:48], groups.num_layers, declared,
            checks(model, built, groups, run))


def checks(model, built, groups, run, encoder=None):
    """What fails the checks, in a few words ('ok': nothing); the run
    calls ``encoder`` (default: ``model.backbone``)."""
    encoder = encoder or model.backbone
    wd, not_zero = static_checks(model, groups, encoder)
    found = []
    if wd:
        found.append(f'decayed: {wd[0]}' + (f' +{len(wd) - 1}'
                                            if len(wd) > 1 else ''))
    if not_zero:
        found.append(f'embeddings not at 0: {not_zero[0]}')
    if not run:
        found.append('not run: too large')
    else:
        try:
            order = check_run_order(model, groups.groups,
                                    lambda m: run_once(encoder, built))
        except Exception as err:  # noqa: BLE001
            found.append(f'not run: {str(err).strip()[:40]}')
        else:
            if order:
                found.append(f'order: {order[0]}' + (
                    f' +{len(order) - 1}' if len(order) > 1 else ''))
    return '; '.join(found) or 'ok'


def vision_tower_checks(model):
    """The checks of the encoders on a VLM's vision tower alone: rebuilt
    with weights from its own config, grouped as the backbone of a model
    with a head, run once on an image."""
    found = declared_towers(dict(model.named_modules()))
    path = found and found[1].get('vision')
    if not path:
        return ''
    tower = model.get_submodule(path)
    config = getattr(tower, 'config', None)
    if config is None or not hasattr(type(tower), 'config_class'):
        return 'not run: no config of its own'
    if sum(p.numel() for p in tower.parameters()) > MAX_RUN:
        return 'not run: too large'
    try:
        built = _build(type(tower), config, 'cpu')
    except Exception as err:  # noqa: BLE001
        return f'not built alone: {str(err).strip()[:40]}'
    alone = nn.Module()
    alone.backbone = built
    alone.head = nn.Linear(2, 2)
    try:
        groups, _ = plan(alone)
    except ValueError as err:
        return f'refused alone: {str(err)[:40]}'
    return checks(alone, built, groups, True)


#: the task models whose types are no vision encoder above: detectors,
#: segmenters, depth estimators, mask generators, zero-shot models
TASKS = ('OBJECT_DETECTION', 'SEMANTIC_SEGMENTATION', 'UNIVERSAL_SEGMENTATION',
         'INSTANCE_SEGMENTATION', 'DEPTH_ESTIMATION', 'VIDEO_CLASSIFICATION',
         'MASK_GENERATION', 'ZERO_SHOT_OBJECT_DETECTION',
         'ZERO_SHOT_IMAGE_CLASSIFICATION', 'KEYPOINT_DETECTION')


def task_sources(auto, skip):
    sources = {}
    for task in TASKS:
        for model_type, class_name in getattr(
                auto, f'MODEL_FOR_{task}_MAPPING_NAMES', {}).items():
            if model_type not in skip:
                if isinstance(class_name, (list, tuple)):
                    class_name = class_name[0]
                sources.setdefault(model_type, class_name)
    return sources


def task_row(transformers, model_type, class_name, run=True):
    """(type, status, rule, checks) of a whole task model, as a user
    passes it: the rules find its backbone or towers."""
    try:
        model = build(transformers, model_type, class_name)
        run = run and sum(p.numel() for p in model.parameters()) <= MAX_RUN
        if run:
            model = build(transformers, model_type, class_name, 'cpu')
    except Exception as err:  # noqa: BLE001
        return model_type, 'build failed', str(err).strip()[:60], ''
    try:
        groups, messages = plan(model)
    except ValueError as err:
        return model_type, 'refused', str(err)[:60], ''
    rule = groups.layer_rule
    status = 'towers' if groups.towers else 'module order' \
        if rule.startswith('module order') else 'rule'
    if messages:
        status += ' (warned)'
    return model_type, status, rule[:60], checks(model, model, groups, run,
                                                  model)


def vlm_row(transformers, model_type, class_name, run=True):
    try:
        model = build(transformers, model_type, class_name)
    except Exception as err:
        return model_type, 'build failed', str(err).strip()[:80], ''
    try:
        groups, _ = plan(model)
    except ValueError as err:
        return model_type, 'refused', str(err)[:80], ''
    if groups.towers:
        return model_type, 'towers', ', '.join(
            f'{name} ({n})' for name, n in groups.towers), \
            vision_tower_checks(model) if run else ''
    config = getattr(model, 'config', None)
    if not any(a.endswith('_config') for a in vars(config or object())):
        # no tower declared: one model, decayed along its block list
        return model_type, 'one model', groups.layer_rule[:80], ''
    return model_type, 'silent', groups.layer_rule[:80], ''


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header])
              for i in range(len(header))]
    line = lambda r: '  '.join(str(c).ljust(w) for c, w in zip(r, widths))
    print(line(header))
    print('-' * len(line(header)))
    for row in rows:
        print(line(row))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', choices=['vlm', 'encoders', 'tasks'])
    parser.add_argument('--types', nargs='+', help='only these model types')
    parser.add_argument('--no-run', action='store_true',
                        help='build the encoders on the meta device and '
                        'skip the run-order check')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    timm_backed_models()
    import transformers
    from transformers.models.auto import modeling_auto as auto
    print(f'transformers {transformers.__version__}')
    if args.only in (None, 'encoders'):
        rows = []
        for t, c in encoder_sources(auto).items():
            if not args.types or t in args.types:
                print(t, file=sys.stderr, flush=True)
                rows.append(encoder_row(transformers, t, c, not args.no_run))
        print(f'\nvision encoders ({len(rows)} types), rate 0.5:')
        table(rows, ('type', 'status', 'rule', 'N', 'declared', 'checks'))
        print(dict(Counter(r[1] for r in rows)))
    if args.only is None or args.only == 'tasks':
        skip = set(encoder_sources(auto)) | set(
            auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)
        rows = []
        for t, c in task_sources(auto, skip).items():
            if not args.types or t in args.types:
                print(t, file=sys.stderr, flush=True)
                rows.append(task_row(transformers, t, c, not args.no_run))
        print(f'\nvision task models ({len(rows)} more types), rate 0.5:')
        table(rows, ('type', 'status', 'rule', 'checks'))
        print(dict(Counter(r[1] for r in rows)))
    if args.only in (None, 'vlm'):
        mapping = auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        rows = []
        for t, c in mapping.items():
            if not args.types or t in args.types:
                print(t, file=sys.stderr, flush=True)
                rows.append(vlm_row(transformers, t, c, not args.no_run))
        print(f'\nimage-text-to-text ({len(rows)} types), rate 0.5:')
        table(rows, ('type', 'status', 'towers / message',
                     'vision tower alone'))
        print(dict(Counter(r[1] for r in rows)))


if __name__ == '__main__':
    main()
