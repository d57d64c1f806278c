"""``paramwise_cfg.freeze_backbone``: freeze backbone stages by index.

The listed units (InternImage ``levels.{i}``, Swin/ConvNeXt ``stages.{i}``
together with ConvNeXt's ``downsample_layers.{i}``, or ViT blocks; in every
CBNet composite backbone), or the whole backbone for ``'all'``, stay out of
the optimizer.  This module only selects them: the plan lists them
(``GroupPlan.to_freeze``) and :func:`internvl_optim.runtime.freezing.
apply_freezing` sets ``requires_grad=False`` and keeps their norms in eval
mode.  The structure comes from the same probe as the layer rules.
"""
from typing import List, Optional, Sequence, Tuple, Union

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .backbone_probe import (BackboneStructure, composite_backbones,
                             find_block_container, probe)


def _indexed_units(module: nn.Module,
                   structure: BackboneStructure) -> Tuple[str, list]:
    """``(kind, units)``: what ``freeze_backbone`` indices count."""
    if structure.stages is not None:
        path = structure.stages.container
        return path.rsplit('.', 1)[-1], list(module.get_submodule(path))
    if structure.convnext is not None:
        return 'stages', [nn.ModuleList([stage, down]) for stage, down in
                          zip(module.stages, module.downsample_layers)]
    if structure.blocks is not None:
        path = structure.blocks[0]
        return path, list(module.get_submodule(path))
    return '', []


def select_units(backbone: nn.Module, spec: Union[str, Sequence[int]],
                 desc: str, structure: Optional[BackboneStructure] = None
                 ) -> List[nn.Module]:
    """The modules ``spec`` names (validated; nothing is changed).
    ``structure``: the backbone's probe when the caller has it (the layer
    rule's), else it is probed here."""
    if spec == 'all':
        return [backbone]
    if structure is None:
        structure = probe(backbone)
    units = []
    for inner in composite_backbones(backbone):
        kind, indexed = _indexed_units(inner, structure)
        if not indexed:
            raise ValueError(
                f'paramwise_cfg.freeze_backbone={list(spec)}: {desc} has '
                "no stages, levels or blocks to index; use 'all'")
        bad = [i for i in spec if i >= len(indexed)]
        if bad:
            raise ValueError(
                f'paramwise_cfg.freeze_backbone={list(spec)}: {bad} out of '
                f'range, {desc} has {len(indexed)} {kind} (valid 0..'
                f"{len(indexed) - 1}, or 'all')")
        units += [indexed[i] for i in spec]
    return units


def check_wrapper_allows_freezing(model: nn.Module) -> None:
    """MMEngine wraps the model in DDP *before* building the optimizer; DDP
    then expects gradients for parameters frozen afterwards and fails at the
    first backward unless it looks for unused parameters."""
    if isinstance(model, DistributedDataParallel) and \
            not model.find_unused_parameters:
        raise ValueError(
            'paramwise_cfg.freeze_backbone freezes parameters after the model '
            'was wrapped in DistributedDataParallel, which then waits for '
            'their gradients. Either freeze in the model config (e.g. '
            'model.backbone.freeze_vit=True / frozen_stages) or set '
            "model_wrapper_cfg=dict(type='MMDistributedDataParallel', "
            'find_unused_parameters=True)')


def params_of(unit):
    """A unit to freeze: a module (all its parameters) or one parameter."""
    return unit.parameters() if isinstance(unit, nn.Module) else [unit]


def units_to_freeze(view, settings) -> list:
    """Everything the settings freeze, as units (modules or single
    parameters): ``freeze_backbone``'s stages, towers with ``freeze=True``
    and InternVL chat's flags.  Selected, not frozen: the caller applies
    them (:func:`internvl_optim.runtime.freezing.apply_freezing`)."""
    units = []
    for region in view.regions:
        units += backbone_units(view.model, view.modules, region.rule,
                                region.settings)
        if region.tower is not None and region.tower.freeze:
            check_wrapper_allows_freezing(view.model)
            units.append(view.modules[region.tower.module])
    return internvl_flag_units(settings, view.regions, view.modules, units)


def backbone_units(model, modules, rule, settings) -> List[nn.Module]:
    if not settings.freeze_backbone:
        return []
    check_wrapper_allows_freezing(model)
    backbone = modules[rule.backbone_prefix]
    return select_units(
        backbone, settings.freeze_backbone,
        f'backbone {rule.backbone_prefix!r} ({type(backbone).__name__})',
        rule.structure)


