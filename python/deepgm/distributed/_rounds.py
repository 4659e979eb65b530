"""The driver's side of synchronous parameter averaging: rounds of broadcast, local training on every
shard, and a row-weighted mean.

Round r of a phase, with shards s = 1..P holding n_s rows (N in all):

1. the driver scatters theta_r (the parameters and the optimiser state) to every worker;
2. shard s runs ``local_steps`` minibatch steps from theta_r on its own blocks, with the kernels'
   random streams seeded from (seed, phase, r, s), and returns theta_r^s;
3. the driver sets theta_{r+1} = sum_s (n_s / N) theta_r^s (summed in shard order) and only then
   commits it to the estimator, with one more row of ``history_``.

The estimator therefore always holds a completed round. A shard whose worker dies is run again by
the scheduler on another worker (its blocks are read from the same source, its seeds depend on its
rank, not on the worker), so the round's result does not change; if the scheduler gives up, or no
worker is left, the fit stops with a RuntimeError and the estimator keeps the last completed round.
"""

from __future__ import annotations

import math
import time
import uuid
from concurrent.futures import CancelledError

import numpy as np
from distributed import wait
from distributed.scheduler import KilledWorker

from .._base import DivergenceError, deferred_interrupts
from ._data import align_rows, as_row_blocks, block_readers, make_shards, sample_index
from ._worker import ShardTask, release_blocks, train_shard

#: Seconds between checks that the cluster still has workers while a round runs.
_POLL_SECONDS = 1.0
#: A round fails when the cluster has had no worker for this long.
_NO_WORKER_SECONDS = 30.0


def derived_seed(base: int, *keys: int) -> int:
    """A 64-bit seed from a base seed and integer keys (a stream of its own per purpose and key)."""
    return int(np.random.SeedSequence([base % 2**63, *keys]).generate_state(1, np.uint64)[0])


