"""A small synthetic segmentation dataset in ADE20K's directory layout.

    <root>/images/{training,validation}/ADE_{split}_{i:08d}.jpg
    <root>/annotations/{training,validation}/ADE_{split}_{i:08d}.png

Each image is split into a few axis-aligned rectangles; every rectangle has one
class, drawn in that class's colour plus noise, so a small network learns it in
a few dozen CPU iterations.  Labels follow ADE20K: 0 is "ignore" and classes
are 1..num_classes (MMSeg's ``reduce_zero_label=True`` maps them to 0..N-1).
"""
import os

import numpy as np
from PIL import Image

SPLITS = {'training': 'train', 'validation': 'val'}


def class_colours(num_classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(30, 226, size=(num_classes + 1, 3))


def make_sample(rng, size: int, num_classes: int, colours: np.ndarray):
    label = np.empty((size, size), np.uint8)
    # a background class, then 1-3 rectangles of other classes on top
    label[:] = rng.integers(1, num_classes + 1)
    for _ in range(rng.integers(1, 4)):
        y0, x0 = rng.integers(0, size - size // 4, size=2)
        h, w = rng.integers(size // 4, size // 2 + 1, size=2)
        label[y0:y0 + h, x0:x0 + w] = rng.integers(1, num_classes + 1)
    image = colours[label] + rng.normal(0, 12, size=(size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8), label


def make_synthetic_ade20k(root: str, num_train: int = 64, num_val: int = 16,
                          size: int = 64, num_classes: int = 4,
                          seed: int = 0) -> str:
    """Write the dataset under ``root`` (idempotent); returns ``root``."""
    colours = class_colours(num_classes, seed)
    rng = np.random.default_rng(seed + 1)
    for split, count in (('training', num_train), ('validation', num_val)):
        img_dir = os.path.join(root, 'images', split)
        ann_dir = os.path.join(root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            image, label = make_sample(rng, size, num_classes, colours)
            stem = f'ADE_{SPLITS[split]}_{i + 1:08d}'
            Image.fromarray(image).save(
                os.path.join(img_dir, stem + '.jpg'), quality=95)
            Image.fromarray(label).save(os.path.join(ann_dir, stem + '.png'))
    return root
