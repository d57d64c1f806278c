"""A small synthetic detection dataset in COCO's layout.

    <root>/train2017/{i:012d}.jpg, <root>/val2017/{i:012d}.jpg
    <root>/annotations/instances_{train,val}2017.json

Each image is a noisy grey background with one to three non-overlapping
axis-aligned boxes, each filled with its category's colour; boxes are
annotated with ``bbox`` (x, y, w, h), ``area``, ``iscrowd=0`` and the box
outline as polygon ``segmentation``, so MMDetection's ``CocoDataset`` and
``CocoMetric`` read it as they read COCO.
"""
import json
import os

import numpy as np
from PIL import Image

CATEGORIES = ('box', 'plate')
COLOURS = np.array([[200, 40, 40], [40, 60, 210]])


def _boxes(rng, size: int):
    """Up to three boxes in separate horizontal bands (no overlap)."""
    bands = rng.permutation(3)[:rng.integers(1, 4)]
    band = size // 3
    for b in sorted(bands):
        h = int(rng.integers(band // 2, band - 1))
        w = int(rng.integers(size // 4, size // 2))
        y = int(b * band + rng.integers(0, band - h))
        x = int(rng.integers(0, size - w))
        yield x, y, w, h, int(rng.integers(0, len(CATEGORIES)))


def _sample(rng, size: int):
    image = 128 + rng.normal(0, 10, size=(size, size, 3))
    annotations = []
    for x, y, w, h, category in _boxes(rng, size):
        image[y:y + h, x:x + w] = COLOURS[category]
        annotations.append(dict(
            bbox=[x, y, w, h], area=w * h, iscrowd=0,
            category_id=category + 1,
            segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
    return np.clip(image, 0, 255).astype(np.uint8), annotations


def make_synthetic_coco(root: str, num_train: int = 32, num_val: int = 8,
                        size: int = 64, seed: int = 0) -> str:
    """Write the dataset under ``root`` (idempotent); returns ``root``."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    next_id = 1
    for split, count in (('train2017', num_train), ('val2017', num_val)):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image, anns = _sample(rng, size)
            name = f'{i + 1:012d}.jpg'
            Image.fromarray(image).save(os.path.join(root, split, name),
                                        quality=95)
            images.append(dict(id=i + 1, file_name=name, width=size,
                               height=size))
            for ann in anns:
                annotations.append(dict(ann, id=next_id, image_id=i + 1))
                next_id += 1
        with open(os.path.join(root, 'annotations',
                               f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=[dict(id=i + 1, name=name)
                                       for i, name in enumerate(CATEGORIES)]),
                      f)
    return root
