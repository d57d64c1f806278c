#!/usr/bin/env python
"""Constructor time on a VLM at scale, built on the meta device (no weights
allocated): an InternViT-6B-448px vision tower (45 blocks, width 3200) with
a 70B-class Llama language model (80 layers, width 8192) in transformers'
``InternVLForConditionalGeneration``.

    python benchmarks/vlm_constructor.py [--repeat 5]

Prints the parameter count, the time to build the model on the meta device
and the best-of-N time of ``internvl_optim.param_groups`` (towers
recognised, layer decay 0.9 in the vision tower).
"""
import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))

import torch  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args(argv)
    warnings.filterwarnings('ignore')
    import transformers as T

    from internvl_optim import param_groups
    config = T.InternVLConfig(
        vision_config=dict(hidden_size=3200, num_hidden_layers=45,
                           num_attention_heads=25, intermediate_size=12800,
                           image_size=448, patch_size=14, use_qk_norm=True,
                           norm_type='rms_norm'),
        text_config=dict(model_type='llama', hidden_size=8192,
                         num_hidden_layers=80, num_attention_heads=64,
                         num_key_value_heads=8, intermediate_size=28672,
                         vocab_size=128256),
        image_token_id=128000)
    start = time.perf_counter()
    with torch.device('meta'):
        model = T.InternVLForConditionalGeneration(config)
    built = time.perf_counter() - start
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        groups = param_groups(model, lr=1e-5, weight_decay=0.05,
                              layer_decay_rate=0.9)
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    print('| model | parameters | meta build | param_groups (best of '
          f'{args.repeat}) | groups |')
    print('|---|---|---|---|---|')
    print(f'| InternViT-6B-448px + Llama-70B-class | {params / 1e9:.1f} B | '
          f'{built:.2f} s | {min(times) * 1000:.0f} ms | {len(groups)} |')


if __name__ == '__main__':
    main()
