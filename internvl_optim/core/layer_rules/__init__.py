"""Which layer each parameter belongs to: the rule (:class:`LayerRule`), what
a provider sees of the model (:class:`RuleContext`) and the ordered table
of providers that builds it.

Each provider answers "is this model mine?" and, if so, builds the rule;
the first that claims the model wins.  The order (:data:`PROVIDERS`):

1. MMSeg's ConvNeXt rules, when the backbone is ConvNeXt-shaped and
   ``decay_type`` is given (MMSeg's ConvNeXt configs give it);
2. the model's own ``get_layer_depth(name)`` (mmpretrain convention);
3. the backbone's ``get_layer_depth(name, prefix)``;
4. the backbone's ``get_layer_id(rel_name)``;
5. ``paramwise_cfg.layer_regex``;
6. the grouping the backbone declares as data: timm's
   ``group_matcher(coarse=False)`` (:mod:`.declared_groups`);
7. a ViT block list (:data:`~internvl_optim.core.names.BLOCK_CONTAINERS`);
8. MMSeg's ``layer_wise`` ConvNeXt rule;
9. stages of blocks (Swin, InternImage, MiT, Twins, timm/HF Swin);
10. the order of the backbone's top-level units (CNNs).

With none claiming the model, ``layer_decay_rate=1.0`` (the default)
needs no rule: every parameter gets the base lr (CNNs, any model).
Afterwards one check: every structural key configured (``depths``,
``layer_regex``) must have been used by the winner; an unused one is an
error naming it.  Layer ids run from 0 (embeddings) to ``num_layers + 1``
(heads, necks, everything outside the blocks); they depend only on names
and structure, never on which parameters are trainable.
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Tuple

from torch import nn

from ..backbone_probe import BackboneStructure, find_backbone, probe
from ..names import BLOCK_CONTAINERS, CBNET_PREFIX, relative_name
from ..settings import STRUCTURAL_KEYS


@dataclass(frozen=True)
class LayerRule:
    """A resolved rule: ``layer_id(full_name)`` for every parameter; built
    whole, never changed (:func:`dataclasses.replace` makes a variant)."""
    num_layers: int
    source: str
    backbone_prefix: str
    _layer_id: Callable[[str], int]
    #: whether the rule placed a name on purpose (``False``: a fallback to
    #: ``N + 1`` that the audit names); every name by default
    claimed: Callable[[str], bool] = lambda name: True
    #: the probe of the backbone the rule was resolved from (shared with
    #: ``freeze_backbone``, so the backbone is probed once per build);
    #: ``None`` for rules resolved without one
    structure: Optional[BackboneStructure] = None
    #: the layers are units of a CNN in module order (stem, stages), not
    #: embeddings and blocks (how tables name them)
    units: bool = False

    def layer_id(self, name: str) -> int:
        layer_id = self._layer_id(name)
        if (not isinstance(layer_id, int) or isinstance(layer_id, bool)
                or not 0 <= layer_id <= self.num_layers + 1):
            raise ValueError(
                f'{self.source} gave layer id {layer_id!r} to parameter '
                f'{name!r}; valid ids are integers 0..{self.num_layers + 1} '
                f'(num_layers={self.num_layers})')
        return layer_id


@dataclass
class RuleContext:
    """What a provider sees.

    Attributes:
        model: the whole (unwrapped-name) model.
        prefix: the backbone's name in the model ('' for the whole model).
        backbone: the backbone module.
        structure: :func:`~internvl_optim.core.backbone_probe.probe` result.
        in_backbone: full parameter name -> backbone-relative name.
        rule_names: full name -> the name the built-in rules see (CBNet:
            without ``cb_modules.{k}.``; ``None`` for CBNet's other parts).
        param_names: every parameter name, frozen included.
        desc: ``backbone 'backbone' (Type)`` for messages.
        settings: the validated ``paramwise_cfg``.
        warn: called with messages the user should see.
    """
    model: nn.Module
    prefix: str
    backbone: nn.Module
    structure: BackboneStructure
    in_backbone: Dict[str, str]
    rule_names: Dict[str, Optional[str]]
    param_names: List[str]
    desc: str
    settings: object
    warn: Callable[[str], None] = field(default=lambda msg: None)

    def make_rule(self, n: int, source: str,
                  rel_rule: Callable[[str], int],
                  claimed: Optional[Callable[[str], bool]] = None,
                  units: bool = False) -> LayerRule:
        """A rule applying ``rel_rule`` to :attr:`rule_names`; parameters
        outside (heads, CBNet links) get ``n + 1``; ``claimed(full_name)``
        says which names it placed on purpose (default: all)."""
        def layer_id(name):
            rel = self.rule_names.get(name)
            return n + 1 if rel is None else rel_rule(rel)
        return LayerRule(n, source, self.prefix, layer_id,
                         claimed or (lambda name: True), self.structure,
                         units)

    def rule_by_full_name(self, n: int, source: str,
                          layer_id: Callable[[str], int]) -> LayerRule:
        """A rule given on full parameter names (a model's own method)."""
        return LayerRule(n, source, self.prefix, layer_id,
                         structure=self.structure)


#: what a provider's ``build`` returns: the rule and the ``paramwise_cfg``
#: keys it used (``num_layers`` and ``decay_type='layer_wise'`` are used by
#: every rule).
Built = Tuple[LayerRule, FrozenSet[str]]


@dataclass(frozen=True)
class LayerRuleProvider:
    """One row of the table: ``claims(ctx)`` says "this model is mine",
    ``build(ctx)`` gives the rule."""
    name: str
    claims: Callable[[RuleContext], bool]
    build: Callable[[RuleContext], Built]



# the providers (each reads the types above only in annotations)
from . import (convnext, declared_groups, model_methods,  # noqa: E402
               module_order, regex, stages, vit)

PROVIDERS = (
    LayerRuleProvider('MMSeg ConvNeXt rules (decay_type given)',
                      convnext.claims_explicit, convnext.build),
    LayerRuleProvider('model.get_layer_depth',
                      model_methods.claims_model_depth,
                      model_methods.build_model_depth),
    LayerRuleProvider('backbone.get_layer_depth',
                      model_methods.claims_backbone_depth,
                      model_methods.build_backbone_depth),
    LayerRuleProvider('backbone.get_layer_id',
                      model_methods.claims_backbone_id,
                      model_methods.build_backbone_id),
    LayerRuleProvider('paramwise_cfg.layer_regex', regex.claims, regex.build),
    LayerRuleProvider('declared group_matcher (timm)',
                      declared_groups.claims, declared_groups.build),
    LayerRuleProvider('ViT block list', vit.claims, vit.build),
    LayerRuleProvider("MMSeg ConvNeXt layer_wise rule", convnext.claims,
                      convnext.build),
    LayerRuleProvider('stages of blocks', stages.claims, stages.build),
    LayerRuleProvider('module order (CNNs)', module_order.claims,
                      module_order.build),
)

def must_be_used() -> tuple:
    """The structural keys (:data:`~internvl_optim.core.settings.
    STRUCTURAL_KEYS`) a winning provider must use when they are configured;
    ``num_layers`` is used by every provider."""
    return tuple(k for k in STRUCTURAL_KEYS if k != 'num_layers')


class NoBackboneParameters(ValueError):
    """The backbone holds no parameters (fine without layer decay)."""


def rule_context(modules: Mapping[str, nn.Module], param_names: List[str],
                 settings, warn: Callable[[str], None]) -> RuleContext:
    """What the providers see of the model (see :class:`RuleContext`)."""
    prefix, backbone = find_backbone(modules, settings.backbone_name)
    desc = f'backbone {prefix!r} ({type(backbone).__name__})'
    in_backbone = {}
    for name in param_names:
        rel = relative_name(name, prefix)
        if rel is not None:
            in_backbone[name] = rel
    if not in_backbone:
        raise NoBackboneParameters(
            f'{desc} has no parameters: layer decay has nothing to decay. '
            'Set paramwise_cfg.backbone_name to the sub-module that holds '
            'the backbone, or layer_decay_rate=1.0')
    rule_names = dict(in_backbone)
    cb_modules = getattr(backbone, 'cb_modules', None)
    if isinstance(cb_modules, nn.ModuleList) and len(cb_modules):
        rule_names = {}
        for name, rel in in_backbone.items():
            match = CBNET_PREFIX.match(rel)
            rule_names[name] = match.group(1) if match else None
        desc += ' via cb_modules'
    return RuleContext(modules[''], prefix, backbone, probe(backbone),
                       in_backbone, rule_names, list(param_names), desc,
                       settings, warn)


def _check_stage_wise(ctx: RuleContext) -> None:
    if ctx.settings.decay_type == 'stage_wise' and \
            ctx.structure.convnext is None:
        raise ValueError(
            "paramwise_cfg.decay_type='stage_wise' is MMSeg's ConvNeXt rule, "
            f'but {ctx.desc} is not ConvNeXt-shaped (downsample_layers '
            "+ 4 stages); use decay_type='layer_wise' or leave it out")


def _check_all_used(ctx: RuleContext, rule: LayerRule, used) -> None:
    for key in must_be_used():
        value = getattr(ctx.settings, key)
        if value is not None and key not in used:
            shown = list(value) if key == 'depths' else value
            raise ValueError(
                f'paramwise_cfg.{key}={shown!r} is not used: {rule.source} '
                f'decides the layer ids of {ctx.desc}, and it takes no '
                f'{key}. Remove {key}')


def no_rule_error(ctx: RuleContext) -> ValueError:
    return ValueError(
        f'Cannot tell the layers of {ctx.desc}: it has no '
        'get_layer_depth/get_layer_id method, no block list at any of '
        f'{", ".join(BLOCK_CONTAINERS)} and no stages/levels of blocks. Set '
        "paramwise_cfg.layer_regex=dict(embed=..., blocks=r'...(\\d+)...'), "
        'or paramwise_cfg.backbone_name if the backbone lives elsewhere')


def resolve_layer_rule(modules: Mapping[str, nn.Module],
                       param_names: List[str], settings,
                       warn: Callable[[str], None] = lambda msg: None
                       ) -> LayerRule:
    """The first provider of :data:`PROVIDERS` that claims the model builds
    the rule; configured keys it did not use are an error."""
    try:
        ctx = rule_context(modules, param_names, settings, warn)
    except NoBackboneParameters:
        if settings.layer_decay_rate != 1.0 or any(
                getattr(settings, key) is not None for key in must_be_used()):
            raise
        prefix, _ = find_backbone(modules, settings.backbone_name)
        return LayerRule(0, 'no layer rule (layer_decay_rate=1.0)', prefix,
                         lambda name: 1)
    _check_stage_wise(ctx)
    for provider in PROVIDERS:
        if provider.claims(ctx):
            rule, used = provider.build(ctx)
            _check_all_used(ctx, rule, used)
            if rule.structure is not ctx.structure:  # built without make_rule
                rule = dataclasses.replace(rule, structure=ctx.structure)
            return rule
    if ctx.settings.layer_decay_rate == 1.0:
        # every layer gets the base lr: no layer rule is needed
        rule = LayerRule(0, 'no layer rule (layer_decay_rate=1.0)',
                         ctx.prefix, lambda name: 1, structure=ctx.structure)
        _check_all_used(ctx, rule, frozenset())
        return rule
    raise no_rule_error(ctx)


__all__ = ['Built', 'LayerRule', 'LayerRuleProvider', 'PROVIDERS',
           'RuleContext', 'resolve_layer_rule']
