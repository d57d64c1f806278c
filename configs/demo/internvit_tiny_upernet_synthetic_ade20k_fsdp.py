# The demo under MMEngine's FlexibleRunner + FSDPStrategy (FSDP v1,
# use_orig_params=True), one FSDP unit per InternViT block:
#   tools/dist_train.sh configs/demo/internvit_tiny_upernet_synthetic_ade20k_fsdp.py 2
# ResumableFSDPStrategy is MMEngine's FSDPStrategy made to resume on
# PyTorch >= 2.1 and to run on CPU (gloo) without a GPU.
_base_ = ['./internvit_tiny_upernet_synthetic_ade20k.py']
runner_type = 'FlexibleRunner'
strategy = dict(
    type='ResumableFSDPStrategy',
    model_wrapper=dict(
        use_orig_params=True,
        auto_wrap_policy=dict(
            type='internvl_optim.fsdp_wrap.wrap_module_classes',
            module_classes=['internvl_optim.models.intern_vit_6b.Block'])))
