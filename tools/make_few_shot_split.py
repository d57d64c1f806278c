#!/usr/bin/env python
"""Write the training-image list for few-shot configs: a fixed random
1/K of ADE20K's training images.

    python tools/make_few_shot_split.py DATA_ROOT K [--seed 0]

writes DATA_ROOT/splits/train_1ofK.txt (one image name per line, without
suffix), the ``ann_file`` of configs/intern_vit_6b/few_shot/*_1ofK.py.
"""
import argparse
import os
import random


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root')
    parser.add_argument('k', type=int, choices=[1, 2, 4, 8, 16])
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    img_dir = os.path.join(args.data_root, 'images', 'training')
    if not os.path.isdir(img_dir):
        raise SystemExit(f'{img_dir} does not exist: DATA_ROOT must hold '
                         'images/training in ADE20K layout')
    names = sorted(os.path.splitext(f)[0] for f in os.listdir(img_dir)
                   if f.endswith('.jpg'))
    chosen = sorted(random.Random(args.seed).sample(names,
                                                    len(names) // args.k))
    out = os.path.join(args.data_root, 'splits', f'train_1of{args.k}.txt')
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        f.write('\n'.join(chosen) + '\n')
    print(f'{len(chosen)} of {len(names)} images -> {out}')


if __name__ == '__main__':
    main()
