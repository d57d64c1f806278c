"""timm as an oracle (issue 19): one architecture of every timm family,
built on the meta device, compared parameter by parameter with timm's own
``param_groups_layer_decay`` (which reads the model's ``group_matcher`` and
``no_weight_decay()``).  Where the model declares a grouping, lr scales are
equal; weight decay is equal or differs only by a documented convention,
asserted here.  The whole zoo: ``python benchmarks/timm_zoo.py``.

timm imports torchvision at import time; torchvision cannot be imported
beside this CPU torch, so ``import_timm`` stands in for it in this process
(``internvl_optim/analysis/timm_oracle.py``).
"""
import pytest

from internvl_optim.analysis.timm_oracle import compare, import_timm

timm = import_timm()


def first_of_each_family():
    """The first architecture (alphabetically) of every timm module."""
    return [sorted(timm.list_models(module=module))[0]
            for module in timm.list_modules()
            if timm.list_models(module=module)]


FAMILIES = first_of_each_family()

#: documented weight-decay conventions, per model: names we exempt that
#: timm decays, and why
DOCUMENTED_WD = {
}


def test_there_is_one_model_per_family():
    assert timm.__version__ == '1.0.31'
    assert len(FAMILIES) == len(timm.list_modules()) == 98
    assert len(timm.list_models()) == 1371


@pytest.mark.parametrize('name', FAMILIES)
def test_each_family_against_timm(name):
    result = compare(name)
    assert not result.refused, result.refused
    assert set(result.ours) == set(result.theirs)
    assert result.silent_head_lr() == []
    if not result.declares:
        return  # timm then chunks parameters 12 by 12: no declaration
    assert result.lr_differences() == []
    assert sorted(result.wd_differences()) == sorted(
        DOCUMENTED_WD.get(name, []))