class Run:
    """One call of fit_distributed: the cluster, the shards of the data, the driver's sample, and the
    rounds of every phase."""

    #: Purposes of derived seeds.
    _KERNEL, _STREAM = 0, 1

    def __init__(self, client, X, y, *, n_rounds, local_steps, seed, verbose, classification):
        self.client = client
        self.n_rounds = n_rounds
        self.local_steps = local_steps
        self.seed = seed
        self.verbose = verbose
        self.X, self.columns = as_row_blocks(X, "X", ndim=(2,))
        self.y = None
        if y is not None:
            y, _ = as_row_blocks(y, "y", ndim=(1, 2), numeric=not classification)
            self.y = align_rows(y, self.X)
        self.n_rows = int(self.X.shape[0])
        workers = client.nthreads()
        if not workers:
            raise ValueError("the Dask cluster has no workers: start some before calling fit_distributed")
        X_blocks, futures = block_readers(self.X)
        y_blocks = None
        if self.y is not None:
            y_blocks, y_futures = block_readers(self.y)
            futures.update(y_futures)
        self.futures = futures
        self.shards = make_shards(client, X_blocks, y_blocks, futures, list(workers))
        self.token = uuid.uuid4().hex
        self.n_phases = 0
        self.bar = None

    # -- data on the driver -------------------------------------------------------------------------

    def sample(self):
        """A sample of X (up to about 2,000 rows spread over the blocks) for initialisation and
        monitoring, as a pandas DataFrame when X was a dask DataFrame (feature names)."""
        sample = self.client.compute(self.X[sample_index(self.X)]).result()
        if isinstance(sample, np.ndarray):  # (blocks may also be sparse matrices)
            sample = np.array(sample, copy=True)  # rebuilt from a network message: maybe misaligned
        if self.columns is not None:
            import pandas as pd

            return pd.DataFrame(sample, columns=self.columns)
        return sample

    def compute(self, *collections):
        """Small results of reductions over X or y, computed on the cluster."""
        return [f.result() for f in self.client.compute(list(collections))]

    # -- progress -----------------------------------------------------------------------------------

    def rounds(self, epochs: int, batch_size: int) -> int:
        """Rounds of a phase: ``n_rounds``, or as many as the largest shard needs to pass ``epochs``
        times over its rows (a minibatch never spans two blocks: a block of n rows takes
        ceil(n / batch_size) steps)."""
        if self.n_rounds is not None:
            return self.n_rounds
        steps_per_epoch = max(sum(-(-b.rows // batch_size) for b in shard.blocks) for shard in self.shards)
        return max(1, math.ceil(epochs * steps_per_epoch / self.local_steps))

    def start_progress(self, phases):
        """One bar over every round of every phase (``phases``: (epochs, batch_size) pairs)."""
        if self.verbose:
            from tqdm.auto import tqdm

            total = sum(self.rounds(epochs, batch) for epochs, batch in phases)
            self.bar = tqdm(total=total, desc="fit_distributed", unit="round")

    def close(self):
        if self.bar is not None:
            self.bar.close()
        try:
            self.client.run(release_blocks, self.token)
        except Exception:  # noqa: BLE001 - best effort: a worker may be gone; its blocks went with it
            pass

    # -- rounds -------------------------------------------------------------------------------------

    def train(self, phase, est, *, epochs: int, monitor=None, on_commit=None):
        """Runs the rounds of one phase on ``est`` (the estimator whose arrays the phase trains).

        ``monitor()``, if given, returns extra metrics of the committed model for ``history_``; the
        driver computes them while the workers already run the next round. ``on_commit()`` is called
        once the first round is committed (a fit that fails before that leaves the estimator as it
        was before the fit: bad data is found by the workers, in the first round)."""
        phase_index = self.n_phases
        self.n_phases += 1
        n_rounds = self.rounds(epochs, phase.batch_size(est))
        if self.bar is not None:
            self.bar.set_description(phase.name)
        phase_future = self.client.scatter([phase], broadcast=True, hash=False)[0]
        cursors = [(0, 0, 0)] * len(self.shards)
        states = [phase.shard_state(est)] * len(self.shards)
        rows_done = 0
        pending = self._submit(phase_future, phase, est, phase_index, 0, cursors, states, rows_done)
        try:
            for r in range(n_rounds):
                futures, submitted = pending
                results = self._collect(futures, phase, r)
                pending = None
                elapsed = time.perf_counter() - submitted
                rows = sum(res["rows"] for res in results)
                metrics = _metric_means(results, rows)
                # Commit, next round and history as one step: a Ctrl-C lands before or after it.
                with deferred_interrupts():
                    self._commit(phase, est, results, metrics, r)
                    cursors = [res["cursor"] for res in results]
                    states = [res["shard_state"] for res in results]
                    rows_done += rows
                    phase.after_round(est, r, rows_done / self.n_rows, metrics, states)
                    if r == 0 and on_commit is not None:
                        on_commit()
                    if r + 1 < n_rounds:
                        pending = self._submit(phase_future, phase, est, phase_index, r + 1, cursors, states, rows_done)
                    if monitor is not None:
                        metrics.update(monitor())
                    append_history(
                        est,
                        round=r + 1,
                        epoch=rows_done / self.n_rows,
                        **metrics,
                        time=elapsed,
                        compute_time=max(res["time"] for res in results),
                    )
                if self.bar is not None:
                    self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
                    self.bar.update()
        finally:
            if pending is not None:
                self.client.cancel(pending[0])
            del phase_future

    def _submit(self, phase_future, phase, est, phase_index, r, cursors, states, rows_done):
        """Broadcasts the estimator's current arrays and submits round ``r`` of every shard; returns
        the futures and the time they were submitted."""
        payload = self.client.scatter([phase.payload(est)], broadcast=True, hash=False)[0]
        settings = phase.round_settings(est, int(rows_done // self.n_rows))
        live = sorted(self.client.nthreads())
        futures = []
        for shard, cursor, state in zip(self.shards, cursors, states):
            task = ShardTask(
                cache_key=(self.token, phase_index, shard.rank),
                blocks=shard.blocks,
                targets=shard.targets,
                cursor=cursor,
                stream_seed=derived_seed(self.seed, self._STREAM, phase_index, shard.rank),
                seed=derived_seed(self.seed, self._KERNEL, phase_index, r, shard.rank),
                local_steps=self.local_steps,
                batch_size=phase.batch_size(est),
                settings=settings,
                n_jobs=est.n_jobs,
                shard_state=state,
            )
            inputs = {k: self.futures[k] for k in shard.input_keys()}
            # Prefer the worker that holds the shard's data (or, for data read from its source, one
            # worker per shard); any other worker may take it over if that one is gone.
            preferred = shard.home if shard.home in live else (live[shard.rank % len(live)] if live else None)
            futures.append(
                self.client.submit(
                    train_shard,
                    phase_future,
                    payload,
                    inputs,
                    task,
                    key=f"deepgm-round-{self.token}-{phase_index}-{r}-{shard.rank}",
                    workers=[preferred] if preferred else None,
                    allow_other_workers=True,
                    pure=False,
                )
            )
        return futures, time.perf_counter()

    def _collect(self, futures, phase, r):
        """The shards' results of a round, or a clear error if the round cannot complete: the
        exception of a task that failed on bad data (its own message is clear), or a RuntimeError."""
        self._wait(futures)
        failed = [f for f in futures if f.status != "finished"]
        if not failed:
            try:
                return self.client.gather(futures)
            except Exception as err:  # noqa: BLE001 - e.g. a worker lost while its result was fetched
                raise RuntimeError(f"{phase.name}: round {r + 1} failed ({type(err).__name__}: {err}). {self._kept(r)}") from err
        errors = [f.exception() for f in failed if f.status == "error"]
        for err in errors:
            if isinstance(err, (ValueError, TypeError, FloatingPointError)):
                raise err  # bad data found on a worker, divergence: the message says what to fix
        killed = [err for err in errors if isinstance(err, KilledWorker)]
        if killed:
            raise RuntimeError(
                f"{phase.name}: round {r + 1} failed: {killed[0]}. The scheduler gave up re-running it after losing "
                f"the workers that ran it (see the Dask setting distributed.scheduler.allowed-failures). {self._kept(r)}"
            ) from killed[0]
        cause = errors[0] if errors else None
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else f"its tasks were {failed[0].status}"
        raise RuntimeError(
            f"{phase.name}: round {r + 1} failed ({reason}); was a worker lost together with data that only it held? {self._kept(r)}"
        ) from cause

    @staticmethod
    def _kept(r):
        return f"The estimator keeps the parameters of the last completed round ({r})."

    def _wait(self, futures):
        no_workers_since = None
        while True:
            try:
                wait(futures, timeout=_POLL_SECONDS)
                return
            except CancelledError:
                # The scheduler forgot the round's tasks (it gave up on them after losing a worker,
                # allowed-failures): newer distributed releases raise here instead of leaving the
                # futures cancelled. _collect reports the round as failed either way.
                return
            except TimeoutError:
                if self.client.nthreads():
                    no_workers_since = None
                    continue
                no_workers_since = no_workers_since or time.monotonic()
                if time.monotonic() - no_workers_since > _NO_WORKER_SECONDS:
                    raise RuntimeError(f"the Dask cluster has had no workers for {_NO_WORKER_SECONDS:.0f} s") from None

    def _commit(self, phase, est, results, metrics, r):
        """Sets the estimator's arrays to the row-weighted mean of the shards' (after checking it)."""
        weights = np.array([shard.rows for shard in self.shards], dtype=np.float64)
        weights /= weights.sum()
        new = {}
        for name in phase.averaged:
            new[name] = weighted_mean([res["payload"][name] for res in results], weights)
        for name in phase.counters:
            new[name] = results[0]["payload"][name]
        bad = [name for name in phase.averaged if not _all_finite(new[name])]
        bad += [name for name, value in metrics.items() if not np.isfinite(value)]
        try:
            if bad:
                raise FloatingPointError(f"non-finite {', '.join(bad)}")
            phase.check_round(est, metrics)
        except FloatingPointError as err:
            raise DivergenceError(
                f"{type(est).__name__}: training diverged in round {r + 1} of {phase.name} ({err}). The estimator keeps "
                "the parameters of the last completed round; try a smaller learning_rate or fewer local_steps."
            ) from None
        for name, value in new.items():
            setattr(est, name, value)


def append_history(est, **metrics):
    """One round's row of ``history_`` (a dict of lists), assigned in one statement as the estimators
    log their epochs (printing is left to the progress bar: rounds can be many)."""
    history = dict(getattr(est, "history_", {}))
    for key, value in metrics.items():
        history[key] = list(history.get(key, [])) + [value]
    est.history_ = history


def weighted_mean(values, weights):
    """sum_s weights[s] * values[s] for arrays (or nested lists of arrays) of one structure, summed in
    shard order in the arrays' own dtype (float32 sums of a few terms lose nothing that SGD noise
    does not swamp, and take a third of the time of a float64 accumulation)."""
    first = values[0]
    if isinstance(first, np.ndarray):
        dtype = first.dtype.type
        total = np.multiply(first, dtype(weights[0]))
        scaled = np.empty_like(total)  # one buffer for every other shard's w * v
        for w, v in zip(weights[1:], values[1:]):
            np.multiply(v, dtype(w), out=scaled)
            total += scaled
        return total
    if isinstance(first, (list, tuple)):
        return [weighted_mean([v[i] for v in values], weights) for i in range(len(first))]
    raise TypeError(f"cannot average a {type(first).__name__}")


def _all_finite(value) -> bool:
    if isinstance(value, np.ndarray):
        return bool(np.all(np.isfinite(value)))
    return all(_all_finite(v) for v in value)


def _metric_means(results, rows):
    """Per-row means of the metric sums the shards returned."""
    names = results[0]["metrics"].keys()
    return {name: sum(res["metrics"][name] for res in results) / max(rows, 1) for name in names}
