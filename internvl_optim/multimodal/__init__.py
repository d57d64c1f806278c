"""Vision-language models in MMEngine: a transformers VLM as an MMEngine
model (:mod:`.transformers_vlm`) and a synthetic image-text dataset
(:mod:`.synthetic_image_text`), registered when ``internvl_optim`` is
imported.  transformers is imported only when a model is built."""
from .synthetic_image_text import SyntheticImageText
from .transformers_vlm import TransformersVLM

__all__ = ['SyntheticImageText', 'TransformersVLM']
