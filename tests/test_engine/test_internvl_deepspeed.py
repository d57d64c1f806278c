"""InternVL's ``deepspeed=True`` / ``deepspeed_config`` keys become MMEngine's
FlexibleRunner + DeepSpeedStrategy (a 2-process run is in
test_distributed.py)."""
import json
import os
import re

import pytest
from mmengine.config import Config

from internvl_optim.engine.internvl_deepspeed_keys import translate_internvl_deepspeed

INTERNVL_JSON = {  # InternVL's segmentation/zero_configs/adam_zero1_bf16.json
    'train_batch_size': 16, 'gradient_accumulation_steps': 1,
    'optimizer': {'type': 'Adam', 'params': {'lr': 0.00004}},
    'bf16': {'enabled': True},
    'zero_optimization': {'stage': 1, 'reduce_bucket_size': 5e8,
                          'overlap_comm': True},
    'log': {'steps_per_print': 50}}


def config(tmp_path, text):
    path = tmp_path / 'cfg.py'
    path.write_text("optim_wrapper = dict(type='OptimWrapper', "
                    "optimizer=dict(type='AdamW', lr=4e-5))\n" + text)
    return Config.fromfile(str(path))


def test_internvl_keys_become_a_deepspeed_strategy(tmp_path):
    (tmp_path / 'zero_configs').mkdir()
    (tmp_path / 'zero_configs' / 'adam_zero1_bf16.json').write_text(
        json.dumps(INTERNVL_JSON))
    # relative to the config file, as InternVL's configs are laid out
    cfg = config(tmp_path, "deepspeed = True\n"
                 "deepspeed_config = 'zero_configs/adam_zero1_bf16.json'\n")
    messages = []
    assert translate_internvl_deepspeed(cfg, log=messages.append) is True
    assert 'deepspeed' not in cfg and 'deepspeed_config' not in cfg
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.optim_wrapper.type == 'DeepSpeedOptimWrapper'
    expected = {k: v for k, v in INTERNVL_JSON.items() if k != 'optimizer'}
    assert cfg.strategy.to_dict() == dict(type='DeepSpeedStrategy',
                                          config=expected)
    assert cfg.optim_wrapper.optimizer.to_dict() == dict(type='AdamW',
                                                         lr=4e-5)
    assert len(messages) == 1 and 'ZeRO stage 1' in messages[0]
    assert "its optimizer section (Adam) is ignored" in messages[0]


def test_deepspeed_false_just_drops_the_keys(tmp_path):
    cfg = config(tmp_path, "deepspeed = False\n"
                 "deepspeed_config = 'zero_configs/adam_zero1_bf16.json'\n")
    assert translate_internvl_deepspeed(cfg, log=pytest.fail) is False
    assert 'deepspeed' not in cfg and 'deepspeed_config' not in cfg
    assert 'strategy' not in cfg and cfg.optim_wrapper.type == 'OptimWrapper'
    plain = config(tmp_path, '')
    assert translate_internvl_deepspeed(plain, log=pytest.fail) is False
    assert plain.optim_wrapper.type == 'OptimWrapper'


@pytest.mark.parametrize('text, error, message', [
    ("deepspeed = 'yes'\n", ValueError,
     "deepspeed='yes': InternVL's key takes True or False"),
    ('deepspeed = True\n', ValueError,
     "deepspeed=True needs deepspeed_config='path/to/zero.json'"),
    ("deepspeed = True\ndeepspeed_config = 'missing.json'\n",
     FileNotFoundError, "deepspeed_config='missing.json': no such file "
     "(tried 'missing.json', "),
    ("deepspeed = True\ndeepspeed_config = 'bad.json'\n", ValueError,
     "bad.json' is not valid JSON: Expecting value: line 1 column 23"),
    ("deepspeed = True\ndeepspeed_config = 'fifo.json'\n", ValueError,
     "fifo.json' is not a regular file (a FIFO, socket or device); a JSON "
     'file is read from a regular file only'),
    ("deepspeed = True\ndeepspeed_config = 'dir.json'\n", ValueError,
     "dir.json' is a directory; a JSON file is read from a regular file "
     'only'),
    ("deepspeed = True\ndeepspeed_config = 'list.json'\n", ValueError,
     "deepspeed_config='list.json' must hold a JSON object"),
    ("deepspeed = True\ndeepspeed_config = 'ok.json'\n"
     "runner_type = 'FlexibleRunner'\n", ValueError,
     "deepspeed=True (InternVL's key) and MMEngine's runner_type / strategy "
     'are both set; keep one'),
])
def test_bad_internvl_keys_are_named(tmp_path, text, error, message):
    (tmp_path / 'bad.json').write_text('{"zero_optimization": ')
    (tmp_path / 'list.json').write_text('[1]')
    (tmp_path / 'ok.json').write_text('{}')
    os.mkfifo(tmp_path / 'fifo.json')
    (tmp_path / 'dir.json').mkdir()
    cfg = config(tmp_path, text)
    before = cfg.to_dict()
    with pytest.raises(error, match=re.escape(message)):
        translate_internvl_deepspeed(cfg, log=pytest.fail)
    assert cfg.to_dict() == before  # nothing half-rewritten
