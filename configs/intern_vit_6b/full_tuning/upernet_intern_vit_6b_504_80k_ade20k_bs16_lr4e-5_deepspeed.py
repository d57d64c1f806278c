# Full tuning with MMEngine's FlexibleRunner + DeepSpeedStrategy (ZeRO-1,
# bf16), as InternVL trains InternViT-6B.  NOT VERIFIED on the project's CPU
# machines: DeepSpeed is not installed there and needs an accelerator; only
# loading the config and building its groups is tested.  Our groups never
# contain frozen parameters, which DeepSpeed ZeRO-1/2 cannot handle.
_base_ = ['./upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5.py']
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    zero_optimization=dict(
        stage=1,
        allgather_partitions=True,
        reduce_scatter=True,
        allgather_bucket_size=5e8,
        reduce_bucket_size=5e8,
        overlap_comm=True,
        contiguous_gradients=True),
    gradient_clipping=None)
optim_wrapper = dict(type='DeepSpeedOptimWrapper')
