"""Image-text batches made here, nothing downloaded: each sample is an
image whose colour encodes a class, and a token sequence that places the
image tokens first and then says the class, so a tiny VLM learns it in a few
CPU iterations.

``input_ids`` = ``[image_token] * image_tokens + [bos, class_token, eos]``;
``labels`` ignore (-100) the image tokens and ``bos``.
"""
import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset


@DATASETS.register_module()
class SyntheticImageText(Dataset):
    """Args:
        num_samples (int): dataset length. Default: 16.
        image_size (int): square image side. Default: 32.
        image_tokens (int): image placeholder tokens per sample (the VLM's
            tokens per image). Default: 4.
        image_token_id (int): the placeholder's id. Default: 99.
        num_classes (int): classes (token ids ``10 + class``). Default: 4.
        seed (int): Default: 0.
    """

    BOS, EOS, IGNORE = 1, 2, -100

    def __init__(self, num_samples=16, image_size=32, image_tokens=4,
                 image_token_id=99, num_classes=4, seed=0):
        self.num_samples = num_samples
        self.image_size = image_size
        self.image_tokens = image_tokens
        self.image_token_id = image_token_id
        self.num_classes = num_classes
        self.seed = seed
        self.metainfo = dict(classes=tuple(str(c) for c in range(num_classes)))

    def __len__(self):
        return self.num_samples

    def __getitem__(self, index):
        gen = torch.Generator().manual_seed(self.seed * 100003 + index)
        label = index % self.num_classes
        colour = torch.linspace(-1, 1, self.num_classes)[label]
        image = colour + 0.1 * torch.randn(
            3, self.image_size, self.image_size, generator=gen)
        ids = [self.image_token_id] * self.image_tokens + [
            self.BOS, 10 + label, self.EOS]
        labels = [self.IGNORE] * (self.image_tokens + 1) + [10 + label,
                                                            self.EOS]
        return dict(pixel_values=image, input_ids=torch.tensor(ids),
                    labels=torch.tensor(labels))
