r"""``paramwise_cfg.layer_regex``: a layer rule given as data, compiled and
checked (the provider that applies it is :mod:`.layer_rules.regex`).

For a custom backbone that has no ``get_layer_depth`` method and whose
structure the built-in rules do not know::

    paramwise_cfg=dict(
        layer_decay_rate=0.9,
        layer_regex=dict(
            embed=r'^(stem|cls_token)',          # -> layer 0
            blocks=r'^trunk\.(\d+)\.'))          # block i -> layer i + 1

Both patterns are searched (``re.search``) in names relative to the
backbone; ``blocks`` must have exactly one group that captures the block
index.  Everything else gets layer ``num_layers + 1``.
"""
import re
from typing import Iterable, Mapping, Optional

try:  # the parser of the re module (Python 3.11+; sre_parse before)
    from re import _constants as _re_constants, _parser as _re_parser
except ImportError:  # pragma: no cover
    import sre_constants as _re_constants
    import sre_parse as _re_parser

LAYER_REGEX_KEYS = ('embed', 'blocks')


_REPEATS = (_re_constants.MAX_REPEAT, _re_constants.MIN_REPEAT) + tuple(
    getattr(_re_constants, 'POSSESSIVE_REPEAT', ()) and
    (_re_constants.POSSESSIVE_REPEAT,))


def nested_repeat(pattern: str) -> bool:
    r"""Whether an unbounded repetition holds another one (``(a+)+``,
    ``(x*)*``, ``(\w+\.)+``): the shape of pattern whose backtracking
    can be exponential.

    >>> nested_repeat(r'^(a+)+$'), nested_repeat(r'^blocks\.(\d+)\.')
    (True, False)
    """
    def parts(op, av) -> list:
        """The sub-patterns of one parsed item."""
        if op in _REPEATS:
            return [av[2]]
        if op is _re_constants.SUBPATTERN:
            return [av[-1]]
        if op is _re_constants.BRANCH:
            return list(av[1])
        if op in (_re_constants.ASSERT, _re_constants.ASSERT_NOT):
            return [av[1]]
        return []

    def unbounded(op, av) -> bool:
        return op in _REPEATS and av[1] == _re_constants.MAXREPEAT

    def holds_unbounded(items) -> bool:
        return any(unbounded(op, av) or any(map(holds_unbounded,
                                                parts(op, av)))
                   for op, av in items)

    def find(items) -> bool:
        return any((unbounded(op, av) and holds_unbounded(av[2]))
                   or any(map(find, parts(op, av))) for op, av in items)

    try:
        parsed = _re_parser.parse(pattern)
    except Exception:  # compiled (and refused) by the caller
        return False
    return find(list(parsed))


class RegexLayerRule:
    """Compiled ``layer_regex`` spec.

    Args:
        spec (dict): ``embed`` (str, required) and ``blocks`` (str, required,
            one capturing group for the block index).
    """

    def __init__(self, spec: Mapping):
        if not isinstance(spec, Mapping):
            raise TypeError('paramwise_cfg.layer_regex must be a dict with '
                            f'keys {LAYER_REGEX_KEYS}, got '
                            f'{type(spec).__name__}')
        unknown = sorted(set(spec) - set(LAYER_REGEX_KEYS))
        missing = [k for k in LAYER_REGEX_KEYS if k not in spec]
        if unknown or missing:
            raise ValueError(
                'paramwise_cfg.layer_regex must have exactly the keys '
                f'{LAYER_REGEX_KEYS}; unknown: {unknown}, missing: {missing}')
        self.patterns = {}
        for key in LAYER_REGEX_KEYS:
            try:
                self.patterns[key] = re.compile(spec[key])
            except (re.error, TypeError) as err:
                raise ValueError(f'paramwise_cfg.layer_regex.{key}='
                                 f'{spec[key]!r} is not a valid regular '
                                 f'expression: {err}') from None
            if nested_repeat(spec[key]):
                raise ValueError(
                    f'paramwise_cfg.layer_regex.{key}={spec[key]!r} repeats '
                    'a part that itself repeats without bound: on a long '
                    'name that does not match, such a pattern can take exponential '
                    'time. Repeat a plain character class instead, e.g. '
                    r"r'^blocks\.(\d+)\.'")
        if self.patterns['blocks'].groups != 1:
            raise ValueError(
                f'paramwise_cfg.layer_regex.blocks={spec["blocks"]!r} must '
                'have exactly one capturing group for the block index, '
                f'it has {self.patterns["blocks"].groups}')

    def block_index(self, rel_name: str) -> Optional[int]:
        match = self.patterns['blocks'].search(rel_name)
        if match is None:
            return None
        index = match.group(1)
        if not index.isdigit():
            raise ValueError(
                'paramwise_cfg.layer_regex.blocks captured '
                f'{index!r} from parameter {rel_name!r}; the group must '
                r'capture digits only, e.g. r"^blocks\.(\d+)\."')
        return int(index)

    def is_embedding(self, rel_name: str) -> bool:
        return self.patterns['embed'].search(rel_name) is not None

    def infer_num_layers(self, rel_names: Iterable[str]) -> int:
        """Number of blocks (highest index + 1); checks both patterns match."""
        rel_names = list(rel_names)
        indices = [i for i in map(self.block_index, rel_names) if i is not None]
        for key, found in (('blocks', bool(indices)),
                           ('embed', any(map(self.is_embedding, rel_names)))):
            if not found:
                examples = ', '.join(rel_names[:5])
                raise ValueError(
                    f'paramwise_cfg.layer_regex.{key}='
                    f'{self.patterns[key].pattern!r} matches no backbone '
                    f'parameter; backbone-relative names look like: '
                    f'{examples}')
        return max(indices) + 1

    def layer_id(self, rel_name: str, num_layers: int) -> int:
        index = self.block_index(rel_name)
        if index is not None:
            return index + 1
        if self.is_embedding(rel_name):
            return 0
        return num_layers + 1
