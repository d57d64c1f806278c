"""The demos' synthetic datasets, written in the real layouts: ADE20K's
directories and label range (0 ignore, classes 1..N), COCO's instances
JSON with boxes inside the image and one polygon per box."""
import json
import os

import numpy as np
from PIL import Image

from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k
from internvl_optim.datasets.synthetic_coco import (CATEGORIES,
                                                    make_synthetic_coco)


def test_ade20k_layout_and_labels(tmp_path):
    root = make_synthetic_ade20k(str(tmp_path), num_train=3, num_val=2,
                                 size=32, num_classes=4)
    images = sorted(os.listdir(os.path.join(root, 'images', 'training')))
    labels = sorted(os.listdir(os.path.join(root, 'annotations',
                                            'validation')))
    assert images == ['ADE_train_00000001.jpg', 'ADE_train_00000002.jpg',
                      'ADE_train_00000003.jpg']
    assert labels == ['ADE_val_00000001.png', 'ADE_val_00000002.png']
    for name in labels:
        label = np.array(Image.open(os.path.join(
            root, 'annotations', 'validation', name)))
        assert label.shape == (32, 32) and label.dtype == np.uint8
        assert 1 <= label.min() and label.max() <= 4  # 0 is "ignore"
    image = Image.open(os.path.join(root, 'images', 'training', images[0]))
    assert image.size == (32, 32) and image.mode == 'RGB'


def test_ade20k_is_the_same_for_the_same_seed(tmp_path):
    a = make_synthetic_ade20k(str(tmp_path / 'a'), num_train=2, num_val=1)
    b = make_synthetic_ade20k(str(tmp_path / 'b'), num_train=2, num_val=1)
    path = os.path.join('annotations', 'training', 'ADE_train_00000002.png')
    assert np.array_equal(np.array(Image.open(os.path.join(a, path))),
                          np.array(Image.open(os.path.join(b, path))))


def test_coco_instances_json(tmp_path):
    root = make_synthetic_coco(str(tmp_path), num_train=4, num_val=2,
                               size=48)
    with open(os.path.join(root, 'annotations',
                           'instances_val2017.json')) as f:
        val = json.load(f)
    assert [c['name'] for c in val['categories']] == list(CATEGORIES)
    assert [i['file_name'] for i in val['images']] == [
        '000000000001.jpg', '000000000002.jpg']
    assert val['annotations'], 'every image holds at least one box'
    for ann in val['annotations']:
        x, y, w, h = ann['bbox']
        assert 0 <= x and 0 <= y and x + w <= 48 and y + h <= 48
        assert ann['area'] == w * h and ann['iscrowd'] == 0
        assert ann['segmentation'] == [[x, y, x + w, y, x + w, y + h,
                                        x, y + h]]
        assert ann['category_id'] in (1, 2)
    ids = [a['id'] for a in val['annotations']]
    assert len(set(ids)) == len(ids)
    assert sorted(os.listdir(os.path.join(root, 'train2017'))) == [
        f'{i:012d}.jpg' for i in range(1, 5)]
