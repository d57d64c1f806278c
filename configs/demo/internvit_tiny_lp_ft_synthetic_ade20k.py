# LP-FT with gradual unfreezing on the demo: the head (and neck) trains
# alone for 10 iterations, then the blocks join from the top down, one
# every 4 iterations, each warming up over 4; the embeddings join last,
# at iteration 26. The groups never change: a factor on each group's lr
# (0 until it joins) is applied in the optimizer step by
# LayerPhaseScheduler, beside the warm-up and poly decay of the base.
#   python tools/train.py configs/demo/internvit_tiny_lp_ft_synthetic_ade20k.py
#   python tools/analyze_param_groups.py configs/demo/internvit_tiny_lp_ft_synthetic_ade20k.py \
#       --plot-schedule lr_over_time.png
_base_ = ['./internvit_tiny_upernet_synthetic_ade20k.py']
optim_wrapper = dict(
    paramwise_cfg=dict(
        num_layers=4, layer_decay_rate=0.9,
        layer_phases=dict(head_only=10, unfreeze_every=4, warmup=4)))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
         end=5),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=5,
         end=40),
    dict(type='LayerPhaseScheduler'),
]
