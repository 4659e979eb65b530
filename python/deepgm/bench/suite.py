"""deepgm against NumPy, scikit-learn and PyTorch: one command, same data, same run.

    deepgm bench [--quick] [--out DIR] [--repeats N] [--threads N] [--no-scaling] [--no-torch]
    python -m deepgm.bench [same options]

Times one training epoch (or one AIS / sampling run) of every algorithm with deepgm and with plain
NumPy (:mod:`deepgm.bench.numpy_reference`), PyTorch on the CPU (:mod:`deepgm.bench.torch_reference`,
when torch is installed) and scikit-learn where it has the model (BernoulliRBM, MLPClassifier), all on
the embedded MNIST images. Every row gives each implementation's median time over repeats, its time
relative to deepgm's (> 1: deepgm is faster) and the fraction of the machine's float32 GEMM peak it
reached (the row's product work over its time; the peak is measured in the same row: the better of
NumPy's and deepgm's 2000x784x1000 product on all threads, timed in turns with the row's
implementations), and, in full runs, the peak memory each implementation added. Then scaling: epoch time against batch size, hidden width, data set size and
threads. Writes ``results.md``, ``results.json`` and ``scaling.png``.

``--quick`` is a smoke run of under a minute (1,000 images, one repeat, no memory sampling, only the
thread scaling): its ratios are indicative, not a measurement.

Timing method: a row's implementations and its two peak products are timed in turns, one call of each
per repeat (the order rotated from one repeat to the next), so that a host whose speed drifts during
the run (other tenants, clock changes) slows every implementation of the row and its peak alike: the
ratios and fractions of peak compare calls made within seconds of each other. Every timed call starts
after the process has gone quiet (OpenBLAS's and rayon's worker threads spin after work and would
steal a core from the next call); other processes' CPU use is measured per row and rows disturbed by
more than 10% are starred.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .. import CVAE, DBN, RBM, VAE, DBNClassifier, DeepAutoencoder, _core
from .._mlp import FineTuner
from ..datasets import load_mnist
from ..rbm import ais_schedule
from . import machine
from . import numpy_reference as ref_np
from . import torch_reference as ref_torch

__all__ = ["main"]


@dataclass
class Settings:
    """How much a run measures: the full suite, or the quick smoke run."""

    quick: bool
    n_images: int
    repeats: int
    measure_memory: bool
    settle_s: float  # longest wait for the process's worker threads to go idle before a block
    ais_betas: int
    gibbs_steps: int
    scaling: tuple  # which scaling curves
    scaling_repeats: int
    scaling_samples: int
    threads: int

    @classmethod
    def make(cls, quick: bool, repeats: int | None, threads: int | None, scaling: bool) -> Settings:
        all_curves = ("batch_size", "hidden_width", "dataset_size", "threads")
        return cls(
            quick=quick,
            n_images=1000 if quick else 10000,
            repeats=repeats or (1 if quick else 3),
            measure_memory=not quick,
            settle_s=0.2 if quick else 2.0,
            ais_betas=50 if quick else 1000,
            gibbs_steps=20 if quick else 200,
            scaling=(("threads",) if quick else all_curves) if scaling else (),
            scaling_repeats=1 if quick else 2,
            scaling_samples=1000 if quick else 2500,
            threads=threads or (os.cpu_count() or 1),
        )


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


class PeakMemory:
    """The process's peak resident memory above its level at start(), sampled every 2 ms in a
    background thread (it sees NumPy's, Rust's and PyTorch's allocations alike)."""

    def __init__(self):
        self._stop = threading.Event()
        self._peak = 0
        self._base = 0

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return 0

    def _run(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self.rss())
            time.sleep(0.002)

    def __enter__(self):
        self._base = self._peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self.rss())

    @property
    def mib(self) -> float:
        return (self._peak - self._base) / 2**20


@dataclass
class Result:
    implementation: str
    median_s: float
    times_s: list[float]
    peak_mib: float | None  # None when memory was not sampled (quick runs)
    foreign_load: float | None


@dataclass
class Row:
    name: str
    gflop: float
    results: dict[str, Result] = field(default_factory=dict)
    note: str = ""
    peak_gflops: float | None = None  # the GEMM peak measured in turns with this row's implementations

    def ratio(self, impl: str) -> float | None:
        if "deepgm" not in self.results or impl not in self.results:
            return None
        return self.results[impl].median_s / self.results["deepgm"].median_s

    def gflops(self, impl: str) -> float:
        return self.gflop / self.results[impl].median_s

    def fraction_of_peak(self, impl: str, run_peak: float) -> float:
        """The implementation's GFLOP/s over the peak measured with the row (or the run's, if none)."""
        return self.gflops(impl) / (self.peak_gflops or run_peak)

    def disturbed(self) -> bool:
        return any((r.foreign_load or 0) > 0.10 for r in self.results.values())


