#!/usr/bin/env python
"""Every timm architecture against timm's own grouping.

    python benchmarks/timm_zoo.py [--rate 0.9] [--filter PATTERN] [--json OUT]

Builds each model of ``timm.list_models()`` on the meta device and compares,
parameter by parameter, our lr scale and weight decay
(``build_param_groups`` at ``layer_decay_rate=RATE``, weight decay 0.05)
with timm's ``param_groups_layer_decay`` (which reads the model's
``group_matcher`` and ``no_weight_decay()``).  Prints one row per timm
family (the module defining the model) and a summary:

* same: every parameter has timm's lr scale and weight decay;
* documented: the only differences are the documented weight-decay
  conventions (:data:`DOCUMENTED`);
* differ: any other difference (lr, or weight decay);
* refused: our build stopped with an error that says what to set;
* silent head lr: a parameter outside the classifier that timm decays gets
  scale 1.0 from us without a warning naming it (must be 0).
"""
import argparse
import collections
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))

from internvl_optim.analysis.timm_oracle import (compare,  # noqa: E402
                                                 import_timm)

#: weight-decay differences that are our documented conventions, by why
DOCUMENTED = {
    'module in no_weight_decay()': 'a module named in no_weight_decay() '
                                   'covers all its parameters (timm matches '
                                   'parameter names only)',
    'norm': '>= 2-D parameters of normalization modules get no weight decay',
    'token': 'tokens and position embeddings get no weight decay even when '
             'no_weight_decay() does not list them',
}


def why_wd_differs(result, name: str):
    """Which documented convention explains a weight-decay difference (our
    0, timm's decayed), or None."""
    ours, theirs = result.ours[name][1], result.theirs[name][1]
    if not (ours == 0 and theirs > 0):
        return None
    reason = result.reasons.get(name)
    if reason == 'no_weight_decay':
        return 'module in no_weight_decay()'
    if reason in ('norm', 'token'):
        return reason
    return None


def classify(result) -> str:
    if result.refused:
        return 'refused'
    if result.lr_differences():
        return 'differ'
    wd = result.wd_differences()
    if not wd:
        return 'same'
    if all(why_wd_differs(result, n) for n in wd):
        return 'documented'
    return 'differ'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rate', type=float, default=0.9)
    parser.add_argument('--filter', default='*')
    parser.add_argument('--json', help='write per-model results here')
    args = parser.parse_args(argv)
    warnings.filterwarnings('ignore')
    timm = import_timm()
    names = timm.list_models(args.filter)
    families = collections.defaultdict(collections.Counter)
    rows, silent, crashed = {}, {}, {}
    started = time.monotonic()
    declaring = 0
    for i, name in enumerate(names):
        try:
            result = compare(name, rate=args.rate)
        except Exception as err:  # noqa: BLE001  (timm itself failing)
            crashed[name] = f'{type(err).__name__}: {err}'[:200]
            families['(timm build failed)']['timm build failed'] += 1
            continue
        kind = classify(result)
        declaring += result.declares
        family = result.family
        families[family][kind] += 1
        heads = result.silent_head_lr()
        if heads:
            silent[name] = heads[:3]
        rows[name] = dict(kind=kind, family=family, declares=result.declares,
                          refused=result.refused,
                          lr_differences=result.lr_differences()[:5],
                          wd_differences=result.wd_differences()[:5])
        if (i + 1) % 100 == 0:
            print(f'... {i + 1}/{len(names)} ({time.monotonic() - started:.0f}'
                  ' s)', file=sys.stderr)
    kinds = ('same', 'documented', 'differ', 'refused')
    print(f'{"family":32s} ' + ' '.join(f'{k:>10s}' for k in kinds))
    for family in sorted(families):
        counts = families[family]
        print(f'{family:32s} ' + ' '.join(f'{counts[k]:10d}' for k in kinds)
              + (f'   ({counts["timm build failed"]} timm build failed)'
                 if counts['timm build failed'] else ''))
    total = collections.Counter(r['kind'] for r in rows.values())
    declared = [r for r in rows.values() if r['declares']]
    ok = sum(r['kind'] in ('same', 'documented') for r in declared)
    print(f'\n{len(names)} architectures (timm {timm.__version__}), '
          f'rate {args.rate}: ' + ', '.join(f'{total[k]} {k}' for k in kinds)
          + f', {len(crashed)} not built by timm on the meta device')
    print(f'{len(declared)} declare group_matcher: {ok} same or documented '
          f'({100 * ok / max(len(declared), 1):.1f} %)')
    print(f'silent head lr: {len(silent)} models'
          + (f' e.g. {dict(list(silent.items())[:3])}' if silent else ''))
    differ = [n for n, r in rows.items() if r['kind'] == 'differ']
    if differ:
        print('differ: ' + ', '.join(differ[:20])
              + (' ...' if len(differ) > 20 else ''))
    refused = [n for n, r in rows.items() if r['kind'] == 'refused']
    for name in refused[:10]:
        print(f'refused {name}: {rows[name]["refused"][:160]}')
    print(f'{time.monotonic() - started:.0f} s')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(rows=rows, crashed=crashed, silent=silent), f,
                      indent=1)


if __name__ == '__main__':
    main()
