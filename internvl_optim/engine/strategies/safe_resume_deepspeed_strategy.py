"""MMEngine 0.10.7's ``DeepSpeedStrategy``, resuming without executing the
checkpoint's ``meta.config``, and at any number of ranks.

``FlexibleRunner.resume`` passes ``checkpoint['meta']['config']`` to
``Config.fromstring``, which runs it as Python.  For other strategies the
checkpoint goes through MMEngine's ``CheckpointLoader``, whose local loader
``internvl_optim`` replaces (:func:`~internvl_optim.checkpoint.safe_loading.
load_from_local`); DeepSpeed reads its files itself and MMEngine's
``DeepSpeedStrategy.resume`` calls no ``after_load_checkpoint`` hook, so the
entry is dropped here.  ``tools/train.py`` uses this class for configs that
name ``DeepSpeedStrategy``.

DeepSpeed's ZeRO checkpoints are tied to the world size and the groups.
Beside DeepSpeed's files each rank also writes its slice of every
parameter's fp32 master and moments by name
(``state_by_name_rank{r}.pth``); a resume at the checkpoint's world size
with its groups is DeepSpeed's own, any other takes each parameter's state
by name (:mod:`internvl_optim.runtime.zero_state_by_name`).
"""
import numbers
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine._strategy import DeepSpeedStrategy
from mmengine.registry import STRATEGIES

from ...checkpoint.errors import CheckpointError
from ...checkpoint.safe_loading import (drop_executable_meta,
                                        load_checkpoint_file)
from ...checkpoint.resume_state import check_same_weights
from ...checkpoint.tensors import check_tensors
from ...checkpoint.work_dir import ZERO_OPTIM_FILE
from ...checkpoint.state_by_name import (StateMatchError,
                                         adapt_scheduler_state,
                                         continue_schedule)
from ...checkpoint.state_fragments import (fragment_file, match_groups,
                                           read_fragments)
from ...runtime.zero_state_by_name import (apply_fragments, live_groups,
                                           local_fragments, zero_stage)
from .save_into_place import save_into_place

#: the model states file: the module's weights and DeepSpeed's counters,
#: MMEngine's state beside them
MODEL_STATES = 'mp_rank_00_model_states.pt'
#: DeepSpeed's entries in it (the rest is MMEngine's, as DeepSpeed's own
#: ``_load_checkpoint`` returns it)
DEEPSPEED_KEYS = ('module', 'buffer_names', 'optimizer', 'param_shapes',
                  'frozen_param_shapes', 'shared_params',
                  'frozen_param_fragments', 'lr_scheduler', 'data_sampler',
                  'random_ltd', 'sparse_tensor_module_names',
                  'skipped_steps', 'global_steps', 'global_samples',
                  'dp_world_size', 'mp_world_size', 'ds_config', 'ds_version')
COUNTERS = ('global_steps', 'global_samples', 'skipped_steps')


def _world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def check_module_state(module, module_state, source: str,
                       strict: bool) -> None:
    """A ZeRO-1/2 checkpoint's module weights, before they are loaded:
    a state dict of finite tensors of the model's dtypes
    (:func:`~internvl_optim.checkpoint.tensors.check_tensors`) and, when
    ``strict``, the model's names and shapes, the differences counted and
    named (``load_state_dict`` would list every key)."""
    if not isinstance(module_state, dict):
        raise CheckpointError(f'{source}: module is not a state dict')
    reference = module.state_dict()
    check_tensors(module_state, f'{source} (module)', reference=reference)
    if strict:
        check_same_weights(module_state, reference, source)


