# transformers' ConvNeXt (hierarchical: encoder.stages.i.layers.j) as the
# backbone of a linear classifier: one layer id per block in run order, the
# stem at 0, checked against the declared depths. Tiny and random: for the
# analyser,
#   python tools/analyze_param_groups.py configs/transformers/convnext_tiny_layer_decay.py --check-order --input-size 32 32
custom_imports = dict(imports=['internvl_optim'], allow_failed_imports=False)
default_scope = 'mmengine'
model = dict(
    type='TransformersEncoder', architecture='ConvNextModel',
    config=dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1]),
    num_classes=10)
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.75))
