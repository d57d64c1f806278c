"""MMSeg's shipped ConvNeXt configs with our constructor give every
parameter the same lr and weight decay as MMSeg's own
LearningRateDecayOptimizerConstructor.

The backbone is the ConvNeXt stand-in of ``hierarchical_models`` (the same
module tree and names as mmpretrain's ConvNeXt, which cannot be imported
here: mmpretrain.models needs torchvision, whose only torch-2.13 build fails
on the CPU torch)."""
import os

import mmseg
import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import internvl_optim  # noqa: F401  (the custom_imports of a config)
from hierarchical_models import ConvNeXt

CONFIGS = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs',
                       'convnext')


def register_standin():
    from mmseg.registry import MODELS
    if MODELS.get('ConvNeXtStandIn') is None:
        MODELS.register_module('ConvNeXtStandIn', module=ConvNeXt)


@pytest.mark.parametrize('config, decay_type', [
    ('convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py', 'stage_wise'),
    ('convnext-base_upernet_8xb2-amp-160k_ade20k-512x512.py', 'stage_wise'),
    ('convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py', 'layer_wise'),
    ('convnext-base_upernet_8xb2-amp-160k_ade20k-512x512.py', 'layer_wise'),
])
def test_convnext_config_matches_mmseg(config, decay_type):
    from mmseg.engine.optimizers import LearningRateDecayOptimizerConstructor
    from mmseg.registry import MODELS
    register_standin()
    # the config imports mmpretrain.models, which cannot load here
    cfg = Config.fromfile(os.path.join(CONFIGS, config),
                          import_custom_modules=False)
    assert cfg.model.backbone.type == 'mmpretrain.ConvNeXt'
    cfg.model.backbone.type = 'ConvNeXtStandIn'
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)

    optim = cfg.optim_wrapper.to_dict()
    optim.update(type='OptimWrapper')  # AmpOptimWrapper needs a GPU
    optim.pop('loss_scale')
    optim['paramwise_cfg']['decay_type'] = decay_type
    ours = build_optim_wrapper(
        model, dict(optim, constructor='LayerDecayOptimizerConstructor'))
    theirs = build_optim_wrapper(model, optim)
    assert type(theirs).__name__ == 'OptimWrapper'

    def by_param(wrapper):
        return {id(p): (g['lr'], g['weight_decay'])
                for g in wrapper.optimizer.param_groups for p in g['params']}

    names = {id(p): n for n, p in model.named_parameters()}
    got, want = by_param(ours), by_param(theirs)
    assert set(got) == set(want) == set(names)
    differ = [names[i] for i in got if got[i] != want[i]]
    assert differ == []
    num_layers = optim['paramwise_cfg']['num_layers']
    head = ours.optimizer.param_groups[0]
    assert head['lr'] == 1e-4 and head['layer_id'] == num_layers + 1
