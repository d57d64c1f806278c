# Full tuning with MMEngine's FlexibleRunner + DeepSpeedStrategy (ZeRO-1,
# bf16), as InternVL trains InternViT-6B.  The same strategy without bf16
# is tested on CPU with the demo model (configs/demo/*_deepspeed.py); this
# config itself (bf16, the 6B model) is only loaded and its groups built in
# the tests.  Our groups never contain frozen parameters, which DeepSpeed
# ZeRO-1/2 cannot handle.
_base_ = ['./upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5.py']
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    bf16=dict(enabled=True),
    # bf16 mode casts the whole model, heads included: cast the images too
    inputs_to_half=['inputs'],
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
# InternVL's bfloat16 backbone; DeepSpeed keeps float32 master weights
model = dict(backbone=dict(param_dtype='bfloat16'))
