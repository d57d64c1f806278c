# MMEngine's FlexibleRunner + FSDP (v1): one FSDP unit per InternViT block,
# use_orig_params=True so every parameter keeps its name (and our per-layer
# groups apply).  ResumableFSDPStrategy is MMEngine's FSDPStrategy made to
# resume on PyTorch >= 2.1 and to run on CPU
# (internvl_optim/engine/strategies/resumable_fsdp_strategy.py).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='ResumableFSDPStrategy',
    model_wrapper=dict(
        use_orig_params=True,
        auto_wrap_policy=dict(
            type='internvl_optim.engine.strategies.fsdp_wrap_policy.wrap_module_classes',
            module_classes=['internvl_optim.models.backbones.intern_vit_6b.Block'])))
