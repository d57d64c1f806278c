"""Files from elsewhere: what a checkpoint, a released weight file or a
work dir may make a run do, checked before anything acts on it.

Pure PyTorch (no MMEngine): :mod:`.errors` (``CheckpointError``),
:mod:`.tensors` (weights floating and finite), :mod:`.resume_state`
(everything ``--resume`` takes from a file), :mod:`.json_files` (size- and
depth-capped JSON), :mod:`.work_dir` (finding the checkpoint to resume,
one trainer per work dir).
"""
from .errors import CheckpointError
from .resume_state import ResumeContext, check_resume_state
from .tensors import TensorTrustError, check_tensors

__all__ = ['CheckpointError', 'ResumeContext', 'check_resume_state',
           'TensorTrustError', 'check_tensors']
