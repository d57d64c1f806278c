# Full tuning with MMEngine's FlexibleRunner + FSDPStrategy.  use_orig_params
# keeps one parameter per name, so our per-layer groups apply; the
# constructor reads the original shapes from FSDP's flat parameters (an
# ndim rule on the flattened shards would drop weight decay from every
# weight).  NOT VERIFIED here: FSDP v1 refuses to run without an accelerator
# ("FSDP needs a non-CPU accelerator device"); the same groups under
# PyTorch's FSDP2 on CPU are tested (tests/test_distributed.py).
_base_ = ['./upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5.py']
runner_type = 'FlexibleRunner'
strategy = dict(
    type='ResumableFSDPStrategy',
    model_wrapper=dict(
        use_orig_params=True,
        auto_wrap_policy=dict(
            type='internvl_optim.fsdp_wrap.wrap_module_classes',
            module_classes=['internvl_optim.models.intern_vit_6b.Block'])))
