"""How fit_distributed sees the data: the row blocks of a dask array, grouped into one shard per
worker, each block read inside the training task that uses it.

A block is described by a :class:`BlockReader`: the part of the dask graph that computes it (culled to
that block alone) plus the futures it reads, if some of X already lives in cluster memory. The
training task runs the graph itself, synchronously, when it needs the block, and drops the block when
it moves on: a file-backed X (``da.from_npy_stack``, ``da.from_zarr``, ``da.from_array`` over a
``np.load(..., mmap_mode="r")`` memory map) is never held whole by any process, and the client never
gathers it. A persisted X (``X.persist()``) is read where it lives.
"""

from __future__ import annotations

import math
import mmap
import pickle
import warnings
from dataclasses import dataclass, field

import dask.array as da
import numpy as np
from dask.local import get_sync
from dask.optimization import cull
from distributed import Future, wait

#: Rows of X the driver reads to initialise the model (spread over the blocks).
SAMPLE_ROWS = 2000

#: A block's graph larger than this when pickled means X's graph holds data (warned about once).
_LARGE_GRAPH_BYTES = 1 << 20


def as_row_blocks(data, name: str, *, ndim: tuple, numeric: bool = True):
    """``data`` as a dask array chunked along rows only (one chunk over the columns), with known chunk
    sizes. A dask DataFrame or Series is converted (its partition lengths are computed on the
    cluster). Returns ``(array, column_names)``; column names are None unless ``data`` is a DataFrame.
    With ``numeric``, the values must be real numbers (class labels may be anything)."""
    columns = None
    if _is_dask_frame(data):
        columns = [str(c) for c in data.columns] if hasattr(data, "columns") else None
        data = data.to_dask_array(lengths=True)
    if not isinstance(data, da.Array):
        raise TypeError(
            f"{name} must be a dask array or a dask DataFrame (fit_distributed trains where the chunks live); "
            f"got {type(data).__name__}. For data in memory use the estimator's fit, or wrap it with dask.array.from_array."
        )
    if data.ndim not in ndim:
        expected = " or ".join(f"{n}-D" for n in ndim)
        raise ValueError(f"{name} must be a {expected} dask array; got a {data.ndim}-D array of shape {data.shape}")
    if numeric and data.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got a dask array of dtype {data.dtype}")
    if any(math.isnan(c) for c in data.chunks[0]):
        data = data.compute_chunk_sizes()
    if data.ndim == 2 and len(data.chunks[1]) > 1:
        data = data.rechunk({1: -1})  # a minibatch needs whole rows: one chunk over the columns
    if data.shape[0] == 0 or (data.ndim == 2 and data.shape[1] == 0):
        raise ValueError(f"{name} must have at least one row and one column; got shape {data.shape}")
    return data, columns


def align_rows(y, X, name="y"):
    """y rechunked (lazily) to X's row chunks, after checking that it has one entry per row."""
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"X and {name} must have the same number of samples (inconsistent numbers of samples); got {X.shape[0]} and {y.shape[0]}"
        )
    if y.chunks[0] != X.chunks[0]:
        y = y.rechunk({0: X.chunks[0]})
    if y.ndim == 2 and len(y.chunks[1]) > 1:
        y = y.rechunk({1: -1})
    return y


def _is_dask_frame(data) -> bool:
    module = type(data).__module__
    return module.startswith(("dask.dataframe", "dask_expr")) and hasattr(data, "to_dask_array")


# -- reading one block ------------------------------------------------------------------------------


@dataclass
class BlockReader:
    """Computes one row block of a dask array inside a task: ``reader(inputs)``, where ``inputs`` maps
    the keys in :attr:`inputs` (parts of X already in cluster memory) to their data: the task receives
    them as dependencies, on the worker that holds them."""

    key: object
    rows: int
    graph: dict  # the tasks that compute the block, culled to this block alone
    inputs: tuple = ()  # keys of persisted data the graph reads
    memmaps: dict = field(default_factory=dict)  # key -> how to reopen a memory-mapped file

    def __call__(self, inputs: dict):
        graph = dict(self.graph)
        graph.update({key: inputs[key] for key in self.inputs})
        for key, spec in self.memmaps.items():
            graph[key] = _open_memmap(*spec)
        return get_sync(graph, self.key)


