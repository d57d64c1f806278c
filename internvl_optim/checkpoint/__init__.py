"""Files from elsewhere: reading checkpoints and released weights, and
what a checkpoint, a weight file or a work dir may make a run do, checked
before anything acts on it.

Pure PyTorch: :mod:`.errors` (``CheckpointError``), :mod:`.tensors`
(weights floating and finite), :mod:`.resume_state` (everything
``--resume`` takes from a file), :mod:`.state_by_name` (optimizer
state carried to changed groups by parameter name),
:mod:`.state_fragments` (each rank's slices of it, read at any world size),
:mod:`.json_files` (size- and depth-capped JSON), :mod:`.work_dir`
(finding the checkpoint to resume, one trainer per work dir).  Reading (these import MMEngine, whose checkpoints they allow):
:mod:`.safe_loading` (``torch.load(weights_only=True)`` with MMEngine's
types narrowed, the local loader), :mod:`.files` (a checkpoint against a
model, evaluable files), :mod:`.weight_files` (every released layout:
``.pth``, safetensors, shards, HuggingFace directories).
"""
from .errors import CheckpointError
from .resume_state import ResumeContext, check_resume_state
from .state_by_name import (StateMatch, StateMatchError, load_state_by_name,
                            match_state_by_name)
from .tensors import TensorTrustError, check_tensors

__all__ = ['CheckpointError', 'ResumeContext', 'check_resume_state',
           'TensorTrustError', 'check_tensors', 'StateMatch',
           'StateMatchError', 'load_state_by_name', 'match_state_by_name']
