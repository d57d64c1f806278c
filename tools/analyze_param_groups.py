#!/usr/bin/env python
"""Show the lr and weight decay every part of a model will get, before
training: build the model from CONFIG without allocating its weights (meta
device), run the config's optimizer constructor, print one row per group.

    python tools/analyze_param_groups.py CONFIG [--cfg-options k=v ...]
        [--json PLAN.json] [--plot PLAN.png] [--world-size 1 8 16]
        [--compact]

With --world-size, also the bytes per rank of parameters, gradients and
optimizer state under the config's strategy (DDP, ZeRO, FSDP, DeepSpeed).
With --check-order, the weights are allocated and one forward pass of the
backbone on a zero image (--input-size, default the config's crop size)
checks every layer id against the order the modules run in.
"""
import argparse
import math
import os.path as osp
import resource
import sys
import time

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

# first, before MMEngine: DeepSpeed stays out of this process unless the
# config or the command line uses it (internvl_optim.runtime.deepspeed_import)
from internvl_optim.runtime.deepspeed_import import \
    deepspeed_only_if_used  # noqa: E402

if __name__ == '__main__':
    deepspeed_only_if_used(sys.argv[1:])

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import (OPTIM_WRAPPER_CONSTRUCTORS,  # noqa: E402
                               MODELS, PARAM_SCHEDULERS, init_default_scope)

from internvl_optim.analysis.param_group_report import (  # noqa: E402
    analyze, format_compact, format_report, rate_given_as, write_json,
    write_plot)
from internvl_optim.engine.config_checks import (  # noqa: E402
    CHECK_ERRORS, check_optim_wrapper, check_our_import,
    check_param_schedulers, check_schedulers_keep_ratios,
    missing_weight_files, stop)
from internvl_optim.engine.internvl_deepspeed_keys import (  # noqa: E402
    translate_internvl_deepspeed)
from internvl_optim.analysis.memory_per_rank import (  # noqa: E402
    count_params, describe_strategy, memory_table, optimizer_states)
from internvl_optim.analysis.meta_device import meta_device  # noqa: E402
from internvl_optim.analysis.lr_over_time import (  # noqa: E402
    lr_over_time, write_schedule_plot)
from internvl_optim.core.backbone_probe import find_backbone  # noqa: E402
from internvl_optim.core.names import clean_named_modules  # noqa: E402


def build_constructor(optim_cfg: dict):
    """The config's optimizer-wrapper constructor, as MMEngine's
    ``build_optim_wrapper`` builds it (kept, to read what it planned)."""
    optim_cfg = dict(optim_cfg)
    constructor_type = optim_cfg.pop('constructor',
                                     'DefaultOptimWrapperConstructor')
    paramwise_cfg = optim_cfg.pop('paramwise_cfg', None)
    return OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=constructor_type, optim_wrapper_cfg=optim_cfg,
        paramwise_cfg=paramwise_cfg))


def status(message, start):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f'[{time.time() - start:6.1f}s, {rss:.2f} GB] {message}',
          file=sys.stderr, flush=True)


def order_warnings(model, groups, size) -> list:
    """:func:`~internvl_optim.analysis.run_order.check_run_order` on one
    forward pass of the model's features (``extract_feat``, else its
    backbone) on a zero image of ``size``."""
    import torch
    from internvl_optim.analysis.run_order import check_run_order
    image = torch.zeros(1, 3, *size)
    if hasattr(model, 'extract_feat'):
        def run(m):
            return m.extract_feat(image)
    elif hasattr(model, 'backbone'):
        def run(m):
            return m.backbone(image)
    else:
        raise ValueError(
            f'--check-order runs the model\'s extract_feat or backbone; '
            f'{type(model).__name__} has neither')
    found = check_run_order(model, groups, run)
    if not found:
        print(f'run order: every layer id follows the forward pass '
              f'({size[0]}x{size[1]} image)')
    return [f'run order: {message}' for message in found]


