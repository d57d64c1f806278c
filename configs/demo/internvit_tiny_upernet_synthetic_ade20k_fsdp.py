# The demo under MMEngine's FlexibleRunner + FSDP (v1, use_orig_params=True),
# one FSDP unit per InternViT block; runs on CPU with gloo:
#   tools/dist_train.sh configs/demo/internvit_tiny_upernet_synthetic_ade20k_fsdp.py 2
_base_ = [
    './internvit_tiny_upernet_synthetic_ade20k.py',
    '../_base_/strategies/fsdp_intern_vit_blocks.py'
]