def time_in_turns(impls: dict[str, Callable[[], object]], cfg: Settings, memory_of=None, warmup: int = 1) -> dict[str, Result]:
    """Median wall time of every implementation, timed in turns: each repeat calls every
    implementation once, in an order rotated by one from the previous repeat, every call from a quiet
    process; ``warmup`` untimed calls of each first. Then (full runs) the peak memory added by one
    more untimed call of each implementation named in ``memory_of`` (default: all): the sampling
    thread wakes every 2 ms and slowed timed epochs by 4-10% (benches/NOTES.md entry 14). Other
    processes' CPU use is measured over all the timed calls."""
    names = list(impls)
    for name in names:
        machine.settle(max_wait_s=cfg.settle_s)
        for _ in range(warmup):
            impls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    load = machine.ForeignLoad().start()
    for r in range(cfg.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            machine.settle(max_wait_s=cfg.settle_s)
            t0 = time.perf_counter()
            impls[name]()
            times[name].append(time.perf_counter() - t0)
    foreign = load.stop()
    results = {}
    for name in names:
        peak_mib = None
        if cfg.measure_memory and (memory_of is None or name in memory_of):
            machine.settle(max_wait_s=cfg.settle_s)
            with PeakMemory() as mem:
                impls[name]()
            peak_mib = mem.mib
        results[name] = Result(name, float(np.median(times[name])), times[name], peak_mib, foreign)
    return results


def time_alone(name: str, fn: Callable[[], object], cfg: Settings) -> Result:
    """:func:`time_in_turns` with one implementation: the scaling curves' points."""
    return time_in_turns({name: fn}, cfg)[name]


#: The product that measures the machine's float32 GEMM peak: large enough for every core to run its
#: best kernel, the shape of a wide layer over a large minibatch.
PEAK_SHAPE = (2000, 784, 1000)


def peak_products() -> dict[str, Callable[[], object]]:
    """deepgm's and NumPy's ``PEAK_SHAPE`` float32 product on all threads (the operands made once)."""
    rng = np.random.default_rng(0)
    m, k, n = PEAK_SHAPE
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    return {"deepgm": lambda: _core.gemm(a, b, c), "numpy": lambda: np.matmul(a, b, out=c)}


#: The names under which a row times the two peak products beside its implementations.
_PEAK_TURNS = {"peak product, deepgm": "deepgm", "peak product, numpy": "numpy"}


def measure(row: Row, impls: dict[str, Callable[[], object]], cfg: Settings, log) -> Row:
    """Times the row's implementations and the GEMM peak in turns (:func:`time_in_turns`)."""
    peak = peak_products()
    turns = dict(impls, **{turn: peak[impl] for turn, impl in _PEAK_TURNS.items()})
    results = time_in_turns(turns, cfg, memory_of=set(impls))
    m, k, n = PEAK_SHAPE
    row.peak_gflops = max(2 * m * k * n / results.pop(turn).median_s / 1e9 for turn in _PEAK_TURNS)
    row.results.update(results)
    parts = [f"{n} {r.median_s * 1e3:.0f} ms" for n, r in row.results.items()]
    log(f"  {row.name}: " + ", ".join(parts) + f" (GEMM peak {row.peak_gflops:.0f} GFLOP/s)")
    return row


# ---------------------------------------------------------------------------------------------
# The rows
# ---------------------------------------------------------------------------------------------


def rbm_gflop(n, nv, nh, k):
    """GEMM work of one CD-k epoch: the data's hidden pass, k (visible, hidden) passes, the gradient."""
    return (1 + 2 * k + 2) * 2 * n * nv * nh / 1e9


def mlp_gflop(n, sizes, input_gradient=False):
    """Forward + backward of a dense chain, over n samples: per layer the forward product, the weight
    gradient and the gradient of its input, except the chain's own input (the data needs none: no
    implementation computes it) unless ``input_gradient`` (the VAE's decoder passes it to z)."""
    work = 6 * n * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return (work - (0 if input_gradient else 2 * n * sizes[0] * sizes[1])) / 1e9


def deepgm_rbm_epoch(X, nh, *, batch_size=100, persistent=False, n_jobs=None, seed=0):
    rbm = RBM(nh, batch_size=batch_size, persistent=persistent, n_iter=1, random_state=seed, n_jobs=n_jobs).fit(X[: batch_size * 2])
    return lambda: rbm._train(X, n_epochs=1, shuffle=True)


def rbm_rows(X, cfg, log, has_torch, persistent, batch_size=100):
    from sklearn.neural_network import BernoulliRBM

    n, nv = X.shape
    nh = 500
    kind = "PCD-1" if persistent else "CD-1"
    row = Row(f"RBM {kind} epoch {nv}-{nh}, batch {batch_size}", rbm_gflop(n, nv, nh, 1))
    impls = {"deepgm": deepgm_rbm_epoch(X, nh, batch_size=batch_size, persistent=persistent)}
    numpy_rbm = ref_np.NumpyRBM(nv, nh, batch_size=batch_size, persistent=persistent)
    impls["numpy"] = lambda: numpy_rbm.fit_epoch(X)
    if has_torch:
        torch_rbm = ref_torch.TorchRBM(nv, nh, batch_size=batch_size, persistent=persistent, n_threads=cfg.threads)
        Xt = ref_torch.as_tensor(X)
        impls["torch"] = lambda: torch_rbm.fit_epoch(Xt)
    # scikit-learn's BernoulliRBM is PCD-1 without momentum or weight decay: the closest it offers.
    sk = BernoulliRBM(nh, batch_size=batch_size, n_iter=1, learning_rate=0.1, random_state=0)
    impls["scikit-learn"] = lambda: sk.fit(X)
    row.note = "scikit-learn: BernoulliRBM (PCD-1, its only algorithm)"
    return measure(row, impls, cfg, log)


def rbm_small_batch_row(X, cfg, log, has_torch):
    """CD-1 with minibatches of 10, BernoulliRBM's default: small products, many of them."""
    return rbm_rows(X, cfg, log, has_torch, persistent=False, batch_size=10)


def dbn_pretrain_row(X, cfg, log, has_torch):
    sizes = (X.shape[1], 500, 500, 2000)
    n = X.shape[0]
    # Each layer's CD-1 epoch, and the hidden means of the data that the next layer trains on (none
    # after the top layer: no implementation computes them).
    gflop = sum(rbm_gflop(n, a, b, 1) for a, b in zip(sizes[:-1], sizes[1:]))
    gflop += sum(2 * n * a * b for a, b in zip(sizes[:-2], sizes[1:-1])) / 1e9
    row = Row("DBN pretraining epoch 784-500-500-2000 (one epoch per layer)", gflop)
    # The settings of the NumPy reference: Bernoulli units, learning rate 0.1, minibatches of 100.
    dbn = DBN(sizes[1:], visible="bernoulli", learning_rate=0.1, batch_size=100, n_iter=1, random_state=0)
    impls = {"deepgm": lambda: dbn.fit(X)}

    def numpy_stack():
        data = X
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            r = ref_np.NumpyRBM(a, b)
            r.fit_epoch(data)
            if i < len(sizes) - 2:
                data = r.hidden_probs(data)

    impls["numpy"] = numpy_stack
    if has_torch:
        Xt = ref_torch.as_tensor(X)

        def torch_stack():
            data = Xt
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                r = ref_torch.TorchRBM(a, b, n_threads=cfg.threads)
                r.fit_epoch(data)
                if i < len(sizes) - 2:
                    data = r.hidden_probs(data)

        impls["torch"] = torch_stack
    return measure(row, impls, cfg, log)


def dbn_finetune_row(X, y, cfg, log, has_torch):
    from sklearn.neural_network import MLPClassifier

    sizes = (X.shape[1], 500, 500, 2000, 10)
    row = Row("DBN fine-tuning epoch 784-500-500-2000-10, SGD, batch 100", mlp_gflop(X.shape[0], sizes))
    clf = DBNClassifier(
        sizes[1:-1], pretrain=False, finetune_iter=1, optimizer="sgd", learning_rate=0.1, momentum=0.9, batch_size=100, random_state=0
    ).fit(X[:200], y[:200])
    Y = np.zeros((len(y), 10), np.float32)
    Y[np.arange(len(y)), y] = 1
    tuner = FineTuner(clf, clf._hidden_activations(), clf._loss)
    impls = {"deepgm": lambda: tuner.run(X, Y, n_epochs=1, seed=0)}
    mlp = ref_np.NumpyMLP(sizes)
    impls["numpy"] = lambda: mlp.fit_epoch(X, Y)
    if has_torch:
        tm = ref_torch.TorchMLP(sizes, n_threads=cfg.threads)
        Xt, yt = ref_torch.as_tensor(X), ref_torch.as_tensor(y.astype(np.int64))
        impls["torch"] = lambda: tm.fit_epoch(Xt, yt)
    sk = MLPClassifier(
        sizes[1:-1],
        activation="logistic",
        solver="sgd",
        learning_rate_init=0.1,
        momentum=0.9,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=100,
        random_state=0,
    )
    sk.partial_fit(X[:200], y[:200], classes=np.arange(10))
    impls["scikit-learn"] = lambda: sk.partial_fit(X, y)
    row.note = "scikit-learn: MLPClassifier.partial_fit (one SGD epoch, float32 input)"
    return measure(row, impls, cfg, log)


def autoencoder_row(X, cfg, log, has_torch):
    sizes = ref_np.AUTOENCODER_SIZES
    row = Row("Deep autoencoder fine-tuning epoch 784-1000-500-250-30, SGD, batch 100", mlp_gflop(X.shape[0], sizes))
    ae = DeepAutoencoder(
        sizes[1:4],
        sizes[4],
        pretrain=False,
        finetune_iter=1,
        optimizer="sgd",
        learning_rate=0.01,
        momentum=0.9,
        batch_size=100,
        random_state=0,
    ).fit(X[:200])
    tuner = ae._tuner()
    impls = {"deepgm": lambda: tuner.run(X, X, n_epochs=1, seed=0)}
    nae = ref_np.NumpyAutoencoder(sizes)
    impls["numpy"] = lambda: nae.fit_epoch(X)
    if has_torch:
        tae = ref_torch.TorchAutoencoder(sizes, n_threads=cfg.threads)
        Xt = ref_torch.as_tensor(X)
        impls["torch"] = lambda: tae.fit_epoch(Xt)
    return measure(row, impls, cfg, log)


def vae_row(X, y, cfg, log, has_torch, conditioning="none"):
    label = {"none": "VAE", "prior_mean": "CVAE (class prior means)", "concat": "CVAE (concatenated labels)"}[conditioning]
    extra = 10 if conditioning == "concat" else 0
    sizes = (X.shape[1] + extra, 400, 40), (20 + extra, 400, X.shape[1])
    gflop = mlp_gflop(X.shape[0], sizes[0]) + mlp_gflop(X.shape[0], sizes[1], input_gradient=True)
    row = Row(f"{label} epoch 784-400-20, Adam, batch 128", gflop)
    if conditioning == "none":
        model = VAE(20, n_iter=1, random_state=0).fit(X[:256])
        impls = {"deepgm": lambda: model._train(X, None, n_epochs=1, shuffle=True)}
    else:
        model = CVAE(20, conditioning=conditioning, n_iter=1, random_state=0).fit(X[:256], y[:256])
        codes = model._encode_labels(y, len(y))
        impls = {"deepgm": lambda: model._train(X, codes, n_epochs=1, shuffle=True)}
    nv = ref_np.NumpyVAE(conditioning=conditioning)
    labels = None if conditioning == "none" else y
    impls["numpy"] = lambda: nv.fit_epoch(X, labels)
    if has_torch:
        tv = ref_torch.TorchVAE(conditioning=conditioning, n_threads=cfg.threads)
        Xt = ref_torch.as_tensor(X)
        lt = None if labels is None else ref_torch.as_tensor(labels.astype(np.int64))
        impls["torch"] = lambda: tv.fit_epoch(Xt, lt)
    return measure(row, impls, cfg, log)


def ais_row(rbm: RBM, cfg, log):
    n_chains, n_betas = 100, cfg.ais_betas
    W, b, c = rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_
    nh, nv = W.shape
    base = ref_np.base_rate_bias(rbm.visible_mean_[None, :].repeat(2, 0)).astype(np.float32)
    betas = ais_schedule(n_betas)
    row = Row(f"AIS log Z, {n_chains} chains x {n_betas} temperatures, 784-500 RBM", 2 * 2 * n_chains * n_betas * nv * nh / 1e9)
    impls = {"deepgm": lambda: _core.rbm_ais(W, b, c, base, betas, n_chains=n_chains, seed=1)}
    rng = np.random.default_rng(0)
    impls["numpy"] = lambda: ref_np.ais_log_weights(W, b, c, base, betas, n_chains, rng)
    return measure(row, impls, cfg, log)


def sampling_row(rbm: RBM, cfg, log, has_torch):
    n_chains, n_steps = 100, cfg.gibbs_steps
    W, b, c = rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_
    nh, nv = W.shape
    row = Row(f"Gibbs sampling, {n_chains} chains x {n_steps} steps, 784-500 RBM", 2 * 2 * n_chains * n_steps * nv * nh / 1e9)
    V0 = (np.random.default_rng(0).random((n_chains, nv)) < 0.5).astype(np.float32)
    impls = {"deepgm": lambda: _core.rbm_gibbs(V0, W, b, c, n_steps=n_steps, seed=3)}
    ref = ref_np.NumpyRBM(nv, nh)
    ref.W, ref.b, ref.c = W, b, c

    def numpy_chain():
        v = V0
        for _ in range(n_steps):
            h = ref._sample(ref.hidden_probs(v))
            v = ref._sample(ref.visible_probs(h))
        return v

    impls["numpy"] = numpy_chain
    if has_torch:
        import torch

        tr = ref_torch.TorchRBM(nv, nh, n_threads=cfg.threads)
        tr.W, tr.b, tr.c = torch.from_numpy(W), torch.from_numpy(b), torch.from_numpy(c)
        Vt = torch.from_numpy(V0)

        def torch_chain():
            v = Vt
            for _ in range(n_steps):
                h = tr._sample(tr.hidden_probs(v))
                v = tr._sample(tr.visible_probs(h))
            return v

        impls["torch"] = torch_chain
    return measure(row, impls, cfg, log)


def synthetic_ratings(n_users: int, n_items: int, n_ratings: int, seed: int = 0):
    """A users x items CSR matrix of ratings 0.5, 1, ..., 5 shaped like MovieLens (which does not
    ship with deepgm): item popularity falling off as a power law, ratings skewed towards 3-4.

    Returns the ratings and the same pattern holding rating codes 1..10 (the NumPy reference's input)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    users = rng.integers(0, n_users, n_ratings)
    items = rng.choice(n_items, n_ratings, p=popularity / popularity.sum())
    values = np.arange(1, 11) / 2.0
    stars = rng.choice(values, n_ratings, p=np.array([1, 2, 2, 4, 6, 10, 14, 12, 6, 5]) / 62.0)
    R = sp.csr_matrix((stars, (users, items)), shape=(n_users, n_items))
    R.sum_duplicates()
    R.data = np.clip(np.round(R.data * 2) / 2, 0.5, 5.0)  # duplicates summed: back onto the scale
    codes = sp.csr_matrix((np.searchsorted(values, R.data) + 1.0, R.indices, R.indptr), shape=R.shape)
    return R, codes


def synthetic_counts(n_docs: int, n_words: int, mean_length: int, seed: int = 0):
    """A documents x words CSR matrix of word counts shaped like 20 Newsgroups bag-of-words: Zipf
    word frequencies, document lengths drawn around ``mean_length``."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    frequency = 1.0 / np.arange(1, n_words + 1)
    lengths = rng.poisson(mean_length, n_docs) + 1
    rows = np.repeat(np.arange(n_docs), lengths)
    words = rng.choice(n_words, lengths.sum(), p=frequency / frequency.sum())
    C = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, words)), shape=(n_docs, n_words))
    C.sum_duplicates()
    return C


