"""A hung rank ends a distributed run within minutes, and is named.

PyTorch's default collective timeout is 30 minutes (gloo), and a rank that
stops (SIGSTOP, a debugger, a swapped-out node) without dying leaves the
others waiting that long, then failing with "Timed out waiting ... for recv"
that names no rank.  Here:

- ``env_cfg.dist_cfg.timeout`` (seconds; MMEngine's own key, which its
  ``init_dist`` turns into the process group's timeout) defaults to
  :data:`DEFAULT_TIMEOUT_S` and is checked like every other number.
- Every rank runs a :class:`Heartbeat`: a daemon thread that writes the time
  to the job's key-value store (torchrun's, outside the ranks) every few
  seconds.  A stopped process stops beating.
- When a collective times out, :func:`explain_timeout` reads the heartbeats
  and says which ranks went silent and when.
"""
import datetime
import os
import threading
import time
from typing import Callable, List, Mapping, Optional, Tuple

import torch.distributed as dist

from ..core.numbers import check_number

#: default collective timeout in seconds (MMEngine and PyTorch: 30 minutes)
DEFAULT_TIMEOUT_S = 600
#: the longest timeout accepted (30 days): a longer one is a mistake, and
#: one beyond ``timedelta``'s range fails in the process group's setup
MAX_TIMEOUT_S = 30 * 24 * 3600
TIMEOUT_RANGE = (f'in (0, {MAX_TIMEOUT_S}] seconds',
                 lambda v: 0 < v <= MAX_TIMEOUT_S)
#: seconds between heartbeats
HEARTBEAT_INTERVAL_S = 2.0
HEARTBEAT_KEY = 'internvl_optim/heartbeat/{rank}'


class CollectiveTimeoutError(RuntimeError):
    """A collective timed out; the message names the silent ranks."""


def configure_timeout(cfg) -> float:
    """Set ``cfg.env_cfg.dist_cfg.timeout`` (seconds) to its checked value or
    the default, and return it."""
    if cfg.get('env_cfg') is None:
        cfg['env_cfg'] = {}
    if cfg['env_cfg'].get('dist_cfg') is None:
        cfg['env_cfg']['dist_cfg'] = {}
    dist_cfg = cfg['env_cfg']['dist_cfg']  # re-read: Config copies dicts
    timeout = dist_cfg.get('timeout', DEFAULT_TIMEOUT_S)
    dist_cfg['timeout'] = check_number('env_cfg.dist_cfg.timeout', timeout,
                                       TIMEOUT_RANGE)
    return dist_cfg['timeout']


def as_timedelta(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=seconds)


class Heartbeat:
    """Writes ``time.time()`` under :data:`HEARTBEAT_KEY` every
    ``interval`` seconds from a daemon thread, over its own connection to
    the store at ``MASTER_ADDR:MASTER_PORT``."""

    def __init__(self, rank: int, interval: float = HEARTBEAT_INTERVAL_S,
                 store=None):
        self.rank, self.interval = rank, interval
        self.store = store if store is not None else job_store()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f'heartbeat-rank{rank}')

    def start(self) -> 'Heartbeat':
        self.beat()
        self._thread.start()
        return self

    def beat(self) -> None:
        self.store.set(HEARTBEAT_KEY.format(rank=self.rank),
                       repr(time.time()))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # the store is gone: the job is ending
                return

    def stop(self) -> None:
        self._stop.set()


def job_store(timeout_s: float = 30.0):
    """A new client of the job's TCP store (torchrun's agent hosts it)."""
    return dist.TCPStore(os.environ['MASTER_ADDR'],
                         int(os.environ['MASTER_PORT']), is_master=False,
                         timeout=as_timedelta(timeout_s))


def silent_ranks(last_beats: Mapping[int, Optional[float]], now: float,
                 stale_after: float) -> List[Tuple[int, Optional[float]]]:
    """Ranks whose last heartbeat is older than ``stale_after`` seconds (or
    missing), with its age; pure, for tests."""
    return [(rank, None if beat is None else now - beat)
            for rank, beat in sorted(last_beats.items())
            if beat is None or now - beat > stale_after]


def read_heartbeats(store, world_size: int) -> dict:
    beats = {}
    for rank in range(world_size):
        key = HEARTBEAT_KEY.format(rank=rank)
        beats[rank] = (float(store.get(key))
                       if store.check([key]) else None)
    return beats


def is_timeout(err: BaseException) -> bool:
    text = str(err).lower()
    return 'timed out' in text or 'timeout' in text


def explain_timeout(timeout_s: float, rank: int, world_size: int,
                    store_factory: Callable = job_store,
                    interval: float = HEARTBEAT_INTERVAL_S) -> str:
    """What to say when a collective on ``rank`` timed out."""
    head = (f'rank {rank}: a collective operation timed out after '
            f'{timeout_s:g} s (env_cfg.dist_cfg.timeout).')
    try:
        beats = read_heartbeats(store_factory(), world_size)
    except Exception as err:  # pragma: no cover (store unreachable)
        return f'{head} The job store could not be read ({err}).'
    silent = silent_ranks(beats, time.time(), stale_after=3 * interval)
    if not silent:
        return (f'{head} Every rank still sends heartbeats, so a rank is '
                'alive but stuck outside collectives (a deadlock, or much '
                'slower data loading); look at the ranks that did not log '
                'the last iteration.')
    described = ', '.join(
        f'rank {r} ' + ('never sent a heartbeat' if age is None else
                        f'has been silent for {age:.0f} s')
        for r, age in silent)
    return (f'{head} {described}: stopped or hung (not dead, or torchrun '
            'would have ended the job). Ending the run.')


def train_naming_hung_ranks(runner, timeout_s: Optional[float]) -> None:
    """``runner.train()``; in a distributed run every rank sends heartbeats,
    and a collective that times out ends the run with a
    :class:`CollectiveTimeoutError` naming the ranks that went silent."""
    if not dist.is_initialized():
        runner.train()
        return
    rank, world_size = dist.get_rank(), dist.get_world_size()
    heartbeat = Heartbeat(rank).start()
    try:
        runner.train()
    except Exception as err:
        if not is_timeout(err):
            raise
        raise CollectiveTimeoutError(explain_timeout(
            timeout_s or DEFAULT_TIMEOUT_S, rank, world_size)) from err
    finally:
        heartbeat.stop()
