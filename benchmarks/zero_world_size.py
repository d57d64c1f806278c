#!/usr/bin/env python
"""DeepSpeed ZeRO-1/2/3 state saved at one world size and resumed at
another, by parameter name, on CPU gloo ranks:

    python benchmarks/zero_world_size.py [--stages 1 2 3]
        [--cases 2:2 2:1 1:3 2:3] [--steps 3]

Each case trains ``--steps`` steps at the saved world size, writes each
rank's state by name, puts it into a fresh engine at the resumed world
size, trains ``--steps`` more, and compares with an uninterrupted run of
2 x ``--steps`` steps at the saved world size.  Every step's global batch
is the same 6 samples at any world size.  Columns:

* ``state``: every parameter's fp32 master, ``exp_avg`` and
  ``exp_avg_sq`` right after the resume, as DeepSpeed gathers them
  (``safe_get_full_*``), equal bit for bit to those at the save;
* ``max |dw|``: largest difference of a final fp32 weight from the
  uninterrupted run's (0 = bit-identical; otherwise the ranks' gradients
  are summed in another order).
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import tempfile

import torch

ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..')
SCRIPT = osp.join(ROOT, 'tests', 'scripts', 'zero_world_size.py')


def torchrun(nproc, *args):
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         f'--nproc_per_node={nproc}', SCRIPT, *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-4000:])


def run_case(stage: int, saved: int, resumed: int, steps: int,
             work: str, runs: dict = None) -> dict:
    """One case; ``runs`` caches the uninterrupted and saving runs by
    ``(stage, world size)``.  Returns the row's values."""
    runs = {} if runs is None else runs
    source = osp.join(work, f'stage{stage}_w{saved}')
    if (stage, saved) not in runs:
        os.makedirs(source, exist_ok=True)
        torchrun(saved, stage, 'straight', source, steps)
        torchrun(saved, stage, 'save', source, steps)
        runs[stage, saved] = source
    out = osp.join(work, f'stage{stage}_w{saved}_to_w{resumed}')
    os.makedirs(out, exist_ok=True)
    torchrun(resumed, stage, 'resume', out, steps, source)
    at_save = torch.load(osp.join(source, 'at_save.pt'))
    at_resume = torch.load(osp.join(out, 'at_resume.pt'))
    straight = torch.load(osp.join(source, 'straight.pt'))
    final = torch.load(osp.join(out, 'resumed.pt'))
    state_equal = at_save['state'].keys() == at_resume['state'].keys() \
        and all(torch.equal(at_save['state'][n][k], at_resume['state'][n][k])
                for n in at_save['state'] for k in at_save['state'][n])
    return dict(
        stage=stage, saved=saved, resumed=resumed, state_equal=state_equal,
        steps=(at_save['steps'], at_resume['steps']),
        kept=len(at_resume['kept']), added=at_resume['added'],
        removed=at_resume['removed'],
        finite=all(bool(torch.isfinite(w).all())
                   for w in (*straight.values(), *final.values())),
        max_diff=max(float((straight[n] - final[n]).abs().max())
                     for n in straight),
        identical=all(torch.equal(straight[n], final[n]) for n in straight))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--stages', type=int, nargs='+', default=[1, 2, 3])
    parser.add_argument('--cases', nargs='+',
                        default=['2:2', '2:1', '1:3', '2:3'])
    parser.add_argument('--steps', type=int, default=3)
    args = parser.parse_args()
    print('| ZeRO | saved on | resumed on | parameters kept | state after '
          'resume | steps | max abs diff of final weights |')
    print('|---|---|---|---|---|---|---|')
    runs = {}
    with tempfile.TemporaryDirectory() as work:
        for stage in args.stages:
            for case in args.cases:
                saved, resumed = map(int, case.split(':'))
                row = run_case(stage, saved, resumed, args.steps, work, runs)
                diff = ('0 (bit-identical)' if row['identical'] else
                        f'{row["max_diff"]:.1e}')
                print(f'| {stage} | {saved} | {resumed} | {row["kept"]} | '
                      f'{"identical" if row["state_equal"] else "DIFFERS"} '
                      f'| {row["steps"][0]} -> {row["steps"][1]} | '
                      f'{diff if row["finite"] else "NOT FINITE"} |',
                      flush=True)


if __name__ == '__main__':
    main()
