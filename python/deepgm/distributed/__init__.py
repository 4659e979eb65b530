"""Data-parallel training on a Dask cluster by synchronous parameter averaging.

``fit_distributed(estimator, X, y)`` trains a deepgm estimator on a dask array (or dask DataFrame)
whose row blocks stay where they are: every worker trains a replica of the model on the blocks it
holds (or reads them from their files itself), and the replicas are averaged after every round:

    theta_{r+1} = sum_s (n_s / N) * SGD_s^H(theta_r)

where SGD_s^H runs H = ``local_steps`` minibatch steps of the estimator's own update (CD-k for an
RBM layer, backpropagation for fine-tuning, Adam on the -ELBO for a VAE) on shard s, which holds n_s
of the N rows. All replicas start from the same parameters, initialised on the driver from a sample
of X as the estimator's ``fit`` initialises them. The optimiser state (momentum velocities, Adam
moments) is averaged with the parameters, so with one local step of SGD (with or without momentum)
and shards of equal size, a round is exactly one step on the union of the replicas' minibatches.
Persistent chains and random streams stay with their shard, seeded from (random_state, round,
shard rank): a given layout of X on a given number of workers always gives the same model.

Install with ``pip install "deepgm[dask]"``. See docs/distributed.md for the cost model and for when
to use this, ``partial_fit`` over memory maps, or a joblib hyperparameter search on the cluster.
Other model families plug in with :func:`register` (see ``_estimators.py`` and ``_phases.py``).
"""

from __future__ import annotations

try:
    import dask.array  # noqa: F401
    import distributed
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError('deepgm.distributed needs Dask: pip install "deepgm[dask]" (dask[array] and distributed)') from err

from .._base import check_positive_int, seed_from, validate_random_state
from ._estimators import fitter_for, register
from ._rounds import Run

__all__ = ["fit_distributed", "threads_per_worker", "register"]


def fit_distributed(estimator, X, y=None, *, client=None, n_rounds=None, local_steps=10, random_state=None):
    """Fits ``estimator`` on a Dask cluster by synchronous parameter averaging.

    Works for :class:`~deepgm.RBM`, :class:`~deepgm.DBN` (layer by layer: each worker transforms its
    own blocks through the layers below), :class:`~deepgm.DBNClassifier`,
    :class:`~deepgm.DBNRegressor`, :class:`~deepgm.DeepAutoencoder` (pretraining, then fine-tuning),
    :class:`~deepgm.VAE` and :class:`~deepgm.CVAE`.

    Parameters
    ----------
    estimator : deepgm estimator
        Its settings are used as by its ``fit`` (learning rate, batch size, ...); ``n_jobs`` caps the
        threads of each replica, which otherwise uses all the threads its Dask worker has.
        ``early_stopping=True`` is not supported ("auto", DBNRegressor's default, trains without it).
    X : dask array of shape (n_samples, n_features), or dask DataFrame of numbers
        Chunked along the rows. It is never gathered on the client: each worker trains on the blocks
        it holds (a persisted X) or reads its blocks inside the training tasks, one at a time (an X
        read from files: ``da.from_npy_stack``, ``da.from_zarr``, ``da.from_array`` over a memory map).
        The driver reads a sample of about 2,000 rows to initialise the model.
    y : dask array or dask Series of shape (n_samples,), default=None
        Targets (DBNClassifier, DBNRegressor, CVAE), chunked like X (it is rechunked if not). A DBN's
        label units are not trained here: y with a DBN is refused (ValueError). The other estimators
        without targets ignore y, as scikit-learn's unsupervised estimators do.
    client : distributed.Client, default=None
        The cluster (default: the current client).
    n_rounds : int, default=None
        Rounds of averaging per training phase (each pretrained layer, fine-tuning). By default, as
        many as the estimator's epochs (``n_iter``, ``pretrain_iter``, ``finetune_iter``) take over
        the data: ``ceil(epochs * n_samples / (n_shards * local_steps * batch_size))``.
    local_steps : int, default=10
        Minibatch steps each replica runs between two averagings. More steps move fewer bytes per
        sample but let the replicas drift apart; see docs/distributed.md.
    random_state : int, RandomState, Generator or None, default=None
        Seeds the replicas' minibatch orders and sampling (with the round and the shard's rank);
        None uses the estimator's ``random_state``. The initial parameters come from the estimator's
        ``random_state``, as in its ``fit``.

    Returns
    -------
    estimator
        Fitted in place. ``history_`` has one row per round (``round``, ``epoch`` as a fraction of
        passes over X, the training metrics, ``time`` of the round and ``compute_time``, the longest
        replica's training time in it). For the estimators trained by a loss (DBNClassifier,
        DBNRegressor, DeepAutoencoder, VAE, CVAE), ``n_iter_`` counts the rounds of the last phase, as
        ``loss_curve_`` has one entry per round: the passes over X are ``history_["epoch"][-1]``.

    Notes
    -----
    A worker lost during a round: the scheduler runs its shard again on another worker (same blocks,
    same seeds, so the same result). If it cannot (see the Dask setting
    ``distributed.scheduler.allowed-failures``, or data held only by the lost worker), a
    RuntimeError is raised and the estimator holds the parameters of the last completed round.
    """
    fitter = fitter_for(estimator)
    if y is not None and fitter.refuses_y:
        raise ValueError(f"y is not supported for a {type(estimator).__name__}: {fitter.refuses_y}")
    local_steps = check_positive_int(local_steps, "local_steps")
    if n_rounds is not None:
        n_rounds = check_positive_int(n_rounds, "n_rounds")
    seed = seed_from(validate_random_state(estimator.random_state if random_state is None else random_state))
    client = _client(client)
    # The given client, not the default one, computes what dask computes here (chunk sizes, waits).
    with client.as_current():
        run = Run(
            client,
            X,
            y if fitter.targets is not None else None,
            n_rounds=n_rounds,
            local_steps=local_steps,
            seed=seed,
            verbose=getattr(estimator, "verbose", 0),
            classification=fitter.targets == "classes",
        )
        try:
            fitter.fit(estimator, run)
        finally:
            run.close()
    return estimator


def threads_per_worker(client=None) -> int:
    """The smallest number of threads of a worker of the cluster.

    An estimator with ``n_jobs=None`` (or -1) already uses its Dask worker's threads when it is fitted
    inside a worker (a trial of a joblib search on Dask); this tells the same number to the client,
    e.g. to give it as ``n_jobs`` to an estimator fitted outside the cluster for comparison."""
    nthreads = _client(client).nthreads()
    if not nthreads:
        raise ValueError("the Dask cluster has no workers")
    return min(nthreads.values())


def _client(client):
    if client is not None:
        if not isinstance(client, distributed.Client):
            raise TypeError(f"client must be a distributed.Client or None; got {type(client).__name__}")
        if client.status != "running":
            raise ValueError(f"client must be connected to a running cluster; got a client whose status is {client.status!r}")
        return client
    try:
        return distributed.get_client()
    except ValueError:
        raise ValueError("fit_distributed needs a Dask cluster: pass client=, or create a distributed.Client first") from None
