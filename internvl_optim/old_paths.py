"""Old import paths kept for a release: each old module is an alias of the
module that now holds its contents, and warns once when imported."""
import importlib
import warnings

#: the release that removes the old paths
REMOVED_IN = '0.2'


def alias(old_globals: dict, old: str, new: str) -> None:
    """Fill ``old_globals`` (the old module's ``globals()``) with every
    public name of module ``new``, after a ``DeprecationWarning`` naming
    both paths."""
    warnings.warn(
        f'{old} is an old import path; import {new} instead (the old path '
        f'will be removed in {REMOVED_IN})', DeprecationWarning, stacklevel=3)
    moved = importlib.import_module(new)
    old_globals.update({name: value for name, value in vars(moved).items()
                        if not name.startswith('__')})
