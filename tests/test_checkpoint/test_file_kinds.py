"""Files read from elsewhere are read only as the writer wrote them: a
JSON file (a DeepSpeed config, a model's config.json) from a regular file
only, never a FIFO that would block the reader; a fragment file only under
the name the writer gives rank r (``state_by_name_rank{r}.pth``), so a
stray ``state_by_name_rank00.pth`` is not taken for rank 0 by listing
order."""
import os
import time

import pytest

from internvl_optim.checkpoint.errors import CheckpointError
from internvl_optim.checkpoint.json_files import read_json
from internvl_optim.checkpoint.state_fragments import fragment_files


def test_a_fifo_json_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / 'ds_config.json'
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match=(
            r"ds_config.json' is not a regular file \(a FIFO, socket or "
            r'device\); a JSON file is read from a regular file only')):
        read_json(str(fifo))
    assert time.monotonic() - started < 5
    (tmp_path / 'dir.json').mkdir()
    with pytest.raises(CheckpointError, match="dir.json' is a directory"):
        read_json(str(tmp_path / 'dir.json'))


def test_only_the_writers_names_are_fragments():
    assert fragment_files(['state_by_name_rank00.pth',
                           'state_by_name_rank0.pth',
                           'state_by_name_rank1.pth',
                           'state_by_name_rank01.pth']) == {
        0: 'state_by_name_rank0.pth', 1: 'state_by_name_rank1.pth'}
