"""MMEngine 0.10.7's ``FSDPStrategy``, made to resume on PyTorch 2.x.

What breaks with MMEngine 0.10.7 on current PyTorch (seen on 2.13 and 2.11):

* Resume: ``FSDPStrategy.load_optim_state_dict`` calls
  ``FSDP.optim_state_dict_to_load(state_dict, model, optimizer)``, PyTorch
  2.0's argument order; PyTorch 2.1 changed it to ``(model, optim,
  optim_state_dict)``, and resuming fails with ``TypeError: unhashable type:
  'dict'``.
* ``FSDP.optim_state_dict`` drops the OptimWrapper's
  ``base_param_settings``, so after a resume the logged ``base_lr`` is wrong
  (the groups' lrs are right).
* ``state_dict_cfg='full'`` on CPU: MMEngine asks for ``offload_to_cpu=True``,
  and FSDP's full state dict then segfaults when the parameters already are
  on the CPU; there is nothing to offload, so it is turned off.
* A ``'local'`` checkpoint (one ShardedTensor file per rank) loaded on a
  different number of ranks fails deep in PyTorch; we say what to do.
* No GPU: MMEngine passes ``device_id=LOCAL_RANK`` (a GPU index) and FSDP
  refuses ("FSDP needs a non-CPU accelerator device").  FSDP v1 itself runs
  on CPU with gloo when given ``device_id='cpu'``.

:class:`ResumableFSDPStrategy` fixes these and is otherwise MMEngine's
strategy; ``tools/train.py`` uses it for configs that name ``FSDPStrategy``.
Checkpoints with the default ``state_dict_cfg='local'`` are directories
``iter_N.pth/rank{i}.pth`` holding ShardedTensors; see
:func:`internvl_optim.checkpoint.safe_loading.allow_fsdp_checkpoints`.
"""
import glob
import os.path as osp

import torch
from mmengine._strategy import FSDPStrategy
from mmengine.dist import get_world_size
from mmengine.registry import STRATEGIES
from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

from .save_into_place import save_into_place


@STRATEGIES.register_module()
class ResumableFSDPStrategy(FSDPStrategy):
    """``FSDPStrategy`` that resumes on PyTorch >= 2.1 and runs on CPU.

    Takes exactly ``FSDPStrategy``'s arguments.  Without CUDA,
    ``model_wrapper.device_id`` defaults to ``'cpu'`` (use the gloo backend).
    """

    def save_checkpoint(self, filename: str, **kwargs) -> None:
        """MMEngine's save (one file, or a directory of one file per
        rank), under a new name renamed into place once every rank has
        written (:func:`.save_into_place.save_into_place`)."""
        save_into_place(filename, lambda staging: super(
            ResumableFSDPStrategy, self).save_checkpoint(staging, **kwargs))

    def _init_state_dict_cfg(self, state_dict_cfg) -> None:
        super()._init_state_dict_cfg(state_dict_cfg)
        if not torch.cuda.is_available():
            for config in (self.state_dict_config,
                           self.optim_state_dict_config):
                config.offload_to_cpu = False

    def _wrap_model(self, model):
        if not torch.cuda.is_available():
            wrapper = dict(self.model_wrapper
                           or dict(type='MMFullyShardedDataParallel'))
            wrapper.setdefault('device_id', 'cpu')
            self.model_wrapper = wrapper
        return super()._wrap_model(model)

    def load_checkpoint(self, filename: str, **kwargs) -> dict:
        """MMEngine's, after checking that a ``'local'`` checkpoint
        directory was written by as many ranks as are running now."""
        if not self._is_full_state_dict() and osp.isdir(filename):
            saved = len(glob.glob(osp.join(filename, 'rank*.pth')))
            if saved != get_world_size():
                raise RuntimeError(
                    f'{filename} is an FSDP checkpoint saved by {saved} '
                    f'ranks (state_dict_cfg=\'local\'); it can only be '
                    f'resumed on {saved} ranks, not {get_world_size()}. To '
                    'change the number of ranks, train with '
                    "strategy.state_dict_cfg='full' (one file, gathered on "
                    'rank 0).')
        return super().load_checkpoint(filename, **kwargs)

    def optim_state_dict(self) -> dict:
        """FSDP's optimizer state dict (names as keys) plus the wrapper's
        ``base_param_settings`` (the logged ``base_lr``), which
        ``FSDP.optim_state_dict`` drops."""
        state = FSDP.optim_state_dict(self.model, self.optim_wrapper.optimizer)
        base = getattr(self.optim_wrapper, 'base_param_settings', None)
        if base is not None:
            state['base_param_settings'] = base
        return state

    def load_optim_state_dict(self, state_dict: dict) -> None:
        """Load what :meth:`optim_state_dict` saved into the sharded
        optimizer, with PyTorch >= 2.1's argument order."""
        base = state_dict.pop('base_param_settings', None)
        state = FSDP.optim_state_dict_to_load(
            self.model, self.optim_wrapper.optimizer, state_dict)
        if base is not None:
            state['base_param_settings'] = base
        self.optim_wrapper.load_state_dict(state)
