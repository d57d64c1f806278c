#!/usr/bin/env python
"""Write the detection demo's synthetic dataset in COCO's layout.

    python tools/make_synthetic_coco.py [ROOT]   (default data/synthetic_coco)
"""
import os.path as osp
import sys

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))

from internvl_optim.datasets.synthetic_coco import make_synthetic_coco  # noqa

if __name__ == '__main__':
    root = sys.argv[1] if len(sys.argv) > 1 else 'data/synthetic_coco'
    print(make_synthetic_coco(root))
