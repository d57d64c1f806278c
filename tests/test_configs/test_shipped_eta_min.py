"""MMSeg's shipped Cityscapes recipes with an absolute ``eta_min`` drop in
at ``layer_decay_rate=0.9``: their floor (1e-4) is far
below every group's starting lr (lr 0.01), so they build, and the warning
says from when the layer ratios flatten.

Facts (mmsegmentation 1.2.2, ``.mim/configs``): ``pspnet_r50-d8_4xb2-40k_
cityscapes-512x1024.py`` and ``fcn_hr18_4xb2-40k_cityscapes-512x1024.py``
use SGD lr 0.01 and ``PolyLR(eta_min=1e-4, power=0.9, begin=0,
end=40000)``."""
import os

import mmseg
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from internvl_optim import LayerDecayOptimizerConstructor
from internvl_optim.analysis.meta_device import meta_device
from internvl_optim.guards.schedule_floor import judge_floor
from internvl_optim.engine.config_checks import check_schedulers_keep_ratios

CONFIGS = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs')


@pytest.mark.parametrize('path, num_layers', [
    ('pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py', 4),
    ('hrnet/fcn_hr18_4xb2-40k_cityscapes-512x1024.py', 10),
])
def test_shipped_recipes_build_at_rate_0_9_with_the_warning(path,
                                                            num_layers):
    cfg = Config.fromfile(os.path.join(CONFIGS, path))
    scheduler = cfg.param_scheduler[0]
    assert (scheduler.type, scheduler.eta_min, scheduler.power) == \
        ('PolyLR', 1e-4, 0.9)
    assert cfg.optim_wrapper.optimizer.lr == 0.01
    cfg.optim_wrapper.constructor = 'LayerDecayOptimizerConstructor'
    cfg.optim_wrapper.paramwise_cfg = dict(layer_decay_rate=0.9)
    check_schedulers_keep_ratios(cfg)  # no longer refused
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    with meta_device():
        model = MODELS.build(cfg.model)
    wrapper_cfg = cfg.optim_wrapper.to_dict()
    constructor = LayerDecayOptimizerConstructor(
        dict(type='OptimWrapper', optimizer=wrapper_cfg['optimizer']),
        wrapper_cfg['paramwise_cfg'])
    wrapper = constructor(model)
    start = {g['group_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    n = constructor.plan.num_layers
    assert n == num_layers  # module order: ResNet's 5 units, HRNet's 11
    # the embeddings' (stem's) group is the lowest: 0.01 * 0.9 ** (N + 1)
    assert min(start.values()) == pytest.approx(0.01 * 0.9 ** (n + 1))
    error, warning = judge_floor('param_scheduler[0] (PolyLR)', 'PolyLR',
                                 1e-4, start, 0.9, (0, 40000))
    assert error is None
    low = 0.01 * 0.9 ** (n + 1)
    x = 1 - (1e-4 / (low - 1e-4)) ** (1 / 0.9)
    assert warning.startswith(
        'param_scheduler[0] (PolyLR) has an absolute eta_min=0.0001: every '
        'group moves towards the same floor, so the layer ratios flatten '
        f'from {100 * x:.1f} % of its span (iteration {40000 * x:.0f})')
    assert 0.97 < x < 1.0  # only the last 3 % of the steps
