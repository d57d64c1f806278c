# Full tuning from the 448px InternViT-6B weights of InternVL 1.5 / 2.5
# (HuggingFace OpenGVLab/InternViT-6B-448px-V1-5 or -V2_5, downloaded as a
# directory): 45 blocks, a 32x32 position grid resized to 36x36 on load.
# Otherwise the 6B full-tuning recipe (DeepSpeed ZeRO-1, bf16), with layer
# decay over 45 blocks.
_base_ = ['./upernet_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_deepspeed.py']
model = dict(
    backbone=dict(
        pretrain_size=448,
        depth=45,
        out_indices=[11, 22, 33, 44],
        pretrained='./pretrained/InternViT-6B-448px-V1-5'))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=45, layer_decay_rate=0.95))
