"""What the presets share."""
from ..names import clean_named_modules


def backbone_class_of(model) -> str:
    """``model.backbone``'s class name, which the originals read; an error
    when there is none."""
    backbone = clean_named_modules(model).get('backbone')
    if backbone is None:
        raise ValueError('paramwise_cfg.reproduce: the original constructor '
                         'reads model.backbone, which this model does not '
                         'have')
    return type(backbone).__name__
