#!/usr/bin/env python
"""Print the parameter-group plan that training with CONFIG would use.

    python tools/analyze_param_groups.py CONFIG [--cfg-options k=v ...]

Builds the model from the config and runs the config's optim_wrapper
constructor (ours when ``constructor='LayerDecayOptimizerConstructor'``),
which logs one row per group: layer id, lr scale, lr, weight decay, tensors,
parameters.
"""
import argparse

from mmengine.config import Config, DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='MMSeg / MMEngine config file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, e.g. '
        'optim_wrapper.paramwise_cfg.layer_decay_rate=0.9')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = optim_wrapper.optimizer.param_groups
    print(f'{type(optim_wrapper.optimizer).__name__}: {len(groups)} groups, '
          f'{sum(len(g["params"]) for g in groups)} tensors')


if __name__ == '__main__':
    main()
