"""A config that names our constructor or backbone imports this package."""
from typing import List

from ..optimizers.registration import NAMES

IMPORT_LINE = ("custom_imports = dict(imports=['internvl_optim'], "
               'allow_failed_imports=False)')
OUR_MODELS = ('InternViT6B', )

def _imports(cfg) -> List[str]:
    custom = cfg.get('custom_imports') or {}
    imports = custom.get('imports', [])
    return [imports] if isinstance(imports, str) else list(imports)


def check_our_import(cfg) -> None:
    """A config that names our constructor or backbone must import us;
    otherwise MMSeg's own tools build MMSeg's deprecated constructor of the
    same name (or fail on the unknown backbone)."""
    uses = []
    constructor = (cfg.get('optim_wrapper') or {}).get('constructor')
    if constructor in NAMES:
        uses.append(f"optim_wrapper.constructor='{constructor}'")
    backbone = ((cfg.get('model') or {}).get('backbone') or {}).get('type')
    if backbone in OUR_MODELS:
        uses.append(f"model.backbone.type='{backbone}'")
    ours = [name for name in _imports(cfg) if isinstance(name, str) and (
        name == 'internvl_optim' or name.startswith('internvl_optim.'))]
    if uses and not ours:
        raise ValueError(
            f'The config uses {" and ".join(uses)} but does not import '
            f'internvl_optim; add\n    {IMPORT_LINE}\n(without it, MMSeg '
            'silently builds its own deprecated LayerDecayOptimizerConstructor)')
