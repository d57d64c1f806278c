"""Parameter and module names as the rules see them, without wrapper prefixes.

DistributedDataParallel adds ``module.``, FSDP adds ``_fsdp_wrapped_module.``,
activation checkpointing adds ``_checkpoint_wrapped_module.`` and
``torch.compile`` adds ``_orig_mod.``.  No rule in this package ever sees these
segments, so a model gets the same groups however it is wrapped.
"""
from typing import Dict, Iterator, Tuple

from torch import nn

#: Segments that wrappers insert anywhere in a name.
WRAPPER_SEGMENTS = ('_fsdp_wrapped_module', '_checkpoint_wrapped_module',
                    '_orig_mod')
#: Segments that wrappers insert only at the front (DDP / DataParallel).
LEADING_WRAPPER_SEGMENTS = ('module', ) + WRAPPER_SEGMENTS


def strip_wrapper_prefixes(name: str) -> str:
    """Return ``name`` without the segments that model wrappers insert.

    ``module.`` is removed only at the front (a model may legitimately own a
    sub-module called ``module`` deeper down); the FSDP, checkpoint and
    ``torch.compile`` segments are removed wherever they appear.

    >>> strip_wrapper_prefixes('module._orig_mod.backbone.blocks.0.attn.qkv.weight')
    'backbone.blocks.0.attn.qkv.weight'
    """
    if not name.startswith(LEADING_WRAPPER_SEGMENTS) and not any(
            segment in name for segment in WRAPPER_SEGMENTS):
        return name  # the common case, without splitting
    parts = name.split('.') if name else []
    start = 0
    while start < len(parts) and parts[start] in LEADING_WRAPPER_SEGMENTS:
        start += 1
    return '.'.join(p for p in parts[start:] if p not in WRAPPER_SEGMENTS)


def join_name(prefix: str, name: str) -> str:
    """Join two dotted names, either of which may be empty."""
    if not prefix:
        return name
    if not name:
        return prefix
    return f'{prefix}.{name}'


def relative_name(name: str, prefix: str):
    """``name`` relative to the module ``prefix``, or None if outside it."""
    if not prefix:
        return name
    if name == prefix:
        return ''
    if name.startswith(prefix + '.'):
        return name[len(prefix) + 1:]
    return None


def clean_named_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """Map each wrapper-free module name to the innermost module of that name.

    ``named_modules`` yields a wrapper before the module it wraps, so the
    later (inner) module overwrites the wrapper under the same clean name.
    """
    modules: Dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        modules[strip_wrapper_prefixes(name)] = module
    return modules


def clean_named_parameters(
        model: nn.Module) -> Iterator[Tuple[str, nn.Parameter]]:
    """``model.named_parameters()`` with wrapper-free names.

    Tied parameters are reported once (under their first name), as
    ``named_parameters`` itself does.
    """
    for name, param in model.named_parameters():
        yield strip_wrapper_prefixes(name), param
