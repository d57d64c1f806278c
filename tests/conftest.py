# The shared test helpers (helpers.py, toy_models.py, ...) live here; the
# tests in the sub-folders (which mirror the package) import them by name.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def data_root(tmp_path_factory):
    """The demo's synthetic ADE20K-layout dataset (64 training, 16
    validation images), made once per test session; tests read it only."""
    from internvl_optim.datasets.synthetic_ade20k import make_synthetic_ade20k
    return make_synthetic_ade20k(str(tmp_path_factory.mktemp('ade')))


#: what launchers set; HF ``Trainer`` initialises ``torch.distributed``
#: when it finds them (the tools run in-process set ``LOCAL_RANK``)
LAUNCHER_VARIABLES = ('LOCAL_RANK', 'RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE',
                      'MASTER_ADDR', 'MASTER_PORT')


@pytest.fixture
def single_process(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
