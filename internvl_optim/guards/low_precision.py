"""Trainable parameters stored in 16-bit floats.

A plain optimizer updates a bfloat16 weight in bfloat16: with 8 bits of
mantissa, an update smaller than about 1/512 of the weight rounds away
(AdamW at lr 4e-5 on a weight of 0.02 changes nothing).  DeepSpeed's bf16
mode keeps float32 master weights and has no such loss.
"""
from typing import Dict, Iterable, List, Tuple

import torch

LOW_PRECISION = (torch.bfloat16, torch.float16)


def low_precision_trainable(named_parameters: Iterable[Tuple[str, torch.Tensor]]
                            ) -> Dict[str, List[str]]:
    """``{dtype name: [parameter names]}`` of trainable 16-bit parameters.

    >>> m = torch.nn.Linear(2, 2).to(torch.bfloat16)
    >>> low_precision_trainable(m.named_parameters())
    {'bfloat16': ['weight', 'bias']}
    """
    found: Dict[str, List[str]] = {}
    for name, param in named_parameters:
        if param.requires_grad and param.dtype in LOW_PRECISION:
            found.setdefault(str(param.dtype).replace('torch.', ''),
                             []).append(name)
    return found


def low_precision_message(found: Dict[str, List[str]],
                          wrapper_type: str) -> str:
    parts = ', '.join(f'{len(names)} in {dtype} (e.g. {names[0]})'
                      for dtype, names in found.items())
    return (f'{parts} trainable parameters are not float32 and '
            f'{wrapper_type} has no float32 master copy: their optimizer '
            'updates are rounded to 16 bits, and updates below about 1/512 '
            'of a weight are lost. Train them with DeepSpeedStrategy '
            "(bf16, as InternVL), or keep them float32 (InternViT6B "
            "param_dtype='float32') and use AmpOptimWrapper for bf16 compute")
