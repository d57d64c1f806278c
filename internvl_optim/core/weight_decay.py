"""Which parameters get no weight decay, and why.

A parameter gets zero weight decay when any of these holds:

* ``ndim``: it is 1-D or 0-D (judged on its *original* shape, so FSDP's
  flattened shards do not fool the rule);
* ``bias``: its own name is ``bias``;
* ``token``: it is a token or position/class embedding held directly as a
  parameter, or the weight of an ``nn.Embedding`` named as a position
  embedding (CLIP's and SigLIP's ``embeddings.position_embedding``)
  (:func:`~internvl_optim.core.names.is_token_or_position`):
  class, mask, register and distillation tokens and position embeddings are
  multi-dimensional, so the ``ndim`` rule alone misses them;
* ``norm``: it belongs to a normalization module, decided by the module's
  type (BatchNorm, LayerNorm, GroupNorm, RMSNorm, ..., and any class whose
  name ends in ``Norm``/``Norm1d``/``Norm2d``/``Norm3d``, such as
  InternViT's RMSNorm) whatever the parameter is called;
* ``lora``: it belongs to a LoRA adapter (PEFT's ``lora_A``/``lora_B``;
  a ``custom_keys`` ``decay_mult`` sets one);
* ``no_weight_decay``: the model or the backbone lists it in
  ``no_weight_decay()`` (timm convention; names relative to the module that
  declares them, a module name covers all its parameters, fnmatch wildcards
  such as ``'pos_embed.*'`` match as in timm) or a keyword of
  ``no_weight_decay_keywords()`` occurs in its name.
"""
import fnmatch
import functools
import re
from typing import Dict, Iterable, Optional, Set, Tuple

from torch import nn

from .names import is_token_or_position, join_name

_NORM_BASES = tuple(
    t for t in (getattr(nn.modules.batchnorm, '_NormBase', None),
                nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
                getattr(nn, 'RMSNorm', None)) if t is not None)
_NORM_CLASS_NAME = re.compile(r'Norm(\d[dD])?$')
#: an ``nn.Embedding`` holding positions, not tokens (a language model's
#: ``embed_tokens`` is a weight like any other)
_POSITION_TABLE = re.compile(r'(pos_embed|pos_embedding|position_embeddings?'
                             r'|position_embedding_table)(_\d+)?$')


def is_norm_module(module: nn.Module) -> bool:
    """Whether ``module`` is a normalization layer, by type.

    >>> is_norm_module(nn.LayerNorm(4)), is_norm_module(nn.Linear(4, 4))
    (True, False)
    """
    return _is_norm_type(type(module))


@functools.lru_cache(maxsize=None)
def _is_norm_type(cls: type) -> bool:
    """(by type, so cached: a model has few module types, many modules)"""
    if issubclass(cls, _NORM_BASES):
        return True
    return any(_NORM_CLASS_NAME.search(c.__name__) for c in cls.__mro__)


class SkipList:
    """The names declared by ``no_weight_decay()`` and
    ``no_weight_decay_keywords()``, turned into full parameter names.

    Args:
        declarers: ``(prefix, module)`` pairs, e.g. the model (``''``) and
            its backbone (``'backbone'``).
    """

    def __init__(self, declarers: Iterable[Tuple[str, nn.Module]]):
        self.names: Set[str] = set()
        #: entries with fnmatch wildcards (timm honours ``'pos_embed.*'``)
        self.patterns: Set[str] = set()
        self.keywords: Set[Tuple[str, str]] = set()
        seen = set()
        for prefix, module in declarers:
            if id(module) in seen:
                continue
            seen.add(id(module))
            if callable(getattr(module, 'no_weight_decay', None)):
                for name in module.no_weight_decay():
                    full = join_name(prefix, name)
                    if any(c in name for c in '*?['):
                        self.patterns.add(full)
                    else:
                        self.names.add(full)
            if callable(getattr(module, 'no_weight_decay_keywords', None)):
                for keyword in module.no_weight_decay_keywords():
                    self.keywords.add((prefix, keyword))

    def __contains__(self, name: str) -> bool:
        if self.names:  # the name or a module above it is declared
            end = name.find('.')
            while end >= 0:
                if name[:end] in self.names:
                    return True
                end = name.find('.', end + 1)
            if name in self.names:
                return True
        if any(fnmatch.fnmatchcase(name, p) for p in self.patterns):
            return True
        for prefix, keyword in self.keywords:
            if (not prefix or name.startswith(prefix + '.')) and \
                    keyword in name[len(prefix):]:
                return True
        return False


def no_decay_reason(name: str, ndim: int, owner: Optional[nn.Module],
                    skip_list: SkipList) -> Optional[str]:
    """Why ``name`` gets no weight decay, or ``None`` if it does get it.

    Args:
        name: full wrapper-free parameter name.
        ndim: number of dimensions of the parameter as the model defined it.
        owner: the module that holds the parameter directly.
        skip_list: the model's declared names.
    """
    if ndim <= 1:
        return 'ndim'
    own_name = name.rsplit('.', 1)[-1]
    if own_name == 'bias':
        return 'bias'
    if is_token_or_position(own_name):
        return 'token'
    parts = name.split('.')
    if (own_name == 'weight' and isinstance(owner, nn.Embedding)
            and len(parts) >= 2 and _POSITION_TABLE.search(parts[-2])):
        return 'token'  # CLIP/SigLIP: embeddings.position_embedding.weight
    if owner is not None and is_norm_module(owner):
        return 'norm'
    if 'lora_' in name and any(part.startswith('lora_')
                               for part in parts[:-1]):
        return 'lora'  # PEFT's lora_A / lora_B adapters
    if name in skip_list:
        return 'no_weight_decay'
    return None


def parameter_owners(modules: Dict[str, nn.Module]) -> Dict[str, nn.Module]:
    """Full wrapper-free parameter name -> the module holding it directly."""
    owners = {}
    for module_name, module in modules.items():
        for param_name in module._parameters:
            owners[join_name(module_name, param_name)] = module
    return owners
