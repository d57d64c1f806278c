"""Fragment files of per-parameter state saved by name, one per rank:
assembled by name whatever the world size, and every field checked before
use, refused naming the file and the field."""
import pytest
import torch

from internvl_optim.checkpoint.errors import CheckpointError
from internvl_optim.checkpoint.state_fragments import (
    FORMAT, VERSION, fragment_file, match_groups, read_fragments)

W = torch.arange(6, dtype=torch.float32).view(2, 3)
M = torch.arange(6, dtype=torch.float32) / 10
V = torch.arange(6, dtype=torch.float32) / 100
GROUPS = [dict(param_names=['w', 'b'], lr=0.5, initial_lr=1.0,
               weight_decay=0.05, betas=(0.9, 0.999), group_name='g0')]


def _entry(start, count, step=4, shape=(2, 3), b=False):
    flat = (torch.ones(3) if b else W.flatten())
    return dict(shape=list(shape), start=start, numel=count, step=step,
                fp32=flat[start:start + count].clone(),
                exp_avg=(torch.zeros(3) if b else M)[start:start + count]
                .clone(),
                exp_avg_sq=(torch.zeros(3) if b else V)[start:start + count]
                .clone())


def _rank(rank, params, world_size=2):
    return dict(format=FORMAT, version=VERSION, world_size=world_size,
                rank=rank, stage=2, keys=['exp_avg', 'exp_avg_sq'],
                groups=GROUPS, params=params)


def _write(directory, contents):
    for rank, content in enumerate(contents):
        torch.save(content, fragment_file(str(directory), rank))


def _read(directory):
    return read_fragments(str(directory), [p.name for p in
                                           directory.iterdir()],
                          lambda path: torch.load(path, weights_only=True))


def _two_ranks():
    # w split 4 + 2 over two ranks; b wholly on rank 1
    return [_rank(0, dict(w=_entry(0, 4))),
            _rank(1, dict(w=_entry(4, 2), b=_entry(0, 3, shape=(3, ),
                                                   b=True)))]


def test_fragments_of_two_ranks_assemble_each_parameter(tmp_path):
    _write(tmp_path, _two_ranks())
    saved = _read(tmp_path)
    assert saved.world_size == 2 and saved.keys == ('exp_avg', 'exp_avg_sq')
    assert sorted(saved.names) == ['b', 'w']
    assert torch.equal(saved.full('w'), W)
    assert torch.equal(saved.full('w', 'exp_avg'), M.view(2, 3))
    assert torch.equal(saved.full('w', 'exp_avg_sq'), V.view(2, 3))
    assert torch.equal(saved.full('b'), torch.ones(3))
    assert saved.steps == dict(w=4, b=4)


def test_a_directory_without_fragments_is_none(tmp_path):
    (tmp_path / 'mp_rank_00_model_states.pt').write_bytes(b'x')
    assert _read(tmp_path) is None


def _change(contents, rank, name, key, value):
    contents[rank]['params'][name][key] = value
    return contents


