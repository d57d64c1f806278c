"""JSON from a downloaded model directory (``config.json``, shard indexes),
read with a size cap and a nesting cap: a 100 MB ``config.json`` or one
nested a million levels deep is refused, naming the file, before it costs
memory or a ``RecursionError``."""
import json
import os
import stat
from typing import Any

from .errors import CheckpointError

#: a HuggingFace config.json is a few KB (a VLM's, with both towers, tens)
CONFIG_MAX_BYTES = 4 * 1024 * 1024
#: a shard index names every tensor once: ~100 bytes a tensor
INDEX_MAX_BYTES = 64 * 1024 * 1024
#: no published config nests deeper than a handful of levels
MAX_DEPTH = 32


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def read_json(path: str, max_bytes: int = CONFIG_MAX_BYTES,
              max_depth: int = MAX_DEPTH) -> Any:
    """The parsed file, or a :class:`CheckpointError` naming it: too large,
    too deeply nested, not UTF-8 or not JSON, or not a regular file (a
    FIFO would block the reader forever, a directory fails late)."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise CheckpointError(f'{path!r}: {err.strerror}') from None
    if not stat.S_ISREG(info.st_mode):
        kind = 'a directory' if stat.S_ISDIR(info.st_mode) else \
            'not a regular file (a FIFO, socket or device)'
        raise CheckpointError(f'{path!r} is {kind}; a JSON file is read '
                              'from a regular file only')
    size = info.st_size
    if size > max_bytes:
        raise CheckpointError(
            f'{path!r} is {size:,} bytes; a file of this kind is at most '
            f'{max_bytes:,} bytes. It is not the file it is named after')
    try:
        with open(path, encoding='utf-8') as f:
            value = json.load(f)
    except RecursionError:
        raise CheckpointError(f'{path!r} is nested more than {max_depth} '
                              'levels deep; not a model config') from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f'{path!r} is not valid JSON: {err}') from None
    if _depth(value) > max_depth:
        raise CheckpointError(f'{path!r} is nested more than {max_depth} '
                              'levels deep; not a model config')
    return value