@STRATEGIES.register_module()
class SafeResumeDeepSpeedStrategy(DeepSpeedStrategy):
    """``DeepSpeedStrategy`` whose ``resume`` drops executable ``meta``
    entries before ``FlexibleRunner`` reads them, and has the rest checked
    by :class:`~internvl_optim.engine.hooks.CheckpointTrustHook` (which
    sets :attr:`checkpoint_trust` before the run) before the runner uses
    it; whose checkpoints also hold the ZeRO state by parameter name, and
    which resumes them at any world size."""

    #: ``callable(extra_state, source)`` that raises on an untrusted state
    checkpoint_trust = None

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True,
                        **kwargs) -> None:
        """DeepSpeed's checkpoint directory with the state by name beside
        it, saved under a new name and renamed into place once every rank
        has written (:func:`.save_into_place.save_into_place`)."""
        def save(staging: str) -> None:
            super(SafeResumeDeepSpeedStrategy, self).save_checkpoint(
                staging, save_optimizer=save_optimizer, **kwargs)
            if osp.isdir(staging) and self._zero_optimizer() is not None:
                content = local_fragments(self.model.optimizer,
                                          self.model.module, _world_size())
                torch.save(content, fragment_file(staging, content['rank']))
        save_into_place(filename, save)

    def _zero_optimizer(self):
        optimizer = getattr(getattr(self, 'model', None), 'optimizer', None)
        try:
            zero_stage(optimizer)
        except TypeError:
            return None
        return optimizer

    def resume(self, filename: str, **kwargs) -> dict:
        names = os.listdir(filename) if osp.isdir(filename) else []
        saved = read_fragments(filename, names, load_checkpoint_file) \
            if self._zero_optimizer() is not None else None
        world_size = _world_size()
        if saved is None:
            ranks = {int(m.group(1))
                     for m in map(ZERO_OPTIM_FILE.match, names) if m}
            if ranks and len(ranks) != world_size:
                raise CheckpointError(
                    f'{filename}: DeepSpeed ZeRO checkpoint saved by '
                    f'{len(ranks)} ranks without its state by parameter '
                    f'name; it can only be resumed on {len(ranks)} ranks, '
                    f'not {world_size}. Resume it there, or start from its '
                    'weights (load_from)')
            extra = self._resume_checking_weights(filename, kwargs)
        else:
            match = match_groups(saved, live_groups(self.model.optimizer))
            if saved.world_size == world_size and not match.changed and \
                    saved.stage == zero_stage(self.model.optimizer):
                extra = self._resume_checking_weights(filename, kwargs)
            else:
                extra = self._resume_by_name(filename, saved, match, kwargs)
        extra = drop_executable_meta(extra, filename)
        if self.checkpoint_trust is not None:
            self.checkpoint_trust(extra, f'checkpoint {filename!r}')
        return extra

    def _resume_checking_weights(self, filename, kwargs) -> dict:
        """MMEngine's resume, DeepSpeed loading its own files, with the
        module's weights checked (:func:`check_module_state`) before
        DeepSpeed's ``load_module_state_dict`` takes them, for this call."""
        # MMEngine's wrapper holds DeepSpeed's engine, which calls its own
        # load_module_state_dict
        engine = getattr(self.model, 'model', self.model)
        original = engine.load_module_state_dict
        source = osp.join(filename, MODEL_STATES)

        def load_module_state_dict(checkpoint, strict=True, *args, **kw):
            module_state = checkpoint.get('module') if isinstance(
                checkpoint, dict) else None
            if zero_stage(engine.optimizer) < 3:
                check_module_state(engine.module, module_state, source,
                                   strict)
            return original(checkpoint, strict, *args, **kw)

        engine.load_module_state_dict = load_module_state_dict
        try:
            return super().resume(filename, **kwargs)
        finally:
            del engine.load_module_state_dict

    def _resume_by_name(self, filename, saved, match, kwargs) -> dict:
        """MMEngine's resume with DeepSpeed's ``load_checkpoint`` replaced,
        for this call, by one that takes the state by name."""
        engine = self.model

        def load_checkpoint(load_dir, tag=None, load_optimizer_states=True,
                            load_module_strict=True, **_):
            return filename, self._load_by_name(
                filename, saved, match, load_optimizer_states,
                load_module_strict)

        engine.load_checkpoint = load_checkpoint
        try:
            return super().resume(filename, **kwargs)
        finally:
            del engine.load_checkpoint

    def _load_by_name(self, filename, saved, match, load_optimizer_states,
                      strict) -> dict:
        engine, optimizer = self.model, self.model.optimizer
        source = osp.join(filename, MODEL_STATES)
        states = load_checkpoint_file(source)
        if not isinstance(states, dict):
            raise CheckpointError(f'{source} holds a '
                                  f'{type(states).__name__}, not a dict')
        for key in COUNTERS:
            value = states.get(key, 0)
            if not isinstance(value, numbers.Integral) or isinstance(
                    value, bool) or value < 0:
                raise CheckpointError(f'{source}: {key} is {value!r}, not '
                                      'an integer >= 0')
        self._load_module(engine, states.get('module'), source, strict,
                          saved.stage)
        try:
            kept, added, removed = apply_fragments(optimizer, engine.module,
                                                   saved) \
                if load_optimizer_states else ([], [], [])
        except StateMatchError as err:
            raise CheckpointError(f'{filename}: {err}') from None
        for i, group in enumerate(match.state_dict['param_groups']):
            live = optimizer.optimizer.param_groups[i]
            for key in live:
                if key.startswith('initial_') and key[8:] in live:
                    live[key[8:]] = group[key[8:]]
        for key in COUNTERS:
            setattr(engine, key, int(states.get(key, 0)))
        client = {k: v for k, v in states.items() if k not in DEEPSPEED_KEYS}
        if match.changed:
            self._adapt_schedulers(client, match, len(saved.groups),
                                   filename)
        stage = zero_stage(optimizer)
        self.logger.warning(
            f'{filename}: saved by {saved.world_size} ranks, resumed on '
            f'{_world_size()}; the ZeRO-{stage} state is taken by parameter '
            'name'
            + (f' (saved under ZeRO-{saved.stage})' if saved.stage != stage
               else '') + ': '
            f'{len(kept)} parameters keep their state, {len(added)} start '
            f'fresh, {len(removed)} dropped'
            + (f'\n{match.table()}' if match.changed else ''))
        return client

    @staticmethod
    def _load_module(engine, module_state, source, strict,
                     saved_stage) -> None:
        """The saved module's weights and buffers (ZeRO-1/2 save the whole
        module; under ZeRO-3, saving or resuming, only the buffers are
        taken: the partitioned weights come from the fp32 masters)."""
        if zero_stage(engine.optimizer) < 3 and saved_stage < 3:
            check_module_state(engine.module, module_state, source, strict)
            engine.module.load_state_dict(module_state, strict=strict)
            return
        if not isinstance(module_state, dict):
            raise CheckpointError(f'{source}: module is not a state dict')
        check_tensors(module_state, f'{source} (module)',
                      reference=engine.module.state_dict())
        frozen = [n for n, p in engine.module.named_parameters()
                  if not p.requires_grad]
        if frozen:
            raise CheckpointError(
                f'{source}: ZeRO-3 at another world size, stage or with '
                f'other groups: frozen parameters ({frozen[0]}, ...) are '
                'partitioned outside the optimizer state and cannot be '
                'carried; resume on the saved world size and groups')
        buffers = dict(engine.module.named_buffers())
        for name, value in module_state.items():
            if name in buffers and isinstance(value, torch.Tensor) and \
                    value.shape == buffers[name].shape:
                buffers[name].data.copy_(value)

    def _adapt_schedulers(self, client, match, saved_count, filename):
        """The schedulers' per-group state for the new groups, and
        MMEngine's extra ``base_param_settings`` group (the base lr it
        logs) continued like the others."""
        groups = list(match.state_dict['param_groups'])
        wrapper_state = client.get('optim_wrapper')
        live_extra = getattr(getattr(self, 'optim_wrapper', None),
                             'base_param_settings', None)
        if isinstance(live_extra, dict) and isinstance(wrapper_state, dict):
            saved_extra = wrapper_state.get('base_param_settings')
            extra = continue_schedule(live_extra, saved_extra)
            wrapper_state['base_param_settings'] = extra
            groups.append(extra)
            saved_count += isinstance(saved_extra, dict)
        states = client.get('param_schedulers')
        schedulers = getattr(self, 'param_schedulers', None)
        if states is None:
            return
        if not isinstance(states, list) or not isinstance(schedulers, list):
            raise CheckpointError(
                f'{filename}: the groups changed, and only a list of '
                'schedulers can be carried to the new groups')
        try:
            client['param_schedulers'] = [adapt_scheduler_state(
                state, scheduler.state_dict(), groups, saved_count)
                for scheduler, state in zip(schedulers, states)]
        except StateMatchError as err:
            raise CheckpointError(f'{filename}: {err}') from None