#: where an ``lm_head`` lives: transformers' VLMs, InternVL chat's LLMs
#: (``language_model.lm_head``; InternLM2: ``language_model.output``)
LM_HEADS = ('lm_head', '{language}.lm_head', '{language}.output')


def internvl_flag_units(settings, regions, modules, units) -> list:
    """InternVL chat's flags on a VLM layout: ``freeze_mlp`` and
    ``freeze_llm`` freeze the projector and the language model;
    ``unfreeze_vit_layers=N`` keeps the vision blocks ``[N:]`` trainable
    (InternVL: ``encoder.layers[N:]``, from N on); ``unfreeze_lm_head``
    keeps ``lm_head`` trainable.  Units holding a kept parameter are
    frozen parameter by parameter."""
    if not (settings.freeze_mlp or settings.freeze_llm
            or settings.unfreeze_vit_layers or settings.unfreeze_lm_head):
        return units
    towers = {r.tower.name: r.tower for r in regions if r.tower is not None}
    missing = [n for n in ('vision', 'projector', 'language')
               if n not in towers]
    if missing:
        raise ValueError(
            'paramwise_cfg.freeze_mlp / freeze_llm / unfreeze_vit_layers / '
            "unfreeze_lm_head are InternVL chat's flags for a VLM, but the "
            f'model has no tower named {missing}: it is no known VLM layout '
            "and paramwise_cfg.towers names no 'vision', 'projector' and "
            "'language'")
    units = list(units)
    if settings.freeze_mlp:
        units.append(modules[towers['projector'].module])
    if settings.freeze_llm:
        units.append(modules[towers['language'].module])
    keep = set()
    if settings.unfreeze_vit_layers:
        vision = modules[towers['vision'].module]
        found = find_block_container(vision)
        if found is None:
            raise ValueError(
                'paramwise_cfg.unfreeze_vit_layers: the vision tower '
                f'{towers["vision"].module!r} has no block list')
        blocks = vision.get_submodule(found[0])
        n = settings.unfreeze_vit_layers
        if not settings.freeze_backbone:
            raise ValueError(
                f'paramwise_cfg.unfreeze_vit_layers={n} keeps vision blocks '
                'trainable inside a frozen vision tower, but nothing freezes '
                'it: add paramwise_cfg.freeze_backbone=True, or remove '
                'unfreeze_vit_layers')
        if not -len(blocks) < n < len(blocks):
            raise ValueError(
                f'paramwise_cfg.unfreeze_vit_layers={n}: the vision tower '
                f'{towers["vision"].module!r} has {len(blocks)} blocks, so '
                f'[{n}:] keeps {"none" if n >= len(blocks) else "all"} of '
                f'them; valid: 1..{len(blocks) - 1} (blocks from N on) or '
                f'-{len(blocks) - 1}..-1 (the last -N)')
        layers = blocks[n:]
        keep |= {id(p) for p in layers.parameters()}
    if settings.unfreeze_lm_head:
        names = [n.format(language=towers['language'].module)
                 for n in LM_HEADS]
        heads = [modules[n] for n in names if n in modules]
        if not heads:  # under a wrapper's prefix (``vlm.``, PEFT's
            # ``base_model.model.``): the one ``lm_head`` of the model
            found = [n for n in modules if n.endswith('.lm_head')]
            heads = [modules[found[0]]] if len(found) == 1 else []
        if not heads:
            raise ValueError('paramwise_cfg.unfreeze_lm_head: the model has '
                             f'none of {names}')
        head_params = {id(p) for p in heads[0].parameters()}
        if settings.freeze_llm:
            language = modules[towers['language'].module]
            inside = {id(m) for m in heads[0].modules()}
            tied = [n for n, m in language.named_modules()
                    if id(m) not in inside
                    for own, p in m.named_parameters(recurse=False)
                    if id(p) in head_params]
            if tied:
                raise ValueError(
                    'paramwise_cfg.freeze_llm with unfreeze_lm_head: '
                    'lm_head is tied to the language model\'s '
                    f'{tied[0]} (one tensor), so keeping lm_head trainable '
                    'would train that frozen embedding too. Untie them '
                    '(tie_word_embeddings=False), or leave '
                    'unfreeze_lm_head out')
        keep |= head_params
    if not keep:
        return units
    split = []
    for unit in units:
        params = list(params_of(unit))
        if any(id(p) in keep for p in params):
            split += [p for p in params if id(p) not in keep]
        else:
            split.append(unit)
    return split