def collaborative_row(cfg, log, orientation="users"):
    """CollaborativeRBM, one CD-1 epoch with 100 hidden units on MovieLens-sized synthetic ratings,
    against the dense-minibatch NumPy reference (one-hot cases x groups x values, masked). The users
    orientation's cases are the users and its groups the items; the items orientation (which the
    default picks on this shape, more items than users) trains the same RBM on the transposed matrix, and the reference then masks the users."""
    from deepgm import CollaborativeRBM

    from .softmax_reference import NumpyCollaborativeRBM

    n_users = 100 if cfg.quick else 536
    R, codes = synthetic_ratings(n_users, 8658, 153 * n_users)
    if orientation == "items":
        codes = codes.T.tocsr()
    nh, K = 100, 10
    # The sparse algorithm's products: hidden inputs from the ratings (twice), the reconstruction of
    # every rated pair's K values, and the positive and negative gradients.
    gflop = 2 * R.nnz * nh * (2 + 3 * K) / 1e9
    row = Row(f"CollaborativeRBM epoch, {orientation} orientation, {n_users} users x 8,658 items, 100 hidden, CD-1", gflop)
    reference = NumpyCollaborativeRBM(codes.shape[1], K)
    model = CollaborativeRBM(nh, orientation=orientation, k=1, n_iter=1, weight_decay=0.01, offsets=False, random_state=0)
    impls = {
        "deepgm": lambda: model.fit(R),
        "numpy": lambda: reference.fit_epoch(codes),
    }
    row.note = "synthetic MovieLens-shaped ratings; deepgm timed through fit (one epoch"
    row.note += ", and the items' features for the fold-in)" if orientation == "items" else ")"
    return measure(row, impls, cfg, log)


