"""``TransformersEncoder``: a transformers vision encoder (``DINOv3ViTModel``,
``ConvNextModel``, ``Dinov2Model``, ...) as the ``backbone`` of a linear
classifier, an MMEngine model: its layer ids come from what the encoder
declares (depth, blocks, embeddings), and the analyser's ``--check-order``
runs it (``extract_feat``).  Nothing is downloaded: the encoder is built
from ``config``, or read from a local directory."""
from typing import Optional

import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import nn


@MODELS.register_module()
class TransformersEncoder(BaseModel):
    """Args:
        architecture (str): a transformers vision model class, e.g.
            ``'DINOv3ViTModel'``.
        config (dict): its config's arguments.
        num_classes (int): outputs of the linear head. Default: 10.
        pretrained (str, optional): a local model directory for
            ``from_pretrained`` (nothing is downloaded). Default: None.
    """

    def __init__(self, architecture: str, config: dict, num_classes: int = 10,
                 pretrained: Optional[str] = None, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        import transformers
        model_cls = getattr(transformers, architecture, None)
        if model_cls is None or not hasattr(model_cls, 'config_class'):
            raise ValueError(f'TransformersEncoder: transformers has no '
                             f'model class {architecture!r}')
        if pretrained is not None:
            self.backbone = model_cls.from_pretrained(pretrained,
                                                      local_files_only=True)
        else:
            self.backbone = model_cls(model_cls.config_class(**config))
        cfg = self.backbone.config
        width = getattr(cfg, 'hidden_size', None) or \
            (getattr(cfg, 'hidden_sizes', None) or [None])[-1]
        if not isinstance(width, int):
            raise ValueError(f'TransformersEncoder: {architecture} declares '
                             'no hidden_size or hidden_sizes')
        self.head = nn.Linear(width, num_classes)

    def extract_feat(self, images: torch.Tensor) -> torch.Tensor:
        out = self.backbone(pixel_values=images)
        pooled = getattr(out, 'pooler_output', None)
        if pooled is None:
            pooled = out.last_hidden_state.flatten(1, -2).mean(1) \
                if out.last_hidden_state.dim() == 3 else \
                out.last_hidden_state.mean((2, 3))
        return pooled.flatten(1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.head(self.extract_feat(inputs))
        if mode == 'loss':
            labels = torch.as_tensor(data_samples, device=logits.device)
            return dict(loss=nn.functional.cross_entropy(logits, labels))
        return logits
