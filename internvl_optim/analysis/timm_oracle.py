"""timm as an oracle: our groups against timm's own, model by model.

timm declares how each of its models groups into layers
(``group_matcher``) and which parameters take no weight decay
(``no_weight_decay()``, 1-D parameters); its ``param_groups_layer_decay``
turns that into lr scales.  :func:`compare` builds a timm model on the meta
device and compares, for every parameter, our lr scale and weight decay
with timm's.

timm imports torchvision at import time, for names it does not need to
build models or groups; where torchvision cannot be imported,
:func:`import_timm` lets timm import a stand-in for it (``FrozenBatchNorm2d``
as a real module, every other name an inert placeholder), then removes the
stand-in again, so the rest of the process sees no torchvision.  Used by ``benchmarks/timm_zoo.py`` and the tests; never
by the package itself.
"""
import importlib.abc
import importlib.machinery
import math
import sys
import types
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import torch
from torch import nn

#: lr scales equal to this relative tolerance count as equal
RTOL = 1e-9


class _PlaceholderMeta(type):
    def __getattr__(cls, name):
        if name.startswith('__'):
            raise AttributeError(name)
        sub = _PlaceholderMeta(name, (cls, ), {})
        setattr(cls, name, sub)
        return sub

    def __call__(cls, *args, **kwargs):
        return cls


class _Placeholder(metaclass=_PlaceholderMeta):
    """Any torchvision name timm touches at import time."""


class FrozenBatchNorm2d(nn.Module):
    """torchvision's frozen BatchNorm: buffers only (what timm's
    ``freeze_batch_norm_2d`` builds)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer('weight', torch.ones(num_features))
        self.register_buffer('bias', torch.zeros(num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):

    def find_spec(self, name, path=None, target=None):
        if name == 'torchvision' or name.startswith('torchvision.'):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = (lambda attr: FrozenBatchNorm2d
                              if attr == 'FrozenBatchNorm2d'
                              else getattr(_Placeholder, attr))
        return module

    def exec_module(self, module):
        pass


def import_timm():
    """``import timm``, with the torchvision stand-in where torchvision
    itself cannot be imported."""
    if 'timm' in sys.modules:
        return sys.modules['timm']
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001  (ImportError, or its ops failing)
        for name in [m for m in sys.modules
                     if m == 'torchvision' or m.startswith('torchvision.')]:
            del sys.modules[name]
        stand_in = _TorchvisionStandIn()
        sys.meta_path.insert(0, stand_in)
        try:
            import timm
        finally:  # the rest of the process sees no torchvision, as before
            sys.meta_path.remove(stand_in)
            for name in [m for m in sys.modules if m == 'torchvision'
                         or m.startswith('torchvision.')]:
                del sys.modules[name]
        return timm
    import timm
    return timm


@dataclass
class Comparison:
    """One model: per parameter, (ours, timm's) lr scale and weight decay."""
    model: str
    ours: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    theirs: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    refused: str = ''
    warnings: List[str] = field(default_factory=list)
    declares: bool = False
    #: the timm module defining the model (its family)
    family: str = ''
    #: per parameter, why we give it no weight decay (None: decayed)
    reasons: Dict[str, object] = field(default_factory=dict)
    #: the top-level modules of the classifier (``pretrained_cfg``)
    head: Tuple[str, ...] = ()

    def silent_head_lr(self) -> List[str]:
        """Parameters outside the classifier that timm decays and we put
        at the base lr without a warning naming them."""
        text = ' '.join(self.warnings)
        return [n for n in self.theirs if n in self.ours
                and self.theirs[n][0] < 1 and self.ours[n][0] == 1.0
                and n.split('.', 1)[0] not in self.head and n not in text]

    def lr_differences(self) -> List[str]:
        return [n for n in self.theirs if n in self.ours and not math.isclose(
            self.ours[n][0], self.theirs[n][0], rel_tol=RTOL)]

    def wd_differences(self) -> List[str]:
        return [n for n in self.theirs
                if n in self.ours and self.ours[n][1] != self.theirs[n][1]]

    @property
    def same(self) -> bool:
        return not self.refused and not self.lr_differences() and \
            not self.wd_differences() and set(self.ours) == set(self.theirs)


def timm_groups(model: nn.Module, weight_decay: float, rate: float
                ) -> Dict[str, Tuple[float, float]]:
    """timm's ``param_groups_layer_decay`` per parameter name."""
    from timm.optim import param_groups_layer_decay
    no_decay = model.no_weight_decay() if hasattr(
        model, 'no_weight_decay') else ()
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in param_groups_layer_decay(model, weight_decay, no_decay,
                                          layer_decay=rate):
        for p in group['params']:
            out[names[id(p)]] = (group['lr_scale'], group['weight_decay'])
    return out


def our_groups(model: nn.Module, weight_decay: float, rate: float,
               result: 'Comparison') -> Dict[str, Tuple[float, float]]:
    from ..core import LayerDecaySettings, build_param_groups
    plan = build_param_groups(
        model, LayerDecaySettings.from_paramwise_cfg(
            dict(layer_decay_rate=rate)), 1.0, weight_decay,
        warn=result.warnings.append)
    result.reasons = {p.name: p.no_decay_reason for p in plan.params}
    return {n: (g['lr_scale'], g['weight_decay'])
            for g in plan.groups for n in g['param_names']}


def compare(name: str, weight_decay: float = 0.05, rate: float = 0.9,
            **kwargs) -> Comparison:
    """Build timm model ``name`` on the meta device and compare."""
    timm = import_timm()
    result = Comparison(name)
    with torch.device('meta'):
        model = timm.create_model(name, pretrained=False, **kwargs)
    result.declares = callable(getattr(model, 'group_matcher', None))
    result.family = type(model).__module__.rsplit('.', 1)[-1]
    classifier = (getattr(model, 'pretrained_cfg', None) or {}).get(
        'classifier') or ()
    if isinstance(classifier, str):
        classifier = (classifier, )
    result.head = tuple(c.split('.', 1)[0] for c in classifier)
    result.theirs = timm_groups(model, weight_decay, rate)
    try:
        result.ours = our_groups(model, weight_decay, rate, result)
    except ValueError as err:
        result.refused = str(err)
    return result
