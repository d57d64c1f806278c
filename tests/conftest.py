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
