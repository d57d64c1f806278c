"""Which update each parameter takes in a hybrid optimizer: Muon on the
weight matrices of the blocks, AdamW on everything else, decided by the
parameter's role and the shape the model defined, never by the live
tensor's ``ndim`` (a ZeRO-3 partition is 1-D, an FSDP shard a slice).

The rules, tried in order (:data:`RULES`; the first that answers wins):

1. a LoRA adapter (``lora_A``, ``lora_B``, PEFT's names): AdamW by
   default (``paramwise_cfg.muon.lora='muon'`` sends them to Muon);
2. a parameter without weight decay by its nature (norm, bias, 1-D,
   token, position table, the model's ``no_weight_decay()`` names), and a
   relative-position table (decayed, but a table of biases, not a map):
   AdamW;
3. an embedding: layer 0 (patch and token embeddings), or an
   ``nn.Embedding`` table anywhere (a language model's ``embed_tokens``):
   AdamW;
4. an output layer: the module the model declares as its output
   (``get_output_embeddings()``: ``lm_head``; timm's ``get_classifier()``)
   or one named as the output of a head (``conv_seg``, ``classifier``,
   MMDetection's ``conv_cls`` / ``conv_reg`` / ``fc_cls`` / ``fc_reg`` /
   ``retina_cls`` / ``retina_reg``; a single layer named ``head`` or
   ``fc`` outside the blocks): AdamW.  The hidden layers of heads and
   necks (an FPN's convs, a UperNet's bottleneck, a projector's first
   linear) are matrices like any other and take Muon: they are trained
   from scratch or fine-tuned like the blocks, while an output layer maps
   to classes or tokens, where Muon's equal singular values are not wanted;
5. a 2-D weight: Muon on the matrix;
6. a convolution kernel: Muon on the kernel flattened to ``(out, in *
   k * k)`` (``paramwise_cfg.muon.conv='adamw'`` sends kernels to AdamW);
7. a 3-D weight that is no convolution (the stacked experts of an MoE
   language model, ``(experts, rows, cols)``): Muon on each expert's
   matrix, never on one flattened matrix;
8. anything else: AdamW.

Pure: names, shapes and module types in, data out.
"""
import enum
import re
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Tuple

from torch import nn


class Algorithm(enum.Enum):
    """The update a parameter takes."""
    ADAMW = 'adamw'
    MUON = 'muon'


class MatrixView(enum.Enum):
    """How Muon sees a parameter as matrices."""
    #: a 2-D weight, as it is
    WHOLE = 'whole'
    #: a convolution kernel, ``(out, in * k * k)``
    FLATTEN = 'flatten'
    #: stacked matrices (MoE experts), each ``(rows, cols)`` on its own
    PER_MATRIX = 'per_matrix'


@dataclass(frozen=True)
class MuonRouting:
    """``paramwise_cfg.muon``, validated: ``True`` or a dict of these."""
    #: convolution kernels: ``'flatten'`` (Muon) or ``'adamw'``
    conv: str = 'flatten'
    #: LoRA adapters: ``'adamw'`` or ``'muon'``
    lora: str = 'adamw'

    FIELDS = {'conv': ('flatten', 'adamw'), 'lora': ('adamw', 'muon')}

    @classmethod
    def from_cfg(cls, value, where: str = 'paramwise_cfg.muon'
                 ) -> Optional['MuonRouting']:
        """``None``/``False`` (no hybrid), ``True`` (the defaults), a
        :class:`MuonRouting`, or a dict of :attr:`FIELDS`.

        >>> MuonRouting.from_cfg(dict(conv='adamw'))
        MuonRouting(conv='adamw', lora='adamw')
        >>> MuonRouting.from_cfg(dict(conv='flat'))
        Traceback (most recent call last):
        ...
        ValueError: paramwise_cfg.muon.conv='flat' is not one of ('flatten', 'adamw')
        """
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f'{where} must be True or a dict such as '
                            f"dict(conv='flatten', lora='adamw'), got "
                            f'{value!r}')
        unknown = sorted(set(value) - set(cls.FIELDS))
        if unknown:
            raise ValueError(f'{where} has unknown key(s) {unknown}; valid: '
                             f'{tuple(cls.FIELDS)}')
        for key, valid in cls.FIELDS.items():
            if key in value and value[key] not in valid:
                raise ValueError(f'{where}.{key}={value[key]!r} is not one '
                                 f'of {valid}')
        return cls(**value)


#: the names heads give their output layer (MMSeg, MMDetection, HF, timm)
OUTPUT_LAYER_NAMES = frozenset((
    'conv_seg', 'classifier', 'lm_head', 'conv_cls', 'conv_reg', 'fc_cls',
    'fc_reg', 'retina_cls', 'retina_reg'))
