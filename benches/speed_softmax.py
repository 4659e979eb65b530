"""One training epoch of the softmax-unit models: deepgm against plain NumPy, same data, same run.

    python benches/speed_softmax.py [--repeats N] [--threads N] [--out FILE.json]

- ``CollaborativeRBM`` (100 hidden units, CD-1, batches of 20 users, float32) on MovieLens
  (``../shared/data/movielens-small``), against :class:`NumpyCollaborativeRBM`: the same algorithm as a
  careful NumPy user writes it, on dense (users x items x rating values) one-hot minibatches whose unrated
  items are masked out, with BLAS products and dense momentum updates.
- ``ReplicatedSoftmax`` (50 hidden units, CD-1, batches of 128 documents, float32) on 20 Newsgroups
  (``../shared/data/20news/docs.feat``, 2,000 words), against :class:`NumpyReplicatedSoftmax`: dense count
  minibatches, BLAS products, and ``Generator.multinomial`` for the reconstructed documents.

deepgm is timed through ``fit`` with one epoch (so its time includes initialisation and the per-epoch
monitoring; NumPy's is the epoch alone). Each figure is the median of ``--repeats`` runs; the ratio is
NumPy's time over deepgm's (> 1: deepgm is faster). Both use ``--threads`` threads (rayon; OpenBLAS, through
threadpoolctl), by default every core. On a loaded machine prefer ``--threads 1``: OpenBLAS's threads
wait for each other by spinning, and a descheduled one can make a product tens of times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from deepgm import CollaborativeRBM, ReplicatedSoftmax
from deepgm.datasets import load_movielens

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class NumpyCollaborativeRBM:
    """CD-1 for the collaborative-filtering RBM on dense masked minibatches: V (B, items * K) one-hot with
    all-zero groups for unrated items; W (items * K, F). Momentum and weight decay move every item at
    every step (the dense algorithm)."""

    def __init__(self, n_items, n_values, n_hidden=100, learning_rate=0.003, momentum=0.5, weight_decay=0.01,
                 batch_size=20, seed=0, dtype=np.float32):
        self.rng = np.random.default_rng(seed)
        self.n_items, self.n_values, self.batch_size, self.dtype = n_items, n_values, batch_size, dtype
        self.lr, self.mu, self.wd = dtype(learning_rate), dtype(momentum), dtype(weight_decay)
        self.W = (0.01 * self.rng.standard_normal((n_items * n_values, n_hidden))).astype(dtype)
        self.b = np.zeros(n_items * n_values, dtype=dtype)
        self.c = np.zeros(n_hidden, dtype=dtype)
        self.vW, self.vb, self.vc = np.zeros_like(self.W), np.zeros_like(self.b), np.zeros_like(self.c)

    def _one_hot(self, codes):
        """(B, items * K) one-hot ratings of a (B, items) code array with -1 where unrated."""
        users, items = np.nonzero(codes >= 0)
        V = np.zeros((codes.shape[0], self.n_items * self.n_values), dtype=self.dtype)
        V[users, items * self.n_values + codes[users, items]] = 1.0
        return V

    def cd_step(self, codes):
        B, K = codes.shape[0], self.n_values
        V = self._one_hot(codes)
        P = sigmoid(V @ self.W + self.c)
        H = (self.rng.random(P.shape, dtype=self.dtype) < P).astype(self.dtype)
        probs = (H @ self.W.T + self.b).reshape(B, self.n_items, K)
        probs -= probs.max(axis=2, keepdims=True)
        np.exp(probs, out=probs)
        np.cumsum(probs, axis=2, out=probs)
        u = self.rng.random((B, self.n_items, 1), dtype=self.dtype) * probs[:, :, -1:]
        recon = np.minimum((u >= probs).sum(axis=2), K - 1)
        recon[codes < 0] = -1  # unrated items stay without units
        Vr = self._one_hot(recon)
        Pr = sigmoid(Vr @ self.W + self.c)
        lr_b = self.lr / B
        self.vW *= self.mu
        self.vW += lr_b * (V.T @ P - Vr.T @ Pr) - (self.lr * self.wd) * self.W
        self.W += self.vW
        self.vb *= self.mu
        self.vb += lr_b * (V - Vr).sum(axis=0)
        self.b += self.vb
        self.vc *= self.mu
        self.vc += lr_b * (P - Pr).sum(axis=0)
        self.c += self.vc

    def fit_epoch(self, R_codes):
        """R_codes: a CSR matrix whose stored entries are rating-value indices + 1."""
        order = self.rng.permutation(R_codes.shape[0])
        for start in range(0, order.size, self.batch_size):
            dense = R_codes[order[start:start + self.batch_size]].toarray().astype(np.int64) - 1
            self.cd_step(dense)


class NumpyReplicatedSoftmax:
    """CD-1 for Replicated Softmax on dense count minibatches X (B, V); W (F, V)."""

    def __init__(self, n_words, n_hidden=50, learning_rate=0.005, momentum=0.5, weight_decay=0.01, batch_size=128,
                 seed=0, dtype=np.float32):
        self.rng = np.random.default_rng(seed)
        self.batch_size, self.dtype = batch_size, dtype
        self.lr, self.mu, self.wd = dtype(learning_rate), dtype(momentum), dtype(weight_decay)
        self.W = (0.01 * self.rng.standard_normal((n_hidden, n_words))).astype(dtype)
        self.b = np.zeros(n_words, dtype=dtype)
        self.a = np.zeros(n_hidden, dtype=dtype)
        self.vW, self.vb, self.va = np.zeros_like(self.W), np.zeros_like(self.b), np.zeros_like(self.a)

    def cd_step(self, X):
        B = X.shape[0]
        D = X.sum(axis=1)
        P = sigmoid(X @ self.W.T + D[:, None] * self.a)
        H = (self.rng.random(P.shape, dtype=self.dtype) < P).astype(self.dtype)
        logits = (H @ self.W + self.b).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        Xr = self.rng.multinomial(D.astype(np.int64), probs).astype(self.dtype)
        Pr = sigmoid(Xr @ self.W.T + D[:, None] * self.a)
        lr_b = self.lr / B
        self.vW *= self.mu
        self.vW += lr_b * (P.T @ X - Pr.T @ Xr) - (self.lr * self.wd) * self.W
        self.W += self.vW
        self.vb *= self.mu
        self.vb += lr_b * (X - Xr).sum(axis=0)
        self.b += self.vb
        # The hidden biases' step per word, as deepgm's (their statistics grow with D).
        self.va *= self.mu
        self.va += (lr_b * B / max(D.sum(), 1.0)) * (D[:, None] * (P - Pr)).sum(axis=0)
        self.a += self.va

    def fit_epoch(self, C):
        order = self.rng.permutation(C.shape[0])
        for start in range(0, order.size, self.batch_size):
            self.cd_step(C[order[start:start + self.batch_size]].toarray().astype(self.dtype))


def median_seconds(run, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--movielens", default=str(DATA / "movielens-small"))
    parser.add_argument("--newsgroups", default=str(DATA / "20news" / "docs.feat"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from sklearn.datasets import load_svmlight_file
    from threadpoolctl import threadpool_limits

    from quality_softmax import cpu_name

    results = {"machine": cpu_name(), "logical_cpus": os.cpu_count(), "threads": args.threads, "rows": {}}
    print(f"machine: {results['machine']}, {os.cpu_count()} logical CPUs; {args.threads} threads; median of {args.repeats}", flush=True)

    R, _, _ = load_movielens(args.movielens)
    values = np.unique(R.data)
    R_codes = sp.csr_matrix((np.searchsorted(values, R.data) + 1.0, R.indices, R.indptr), shape=R.shape)
    reference = NumpyCollaborativeRBM(R.shape[1], values.size)
    rows = {
        "CollaborativeRBM epoch (MovieLens, 100 hidden, CD-1)": (
            lambda: CollaborativeRBM(100, k=1, n_iter=1, random_state=0, n_jobs=args.threads).fit(R),
            lambda: reference.fit_epoch(R_codes),
        )
    }
    X, _ = load_svmlight_file(args.newsgroups, n_features=2000, zero_based=False)
    C = sp.csr_matrix(X.astype(np.float32))
    reference_rs = NumpyReplicatedSoftmax(C.shape[1])
    rows["ReplicatedSoftmax epoch (20news, 50 hidden, CD-1)"] = (
        lambda: ReplicatedSoftmax(50, max_iter=1, random_state=0, n_jobs=args.threads).fit(C),
        lambda: reference_rs.fit_epoch(C),
    )
    for name, (deepgm_run, numpy_run) in rows.items():
        with threadpool_limits(args.threads):
            deepgm_run(), numpy_run()  # warm-up: page in the data, start the thread pools
        t_deepgm = median_seconds(deepgm_run, args.repeats)
        with threadpool_limits(args.threads):
            t_numpy = median_seconds(numpy_run, args.repeats)
        results["rows"][name] = dict(deepgm_seconds=t_deepgm, numpy_seconds=t_numpy, numpy_over_deepgm=t_numpy / t_deepgm)
        print(f"  {name:<52} deepgm {t_deepgm:7.3f} s   NumPy {t_numpy:7.3f} s   NumPy/deepgm {t_numpy / t_deepgm:5.1f}x", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
