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

    python benchmarks/transformers_zoo.py [--only vlm|encoders] [--types a b]
"""
import argparse
import contextlib
import io
import os.path as osp
import sys
import warnings
from collections import Counter

import torch
from torch import nn

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

from internvl_optim import LayerDecaySettings, build_param_groups  # noqa
from internvl_optim.core.backbone_probe import declared_depths  # noqa

DEPTH_KEYS = ('num_hidden_layers', 'depth', 'num_layers')


def tiny(config):
    """Depths cut to 3 in the config and its sub-configs."""
    subs = [config] + [getattr(config, a) for a in list(vars(config))
                       if a.endswith('_config') and
                       hasattr(getattr(config, a), 'to_dict')]
    for sub in subs:
        # (an alias of another field, as ConvNeXt's num_hidden_layers of
        # num_stages, is left alone: cutting it breaks the config)
        aliases = getattr(type(sub), 'attribute_map', {}) or {}
        for key in (k for k in DEPTH_KEYS if k not in aliases):
            value = getattr(sub, key, None)
            if isinstance(value, int) and not isinstance(value, bool) \
                    and value > 3:
                setattr(sub, key, 3)
    return config


def build(transformers, model_type, class_name):
    cls = getattr(transformers, class_name, None)
    if cls is None:
        raise RuntimeError(f'{class_name} not in transformers')
    config = tiny(transformers.AutoConfig.for_model(model_type))
    with torch.device('meta'), contextlib.redirect_stdout(io.StringIO()):
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


def encoder_row(transformers, model_type, class_name):
    try:
        built = build(transformers, model_type, class_name)
        prefix = getattr(built, 'base_model_prefix', '')
        base = getattr(built, prefix, None) if prefix else None
        if not isinstance(base, nn.Module):
            base = built  # a base model or a backbone itself
        model = nn.Module()
        model.backbone = base
        model.head = nn.Linear(2, 2)
    except Exception as err:  # a default config that does not build
        return model_type, 'build failed', str(err)[:60], '', ''
    depths = declared_depths(base)
    declared = sum(depths) if depths else None
    try:
        groups, messages = plan(model)
    except ValueError as err:
        return model_type, 'refused', str(err)[:60], '', declared
    rule = groups.layer_rule
    if rule.startswith('module order'):
        status = 'module order'
    elif declared == groups.num_layers:
        status = 'declared'
    else:
        status = 'other rule'
    if messages:
        status += ' (warned)'
    return model_type, status, rule[:60], groups.num_layers, declared


def vlm_row(transformers, model_type, class_name):
    try:
        model = build(transformers, model_type, class_name)
    except Exception as err:
        return model_type, 'build failed', str(err)[:80]
    try:
        groups, _ = plan(model)
    except ValueError as err:
        return model_type, 'refused', str(err)[:80]
    if groups.towers:
        return model_type, 'towers', ', '.join(
            f'{name} ({n})' for name, n in groups.towers)
    config = getattr(model, 'config', None)
    if not any(a.endswith('_config') for a in vars(config or object())):
        # no tower declared: one model, decayed along its block list
        return model_type, 'one model', groups.layer_rule[:80]
    return model_type, 'silent', groups.layer_rule[:80]


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
    parser.add_argument('--only', choices=['vlm', 'encoders'])
    parser.add_argument('--types', nargs='+', help='only these model types')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    import transformers
    from transformers.models.auto import modeling_auto as auto
    print(f'transformers {transformers.__version__}')
    if args.only != 'vlm':
        rows = [encoder_row(transformers, t, c)
                for t, c in encoder_sources(auto).items()
                if not args.types or t in args.types]
        print(f'\nvision encoders ({len(rows)} types), rate 0.5:')
        table(rows, ('type', 'status', 'rule', 'N', 'declared'))
        print(dict(Counter(r[1] for r in rows)))
    if args.only != 'encoders':
        mapping = auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        rows = [vlm_row(transformers, t, c) for t, c in mapping.items()
                if not args.types or t in args.types]
        print(f'\nimage-text-to-text ({len(rows)} types), rate 0.5:')
        table(rows, ('type', 'status', 'towers / message'))
        print(dict(Counter(r[1] for r in rows)))


if __name__ == '__main__':
    main()