def replicated_softmax_row(cfg, log):
    """ReplicatedSoftmax, one CD-1 epoch with 50 hidden units on 20 Newsgroups-sized synthetic
    counts, against the dense-minibatch NumPy reference."""
    from deepgm import ReplicatedSoftmax

    from .softmax_reference import NumpyReplicatedSoftmax

    n_docs, n_words, nh = (1000 if cfg.quick else 5505), 2000, 50
    C = synthetic_counts(n_docs, n_words, 120)
    # Dense work per epoch: the reconstruction's softmax inputs, its hidden pass and the gradient.
    gflop = 3 * 2 * n_docs * n_words * nh / 1e9
    row = Row(f"ReplicatedSoftmax epoch, {n_docs} documents x 2,000 words, 50 hidden, CD-1", gflop)
    reference = NumpyReplicatedSoftmax(n_words)
    impls = {
        "deepgm": lambda: ReplicatedSoftmax(nh, max_iter=1, random_state=0).fit(C),
        "numpy": lambda: reference.fit_epoch(C),
    }
    row.note = "synthetic 20 Newsgroups-shaped counts; deepgm timed through fit (one epoch)"
    return measure(row, impls, cfg, log)


def gemm_peak(cfg: Settings, log) -> dict[str, float]:
    """The machine's measured float32 GEMM peak (GFLOP/s) on all threads at the start of the run:
    deepgm's and NumPy's ``PEAK_SHAPE`` product, timed in turns. Each row measures it again beside
    its implementations (:func:`measure`); this one is for rows that do not."""
    timing = replace(cfg, repeats=10 if cfg.quick else 20, measure_memory=False)
    m, k, n = PEAK_SHAPE
    peak = {name: 2 * m * k * n / r.median_s / 1e9 for name, r in time_in_turns(peak_products(), timing, warmup=3).items()}
    log(f"  GEMM peak ({m}x{k}x{n} float32): deepgm {peak['deepgm']:.0f} GFLOP/s, NumPy {peak['numpy']:.0f} GFLOP/s")
    return peak


