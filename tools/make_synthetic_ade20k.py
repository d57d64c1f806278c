#!/usr/bin/env python
"""Write a small synthetic dataset in ADE20K layout (no download).

    python tools/make_synthetic_ade20k.py [ROOT] [--num-train 64] [--num-val 16]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k  # noqa


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', nargs='?', default='data/synthetic_ade20k')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--size', type=int, default=64)
    args = parser.parse_args()
    make_synthetic_ade20k(args.root, args.num_train, args.num_val, args.size)
    print(f'wrote {args.num_train} training and {args.num_val} validation '
          f'images to {args.root}')


if __name__ == '__main__':
    main()
