# Full tuning with MMEngine's FlexibleRunner + FSDP (v1), one FSDP unit per
# InternViT block.  use_orig_params keeps one parameter per name, so our
# per-layer groups apply; the constructor reads the original shapes from
# FSDP's flat parameters (an ndim rule on the flattened shards would drop
# weight decay from every weight).  ResumableFSDPStrategy is MMEngine's
# FSDPStrategy made to resume on PyTorch >= 2.1 (internvl_optim/engine/
# strategies/resumable_fsdp_strategy.py).  Verified with the tiny demo version
# (configs/demo/*_fsdp.py, 2 processes on CPU) and a toy model on one GPU;
# this 6B config is only loaded and its groups built in the tests.
_base_ = [
    './upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5.py',
    '../../_base_/strategies/fsdp_intern_vit_blocks.py'
]