# ---------------------------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------------------------


def scaling(X, cfg: Settings, log, has_torch) -> dict[str, dict]:
    """Epoch time against batch size, hidden width, data set size (RBM CD-1; deepgm and NumPy) and
    threads (RBM and VAE; deepgm, NumPy and PyTorch): the curves named in ``cfg.scaling``."""
    from threadpoolctl import threadpool_limits

    out: dict[str, dict] = {}
    cfg = replace(cfg, repeats=cfg.scaling_repeats, measure_memory=False)

    def rbm_time(data, nh, batch, n_jobs=None):
        return time_alone("deepgm", deepgm_rbm_epoch(data, nh, batch_size=batch, n_jobs=n_jobs), cfg).median_s

    def numpy_rbm_time(data, nh, batch):
        r = ref_np.NumpyRBM(data.shape[1], nh, batch_size=batch)
        return time_alone("numpy", lambda: r.fit_epoch(data), cfg).median_s

    Xs = X[: min(len(X), cfg.scaling_samples)]
    if "batch_size" in cfg.scaling:
        log("scaling: batch size")
        batches = [25, 50, 100, 200, 400]
        out["batch_size"] = {
            "x": batches,
            "deepgm": [rbm_time(Xs, 500, b) for b in batches],
            "numpy": [numpy_rbm_time(Xs, 500, b) for b in batches],
        }
    if "hidden_width" in cfg.scaling:
        log("scaling: hidden width")
        widths = [125, 250, 500, 1000]
        out["hidden_width"] = {
            "x": widths,
            "deepgm": [rbm_time(Xs, w, 100) for w in widths],
            "numpy": [numpy_rbm_time(Xs, w, 100) for w in widths],
        }
    if "dataset_size" in cfg.scaling:
        log("scaling: data set size")
        sizes = [n for n in (1250, 2500, 5000, 10000) if n <= len(X)]
        out["dataset_size"] = {
            "x": sizes,
            "deepgm": [rbm_time(X[:n], 500, 100) for n in sizes],
            "numpy": [numpy_rbm_time(X[:n], 500, 100) for n in sizes],
        }
    if "threads" in cfg.scaling:
        log("scaling: threads")
        threads = sorted({1, min(2, os.cpu_count() or 1), cfg.threads})
        th = {"x": threads, "deepgm RBM": [], "deepgm VAE": [], "numpy RBM": [], "torch RBM": [], "torch VAE": []}
        for t in threads:
            th["deepgm RBM"].append(rbm_time(Xs, 500, 100, n_jobs=t))
            vae = VAE(20, n_iter=1, random_state=0, n_jobs=t).fit(Xs[:256])
            th["deepgm VAE"].append(time_alone("deepgm", lambda: vae._train(Xs, None, n_epochs=1, shuffle=True), cfg).median_s)
            with threadpool_limits(limits=t, user_api="blas"):
                th["numpy RBM"].append(numpy_rbm_time(Xs, 500, 100))
            if has_torch:
                tr = ref_torch.TorchRBM(784, 500, n_threads=t)
                Xt = ref_torch.as_tensor(Xs)
                th["torch RBM"].append(time_alone("torch", lambda: tr.fit_epoch(Xt), cfg).median_s)
                tv = ref_torch.TorchVAE(n_threads=t)
                th["torch VAE"].append(time_alone("torch", lambda: tv.fit_epoch(Xt), cfg).median_s)
        if has_torch:
            ref_torch.set_threads(cfg.threads)
        out["threads"] = {k: v for k, v in th.items() if v}
    return out


