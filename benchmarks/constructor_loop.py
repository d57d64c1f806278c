#!/usr/bin/env python
"""One constructor, N builds, in a process of its own, for timing two
whole processes side by side from outside:

    time python benchmarks/constructor_loop.py ours  --builds 200
    time python benchmarks/constructor_loop.py mmseg --builds 200

Both build MMSeg's BEiT-large config on the meta device the same way and
then run the chosen constructor ``--builds`` times; the difference between
the two processes is the constructors' work (MMSeg's per-parameter
``print()`` goes to an in-memory buffer).  It also prints the time per
build, set-up excluded.
"""
import argparse
import contextlib
import io
import os.path as osp
import sys
import time

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import internvl_optim  # noqa: E402,F401  (registers ours)
from internvl_optim.analysis.meta_device import meta_device  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('which', choices=['ours', 'mmseg'])
    parser.add_argument('--builds', type=int, default=200)
    args = parser.parse_args()
    import mmseg
    from mmseg.engine.optimizers import LearningRateDecayOptimizerConstructor
    from mmseg.registry import MODELS
    from internvl_optim import LayerDecayOptimizerConstructor
    MMLogger.get_instance('constructor_loop', log_level='WARNING')
    config = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', 'beit',
                      'beit-large_upernet_8xb1-amp-160k_ade20k-640x640.py')
    cfg = Config.fromfile(config)
    init_default_scope('mmseg')
    with meta_device():
        model = MODELS.build(cfg.model)
    paramwise = cfg.optim_wrapper.paramwise_cfg
    optim = dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer)
    if args.which == 'ours':
        constructor = LayerDecayOptimizerConstructor(optim, dict(paramwise))
    else:
        constructor = LearningRateDecayOptimizerConstructor(
            optim, dict(num_layers=paramwise.num_layers,
                        decay_rate=paramwise.layer_decay_rate,
                        decay_type='layer_wise'))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(args.builds):
            constructor(model)
    per_build = (time.perf_counter() - start) / args.builds
    print(f'{args.which}: {args.builds} builds, {per_build * 1e3:.2f} ms '
          'per build (set-up excluded)')


if __name__ == '__main__':
    main()
