"""DeepSpeed ZeRO state carried by parameter name to another world size,
on CPU gloo ranks (``benchmarks/zero_world_size.py`` runs the whole
matrix): right after the resume every parameter's fp32 master and Adam
moments, as DeepSpeed itself gathers them, are those of the save bit for
bit; after 3 more steps the weights equal an uninterrupted run's up to the
order of the ranks' gradient sums.

Facts relied on (DeepSpeed 0.15.4): ZeRO-3 pads a parameter to a multiple
of the world size (6 elements on 3 ranks: 2 each; ``head.bias``, 1
element: 1 on rank 0, padding on ranks 1 and 2); ZeRO-1/2 link the moments
to the parameters after stepping their first group only
(``stage_1_and_2._optimizer_step``), so the script links them all before
gathering."""
import importlib.util
import os

import pytest

pytestmark = pytest.mark.slow
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')


def _matrix():
    spec = importlib.util.spec_from_file_location(
        'zero_world_size', os.path.join(ROOT, 'benchmarks',
                                        'zero_world_size.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('stage, saved, resumed', [(3, 1, 3), (2, 2, 1)])
def test_zero_state_resumes_at_another_world_size(tmp_path, stage, saved,
                                                  resumed):
    row = _matrix().run_case(stage, saved, resumed, 3, str(tmp_path))
    assert row['state_equal']
    assert row['steps'] == ([3], [3])
    # TinyViT(depth=3, dim=6): 18 tensors, all kept, none new or dropped
    assert (row['kept'], row['added'], row['removed']) == (18, [], [])
    assert row['finite']
    assert row['max_diff'] < 1e-6