def block_readers(array) -> list:
    """One :class:`BlockReader` per non-empty row block of ``array`` (rows only: one column chunk)."""
    # Not dask.optimize: it drops the futures of a persisted array from the graph.
    keys = [k[0] if isinstance(k, list) else k for k in array.__dask_keys__()]
    graph, dependencies = cull(dict(array.__dask_graph__()), keys)
    readers, futures = [], {}
    for key, rows in zip(keys, array.chunks[0]):
        if rows == 0:
            continue
        sub = {k: graph[k] for k in _ancestors(key, dependencies)}
        persisted = {k: v for k, v in sub.items() if isinstance(v, Future)}
        memmaps = {k: _memmap_spec(v) for k, v in sub.items() if _memmap_spec(v) is not None}
        for k in list(persisted) + list(memmaps):
            del sub[k]
        futures.update(persisted)
        readers.append(BlockReader(key=key, rows=int(rows), graph=sub, inputs=tuple(persisted), memmaps=memmaps))
    _warn_if_graph_holds_data(readers)
    return readers, futures


def _ancestors(key, dependencies) -> set:
    seen, stack = set(), [key]
    while stack:
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        stack.extend(dependencies.get(k, ()))
    return seen


def _memmap_spec(value):
    """How to reopen a whole-file ``numpy.memmap`` held in a graph (pickling it would copy the data),
    or None for anything else (a view of a memmap is not re-openable from its attributes)."""
    if not isinstance(value, np.memmap) or not isinstance(value.base, mmap.mmap) or value.filename is None:
        return None
    order = "C" if value.flags.c_contiguous else "F"
    return (value.filename, value.dtype.str, value.offset, value.shape, order)


def _open_memmap(filename, dtype, offset, shape, order):
    return np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape, order=order)


def _warn_if_graph_holds_data(readers):
    sizes = [len(pickle.dumps(r.graph, protocol=5)) for r in readers[:4]]
    if sizes and max(sizes) > _LARGE_GRAPH_BYTES:
        warnings.warn(
            f"the dask graph of one block of X pickles to {max(sizes) / 2**20:.1f} MB: X's graph holds its data "
            "(e.g. dask.array.from_array of an in-memory NumPy array), which is sent with every training task. "
            "Build X from files (da.from_npy_stack, da.from_zarr, a memory map) or call X.persist() first.",
            UserWarning,
            stacklevel=5,  # the caller of fit_distributed
        )


# -- shards -----------------------------------------------------------------------------------------


@dataclass
class Shard:
    """The blocks one model replica trains on, and the worker that holds them (None: any worker)."""

    rank: int
    blocks: list  # BlockReader of each X block
    targets: list | None  # BlockReader of each y block, aligned with blocks
    home: str | None

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.blocks)

    def input_keys(self) -> set:
        return {k for reader in self.blocks + (self.targets or []) for k in reader.inputs}


def make_shards(client, X_blocks, y_blocks, futures: dict, workers) -> list:
    """Groups blocks into one shard per worker.

    A block whose data is already in cluster memory joins the shard of the worker that holds most of
    it; the other blocks are dealt, in order, to the shard with the fewest rows. Shards are ranked by
    their first block, so a given layout of X gives the same shards (and, seeded by rank, the same
    model) whatever the worker addresses."""
    if futures:
        wait(list(futures.values()))
    who_has = client.who_has(list(futures.values())) if futures else {}
    homes = [_home(reader, who_has) for reader in X_blocks]
    groups = {w: [] for w in sorted(set(workers) | {h for h in homes if h is not None})}
    rows = dict.fromkeys(groups, 0)
    for i, home in enumerate(homes):
        if home is not None:
            groups[home].append(i)
            rows[home] += X_blocks[i].rows
    for i, home in enumerate(homes):
        if home is None:
            target = min(groups, key=lambda w: rows[w])  # ties: the first worker in sorted order
            groups[target].append(i)
            rows[target] += X_blocks[i].rows
    persisted_homes = {h for h in homes if h is not None}
    ordered = sorted((idx, w) for w, idx in groups.items() if idx)
    return [
        Shard(
            rank=rank,
            blocks=[X_blocks[i] for i in idx],
            targets=None if y_blocks is None else [y_blocks[i] for i in idx],
            home=worker if worker in persisted_homes else None,
        )
        for rank, (idx, worker) in enumerate(ordered)
    ]


def _home(reader, who_has):
    """The worker holding most of a block's persisted inputs, or None for a lazy block."""
    counts = {}
    for key in reader.inputs:
        for worker in who_has.get(key, ()):
            counts[worker] = counts.get(worker, 0) + 1
    return min(counts, key=lambda w: (-counts[w], w)) if counts else None


def sample_index(X, n_rows: int = SAMPLE_ROWS):
    """Row indices of a sample of up to about ``n_rows`` rows of X: the first rows of every block, the
    same number from each (so that data sorted by block is still represented)."""
    per_block = max(1, math.ceil(n_rows / len(X.chunks[0])))
    starts = np.cumsum((0,) + X.chunks[0][:-1])
    return np.concatenate([np.arange(s, s + min(per_block, c)) for s, c in zip(starts, X.chunks[0])])
