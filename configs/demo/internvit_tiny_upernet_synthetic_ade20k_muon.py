# The demo with the hybrid optimizer: Muon on the weight matrices of the
# InternViT blocks, the FPN adapters and the UperNet head's hidden convs
# (flattened), AdamW on embeddings, norms, biases, tokens, position tables
# and conv_seg; layer decay as in the demo, on both halves. AdamW's lr and
# weight decay carry over (adjust_lr_fn='match_rms_adamw'):
#   python tools/train.py configs/demo/internvit_tiny_upernet_synthetic_ade20k_muon.py
#   tools/dist_train.sh configs/demo/internvit_tiny_upernet_synthetic_ade20k_muon.py 2
_base_ = ['./internvit_tiny_upernet_synthetic_ade20k.py']

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='MuonAdamW', lr=5e-3,
                   betas=(0.9, 0.999), weight_decay=0.05, momentum=0.95,
                   adjust_lr_fn='match_rms_adamw'),
    paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.9))
