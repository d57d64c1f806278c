"""A transformers vision-language model trained by MMEngine's Runner.

    model = dict(type='TransformersVLM', architecture=
                 'InternVLForConditionalGeneration', config=dict(
                     vision_config=dict(...), text_config=dict(...),
                     image_token_id=99))

builds ``transformers.<architecture>(transformers.<Config>(**config))``
(random weights; ``pretrained`` takes a local directory for
``from_pretrained`` instead) and returns its language-modelling loss.  The
parameter names stay transformers' under ``vlm.`` (``vlm.model.
vision_tower...``), where the constructor recognises the VLM layouts.
"""
from typing import Optional

from mmengine.model import BaseModel
from mmengine.registry import MODELS


@MODELS.register_module()
class TransformersVLM(BaseModel):
    """Args:
        architecture (str): a transformers model class, e.g.
            ``'InternVLForConditionalGeneration'``.
        config (dict): its config's arguments (``vision_config``,
            ``text_config``, ...).
        pretrained (str, optional): a local model directory for
            ``from_pretrained`` (nothing is downloaded). Default: None.
    """

    def __init__(self, architecture: str, config: dict,
                 pretrained: Optional[str] = None, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        import transformers
        model_cls = getattr(transformers, architecture, None)
        if model_cls is None:
            raise ValueError(f'TransformersVLM: transformers has no '
                             f'{architecture!r}')
        config_cls = model_cls.config_class
        if pretrained is not None:
            self.vlm = model_cls.from_pretrained(pretrained,
                                                 local_files_only=True)
        else:
            self.vlm = model_cls(config_cls(**config))

    def forward(self, pixel_values=None, input_ids=None, labels=None,
                mode='loss', **kwargs):
        out = self.vlm(pixel_values=pixel_values, input_ids=input_ids,
                       labels=labels if mode == 'loss' else None)
        if mode == 'loss':
            return dict(loss=out.loss)
        return out.logits
