"""HF ``Trainer`` reads the launcher's variables (``LOCAL_RANK``,
``WORLD_SIZE``, ...) from the environment and initialises
``torch.distributed`` when it finds them; the tools run in-process by
other tests set ``LOCAL_RANK`` as MMEngine's launchers expect.  These
tests are single-process: they run without those variables."""
import pytest


@pytest.fixture(autouse=True)
def without_launcher_variables(single_process):
    yield
