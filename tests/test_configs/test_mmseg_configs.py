"""MMSeg's own shipped BEiT and MAE configs, unchanged but for
``custom_imports``, build our optimizer; every parameter gets the same lr as
with MMSeg's LearningRateDecayOptimizerConstructor.  Weight decay differs
exactly where we fix MMSeg's bug: the 3-D ``cls_token`` / ``pos_embed``
(MMSeg compares the full name ``backbone.cls_token`` with ``'cls_token'``)."""
import os

import mmseg
import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

# what the config's custom_imports does when the file is loaded (merging
# custom_imports into a loaded config, as below, imports nothing)
import internvl_optim.engine  # noqa: E402,F401


CONFIGS = os.path.join(os.path.dirname(mmseg.__file__), '.mim', 'configs')


def by_param(groups):
    return {id(p): (g['lr'], g['weight_decay'])
            for g in groups for p in g['params']}


@pytest.mark.parametrize('config, num_layers, rate, lr, differ', [
    ('beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py', 12, 0.9, 3e-5,
     {'backbone.cls_token'}),
    ('mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py', 12, 0.65, 1e-4,
     {'backbone.cls_token', 'backbone.pos_embed'}),
])
def test_shipped_config_matches_mmseg_lr(config, num_layers, rate, lr,
                                         differ):
    from mmseg.engine.optimizers import LearningRateDecayOptimizerConstructor
    from mmseg.registry import MODELS

    cfg = Config.fromfile(os.path.join(CONFIGS, config))
    cfg.merge_from_dict(dict(custom_imports=dict(imports=['internvl_optim'])))
    assert cfg.optim_wrapper.constructor == 'LayerDecayOptimizerConstructor'
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)

    ours = build_optim_wrapper(model, cfg.optim_wrapper.to_dict())
    mmseg_cfg = cfg.optim_wrapper.to_dict()
    mmseg_cfg.pop('constructor')
    mmseg_cfg.pop('paramwise_cfg')
    theirs = LearningRateDecayOptimizerConstructor(
        mmseg_cfg, dict(num_layers=num_layers, decay_rate=rate,
                        decay_type='layer_wise'))(model)

    names = {id(p): n for n, p in model.named_parameters()}
    got, want = (by_param(w.optimizer.param_groups) for w in (ours, theirs))
    assert set(got) == set(want) == set(names)
    lr_diff = [names[i] for i in got if got[i][0] != want[i][0]]
    assert lr_diff == []
    wd_diff = {names[i] for i in got if got[i][1] != want[i][1]}
    assert wd_diff == differ
    for name in differ:
        param_id = next(i for i, n in names.items() if n == name)
        assert got[param_id] == (lr * rate**13, 0.0)
        assert want[param_id] == (lr * rate**13, 0.05)
    # the logged lr (first group) is the base lr
    assert ours.optimizer.param_groups[0]['lr'] == lr
    assert len(ours.optimizer.param_groups) == 2 * (num_layers + 2)
