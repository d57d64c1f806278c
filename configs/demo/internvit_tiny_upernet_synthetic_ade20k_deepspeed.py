# The demo under MMEngine's FlexibleRunner + DeepSpeedStrategy (ZeRO-1),
# which runs on CPU with gloo:
#   tools/dist_train.sh configs/demo/internvit_tiny_upernet_synthetic_ade20k_deepspeed.py 2
# DeepSpeed keeps our layer-decay groups (lr, weight_decay, names) in its
# ZeRO optimizer and in its checkpoints (directories iter_N.pth/).
_base_ = ['./internvit_tiny_upernet_synthetic_ade20k.py']
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(stage=1),
    gradient_clipping=None)
optim_wrapper = dict(type='DeepSpeedOptimWrapper')