#: leaf modules with these names outside any list of blocks are a
#: model's classifier (timm's and torchvision's ``head`` / ``fc``)
OUTPUT_LEAF_NAMES = frozenset(('head', 'fc'))
#: relative-position tables: biases looked up by offset (Swin's, BEiT's
#: ``relative_position_bias_table``, SAM's ``rel_pos_h`` / ``rel_pos_w``)
RELATIVE_POSITION = re.compile(r'relative_position|(^|_)rel_pos')
#: PEFT's LoRA adapter parameters and modules
LORA = re.compile(r'(^|\.)lora_(A|B|embedding_A|embedding_B|magnitude_'
                  r'vector)(\.|$)')


@dataclass(frozen=True)
class Role:
    """What the routing rules see of one parameter."""
    name: str
    #: the shape the model defined (ZeRO-3's ``ds_shape``, FSDP's record)
    shape: Tuple[int, ...]
    owner: Optional[nn.Module]
    layer_id: int
    #: why it gets no weight decay by its nature (None: it decays)
    no_decay: Optional[str]
    #: it is (inside) an output layer of the model
    output_layer: bool


Decision = Tuple[Algorithm, Optional[MatrixView], str]


def _lora(role: Role, routing: MuonRouting) -> Optional[Decision]:
    if not LORA.search(role.name):
        return None
    if routing.lora == 'muon' and len(role.shape) == 2:
        return Algorithm.MUON, MatrixView.WHOLE, 'LoRA adapter (muon.lora)'
    return Algorithm.ADAMW, None, 'LoRA adapter'


def _no_decay(role: Role, routing: MuonRouting) -> Optional[Decision]:
    if role.no_decay or len(role.shape) < 2:
        return Algorithm.ADAMW, None, role.no_decay or '1-D'
    if RELATIVE_POSITION.search(role.name.rsplit('.', 1)[-1]):
        return Algorithm.ADAMW, None, 'relative-position table'
    return None


def _embedding(role: Role, routing: MuonRouting) -> Optional[Decision]:
    if role.layer_id == 0:
        return Algorithm.ADAMW, None, 'embedding (layer 0)'
    if isinstance(role.owner, (nn.Embedding, nn.EmbeddingBag)):
        return Algorithm.ADAMW, None, 'embedding table'
    return None


def _output(role: Role, routing: MuonRouting) -> Optional[Decision]:
    if role.output_layer:
        return Algorithm.ADAMW, None, 'output layer'
    return None


def _matrix(role: Role, routing: MuonRouting) -> Optional[Decision]:
    conv = isinstance(role.owner, nn.modules.conv._ConvNd)
    if len(role.shape) == 2 and not conv:
        return Algorithm.MUON, MatrixView.WHOLE, 'matrix'
    if conv:
        if routing.conv == 'adamw':
            return Algorithm.ADAMW, None, 'convolution kernel (muon.conv)'
        return (Algorithm.MUON, MatrixView.FLATTEN,
                'convolution kernel, flattened to (out, in * k * k)')
    if len(role.shape) == 3:
        return (Algorithm.MUON, MatrixView.PER_MATRIX,
                f'{role.shape[0]} stacked matrices, each on its own')
    return None


#: the rules in the order they are tried
RULES: Sequence[Callable[[Role, MuonRouting], Optional[Decision]]] = (
    _lora, _no_decay, _embedding, _output, _matrix)


def route(role: Role, routing: MuonRouting) -> Decision:
    """``(algorithm, matrix view or None, why)`` for one parameter.

    >>> from torch import nn
    >>> fc = nn.Linear(4, 4)
    >>> route(Role('blocks.0.fc.weight', (4, 4), fc, 1, None, False),
    ...       MuonRouting())
    (<Algorithm.MUON: 'muon'>, <MatrixView.WHOLE: 'whole'>, 'matrix')
    >>> route(Role('blocks.0.fc.bias', (4,), fc, 1, 'bias', False),
    ...       MuonRouting())[0]
    <Algorithm.ADAMW: 'adamw'>
    """
    for rule in RULES:
        decision = rule(role, routing)
        if decision is not None:
            return decision
    return (Algorithm.ADAMW, None,
            f'{len(role.shape)}-D, no matrix rule applies')


def output_layer_names(modules: Mapping[str, nn.Module]) -> frozenset:
    """The module paths of the model's output layers: what it declares
    (``get_output_embeddings()``, timm's ``get_classifier()``, on the model
    and on every sub-module that has them), and the modules named as one
    (:data:`OUTPUT_LAYER_NAMES`)."""
    by_id = {id(m): n for n, m in modules.items()}
    found = set()
    for name, module in modules.items():
        own = name.rsplit('.', 1)[-1]
        if own in OUTPUT_LAYER_NAMES or (
                own in OUTPUT_LEAF_NAMES and next(module.children(), None)
                is None and not any(p.isdigit() for p in name.split('.'))):
            found.add(name)
        for method in ('get_output_embeddings', 'get_classifier'):
            get = vars(type(module)).get(method) or getattr(
                type(module), method, None)
            if not callable(get):
                continue
            try:
                declared = getattr(module, method)()
            except Exception:  # a declared method that cannot answer here
                continue
            if isinstance(declared, nn.Module) and id(declared) in by_id:
                found.add(by_id[id(declared)])
    return frozenset(found)
