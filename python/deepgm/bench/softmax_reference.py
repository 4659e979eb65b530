"""Plain NumPy references of the softmax-unit models' training epochs, written as a careful NumPy user
would, for timing deepgm's ``CollaborativeRBM`` and ``ReplicatedSoftmax`` against (benches/speed_softmax.py).

- :class:`NumpyCollaborativeRBM`: CD-1 on dense (users x items x rating values) one-hot minibatches whose
  unrated items are masked out (all-zero groups), BLAS products, dense momentum updates of every item.
- :class:`NumpyReplicatedSoftmax`: CD-1 on dense count minibatches, BLAS products, and
  ``Generator.multinomial`` for the reconstructed documents.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NumpyCollaborativeRBM", "NumpyReplicatedSoftmax"]


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class NumpyCollaborativeRBM:
    """CD-1 for the collaborative-filtering RBM on dense masked minibatches: V (B, items * K) one-hot with
    all-zero groups for unrated items; W (items * K, F). Momentum and weight decay move every item at
    every step (the dense algorithm)."""

    def __init__(
        self, n_items, n_values, n_hidden=100, learning_rate=0.003, momentum=0.5, weight_decay=0.01, batch_size=20, seed=0, dtype=np.float32
    ):
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
            dense = R_codes[order[start : start + self.batch_size]].toarray().astype(np.int64) - 1
            self.cd_step(dense)


class NumpyReplicatedSoftmax:
    """CD-1 for Replicated Softmax on dense count minibatches X (B, V); W (F, V)."""

    def __init__(
        self, n_words, n_hidden=50, learning_rate=0.005, momentum=0.5, weight_decay=0.01, batch_size=128, seed=0, dtype=np.float32
    ):
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
            self.cd_step(C[order[start : start + self.batch_size]].toarray().astype(self.dtype))
