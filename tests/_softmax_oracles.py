"""Float64 NumPy oracles of the softmax-unit models (CollaborativeRBM, ReplicatedSoftmax), written from the
mathematical definitions on dense arrays, independently of the Rust kernels.

Collaborative RBM: ratings as a dense (n_users, n_items) array of rating-value indices with -1 where a
user did not rate the item; W (n_items, K, F), b (n_items, K), c (F), D (n_items, F) or None.
Replicated Softmax: dense (n_docs, n_words) counts; W (F, n_words), b (n_words,), a (F,).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.special import expit, gammaln, logsumexp, softmax


def f64(x):
    return np.asarray(x, dtype=np.float64)


def softplus(x):
    return np.logaddexp(0.0, f64(x))


# --------------------------------------------------------------------------------------------------
# Collaborative RBM


def one_hot_ratings(codes, n_values):
    """(n_users, n_items, K) one-hot ratings, all zeros for unrated items (codes == -1)."""
    codes = np.asarray(codes)
    V = np.zeros(codes.shape + (n_values,))
    users, items = np.nonzero(codes >= 0)
    V[users, items, codes[users, items]] = 1.0
    return V


def collab_hidden(codes, W, c, D=None, r_mask=None):
    """p(h = 1 | V) (n_users, F): sigmoid(c + sum_{rated i, k} W_ik + sum_{i in r} D_i), r defaulting to
    the rated items."""
    W, c = f64(W), f64(c)
    V = one_hot_ratings(codes, W.shape[1])
    x = c + np.einsum("uik,ikf->uf", V, W)
    if D is not None:
        r = (np.asarray(codes) >= 0) if r_mask is None else np.asarray(r_mask, dtype=bool)
        x = x + r.astype(np.float64) @ f64(D)
    return expit(x)


def collab_visible(h, W, b):
    """p(v_i = k | h) for every user and item (n_users, n_items, K)."""
    logits = f64(b)[None] + np.einsum("uf,ikf->uik", f64(h), f64(W))
    return softmax(logits, axis=2)


def collab_gradients(codes, recon, W, c, D=None):
    """CD statistics of a minibatch, averaged over its users: (dW, db, dc, dD) from the data ratings and
    the reconstructed ones (both (B, n_items) indices with -1 for unrated items)."""
    n_values = f64(W).shape[1]
    B = np.asarray(codes).shape[0]
    V, Vr = one_hot_ratings(codes, n_values), one_hot_ratings(recon, n_values)
    P, Pr = collab_hidden(codes, W, c, D), collab_hidden(recon, W, c, D)
    dW = (np.einsum("uik,uf->ikf", V, P) - np.einsum("uik,uf->ikf", Vr, Pr)) / B
    db = (V - Vr).sum(axis=0) / B
    dc = (P - Pr).sum(axis=0) / B
    rated = (np.asarray(codes) >= 0).astype(np.float64)
    dD = rated.T @ (P - Pr) / B
    return dW, db, dc, dD


def collab_catch_up(param, velocity, missed, lr, mu, decay, decay_per):
    """Item-indexed parameters (W (n_items, ...) or D) and their velocities after each item's
    ``missed[i]`` steps of zero gradient, float64: ``v = mu v - lr d param``, ``param += v`` with
    ``d = decay`` per step, 0 per rating (nobody rated the item in those steps)."""
    w, v = f64(param).copy(), f64(velocity).copy()
    d = decay if decay_per == "step" else 0.0
    for i in range(w.shape[0]):
        for _ in range(int(missed[i])):
            v[i] = mu * v[i] - lr * d * w[i]
            w[i] = w[i] + v[i]
    return w, v


def collab_momentum_step(param, velocity, grad, n_ratings, lr, mu, decay, batch, decay_per):
    """One step of item-indexed parameters, float64: ``v = mu v + lr (grad - d_i param)``,
    ``param += v``, with ``d_i = decay`` ("step") or ``decay * n_ratings_i / batch`` ("rating": an L2
    penalty counted once per rating). Returns (param, velocity)."""
    w, v = f64(param), f64(velocity)
    item_decay = np.full(w.shape[0], decay) if decay_per == "step" else decay * np.asarray(n_ratings, dtype=np.float64) / batch
    v = mu * v + lr * (f64(grad) - item_decay.reshape((-1,) + (1,) * (w.ndim - 1)) * w)
    return w + v, v


def collab_leave_one_out(codes, W, b, c, values, D=None):
    """(n_users, n_items) expected rating of every rated (u, i) from u's other ratings, NaN where unrated:
    the hidden probabilities of the ratings with r_ui removed (the item set r of the conditional RBM
    keeps i), then the expectation of p(v_i | h)."""
    codes = np.asarray(codes)
    out = np.full(codes.shape, np.nan)
    for u, i in zip(*np.nonzero(codes >= 0)):
        others = codes[u : u + 1].copy()
        others[0, i] = -1
        h = collab_hidden(others, W, c, D, r_mask=codes[u : u + 1] >= 0)
        out[u, i] = collab_visible(h, W[i : i + 1], b[i : i + 1])[0, 0] @ f64(values)
    return out


def collab_user_offsets(codes, loo, item_offsets, values, penalty):
    """Each user's offset: sum over their ratings of (r_ui - loo_ui - o_i) / (penalty + n_u)."""
    codes = np.asarray(codes)
    rated = codes >= 0
    residual = np.where(rated, f64(values)[np.maximum(codes, 0)] - np.nan_to_num(loo) - f64(item_offsets)[None], 0.0)
    return residual.sum(axis=1) / (penalty + rated.sum(axis=1))


