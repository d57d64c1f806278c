"""Loading a checkpoint never runs its code, in process: the
crafted payloads of malicious_checkpoints.py, every allow-listed global
narrowed, clear answers for files that are no checkpoint, and the choice of
the checkpoint ``--resume`` falls back to.  Through the real tools:
test_checkpoint_attacks_tools.py."""
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from internvl_optim.checkpoint.safe_loading import (ALLOWED_ATTRIBUTES,
                                              CheckpointError,
                                              load_checkpoint_file,
                                              load_from_local,
                                              restricted_getattr)
from internvl_optim.checkpoint.files import (resume_fallback,
                                        is_complete_checkpoint,
                                        newest_complete_checkpoint)

import malicious_checkpoints as evil

TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
DEFAULT_STATISTICS = ['current', 'max', 'mean', 'min']
REFUSED = "was refused by safe loading: internvl_optim: refusing "


def test_widening_payload_runs_code_under_the_old_allow_list(tmp_path):
    """Control: the payload is live.  In a fresh interpreter without
    internvl_optim, with the allow-list as it was before these checks (HistoryBuffer
    as is, getattr allowed for any name in HistoryBuffer._statistics_methods),
    loading it runs its code and finishes normally."""
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    code = f'''
import sys, torch
sys.path.insert(0, {TESTS!r})
import malicious_checkpoints as evil
from mmengine.logging.history_buffer import HistoryBuffer

def old_getattr(owner, name):
    if owner is HistoryBuffer and name in HistoryBuffer._statistics_methods:
        return getattr(owner, name)
    raise RuntimeError(name)

evil.save_payload(evil.statistics_widening_payload({str(marker)!r}),
                  {str(path)!r})
import numpy as np
from numpy._core.multiarray import _reconstruct
torch.serialization.add_safe_globals(
    [HistoryBuffer, (old_getattr, 'builtins.getattr'), np.ndarray, np.dtype,
     type(np.dtype('float64')), type(np.dtype('int64')), _reconstruct])
checkpoint = torch.load({str(path)!r}, weights_only=True)
print(sorted(checkpoint))
'''
    result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "['payload', 'state_dict']" in result.stdout
    assert marker.read_text() == 'ran'


def test_widening_payload_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'evil.pth'
    evil.save_payload(evil.statistics_widening_payload(marker), path)
    with pytest.raises(CheckpointError, match=re.escape(
            f"checkpoint '{path}' {REFUSED}getattr(<class "
            "'mmengine.logging.history_buffer.HistoryBuffer'>, "
            "'__getattribute__'); only HistoryBuffer.current, "
            'HistoryBuffer.max, HistoryBuffer.mean, HistoryBuffer.min, '
            'ShardedTensor.ProcessGroupState are allowed')):
        load_checkpoint_file(str(path))
    assert not marker.exists()
    # the buffer's statistics_methods did not reach the class
    assert sorted(HistoryBuffer._statistics_methods) == DEFAULT_STATISTICS
    # plain torch.load in this process is just as safe (same allow-list)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        torch.load(path, weights_only=True)
    assert not marker.exists()


def test_getattr_without_widening_is_refused(tmp_path):
    path = tmp_path / 'getattr.pth'
    evil.save_payload(evil.direct_getattr_payload(), path)
    with pytest.raises(CheckpointError, match=re.escape(
            "refusing getattr(<class 'mmengine.logging.history_buffer."
            "HistoryBuffer'>, '__getattribute__')")):
        load_checkpoint_file(str(path))


@pytest.mark.parametrize('owner, name', [
    (HistoryBuffer, '__init__'), (HistoryBuffer, '__class__'),
    (HistoryBuffer, 'register_statistics'), (os, 'system'),
    (HistoryBuffer(), 'min'),  # an instance, not the class
    (HistoryBuffer, b'min'),
])
def test_restricted_getattr_allows_only_the_fixed_table(owner, name):
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        restricted_getattr(owner, name)


def test_the_table_is_fixed_and_not_widened_by_registered_statistics():
    assert isinstance(ALLOWED_ATTRIBUTES, frozenset)
    HistoryBuffer._statistics_methods['__getattribute__'] = None
    try:
        with pytest.raises(pickle.UnpicklingError):
            restricted_getattr(HistoryBuffer, '__getattribute__')
    finally:
        del HistoryBuffer._statistics_methods['__getattribute__']
    assert restricted_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean


def test_history_buffer_state_is_checked_field_by_field(tmp_path):
    marker = tmp_path / 'never'
    for state, message in [
        (dict(max_length=3, _log_history=np.ones(1),
              _count_history=np.ones(1), __class__=None),
         "HistoryBuffer state with unknown fields ['__class__']"),
        (dict(max_length='3', _log_history=np.ones(1),
              _count_history=np.ones(1)), 'HistoryBuffer field max_length = str'),
        (dict(max_length=3, _log_history=[1.0], _count_history=np.ones(1)),
         'HistoryBuffer field _log_history = list'),
    ]:
        path = tmp_path / 'hb.pth'
        evil.save_payload(evil._NewWithState(HistoryBuffer, state), path)
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load_checkpoint_file(str(path))
    assert not marker.exists()


