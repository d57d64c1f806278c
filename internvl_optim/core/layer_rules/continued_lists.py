"""Further block lists that continue a ViT's main one.

Some transformers encoders run a second list of blocks of the same class
after the first: Mllama's vision model (``transformer.layers``, then
``global_transformer.layers``), UDOP (``encoder.block``, then
``decoder.block``).  When the config declares the second list's length and
both lists are held by modules of one class, its blocks continue the ids
(:func:`declared_continuations`), and the holders read as stages of
blocks (:func:`stacks`).  Pure data from the module tree; used by the ViT
rule (:mod:`.vit`).
"""
import re
from typing import List, Sequence, Tuple

from torch import nn

#: a module named as one that runs after blocks (``layernorm_post``,
#: ``post_layernorm``, Mllama's ``post_tile_positional_embedding``)
POST = re.compile(r'^post_|_post$')


def stacks(inner, lists, n: int) -> List[Tuple[str, frozenset, int, int]]:
    """With continued lists, each list's holder as a stage: ``(holder
    prefix, children registered before the list, the id of what runs
    before its blocks, the id of what runs after them)``.  An embedding
    named as one (UDOP's ``encoder.cell_2d_embedding``) runs first wherever
    it is registered; what follows a list (``encoder.final_layer_norm``)
    runs before the next list's first block.  Empty without continued
    lists, or where a list's holder holds another list."""
    if len(lists) < 2:
        return []
    holders = [path.rpartition('.')[0] for path, _ in lists]
    if not all(holders) or len(set(holders)) < len(holders) or any(
            a != b and a.startswith(b + '.') for a in holders
            for b in holders):
        return []
    out = []
    for k, ((path, first_id), holder) in enumerate(zip(lists, holders)):
        leaf = path.rpartition('.')[2]
        children = [c for c, _ in
                inner.get_submodule(holder).named_children()]
        before = frozenset(children[:children.index(leaf)])
        start = 0 if k == 0 else first_id
        following = lists[k + 1][1] if k + 1 < len(lists) else n + 1
        out.append((holder + '.', before, start, following))
    return out


def sibling_lists(inner, block_path: str) -> List[str]:
    """The lists of the same name held by other modules of the class that
    holds the block list (UDOP's ``decoder.block`` beside
    ``encoder.block``, both held by a ``UdopStack``), whatever the lists
    are called."""
    holder, _, leaf = block_path.rpartition('.')
    if not holder:
        return []
    kind = type(inner.get_submodule(holder))
    return [f'{path}.{leaf}' for path, module in inner.named_modules()
            if path and path != holder and type(module) is kind
            and isinstance(getattr(module, leaf, None),
                           (nn.ModuleList, nn.Sequential))]


def _parent_type(module, path: str):
    parent = path.rpartition('.')[0]
    return type(module.get_submodule(parent)) if parent else None


def declared_continuations(inner, block_path: str, others: Sequence[str]
                           ) -> List[Tuple[str, int]]:
    """``(path, blocks)`` of the further block lists that continue the main
    one, in module order: registered after it, of its block class, held by
    a module of the same class as the main list's holder (a second encoder,
    not a predictor or decoder: V-JEPA 2's ``predictor.layer`` is left
    out), and of a length the model's config declares in a field of its
    own (Mllama's vision ``global_transformer.layers``:
    ``num_global_layers``).  Their blocks continue the ids; a ``post_*`` /
    ``*_post`` module (Mllama's ``layernorm_post`` and
    ``post_tile_positional_embedding``, registered before the lists but run
    between them) takes the id of the next list's first block."""
    config = vars(inner).get('config')
    if not others or config is None or not hasattr(config, '__dict__'):
        return []
    main = inner.get_submodule(block_path)
    declared = [v for k, v in vars(config).items() if 'layers' in k
                and isinstance(v, int) and not isinstance(v, bool)]
    order = {name: i for i, (name, _) in enumerate(inner.named_modules())}
    found = []
    for path in sorted(others, key=lambda p: order.get(p, -1)):
        blocks = inner.get_submodule(path)
        if order.get(path, -1) > order[block_path] and len(blocks) and \
                type(blocks[0]) is type(main[0]) and \
                _parent_type(inner, path) is _parent_type(inner, block_path) \
                and len(blocks) in declared:
            declared.remove(len(blocks))
            found.append((path, len(blocks)))
    return found