def plot_scaling(data: dict[str, dict], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {
        "batch_size": "RBM CD-1 epoch vs batch size",
        "hidden_width": "RBM CD-1 epoch vs hidden units",
        "dataset_size": "RBM CD-1 epoch vs data set size",
        "threads": "Epoch time vs threads",
    }
    xlabels = {"batch_size": "batch size", "hidden_width": "hidden units", "dataset_size": "images", "threads": "threads"}
    fig, axes = plt.subplots(1, len(data), figsize=(4.2 * len(data), 3.6), squeeze=False)
    for ax, (key, series) in zip(axes[0], data.items()):
        for name, values in series.items():
            if name == "x" or not values:
                continue
            ax.plot(series["x"], values, marker="o", label=name)
        ax.set_title(titles.get(key, key), fontsize=10)
        ax.set_xlabel(xlabels.get(key, key))
        ax.set_ylabel("seconds per epoch")
        if key in ("batch_size", "hidden_width", "dataset_size"):
            ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


IMPLS = ("deepgm", "numpy", "torch", "scikit-learn")
IMPL_TITLES = {"deepgm": "deepgm", "numpy": "NumPy", "torch": "PyTorch", "scikit-learn": "scikit-learn"}


def peak_range(rows: list[Row]) -> str:
    """The spread of the peaks measured with the rows, for the table's header ("" if none was)."""
    peaks = [r.peak_gflops for r in rows if r.peak_gflops]
    return f"; measured with each row: {min(peaks):.0f}-{max(peaks):.0f} GFLOP/s" if peaks else ""


def markdown(rows: list[Row], peak: dict[str, float], info: dict, scaling_data: dict | None, cfg: Settings) -> str:
    """The results table: per implementation, the median time, the ratio to deepgm and the % of peak."""
    best_peak = max(peak.values())
    lines = [
        f"Machine: {info['cpu']} ({info['cpu_kind']}), {info['usable_cpus']} cores; NumPy {info['numpy']} "
        f"({info['numpy_blas'].get('library')} {info['numpy_blas'].get('version')}); "
        f"PyTorch {info.get('torch') or 'not installed'}; deepgm threads: {info['deepgm_threads']}; "
        f"{'quick' if cfg.quick else 'full'} run, {cfg.n_images} images, {cfg.repeats} repeat(s), {time.strftime('%Y-%m-%d')}. "
        f"Measured float32 GEMM peak ({'x'.join(map(str, PEAK_SHAPE))}, all threads) at the start: {best_peak:.0f} GFLOP/s "
        f"(deepgm {peak['deepgm']:.0f}, NumPy {peak['numpy']:.0f}){peak_range(rows)}.",
        "",
        "Each cell: median time, the implementation's time over deepgm's (> 1: deepgm is faster), and the fraction of "
        "the GEMM peak it reached (the row's product work / its time / the peak measured in turns with the row's "
        "implementations).",
        "",
        "| benchmark | " + " | ".join(IMPL_TITLES[i] for i in IMPLS) + " |",
        "|---|" + "---:|" * len(IMPLS),
    ]
    for row in rows:
        cells = []
        for impl in IMPLS:
            r = row.results.get(impl)
            if r is None:
                cells.append("-")
                continue
            share = 100 * row.fraction_of_peak(impl, best_peak)
            # Sparse models (softmax units) reach a few percent of the dense peak: keep two digits.
            cells.append(
                f"{r.median_s:.3f} s, {row.ratio(impl):.2f}x, {share:.0f}%"
                if share >= 10
                else f"{r.median_s:.3f} s, {row.ratio(impl):.2f}x, {share:.2g}%"
            )
        star = " *" if row.disturbed() else ""
        lines.append(f"| {row.name}{star} | " + " | ".join(cells) + " |")
    lines += ["", "Medians over repeats; * = another process used > 10% of the CPUs while the row was timed."]
    if cfg.measure_memory:
        lines += ["", "| peak memory added, MiB | " + " | ".join(IMPL_TITLES[i] for i in IMPLS) + " |", "|---|" + "---:|" * len(IMPLS)]
        for row in rows:
            mem = [f"{row.results[i].peak_mib:.0f}" if i in row.results else "-" for i in IMPLS]
            lines.append(f"| {row.name} | " + " | ".join(mem) + " |")
    notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["", *notes]
    if scaling_data and "threads" in scaling_data:
        th = scaling_data["threads"]
        lines += ["", "| threads | " + " | ".join(k for k in th if k != "x") + " |", "|---:|" + "---:|" * (len(th) - 1)]
        for i, t in enumerate(th["x"]):
            lines.append(f"| {t} | " + " | ".join(f"{v[i]:.3f} s" for k, v in th.items() if k != "x") + " |")
        if len(th["x"]) > 1:
            speed = {k: v[0] / v[1] for k, v in th.items() if k != "x"}
            lines.append("")
            lines.append("Speed-up 1 -> 2 threads: " + ", ".join(f"{k} {s:.2f}x" for k, s in speed.items()))
    return "\n".join(lines) + "\n"


def payload(rows: list[Row], peak: dict[str, float], info: dict, scaling_data: dict | None, cfg: Settings, elapsed: float) -> dict:
    """results.json: everything in the table, with every timing."""
    best_peak = max(peak.values())
    return {
        "machine": info,
        "quick": cfg.quick,
        "n_images": cfg.n_images,
        "repeats": cfg.repeats,
        "gemm_peak_shape": list(PEAK_SHAPE),
        "gemm_peak_gflops": peak,
        "rows": [
            {
                "name": r.name,
                "gflop": r.gflop,
                "note": r.note,
                "disturbed": r.disturbed(),
                "results": {k: asdict(v) for k, v in r.results.items()},
                "ratios": {impl: r.ratio(impl) for impl in r.results if impl != "deepgm"},
                "gflops": {impl: r.gflops(impl) for impl in r.results},
                "peak_gflops": r.peak_gflops,
                "fraction_of_peak": {impl: r.fraction_of_peak(impl, best_peak) for impl in r.results},
            }
            for r in rows
        ],
        "scaling": scaling_data,
        "elapsed_s": elapsed,
    }


def main(argv=None, *, default_out: str = "deepgm-bench", prog: str = "deepgm bench") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run in under a minute (1,000 images, one repeat, thread scaling only)"
    )
    parser.add_argument("--out", default=default_out, help=f"output folder (default: {default_out})")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation (default: 3, quick: 1)")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for PyTorch (default: all cores; deepgm and NumPy use all cores)"
    )
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling curves")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when installed")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1; got {args.threads}")

    start = time.perf_counter()
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    for warning in machine.environment_warnings():
        log(warning)
    cfg = Settings.make(args.quick, args.repeats, args.threads, not args.no_scaling)
    X, y = load_mnist()
    X, y = X[: cfg.n_images], y[: cfg.n_images]
    has_torch = ref_torch.TORCH_AVAILABLE and not args.no_torch
    if has_torch:
        ref_torch.set_threads(cfg.threads)
    info = machine.machine_info()
    info["torch"] = __import__("torch").__version__ if has_torch else None
    log(f"deepgm bench on {info['cpu']} ({info['cpu_kind']}; {info['usable_cpus']} cores), {len(X)} images, {cfg.repeats} repeat(s)")

    peak = gemm_peak(cfg, log)
    rows = [
        rbm_rows(X, cfg, log, has_torch, persistent=False),
        rbm_rows(X, cfg, log, has_torch, persistent=True),
        rbm_small_batch_row(X, cfg, log, has_torch),
        dbn_pretrain_row(X, cfg, log, has_torch),
        dbn_finetune_row(X, y, cfg, log, has_torch),
        autoencoder_row(X, cfg, log, has_torch),
        vae_row(X, y, cfg, log, has_torch),
        vae_row(X, y, cfg, log, has_torch, conditioning="prior_mean"),
        vae_row(X, y, cfg, log, has_torch, conditioning="concat"),
    ]
    rbm = RBM(500, n_iter=1, batch_size=100, random_state=0).fit(X)
    rows.append(ais_row(rbm, cfg, log))
    rows.append(sampling_row(rbm, cfg, log, has_torch))
    rows.append(collaborative_row(cfg, log))
    rows.append(collaborative_row(cfg, log, orientation="items"))
    rows.append(replicated_softmax_row(cfg, log))
    scaling_data = scaling(X, cfg, log, has_torch) if cfg.scaling else None

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(rows, peak, info, scaling_data, cfg)
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps(payload(rows, peak, info, scaling_data, cfg, time.perf_counter() - start), indent=2))
    if scaling_data:
        plot_scaling(scaling_data, out / "scaling.png")
    log("")
    log(md)
    written = [out / "results.md", out / "results.json"] + ([out / "scaling.png"] if scaling_data else [])
    log(f"wrote {', '.join(map(str, written))} in {time.perf_counter() - start:.0f} s")
    return 0