@pytest.mark.parametrize('edit, field, problem', [
    (lambda c: _change(c, 0, 'w', 'exp_avg_sq', -torch.ones(4)),
     "params['w'].exp_avg_sq", 'holds negative values'),
    (lambda c: _change(c, 0, 'w', 'fp32', torch.full((4, ), float('nan'))),
     "params['w'].fp32", 'holds non-finite values'),
    (lambda c: _change(c, 0, 'w', 'exp_avg', torch.zeros(4,
                                                         dtype=torch.int64)),
     "params['w'].exp_avg", 'is a torch.int64 tensor of shape (4,), not a '
     'float32 tensor of 4 elements'),
    (lambda c: _change(c, 0, 'w', 'exp_avg', [0.0] * 4),
     "params['w'].exp_avg", 'is list, not a float32 tensor of 4 elements'),
    (lambda c: _change(c, 0, 'w', 'fp32', torch.zeros(4).to_sparse()),
     "params['w'].fp32", 'is a tensor of layout torch.sparse_coo, not a '
     'float32 tensor of 4 elements'),
    (lambda c: _change(c, 0, 'w', 'fp32', torch.zeros(4, device='meta')),
     "params['w'].fp32", 'is a meta tensor, not a float32 tensor of 4 '
     'elements'),
    (lambda c: _change(c, 0, 'w', 'step', True),
     "params['w'].step", 'is True, not an integer in [0, 16777216]'),
    (lambda c: _change(c, 0, 'w', 'step', -1),
     "params['w'].step", 'is -1, not an integer in [0, 16777216]'),
    (lambda c: _change(c, 0, 'w', 'step', 10 ** 400),
     "params['w'].step", 'is 10000000000000000000..., not an integer in '
     '[0, 16777216]'),
    (lambda c: [dict(c[0], keys=['exp_avg', 'step']), c[1]], "'keys'",
     "is ['exp_avg', 'step'], not a list of state names"),
    (lambda c: _change(c, 0, 'w', 'numel', 10 ** 9),
     "params['w'].start/numel", 'are 0/1000000000, not a slice of the 6 '
     'elements of shape [2, 3]'),
    (lambda c: _change(c, 0, 'w', 'shape', [2, -3]),
     "params['w'].shape", 'is [2, -3], not a list of sizes'),
    (lambda c: [dict(c[0], world_size=10 ** 9), c[1]],
     "'world_size'", 'is 1000000000, not an integer in [1, 65536]'),
    (lambda c: [dict(c[0], format='other'), c[1]],
     "'format'/'version'", "are 'other'/1"),
    (lambda c: [dict(c[0], rank=1), c[1]], "'rank'", "is 1, but the file "
     "is rank 0's"),
    (lambda c: [dict(c[0], stage='2\nFAKE LOG LINE'), c[1]], "'stage'",
     "is '2\\nFAKE LOG LINE', not a ZeRO stage 1, 2 or 3"),
    (lambda c: [dict(c[0], groups=[dict(GROUPS[0], lr=torch.ones(1))]),
                c[1]], "'groups'[0]['lr']", 'is not a plain hyperparameter'),
    (lambda c: [c[0], dict(c[1], keys=['exp_avg'])], "'keys'",
     "is ['exp_avg'], but rank 0 saved ['exp_avg', 'exp_avg_sq']"),
    (lambda c: [dict(c[0], groups=[dict(GROUPS[0], lr=-0.1)]), c[1]],
     "'groups'[0]['lr']", 'is -0.1; an lr or weight decay is a finite '
     'number >= 0'),
], ids=['negative_second_moment', 'nan_master', 'integer_moment',
        'list_moment', 'sparse', 'meta', 'bool_step', 'negative_step',
        'huge_step', 'step_as_state',
        'huge_slice',
        'negative_size', 'huge_world', 'format', 'rank', 'stage',
        'tensor_lr',
        'ranks_disagree', 'negative_lr'])
def test_fields_are_checked_naming_file_and_field(tmp_path, edit, field,
                                                  problem):
    _write(tmp_path, edit(_two_ranks()))
    with pytest.raises(CheckpointError) as error:
        _read(tmp_path)
    message = str(error.value)
    assert 'state_by_name_rank' in message
    assert f'{field} {problem}' in message


def test_slices_must_cover_each_parameter_once(tmp_path):
    overlap = _two_ranks()
    overlap[1]['params']['w'] = _entry(3, 3)
    _write(tmp_path, overlap)
    with pytest.raises(CheckpointError, match="the saved slices of 'w' "
                       'overlap at element 3 of 6'):
        _read(tmp_path)
    gap = _two_ranks()
    gap[1]['params']['w'] = _entry(5, 1)
    _write(tmp_path, gap)
    with pytest.raises(CheckpointError, match="the saved slices of 'w' "
                       'leave a gap at element 4 of 6'):
        _read(tmp_path)


