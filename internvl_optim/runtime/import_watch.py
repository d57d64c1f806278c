"""Register the constructor in registries that appear after the package.

``import internvl_optim`` in a program that has not imported MMEngine yet
(a script sorted by isort: ``internvl_optim`` before ``mmengine``) imports
nothing outside PyTorch.  Yet the names ``LayerDecayOptimizerConstructor``
and ``CustomLayerDecayOptimizerConstructor`` must still mean ours when the
program later builds an optimizer wrapper, in MMEngine's root registry and
under ``default_scope='mmseg'`` / ``'mmdet'``, whose scopes register a
deprecated class of the same name when they are first looked up.

:func:`watch` puts one finder on ``sys.meta_path`` that sees the modules of
MMEngine, MMCV, MMSeg and MMDetection being imported.  Once a module of
:data:`REGISTERING_MODULES` has been imported (MMEngine's ``mmengine.optim``,
MMSeg's and MMDetection's ``engine.optimizers``), it imports
:mod:`internvl_optim.engine`, which registers everything, as soon as no
module of those packages is still half-executed (a partly imported
``mmengine.model`` cannot be imported from), and removes itself.  It
imports nothing by itself.  A registration that fails is a warning naming
``import internvl_optim.engine`` (which registers in any import order),
never an error inside the program's own import.
"""
import importlib.abc
import sys
import warnings
from typing import Callable

#: the packages whose imports are watched
WATCHED_PACKAGES = ('mmengine', 'mmcv', 'mmseg', 'mmdet')
#: modules whose import completes a registry that must name our class
REGISTERING_MODULES = ('mmengine.optim', 'mmseg.engine.optimizers',
                       'mmdet.engine.optimizers')


class RegistrationWatch(importlib.abc.MetaPathFinder):
    """The finder :func:`watch` installs (one per interpreter)."""

    def __init__(self, register: Callable[[], None]):
        #: what registers everything (imports ``internvl_optim.engine``)
        self.register = register
        self.executing = 0  # watched modules being executed right now
        self.due = False    # a registry appeared: register when safe
        self.registering = False

    def find_spec(self, fullname, path, target=None):
        if fullname.split('.', 1)[0] not in WATCHED_PACKAGES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, 'exec_module'):
            spec.loader = _Watched(spec.loader, self)
        return spec

    def executed(self, name: str, ok: bool) -> None:
        """``name`` finished executing (``ok``) or failed."""
        self.executing -= 1
        self.due = self.due or (ok and name in REGISTERING_MODULES)
        if not self.due or self.executing or self.registering:
            return
        self.registering = True
        try:
            self.register()
        except Exception as err:  # never break the program's own import
            warnings.warn(
                'internvl_optim could not register LayerDecayOptimizer'
                f'Constructor after {name} was imported ({err!r}); add '
                '`import internvl_optim.engine` after the MMEngine imports, '
                'or the name may build MMSeg\'s class of the same name',
                RuntimeWarning, stacklevel=2)
        finally:
            self.registering = False
            unwatch()


class _Watched:
    """A loader that runs the real one and tells the watch (everything
    else is the real loader's)."""

    def __init__(self, loader, watch: RegistrationWatch):
        self._loader = loader
        self._watch = watch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._watch.executing += 1
        ok = False
        try:
            self._loader.exec_module(module)
            ok = True
        finally:
            # the module keeps its real loader, as if never watched
            module.__loader__ = self._loader
            if getattr(module, '__spec__', None) is not None:
                module.__spec__.loader = self._loader
            self._watch.executed(module.__name__, ok)

    def __getattr__(self, name):
        return getattr(self._loader, name)


def watch(register: Callable[[], None]) -> None:
    """Install the watch (idempotent); ``register`` is called once a
    registry appears (the package passes the import of its MMEngine glue,
    so this module imports nothing of it)."""
    if not any(isinstance(f, RegistrationWatch) for f in sys.meta_path):
        sys.meta_path.insert(0, RegistrationWatch(register))


def unwatch() -> None:
    """Remove the watch (everything is registered)."""
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not isinstance(f, RegistrationWatch)]


def mmengine_imported() -> bool:
    """Whether MMEngine is imported; an entry set to ``None`` (the standard
    way to block an import) is not."""
    return sys.modules.get('mmengine') is not None
