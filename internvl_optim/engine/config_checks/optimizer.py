"""``optim_wrapper`` and ``train_cfg`` as the constructor and MMEngine's
loops need them."""
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


def check_optim_wrapper(cfg) -> None:
    """The ``optim_wrapper`` of a config that uses our constructor, as the
    constructor checks it, before anything is built: ``paramwise_cfg``
    keys and values, the optimizer's numbers and arguments."""
    wrapper = cfg.get('optim_wrapper')
    if wrapper is None:
        return
    if not isinstance(wrapper, dict):
        raise TypeError(f'optim_wrapper must be a dict, got {wrapper!r}')
    if wrapper.get('constructor') not in NAMES:
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

