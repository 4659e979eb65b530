"""What one replica does in one round, on a Dask worker.

It copies the broadcast parameters, runs ``local_steps`` minibatch steps on the blocks of its shard
and hands the parameters back. Minibatches walk through the shard as one epoch after another: the
blocks in a shuffled order, the rows of each block shuffled, both drawn from the shard's own seed, so
a cursor (epoch, block position, row offset) says where the next round resumes, whichever worker runs
it. Blocks are read inside the task, one at a time; the block in use is kept for the next round (one
per shard, a few at most per process), so memory stays flat however large the data.

The Rust kernels run on as many threads as Dask gives the worker (its ``nthreads``): Dask's nanny
limits the BLAS thread pools, but deepgm's own pool would otherwise take every core of the machine.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from distributed import get_worker

from .._base import aligned

#: Prepared blocks kept between rounds: (run token, phase, shard rank) -> (block index, (data, targets)).
_BLOCKS: OrderedDict = OrderedDict()
_BLOCKS_LOCK = threading.Lock()
#: At most this many blocks are kept per worker process (one per shard it runs).
_MAX_BLOCKS = 4


@dataclass
class ShardTask:
    """One replica's work in one round (everything but the broadcast parameters and the data)."""

    cache_key: tuple
    blocks: list  # BlockReader of each X block of the shard
    targets: list | None  # BlockReader of each y block, aligned with blocks
    cursor: tuple  # (epoch, block position, row offset) where this round starts
    stream_seed: int  # orders the shard's minibatches, across rounds
    seed: int  # the kernels' seed for this round and shard
    local_steps: int
    batch_size: int
    settings: dict  # per-round settings of the phase (momentum, ...)
    n_jobs: int | None  # the estimator's n_jobs (None: the worker's threads)
    shard_state: object  # per-replica state that is not averaged (persistent chains)


def worker_threads(n_jobs=None) -> int:
    """Threads for the kernels in the calling Dask task: the worker's ``nthreads``, or fewer if the
    estimator asks for fewer."""
    nthreads = get_worker().state.nthreads
    if n_jobs is None or n_jobs == -1:
        return nthreads
    return min(int(n_jobs), nthreads)


def train_shard(phase, payload, inputs, task: ShardTask) -> dict:
    """Runs one round of one replica and returns its parameters, where its minibatches stopped, its
    metric sums, its rows and its compute time."""
    est = phase.local(payload, worker_threads(task.n_jobs), task.shard_state)
    stream = MinibatchStream([b.rows for b in task.blocks], task.cursor, task.batch_size, task.stream_seed)
    sums, n_rows = {}, 0
    start = time.perf_counter()
    current, data, targets = None, None, None
    for step in range(task.local_steps):
        block, rows = stream.next()
        if block != current:
            data = targets = None  # let the previous block go before the next is read
            data, targets = _prepared_block(phase, est, task, block, inputs)
            current = block
        for name, value in phase.step(est, data, targets, rows, seed=task.seed, step=step, settings=task.settings).items():
            sums[name] = sums.get(name, 0.0) + value
        n_rows += len(rows)
    return {
        "payload": phase.payload(est),
        "cursor": stream.cursor,
        "metrics": sums,
        "rows": n_rows,
        "time": time.perf_counter() - start,
        "shard_state": phase.local_state(est),
    }


def _prepared_block(phase, est, task, block, inputs):
    """Block ``block`` of the shard, validated for training: kept from the previous step or round if it
    is the same block, else read (the previous one is dropped first, so at most one is held)."""
    with _BLOCKS_LOCK:
        cached = _BLOCKS.get(task.cache_key)
        if cached is not None and cached[0] == block:
            _BLOCKS.move_to_end(task.cache_key)
            return cached[1]
        _BLOCKS.pop(task.cache_key, None)
    X = aligned(task.blocks[block](inputs))  # a persisted block may come from a network message
    y = None if task.targets is None else task.targets[block](inputs)
    prepared = phase.prepare(est, X, y)
    with _BLOCKS_LOCK:
        _BLOCKS[task.cache_key] = (block, prepared)
        while len(_BLOCKS) > _MAX_BLOCKS:
            _BLOCKS.popitem(last=False)
    return prepared


def release_blocks(token) -> int:
    """Drops the blocks kept for the run ``token`` (run on every worker when a fit ends)."""
    with _BLOCKS_LOCK:
        keys = [k for k in _BLOCKS if k[0] == token]
        for k in keys:
            del _BLOCKS[k]
    return len(keys)


class MinibatchStream:
    """Shuffled minibatches over a shard's blocks, resumable from a cursor.

    An epoch visits the blocks in a random order and each block's rows in a random order, cut into
    minibatches of ``batch_size`` (the last of a block may be smaller: a minibatch never spans two
    blocks, so only one block is needed at a time). The orders come from ``seed`` and the epoch
    alone, so the same cursor always continues the same way.
    """

    def __init__(self, block_rows, cursor, batch_size, seed):
        self.block_rows = list(block_rows)
        self.cursor = tuple(cursor)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self._orders = {}

    def next(self):
        """(block index, row indices of the minibatch in that block)."""
        epoch, position, offset = self.cursor
        block = int(self._order(epoch, None)[position])
        rows = self._order(epoch, block)[offset : offset + self.batch_size]
        offset += len(rows)
        if offset >= self.block_rows[block]:
            position, offset = position + 1, 0
            if position == len(self.block_rows):
                epoch, position = epoch + 1, 0
        self.cursor = (epoch, position, offset)
        return block, rows

    def _order(self, epoch, block):
        """The permutation of the blocks (block None) or of one block's rows in ``epoch``."""
        key = (epoch, block)
        if key not in self._orders:
            if block is None:
                self._orders[key] = np.random.default_rng([self.seed, epoch]).permutation(len(self.block_rows))
            else:
                self._orders[key] = np.random.default_rng([self.seed, epoch, block + 1]).permutation(self.block_rows[block])
        return self._orders[key]