def test_object_arrays_and_blocked_globals_are_refused(tmp_path):
    path = tmp_path / 'objects.pth'
    torch.save({'a': np.array([{'x': 1}], dtype=object)}, path)
    with pytest.raises(CheckpointError, match=re.escape(
            "refusing numpy dtype dtype('O') (only numeric dtypes are "
            'allowed)')):
        load_checkpoint_file(str(path))

    class System:

        def __reduce__(self):
            return os.system, ('true', )

    torch.save({'a': System()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(str(path))
    message = str(info.value)
    assert 'GLOBAL posix.system whose module posix is blocked' in message
    assert 'nothing from the file was run' in message
    assert 'weights_only' not in message  # never the advice to turn it off


def test_real_message_hub_state_loads_as_plain_history_buffers(tmp_path):
    hub = MessageHub('issue10')
    for loss in (3.0, 2.0, 1.0):
        hub.update_scalar('train/loss', loss)
    path = tmp_path / 'hub.pth'
    torch.save({'message_hub': hub.state_dict(), 'dtype': np.dtype('float32'),
                'scalar': np.float64(0.5), 'meta': {'iter': 3}}, path)
    loaded = load_checkpoint_file(str(path))
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert type(buffer) is HistoryBuffer
    assert buffer.mean() == 2.0 and buffer.statistics('min') == 1.0
    assert buffer.current() == 1.0 and buffer.max_length == 1000000
    assert loaded['dtype'] == np.float32 and loaded['scalar'] == 0.5
    # re-saved, it pickles as MMEngine's class again
    torch.save(loaded, path)
    assert type(load_checkpoint_file(str(path))['message_hub']['log_scalars']
                ['train/loss']) is HistoryBuffer
    assert sorted(HistoryBuffer._statistics_methods) == DEFAULT_STATISTICS


def test_meta_config_payload_is_code_to_mmengine(tmp_path):
    """Control: what Runner.resume does with meta.config runs it."""
    from mmengine.config import Config
    marker = tmp_path / 'ran'
    meta = evil.with_config_payload({'meta': {}}, marker)['meta']
    Config.fromstring(meta['config'], file_format='.py')
    assert marker.read_text() == 'ran'


def test_meta_config_is_dropped_by_the_local_loader(tmp_path):
    marker = tmp_path / 'ran'
    path = tmp_path / 'ckpt.pth'
    checkpoint = evil.with_config_payload(
        {'meta': {'iter': 2, 'cfg': 'x = 1'}, 'state_dict': {}}, marker)
    torch.save(checkpoint, path)
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    assert CheckpointLoader._get_checkpoint_loader(str(path)) is \
        load_from_local
    loaded = _load_checkpoint(str(path), map_location='cpu')
    assert loaded['meta'] == {'iter': 2, 'cfg': 'x = 1'}
    assert not marker.exists()


@pytest.mark.parametrize('content, message', [
    (b'', "is empty (0 bytes): probably a save that was interrupted"),
    (b'hello, not a checkpoint', "(23 bytes, starting b'hell') is not a "
     'PyTorch checkpoint: torch.save writes a zip archive'),
    (bytes(range(200, 256)) * 4, 'is not a PyTorch checkpoint'),
    (pickle.dumps({'a': 1}, protocol=2)[:-3], 'is damaged or not a PyTorch '
     'checkpoint'),
])
def test_files_that_are_no_checkpoint_are_named(tmp_path, content, message):
    path = tmp_path / 'bad.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(str(path))
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert 'weights_only' not in str(info.value)


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / 'iter_4.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=re.escape(
            f"checkpoint '{path}' ({len(data) // 2:,} bytes) is truncated: "
            'its zip archive has no central directory')):
        load_checkpoint_file(str(path))
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"checkpoint '{tmp_path}/nope.pth' does not exist")):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def _checkpoint(path, complete=True):
    torch.save({'state_dict': {'w': torch.zeros(100)}}, path)
    if not complete:
        data = path.read_bytes()
        path.write_bytes(data[:100])
    return str(path)


def test_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    messages = []
    assert resume_fallback(str(tmp_path), messages.append) is None
    iter_2 = _checkpoint(tmp_path / 'iter_2.pth')
    iter_10 = _checkpoint(tmp_path / 'iter_10.pth')
    iter_12 = _checkpoint(tmp_path / 'iter_12.pth', complete=False)
    assert not is_complete_checkpoint(iter_12)
    assert newest_complete_checkpoint(str(tmp_path)) == iter_10
    record = tmp_path / 'last_checkpoint'
    record.write_text(iter_2)  # complete: MMEngine's own auto-resume
    assert resume_fallback(str(tmp_path), messages.append) is None
    assert messages == []
    record.write_text('')
    assert resume_fallback(str(tmp_path), messages.append) == iter_10
    assert messages[-1] == (
        f'{record} is empty; resuming from the newest complete checkpoint '
        f'in the work dir, {iter_10}')
    record.write_text(iter_12)
    assert resume_fallback(str(tmp_path), messages.append) == iter_10
    assert messages[-1].startswith(f"{record} names '{iter_12}', which is "
                                   'incomplete; resuming from')
    record.write_text(str(tmp_path / 'iter_99.pth'))
    assert resume_fallback(str(tmp_path), messages.append) == iter_10
    assert 'iter_99.pth\', which is missing' in messages[-1]
    for name in ('iter_2.pth', 'iter_10.pth'):
        (tmp_path / name).unlink()
    with pytest.raises(CheckpointError, match=re.escape(
            f'Cannot resume: {record} names')):
        resume_fallback(str(tmp_path), messages.append)


def test_checkpoint_directories_count_when_every_file_is_complete(tmp_path):
    directory = tmp_path / 'iter_4.pth'
    directory.mkdir()
    assert not is_complete_checkpoint(str(directory))  # empty
    _checkpoint(directory / 'mp_rank_00_model_states.pt')
    assert is_complete_checkpoint(str(directory))
    _checkpoint(directory / 'zero_pp_rank_0_optim_states.pt', complete=False)
    assert not is_complete_checkpoint(str(directory))
