# Few-shot linear probing on 1/8 of ADE20K's training images for 10000
# iterations. Make the split list first:
#   python tools/make_few_shot_split.py data/ade/ADEChallengeData2016 8
_base_ = ['../linear_probing/linear_intern_vit_6b_504_80k_ade20k_bs16_lr4e-5_frozen.py']
max_iters = 10000
warmup_iters = 1500
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False,
         begin=warmup_iters, end=max_iters)
]
train_cfg = dict(max_iters=max_iters)
train_dataloader = dict(dataset=dict(ann_file='splits/train_1of8.txt'))
