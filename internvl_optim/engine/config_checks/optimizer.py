"""``optim_wrapper``, ``train_cfg`` and ``randomness`` as the constructor
and MMEngine's loops need them."""
from ...core.numbers import short_repr
from ..optimizers.registration import NAMES

#: ``train_cfg`` lengths and intervals: positive ints
TRAIN_CFG_COUNTS = ('max_iters', 'max_epochs', 'val_interval', 'val_begin')


def check_train_cfg(cfg) -> None:
    """``train_cfg`` lengths and intervals as MMEngine's loops need them:
    ``max_iters=-1`` would train nothing and save a checkpoint at -1."""
    train_cfg = cfg.get('train_cfg')
    if train_cfg is None:
        return
    if not isinstance(train_cfg, dict):
        raise TypeError('train_cfg must be a dict such as '
                        "dict(type='IterBasedTrainLoop', max_iters=80000), "
                        f'got {train_cfg!r}')
    for key in TRAIN_CFG_COUNTS:
        value = train_cfg.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or (
                value <= 0 if key != 'val_begin' else value < 0):
            wanted = 'an int >= 0' if key == 'val_begin' else 'an int > 0'
            raise ValueError(f'train_cfg.{key} must be {wanted}, got '
                             f'{value!r}')


#: the seeds NumPy accepts (MMEngine seeds random, NumPy and torch with it)
MAX_SEED = 2 ** 32 - 1


def check_randomness(cfg) -> None:
    """``randomness.seed``: None or an int in [0, 2**32 - 1], the range
    NumPy's seeding accepts (a string or a larger int fails in the
    Runner's set-up, with NumPy's message)."""
    randomness = cfg.get('randomness')
    if randomness is None:
        return
    if not isinstance(randomness, dict):
        raise TypeError('randomness must be a dict such as dict(seed=0), '
                        f'got {randomness!r}')
    seed = randomness.get('seed')
    if seed is not None and (not isinstance(seed, int) or isinstance(
            seed, bool) or not 0 <= seed <= MAX_SEED):
        raise ValueError(f'randomness.seed must be None or an int in [0, '
                         f'{MAX_SEED}], got {short_repr(seed)}')


def check_optim_wrapper(cfg) -> None:
    """The ``optim_wrapper`` of a config that uses our constructor, as the
    constructor checks it, before anything is built: ``paramwise_cfg``
    keys and values, the optimizer's numbers and arguments."""
    wrapper = cfg.get('optim_wrapper')
    if wrapper is None:
        return
    if not isinstance(wrapper, dict):
        raise TypeError(f'optim_wrapper must be a dict, got {wrapper!r}')
    counts = wrapper.get('accumulative_counts', 1)
    max_iters = (cfg.get('train_cfg') or {}).get('max_iters')
    if isinstance(counts, int) and isinstance(max_iters, int) and \
            1 <= max_iters < counts:  # (check_train_cfg names the others)
        shown = counts if counts.bit_length() < 64 else \
            f'(an int of {counts.bit_length()} bits)'
        raise ValueError(
            f'optim_wrapper.accumulative_counts={shown} is more than '
            f'train_cfg.max_iters={max_iters}: the optimizer would never '
            'step. Give at most max_iters')
    constructor = wrapper.get('constructor')
    if constructor is not None and not isinstance(constructor, (str, type)):
        raise TypeError(
            'optim_wrapper.constructor must be the name of a registered '
            "constructor (such as 'LayerDecayOptimizerConstructor') or its "
            f'class, got {constructor!r}')
    if constructor not in NAMES:
        return
    from ..optimizers.layer_decay_constructor import read_optim_wrapper_cfg
    read_optim_wrapper_cfg(wrapper, wrapper.get('paramwise_cfg'))


#: strategies that flatten or shard parameters before the optimizer sees
#: them: Muon would get partitions, not matrices
SHARDING_STRATEGIES = ('DeepSpeed', 'FSDP')


def check_hybrid_strategy(cfg) -> None:
    """``MuonAdamW`` orthogonalizes whole matrices: under DeepSpeed ZeRO
    (flat partitions) or FSDP (flat shards) it would see slices, so such a
    config stops before anything is built, naming the strategy."""
    optimizer = ((cfg.get('optim_wrapper') or {}).get('optimizer') or {})
    strategy = str((cfg.get('strategy') or {}).get('type', ''))
    if optimizer.get('type') != 'MuonAdamW' or not any(
            s in strategy for s in SHARDING_STRATEGIES):
        return
    raise ValueError(
        f"optim_wrapper.optimizer.type='MuonAdamW' with strategy "
        f'{strategy}: the strategy flattens or shards the parameters, and '
        "Muon's Newton-Schulz step needs each matrix whole (on a shard it "
        'is not the orthogonalization of the matrix). Train the hybrid '
        "under DDP (tools/dist_train.sh CONFIG NPROC without 'strategy'), "
        "or keep the strategy with type='AdamW'")

