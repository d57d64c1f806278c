"""The VLM demo's image-text samples: image tokens first, then
``bos, 10 + class, eos``; the labels ignore the image tokens and ``bos``;
the image's colour encodes the class; the same index gives the same
sample."""
import torch

from internvl_optim.multimodal.synthetic_image_text import SyntheticImageText


def test_tokens_labels_and_image():
    data = SyntheticImageText(num_samples=8, image_size=8, image_tokens=3,
                              image_token_id=99, num_classes=4)
    sample = data[6]  # class 6 % 4 = 2
    assert sample['input_ids'].tolist() == [99, 99, 99, 1, 12, 2]
    assert sample['labels'].tolist() == [-100, -100, -100, -100, 12, 2]
    assert sample['pixel_values'].shape == (3, 8, 8)
    # colour of class 2 of 4: linspace(-1, 1, 4)[2] = 1/3, noise 0.1
    mean = sample['pixel_values'].mean().item()
    assert abs(mean - 1 / 3) < 0.05
    assert len(data) == 8 and data.metainfo['classes'] == ('0', '1', '2',
                                                           '3')


def test_same_index_same_sample():
    a, b = SyntheticImageText(seed=3)[5], SyntheticImageText(seed=3)[5]
    assert torch.equal(a['pixel_values'], b['pixel_values'])
    assert not torch.equal(a['pixel_values'],
                           SyntheticImageText(seed=4)[5]['pixel_values'])
