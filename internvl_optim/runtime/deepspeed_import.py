"""Keep DeepSpeed out of a tool's process that does not use it.

MMEngine's ``mmengine.runner`` imports ``mmengine._strategy``, which imports
DeepSpeed whenever it is installed; DeepSpeed then logs its accelerator
detection, and MMSeg's and MMDetection's hooks import ``mmengine.runner``.
So every MMEngine program imports DeepSpeed, used or not.  The tools
(``tools/train.py``, ``tools/test.py``, ``tools/analyze_param_groups.py``)
call :func:`deepspeed_only_if_used` first, in their own process only: when
neither the config nor the command line mentions DeepSpeed, ``deepspeed``
is marked as not importable (``sys.modules['deepspeed'] = None``, which
MMEngine and transformers read as "not installed").  DeepSpeed stays
importable when an argument is a DeepSpeed checkpoint directory or the
config imports a module of its own (which might use it).

This module imports nothing outside the standard library at import time; a
tool imports it before MMEngine (importing ``internvl_optim`` after MMEngine
registers everything, which imports DeepSpeed).
"""
import os
import sys
from typing import Optional, Sequence

#: the word that marks a config or an argument as using DeepSpeed (its
#: strategy, optimizer wrapper, InternVL's ``deepspeed=True`` keys)
MARK = 'deepspeed'


def mentions_deepspeed(cfg) -> bool:
    """Whether any key or value of the (merged) config names DeepSpeed."""
    def walk(value) -> bool:
        if isinstance(value, dict):
            return any(MARK in str(key).lower() or walk(item)
                       for key, item in value.items())
        if isinstance(value, (list, tuple)):
            return any(walk(item) for item in value)
        return isinstance(value, str) and MARK in value.lower()
    return walk(cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg)


#: what MMEngine reads as a config file
CONFIG_SUFFIXES = ('.py', '.json', '.yaml', '.yml')


def config_path(argv: Sequence[str]) -> Optional[str]:
    """The first argument that names a config file (every tool takes one)."""
    for arg in argv:
        if not arg.startswith('-') and arg.endswith(CONFIG_SUFFIXES):
            return arg
    return None


#: custom imports known not to need DeepSpeed; any other module a config
#: imports might, so DeepSpeed stays importable for it
KNOWN_IMPORTS = ('internvl_optim', 'mmseg', 'mmdet', 'mmpretrain', 'mmcv',
                 'mmengine')


def imports_unknown_modules(cfg) -> bool:
    """Whether the config's ``custom_imports`` name a module outside
    :data:`KNOWN_IMPORTS` (a user's module may use DeepSpeed)."""
    imports = (cfg.get('custom_imports') or {}).get('imports') or []
    if isinstance(imports, str):
        imports = [imports]
    return any(not isinstance(name, str)
               or name.split('.')[0] not in KNOWN_IMPORTS for name in imports)


def names_deepspeed_checkpoint(argv: Sequence[str]) -> bool:
    """Whether an argument is a DeepSpeed checkpoint directory (``tools/
    test.py`` reads its weights through DeepSpeed's types)."""
    directories = [arg for arg in argv if os.path.isdir(arg)]
    if not directories:
        return False
    from ..checkpoint.files import DEEPSPEED_MODEL_FILE
    return any(os.path.isfile(os.path.join(directory, DEEPSPEED_MODEL_FILE))
               for directory in directories)


def deepspeed_only_if_used(argv: Sequence[str]) -> bool:
    """Mark DeepSpeed as not importable when DeepSpeed is not imported yet
    and nothing may use it: neither ``argv`` nor the config it names
    mention DeepSpeed, no argument is a DeepSpeed checkpoint directory, and
    the config imports no module of its own.  Returns whether it did.  A
    config that cannot be read is left to the tool to report (nothing is
    changed)."""
    if 'deepspeed' in sys.modules or any(MARK in arg.lower()
                                         for arg in argv):
        return False
    path = config_path(argv)
    if path is None or names_deepspeed_checkpoint(argv):
        return False
    try:
        from mmengine.config import Config
        cfg = Config.fromfile(path, import_custom_modules=False)
    except Exception:  # noqa: BLE001  (the tool reports it, with context)
        return False
    if mentions_deepspeed(cfg) or imports_unknown_modules(cfg):
        return False
    sys.modules['deepspeed'] = None
    return True