def test_a_missing_rank_file_is_named(tmp_path):
    _write(tmp_path, _two_ranks()[:1])
    with pytest.raises(CheckpointError, match=r'saved by 2 ranks, but the '
                       r'fragment files of ranks \[1\] are missing'):
        _read(tmp_path)


def test_groups_continue_the_schedule_and_report_changes(tmp_path):
    _write(tmp_path, _two_ranks())
    saved = _read(tmp_path)
    w, b = torch.zeros(2, 3), torch.zeros(3)
    same = [dict(params=[w, b], param_names=['w', 'b'], lr=1.0,
                 initial_lr=1.0, weight_decay=0.05, betas=(0.9, 0.999),
                 group_name='g0')]
    match = match_groups(saved, same)
    assert not match.changed
    # the checkpoint was half way down its schedule (0.5 / 1.0)
    assert match.state_dict['param_groups'][0]['lr'] == 0.5
    split = [dict(params=[w], param_names=['w'], lr=0.2, initial_lr=0.2,
                  weight_decay=0.05, betas=(0.9, 0.999), group_name='g0'),
             dict(params=[b], param_names=['b'], lr=2.0, initial_lr=2.0,
                  weight_decay=0.0, betas=(0.9, 0.999), group_name='g1')]
    match = match_groups(saved, split)
    assert match.changed and sorted(match.kept) == ['b', 'w']
    assert [g['lr'] for g in match.state_dict['param_groups']] == [0.1, 1.0]


def test_a_directory_missing_a_ranks_fragment_is_not_complete(tmp_path):
    """A run killed while its ranks wrote their fragments leaves fewer
    fragment files than DeepSpeed optimizer files: not resumed from."""
    from internvl_optim.checkpoint.work_dir import is_complete_checkpoint

    def save(name):
        torch.save({}, str(tmp_path / name))
    for name in ('mp_rank_00_model_states.pt',
                 'zero_pp_rank_0_mp_rank_00_optim_states.pt',
                 'zero_pp_rank_1_mp_rank_00_optim_states.pt'):
        save(name)
    assert is_complete_checkpoint(str(tmp_path))  # DeepSpeed's own files
    save('state_by_name_rank0.pth')
    assert not is_complete_checkpoint(str(tmp_path))
    save('state_by_name_rank1.pth')
    assert is_complete_checkpoint(str(tmp_path))


def _without(contents, *keys):
    for content in contents:
        content['keys'] = [k for k in content['keys'] if k not in keys]
        for entry in content['params'].values():
            for key in keys:
                del entry[key]
    return contents


@pytest.mark.parametrize('drop, amsgrad, message', [
    ((), False, None),
    (('exp_avg', 'exp_avg_sq'), False,
     "'keys' is [], but the live AdamW keeps ['exp_avg', 'exp_avg_sq'] per "
     'element (and the saved steps are > 0)'),
    (('exp_avg_sq', ), False,
     "'keys' is ['exp_avg'], but the live AdamW keeps ['exp_avg', "
     "'exp_avg_sq'] per element: the state was saved by another optimizer, "
     'or cut'),
    ((), True,
     "'keys' is ['exp_avg', 'exp_avg_sq'], but the live AdamW keeps "
     "['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'] per element"),
], ids=['whole', 'empty', 'partial', 'amsgrad_now'])
def test_per_element_keys_must_be_what_the_live_optimizer_keeps(
        tmp_path, drop, amsgrad, message):
    """Before the first step: Adam takes a state with only a step (or one
    moment) as initialised and fails on the missing moment once training
    has started."""
    from internvl_optim.checkpoint.state_by_name import StateMatchError
    from internvl_optim.runtime.zero_state_by_name import check_saved_keys
    _write(tmp_path, _without(_two_ranks(), *drop))
    saved = _read(tmp_path)
    live = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(9))],
                             amsgrad=amsgrad)
    if message is None:
        check_saved_keys(live, saved)
        return
    with pytest.raises(StateMatchError) as error:
        check_saved_keys(live, saved)
    assert str(error.value).startswith(message)
