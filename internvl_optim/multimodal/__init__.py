"""Vision-language models in MMEngine: a transformers VLM as an MMEngine
model (:mod:`.transformers_vlm`), a transformers vision encoder as the
backbone of a classifier (:mod:`.transformers_encoder`) and a synthetic
image-text dataset
(:mod:`.synthetic_image_text`), registered when ``internvl_optim`` is
imported.  transformers is imported only when a model is built."""
from .synthetic_image_text import SyntheticImageText
from .transformers_encoder import TransformersEncoder
from .transformers_vlm import TransformersVLM

__all__ = ['SyntheticImageText', 'TransformersEncoder', 'TransformersVLM']