def collab_log_p_star(codes_row, W, b, c, D=None):
    """log p*(V) = b.V + sum_j softplus(x_j(V)) of one user's ratings (1-D, -1 for unrated)."""
    codes_row = np.asarray(codes_row)[None]
    V = one_hot_ratings(codes_row, f64(W).shape[1])[0]
    x = f64(c) + np.einsum("ik,ikf->f", V, f64(W))
    if D is not None:
        x = x + (codes_row[0] >= 0).astype(np.float64) @ f64(D)
    return float((V * f64(b)).sum() + softplus(x).sum())


def collab_rating_distribution(items, W, b, c, D=None, n_items=None):
    """The exact distribution of the ratings of ``items`` (one user who rated exactly these items):
    a dict {tuple of rating-value indices: probability}."""
    n_values = f64(W).shape[1]
    n_items = f64(W).shape[0] if n_items is None else n_items
    log_p = {}
    for combo in itertools.product(range(n_values), repeat=len(items)):
        row = -np.ones(n_items, dtype=np.int64)
        row[list(items)] = combo
        log_p[combo] = collab_log_p_star(row, W, b, c, D)
    log_z = logsumexp(list(log_p.values()))
    return {k: math.exp(v - log_z) for k, v in log_p.items()}


# --------------------------------------------------------------------------------------------------
# Replicated Softmax


def rs_hidden(counts, W, a):
    """p(h = 1 | v) (n_docs, F) = sigmoid(D a + W v)."""
    counts = f64(counts)
    D = counts.sum(axis=1, keepdims=True)
    return expit(D * f64(a) + counts @ f64(W).T)


def rs_log_p_star(counts, W, b, a):
    """log p*(v) = b.v + sum_j softplus(D a_j + W_j . v) (n_docs,)."""
    counts = f64(counts)
    D = counts.sum(axis=1, keepdims=True)
    return counts @ f64(b) + softplus(D * f64(a) + counts @ f64(W).T).sum(axis=1)


def count_vectors(n_words, length):
    """Every count vector of ``length`` words over ``n_words`` words (n, n_words)."""
    out = []
    for cut in itertools.combinations(range(length + n_words - 1), n_words - 1):  # stars and bars
        bounds = (-1,) + cut + (length + n_words - 1,)
        out.append([bounds[k + 1] - bounds[k] - 1 for k in range(n_words)])
    return np.array(out, dtype=np.float64)


def log_sequences(counts):
    """log of the number of word sequences with these counts: D! / prod_k v_k!."""
    counts = f64(counts)
    return gammaln(counts.sum(axis=-1) + 1) - gammaln(counts + 1).sum(axis=-1)


def rs_log_partition(W, b, a, length):
    """log Z_D by summing p* over every word sequence of length D (grouped by count vector)."""
    vectors = count_vectors(f64(W).shape[1], length)
    return float(logsumexp(log_sequences(vectors) + rs_log_p_star(vectors, W, b, a)))


def rs_count_distribution(W, b, a, length):
    """(count vectors, their probabilities) of documents of ``length`` words."""
    vectors = count_vectors(f64(W).shape[1], length)
    log_p = log_sequences(vectors) + rs_log_p_star(vectors, W, b, a)
    return vectors, np.exp(log_p - logsumexp(log_p))


def rs_gradients(counts, recon, W, a):
    """CD statistics of a minibatch averaged over its documents: (dW, db, da); da (whose terms grow with
    the documents' lengths D) is also divided by the minibatch's mean length."""
    counts, recon = f64(counts), f64(recon)
    B = counts.shape[0]
    P, Pr = rs_hidden(counts, W, a), rs_hidden(recon, W, a)
    D = counts.sum(axis=1, keepdims=True)
    dW = (P.T @ counts - Pr.T @ recon) / B
    db = (counts - recon).sum(axis=0) / B
    da = (D * (P - Pr)).sum(axis=0) / B / D.mean()
    return dW, db, da


def chi_square(counts, probs):
    """Pearson's statistic of observed ``counts`` against ``sum(counts) * probs`` (cells with p > 0)."""
    counts, probs = f64(counts), f64(probs)
    n = counts.sum()
    keep = probs > 0
    return float(((counts[keep] - n * probs[keep]) ** 2 / (n * probs[keep])).sum())
