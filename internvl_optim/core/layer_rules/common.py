"""What the layer-rule providers share: the checks of configured numbers
against the model, and where a name outside the blocks or stages goes."""
import re
from typing import Dict, Mapping, Optional, Sequence, Tuple

from ..names import is_token_or_position


_BARE_PATCH_EMBED = re.compile(r'^patch_embed(ding)?s?$')


def check_num_layers(given: Optional[int], found: int, where: str) -> int:
    """``found``, unless the configured ``num_layers`` disagrees."""
    if given is not None and given != found:
        raise ValueError(
            f'paramwise_cfg.num_layers={given} disagrees with the model: '
            f'{where} has {found} layers. Remove num_layers to infer it, or '
            f'set num_layers={found}')
    return found


def check_depths(given: Optional[Sequence[int]], found: Sequence[int],
                 where: str) -> None:
    if given is not None and list(given) != list(found):
        raise ValueError(
            f'paramwise_cfg.depths={list(given)} disagrees with the model: '
            f'{where} has depths {list(found)}. Remove depths to infer them')


#: norms that run between the patch embedding and the first block, by the
#: names their models give them, wherever they are registered (GLM-4V
#: registers ``post_conv_layernorm`` after its blocks; CLIP's
#: ``pre_layrnorm`` is spelled so in transformers)
PRE_BLOCK_NORMS = frozenset(('pre_layernorm', 'pre_layrnorm', 'layernorm_pre',
                             'ln_pre', 'norm_pre', 'post_conv_layernorm'))


def outside_placement(rel_name: str, container: str,
                      top_level: Sequence[str], num_layers: int) -> int:
    """Layer of a backbone-relative name outside the blocks or stages:
    a parameter held by the backbone itself is layer 0 when it is a token
    or position embedding, else ``N + 1``; a norm named as one that runs
    before the blocks (:data:`PRE_BLOCK_NORMS`) is layer 0; a sub-module
    registered before
    the one holding the blocks runs before them (patch embedding, pre-norm:
    layer 0), one registered after runs after them (final norm, adapters,
    necks inside the backbone: ``N + 1``).

    >>> top = ('patch_embed', 'norm_pre', 'blocks', 'norm', 'up1')
    >>> [outside_placement(n, 'blocks', top, 12) for n in
    ...  ('cls_token', 'level_embed', 'norm_pre.weight', 'up1.0.weight',
    ...   'patch_embed')]
    [0, 13, 0, 13, 0]
    >>> outside_placement('post_conv_layernorm.weight', 'blocks',
    ...                   ('patch_embed', 'blocks', 'post_conv_layernorm'), 2)
    0
    """
    first = rel_name.split('.', 1)[0]
    if '.' not in rel_name:
        # a bare token / position embedding, or a bare patch embedding
        # parameter (MMSeg's own ToyBEiT test model holds one)
        return 0 if (is_token_or_position(rel_name)
                     or _BARE_PATCH_EMBED.match(rel_name)) else num_layers + 1
    if first in PRE_BLOCK_NORMS:
        return 0
    holder = container.split('.', 1)[0]
    if first in top_level and holder in top_level and \
            top_level.index(first) < top_level.index(holder):
        return 0
    return num_layers + 1


def ancestors_of(module, block_path: str) -> Dict[str, Tuple[str, ...]]:
    """Each module on the path to the block list (below the backbone
    itself) -> its children's names in registration order."""
    path = block_path.split('.')
    out = {}
    for depth in range(1, len(path)):
        name = '.'.join(path[:depth])
        out[name] = tuple(c for c, _ in module.get_submodule(
            name).named_children())
    return out


def shared_depth(rel_name: str, container: str) -> int:
    """How many leading modules a name outside a nested container shares
    with the path to it (below the container itself).

    >>> shared_depth('encoder.norm.weight', 'encoder.blocks')
    1
    """
    path, parts = container.split('.'), rel_name.split('.')
    depth = 0
    while depth < len(path) - 1 and depth < len(parts) - 1 and \
            parts[depth] == path[depth]:
        depth += 1
    return depth


def registered_before(rel_name: str, container: str,
                      ancestors: Mapping[str, Sequence[str]]
                      ) -> Optional[bool]:
    """Whether a name outside a nested block container sits in a branch
    registered before the container's, at the deepest module holding both
    (:func:`ancestors_of`): True runs before the blocks (PP-LCNet's
    ``encoder.convolution`` beside ``encoder.blocks``), False after, None
    when they share no module below the backbone.

    >>> tree = {'encoder': ('convolution', 'blocks', 'norm')}
    >>> [registered_before(n, 'encoder.blocks', tree) for n in
    ...  ('encoder.convolution.weight', 'encoder.norm.weight', 'fc.weight')]
    [True, False, None]
    """
    path, parts = container.split('.'), rel_name.split('.')
    depth = shared_depth(rel_name, container)
    if not depth:
        return None
    children = ancestors.get('.'.join(path[:depth]), ())
    if parts[depth] in children and path[depth] in children:
        return children.index(parts[depth]) < children.index(path[depth])
    return None