def positive(kind):
    """An argparse type: a finite number > 0 of ``kind`` (int or float)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{text!r} is not a{"n int" if kind is int else " number"}')
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(
                f'must be a finite number > 0, got {text}')
        return value
    parse.__name__ = f'positive {kind.__name__}'
    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].replace('\n', ' '),
        epilog=__doc__.split('\n\n', 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    parser.add_argument('--json', help='write the per-parameter plan here')
    parser.add_argument('--compact', action='store_true',
                        help='one row per layer (decay and no-decay groups '
                        'merged) instead of one per group')
    parser.add_argument('--plot', help='write a PNG of lr and parameters '
                        'per layer here')
    parser.add_argument('--plot-schedule', metavar='PNG',
                        help="write a PNG of each layer's lr over the run's "
                        'iterations (param_scheduler and layer_phases)')
    parser.add_argument('--iters', type=positive(int),
                        help='iterations for --plot-schedule (default: '
                        'train_cfg.max_iters)')
    parser.add_argument('--real-weights', action='store_true',
                        help='allocate the weights (default: meta device)')
    parser.add_argument('--world-size', type=positive(int), nargs='+',
                        help='report memory per rank for these numbers of '
                        'ranks')
    parser.add_argument('--check-order', action='store_true',
                        help='run the backbone once (weights allocated) and '
                        'name every parameter whose layer id contradicts '
                        'the order its module runs in')
    parser.add_argument('--input-size', type=positive(int), nargs=2,
                        metavar=('H', 'W'), help='the image of --check-order '
                        "(default the config's crop_size, else 224 224)")
    parser.add_argument('--gpu-gib', type=positive(float), default=80.0,
                        help='flag totals above this (default: 80)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    # our table below replaces the constructor's INFO log; warnings still show
    MMLogger.get_instance('analyze_param_groups', log_level='WARNING')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    # as in train.py: without the import, MMSeg's own tools would build a
    # different constructor than the one shown here
    check_our_import(cfg)
    # what train.py checks before building anything, checked here first too
    check_optim_wrapper(cfg)
    check_param_schedulers(cfg)
    check_schedulers_keep_ratios(cfg)
    # InternVL's deepspeed=True / deepspeed_config, as train.py reads them
    translate_internvl_deepspeed(cfg, log=lambda msg: status(msg, start))
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    real = args.real_weights or args.check_order
    status('building the model' +
           ('' if real else ' on the meta device'), start)
    if real:
        model = MODELS.build(cfg.model)
    else:
        with meta_device():
            model = MODELS.build(cfg.model)
    status(f'{sum(p.numel() for p in model.parameters()):,} parameters; '
           'running the optimizer constructor', start)
    optim_cfg = cfg.optim_wrapper.to_dict()
    # the groups do not depend on the wrapper; AMP wrappers need a GPU.
    # DeepSpeed's wrapper builds without an engine (and tells the
    # constructor that float32 master weights exist).
    if 'DeepSpeed' in str(optim_cfg.get('type')):
        import mmengine._strategy.deepspeed  # noqa: F401 (registers it)
    else:
        optim_cfg['type'] = 'OptimWrapper'
    optim_cfg.pop('loss_scale', None)
    constructor = build_constructor(optim_cfg)
    wrapper = constructor(model)
    paramwise = optim_cfg.get('paramwise_cfg') or {}
    plan = getattr(constructor, 'plan', None)
    # the backbone as the constructor found it (ours), else as it would
    backbone = plan.backbone_prefix if plan is not None else find_backbone(
        clean_named_modules(model), paramwise.get('backbone_name'))[0]
    base_lr = optim_cfg['optimizer']['lr']
    base_wd = optim_cfg['optimizer'].get('weight_decay', 0.0)
    settings = dict(constructor=optim_cfg.get('constructor', 'default'),
                    base_lr=base_lr, weight_decay=base_wd)
    if plan is not None:  # ours: what the groups came from
        settings.update(layer_rule=plan.layer_rule, units=plan.units,
                        num_layers=plan.num_layers, towers=plan.towers,
                        layer_decay_rate=constructor.settings.layer_decay_rate,
                        rate_applied=plan.rate,
                        given_as=rate_given_as(constructor.settings),
                        weight_decay=constructor.base_weight_decay)
    report = analyze(model, wrapper.optimizer.param_groups, base_lr,
                     backbone, settings['weight_decay'], settings,
                     plan.params if plan is not None else ())
    # train.py refuses these before building anything; here, a warning
    report['warnings'].extend(
        f'{message} (tools/train.py stops on this)'
        for message in missing_weight_files(cfg))
    if args.check_order:
        report['warnings'].extend(order_warnings(
            model, wrapper.optimizer.param_groups,
            args.input_size or cfg.get('crop_size') or (224, 224)))
    status(f'{len(report["groups"])} groups', start)
    print(f'{args.config}\noptimizer: {optim_cfg["optimizer"]["type"]}, '
          f'constructor: {settings["constructor"]}, base lr {base_lr:g}')
    print(format_compact(report) if args.compact else format_report(report))
    report['config'] = osp.abspath(args.config)
    if args.world_size:
        states, optimizer = optimizer_states(optim_cfg['optimizer'],
                                             wrapper.optimizer.param_groups)
        rows, table = memory_table(count_params(model.named_parameters()),
                                   describe_strategy(cfg.to_dict()), states,
                                   optimizer, args.world_size, args.gpu_gib)
        report['memory'] = rows
        print(table)
    if args.json:
        write_json(report, args.json)
        print(f'per-parameter plan: {args.json}')
    if args.plot:
        write_plot(report, args.plot,
                   title=osp.splitext(osp.basename(args.config))[0])
        print(f'plot: {args.plot}')
    if args.plot_schedule:
        iters = args.iters or (cfg.get('train_cfg') or {}).get('max_iters')
        if not iters:
            raise ValueError('--plot-schedule needs --iters (the config has '
                             'no train_cfg.max_iters)')
        schedulers = cfg.get('param_scheduler') or []
        schedulers = [schedulers] if isinstance(schedulers, dict) \
            else list(schedulers)
        steps, by_layer, notes = lr_over_time(
            wrapper, [dict(s) for s in schedulers], iters,
            lambda c: PARAM_SCHEDULERS.build(
                c, default_args=dict(optimizer=wrapper)))
        report['lr_over_time'] = by_layer
        write_schedule_plot(steps, by_layer, args.plot_schedule,
                            osp.splitext(osp.basename(args.config))[0])
        for note in notes:
            print(f'note: {note}')
        print(f'lr over time: {args.plot_schedule}')
    return report


if __name__ == '__main__':
    try:
        main()
    except CHECK_ERRORS as err:  # the message says what to change
        stop('tools/analyze_param_groups.py', sys.argv[1], err)
