"""Data larger than memory: ``fit`` and ``partial_fit`` take a read-only
``numpy.memmap`` and stream minibatches from it, the kernels gathering the rows of each minibatch
straight from the mapped file; nothing copies the array. Measured:

- the anonymous memory (RssAnon: what the process allocated, not the file's pages in the page cache)
  grows during a fit on a ~76 MB memory-mapped array by a small fraction of the array, and stays flat
  from epoch to epoch and from one fit or partial_fit to the next;
- every training kernel call receives the mapped array itself plus row indices (no minibatch copies);
- a float32 C-contiguous in-memory X is never copied: the peak of the Python/NumPy allocations traced
  by tracemalloc during fit stays far below X.nbytes;
- a memory map of another dtype (float64 for a float32 model) is converted one minibatch at a time.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from deepgm import RBM, VAE, DBNClassifier, DeepAutoencoder, _core

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RssAnon from /proc/self/status")

N_ROWS, N_FEATURES = 200_000, 100  # 76 MB of float32
MB = 2**20


def rss_anon() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def write_npy(path, shape, dtype, seed=0):
    """A .npy file of uniform [0, 1) values, written in blocks (the test itself never holds it)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    rng = np.random.default_rng(seed)
    for start in range(0, shape[0], 10_000):
        stop = min(shape[0], start + 10_000)
        out[start:stop] = rng.random((stop - start, shape[1])).astype(dtype)
    out.flush()
    del out
    gc.collect()
    return path


@pytest.fixture(scope="module")
def big_npy(tmp_path_factory):
    return write_npy(tmp_path_factory.mktemp("memmap") / "big.npy", (N_ROWS, N_FEATURES), np.float32)


class PeakRss:
    """Samples RssAnon in a background thread (the kernels release the GIL) and records it at the
    end of every epoch (through the estimator's _log_epoch)."""

    def __init__(self, est):
        self.est = est
        self.per_epoch = []
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.base = rss_anon()
        self.peak = self.base
        log = self.est._log_epoch

        def logged(**metrics):
            log(**metrics)
            self.per_epoch.append(rss_anon())

        self.est._log_epoch = logged
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_anon())
        del self.est._log_epoch


class KernelSpy:
    """Wraps a training kernel and records how it was handed each minibatch."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.calls = []

    def __call__(self, x, *args, **kwargs):
        self.calls.append((x.shape, x.dtype, kwargs.get("rows") is not None, np.may_share_memory(x, self.source)))
        return self.kernel(x, *args, **kwargs)


MAKERS = {
    "RBM": (lambda n: RBM(8, n_iter=n, batch_size=500, random_state=0), "rbm_cd_step"),
    "VAE": (lambda n: VAE(2, hidden_layer_sizes=(8,), n_iter=n, batch_size=500, random_state=0), "vae_train_step"),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_fit_and_partial_fit_stream_a_read_only_memmap_with_flat_memory(name, big_npy, monkeypatch):
    make, kernel_name = MAKERS[name]
    X = np.load(big_npy, mmap_mode="r")
    assert isinstance(X, np.memmap) and not X.flags.writeable
    size = X.nbytes
    make(1).fit(np.array(X[:2000]))  # warm-up: thread pools and allocator arenas exist from here on

    spy = KernelSpy(getattr(_core, kernel_name))
    spy.source = X
    monkeypatch.setattr(_core, kernel_name, spy)
    est = make(4)
    gc.collect()
    with PeakRss(est) as mem:
        est.fit(X)
    growth = mem.peak - mem.base
    assert growth < 0.25 * size, f"fit grew anonymous memory by {growth / MB:.1f} MB for a {size / MB:.0f} MB memory map"
    drift = max(mem.per_epoch[1:]) - mem.per_epoch[1]
    assert drift < 2 * MB, f"memory grew by {drift / MB:.1f} MB from epoch 2 to epoch 4 ({[m / MB for m in mem.per_epoch]})"
    assert len(spy.calls) == 4 * N_ROWS // 500
    assert all(shape == X.shape and dtype == np.float32 and rows and shares for shape, dtype, rows, shares in spy.calls), (
        "every minibatch must be gathered by the kernel from the memory map itself"
    )
    assert est.n_features_in_ == N_FEATURES and np.all(np.isfinite(est.transform(X[:100])))

    # partial_fit: more passes over the memory map, memory stays where it was
    spy.calls.clear()
    with PeakRss(est) as again:
        for _ in range(3):
            est.partial_fit(X)
    assert again.peak - mem.base < 0.25 * size
    assert max(again.per_epoch) - again.per_epoch[0] < 2 * MB, [m / MB for m in again.per_epoch]
    assert len(spy.calls) == 3 * N_ROWS // 500 and all(c[2] and c[3] for c in spy.calls)
    assert not X.flags.writeable and np.all(np.asarray(X[:5]) <= 1)  # read-only data untouched


def test_memmap_of_another_dtype_is_converted_one_minibatch_at_a_time(tmp_path, monkeypatch):
    path = write_npy(tmp_path / "f64.npy", (60_000, N_FEATURES), np.float64, seed=1)  # 46 MB
    X = np.load(path, mmap_mode="r")
    RBM(8, n_iter=1, batch_size=500, random_state=0).fit(np.array(X[:2000]))  # warm-up
    spy = KernelSpy(_core.rbm_cd_step)
    spy.source = X
    monkeypatch.setattr(_core, "rbm_cd_step", spy)
    rbm = RBM(8, n_iter=3, batch_size=500, random_state=0)
    gc.collect()
    with PeakRss(rbm) as mem:
        rbm.fit(X)
    assert mem.peak - mem.base < 0.25 * X.nbytes
    assert max(mem.per_epoch[1:]) - mem.per_epoch[1] < 2 * MB
    assert all(shape == (500, N_FEATURES) and dtype == np.float32 and not rows for shape, dtype, rows, _ in spy.calls)
    assert rbm.components_.dtype == np.float32


def _fit_kwargs(est, X):
    return (X, (X[:, 0] > 0.5).astype(np.int64)) if isinstance(est, DBNClassifier) else (X,)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RBM(8, n_iter=2, batch_size=500, random_state=0),
        lambda: RBM(8, visible="gaussian", persistent=True, n_iter=2, batch_size=500, random_state=0),
        lambda: VAE(2, hidden_layer_sizes=(8,), n_iter=2, batch_size=500, random_state=0),
        lambda: DBNClassifier((8,), pretrain=False, finetune_iter=2, batch_size=500, random_state=0),
        lambda: DeepAutoencoder((8,), 2, pretrain=False, finetune_iter=2, batch_size=500, random_state=0),
        # the linear path starts from X's principal components, computed without a copy of X
        lambda: DeepAutoencoder(
            (8,), 2, loss="squared_error", linear_path=True, pretrain=False, finetune_iter=2, batch_size=500, random_state=0
        ),
    ],
    ids=["RBM", "RBM-gaussian-pcd", "VAE", "DBNClassifier", "DeepAutoencoder", "DeepAutoencoder-linear-path"],
)
def test_fit_never_copies_a_float32_c_contiguous_array(make, big_npy):
    X = np.array(np.load(big_npy, mmap_mode="r")[:100_000])  # 38 MB in memory, float32, C-contiguous
    args = _fit_kwargs(make(), X)
    est = make()
    tracemalloc.start()
    try:
        est.fit(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 4, f"fit allocated {peak / MB:.1f} MB at its peak for a {X.nbytes / MB:.0f} MB X: a copy?"
    if hasattr(est, "partial_fit"):
        tracemalloc.start()
        try:
            est.partial_fit(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < X.nbytes / 4
