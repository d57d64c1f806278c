"""Every config MMSeg 1.2.2 ships, with our constructor switched on
: its optimizer and ``paramwise_cfg`` (custom keys included) as
shipped, plus ``layer_decay_rate`` 0.9 and 1.0, on the model built on the
meta device (configs that share a model are built once).  What cannot be
built here is skipped for a named reason; anything else that fails, fails
the test.  The README's backbone table is the summary printed here."""
import collections
import glob
import hashlib
import os

import pytest

pytestmark = pytest.mark.slow

#: why a config cannot be built here (matched in its error)
SKIP_REASONS = {
    'mmpretrain.models': 'needs mmpretrain (torchvision for torch 2.13.0 is '
                         'a CUDA build that fails on the CPU torch)',
    'mmdet.models': 'needs mmdet',
    "unexpected keyword argument 'in_channels'": 'needs mmdet (its '
                                                  'Mask2Former/MaskFormer '
                                                  'head)',
    'To use VPD model': 'needs diffusers (VPD)',
}
#: family (config folder) -> the rule that must place its backbone
FAMILY_RULES = {
    'vit': 'ViT rule', 'beit': 'ViT rule', 'mae': 'ViT rule',
    'dpt': 'ViT rule', 'setr': 'ViT rule', 'segmenter': 'ViT rule',
    'san': 'ViT rule', 'swin': 'stage rule', 'segformer': 'stage rule',
    'twins': 'parallel stage rule',
    'knet': ('stage rule', 'module order rule'),
    'mask2former': ('stage rule', 'module order rule'),
    'maskformer': ('stage rule', 'module order rule'),
}


def _skip_reason(message):
    for needle, reason in SKIP_REASONS.items():
        if needle in message:
            return reason
    return None


def _model_key(cfg):
    return hashlib.md5(str(cfg.model.to_dict()).encode()).hexdigest()


def _plan(cfg, model, rate):
    from internvl_optim import LayerDecayOptimizerConstructor
    optim = cfg.optim_wrapper.to_dict()
    paramwise = dict(optim.pop('paramwise_cfg', None) or {})
    paramwise.pop('decay_rate', None)
    paramwise['layer_decay_rate'] = rate
    optim.pop('constructor', None)
    optim['type'] = 'OptimWrapper'
    for key in ('loss_scale', 'dtype'):
        optim.pop(key, None)
    warnings = []
    constructor = LayerDecayOptimizerConstructor(optim, paramwise)
    constructor(model)
    return constructor.plan, paramwise, warnings


@pytest.fixture(scope='module')
def walked():
    import mmseg
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import MODELS, init_default_scope

    from internvl_optim.analysis.meta_device import meta_device
    MMLogger.get_instance('all_configs', log_level='ERROR')
    root = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs')
    paths = sorted(p for p in glob.glob(f'{root}/**/*.py', recursive=True)
                   if '_base_' not in p)
    built, skipped, seen = {}, collections.Counter(), set()
    for path in paths:
        rel = os.path.relpath(path, root)
        try:
            cfg = Config.fromfile(path)
            if _model_key(cfg) in seen:
                continue
            seen.add(_model_key(cfg))
            init_default_scope(cfg.get('default_scope', 'mmseg'))
            with meta_device():
                model = MODELS.build(cfg.model)
        except Exception as err:  # named below, or the test fails
            reason = _skip_reason(str(err))
            assert reason, f'{rel}: {type(err).__name__}: {err}'
            skipped[reason] += 1
            continue
        built[rel] = (cfg, model)
    return paths, built, skipped


def test_every_shipped_config_builds_groups(walked, capsys):
    paths, built, skipped = walked
    summary = collections.defaultdict(set)
    for rel, (cfg, model) in built.items():
        family = rel.split('/')[0]
        for rate in (0.9, 1.0):
            plan, paramwise, _ = _plan(cfg, model, rate)
            names = {p.name for p in plan.params}
            trainable = {n for n, p in model.named_parameters()
                         if p.requires_grad}
            assert names == trainable - set(plan.frozen), rel
            n = plan.num_layers
            if rate == 1.0:
                custom = paramwise.get('custom_keys', {})
                for p in plan.params:
                    mult = custom.get(p.custom_key, {}).get('lr_mult', 1.0) \
                        if p.custom_key else 1.0
                    assert p.lr_scale == pytest.approx(mult), (rel, p.name)
                continue
            summary[family].add((plan.layer_rule.split(' (')[0], n))
            expected = FAMILY_RULES.get(family, 'module order rule')
            assert plan.layer_rule.startswith(expected), (rel,
                                                          plan.layer_rule)
            prefix = _backbone_prefix(model)
            in_backbone = [p for p in plan.params
                           if p.name.startswith(prefix)]
            # with the whole backbone trainable, every layer 1..N holds
            # some of its parameters (no stage-level N, no empty layer)
            if not any(name.startswith(prefix) for name in plan.frozen):
                missing = set(range(1, n + 1)) - \
                    {p.layer_id for p in in_backbone}
                assert not missing, (rel, sorted(missing))
            # and nothing outside the backbone is below the heads' layer
            assert all(p.layer_id == n + 1 for p in plan.params
                       if not p.name.startswith(prefix)), rel
    reasons = '\n'.join(f'  {count:3d} {reason}'
                        for reason, count in skipped.most_common())
    table = '\n'.join(
        f'  {family:14s} ' + ', '.join(f'{rule} N={n}' for rule, n in
                                       sorted(rules))
        for family, rules in sorted(summary.items()))
    with capsys.disabled():
        print(f'\n{len(paths)} configs, {len(built)} distinct models built '
              f'and grouped at rates 0.9 and 1.0; skipped '
              f'{sum(skipped.values())} distinct models:\n{reasons}\n'
              f'family -> rule, N:\n{table}')
    assert len(built) >= 400
    assert set(skipped) <= set(SKIP_REASONS.values())


def _backbone_prefix(model):
    from internvl_optim.core.names import BACKBONE_ATTRIBUTES
    for name in BACKBONE_ATTRIBUTES:
        if hasattr(model, name):
            return name + '.'
    return ''
