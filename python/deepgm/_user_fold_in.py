"""Folding users into an item-based CollaborativeRBM: one penalised softmax regression per user.

In the items orientation the RBM's training cases are the items: item i's hidden features are
f_i = p(h | the ratings it received in fit), shape (n_components,). A user's ratings are then modelled as

    p(r_ui = value_k) = softmax over k of (b_k + w_k . f_i)

with the user's own biases b (K,) and weights w (K, n_components) — exactly the form of the RBM's
p(v_u = k | h) for a user's softmax group, with the item's hidden probabilities in place of h. Predicting
for a user (seen in fit or not) fits (b, w) to their observed ratings, maximising

    sum over rated i of log p(r_ui) + n_0 sum_k q_k log softmax_k(b) - penalty / 2 * |w - w_prior|^2

where w_prior (K, n_components) is the mean trained weights (shared weights included) of the fit users
who rated something, q (K,) the overall frequencies of the rating values in fit and n_0 =
``FOLD_IN_PRIOR_RATINGS``: the biases' prior is that many pseudo-ratings spread as all ratings are, so
a user who never gave some rating value keeps a finite bias for it, and a user without ratings gets
w = w_prior, b = log q (their predictions are then softmax(log q + w_prior . f_i), not q itself: the
prior's weights still read the item's features). The user's parameters theta = [w | b]
(K, n_components + 1) and their rated items' rows x_i = [f_i, 1] (X: n_rated x (n_components + 1))
give the gradient of the negative objective

    G = (P - Y)^T X + n_0 (softmax(b) - q) e^T + penalty * [w - w_prior | 0]     (K, n_components + 1)

with P the predicted probabilities, Y the one-hot ratings and e the bias column's unit vector. The
objective is concave, and the Hessian of its negative is bounded by A (x) I_K with
A = (X^T X + n_0 e e^T) / 2 + penalty * diag(1 ... 1, 0) (Böhning 1992: diag(p) - p p^T <= I / 2),
so the step theta <- theta - G A^-1 never lowers the objective (a majorise-minimise step). A is the
same at every step, so it is factored once per user; the steps then cost two small products each.
30 steps were within 0.0002 RMSE of the converged fit on MovieLens (docs/softmax.md).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from threadpoolctl import threadpool_limits


def softmax(scores):
    """Softmax over the last axis, shifted by the row maximum so that it never overflows."""
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


#: Majorise-minimise steps per user.
FOLD_IN_STEPS = 30

#: Pseudo-ratings, spread as all training ratings are, in the biases' prior (n_0 above): they keep a
#: user's biases finite and those of a user with few ratings near log q.
FOLD_IN_PRIOR_RATINGS = 10.0


def fold_in_user(rows, codes, prior, frequencies, penalty, n_steps=None):
    """A user's parameters theta = [w | b] (K, n_features + 1) fitted to their ratings.

    Parameters
    ----------
    rows : ndarray of shape (n_rated, n_features + 1)
        [f_i, 1] of each rated item (float64).
    codes : ndarray of shape (n_rated,)
        Index of each rating in the rating values.
    prior : ndarray of shape (K, n_features)
        w_prior, the centre of the weights' penalty and the starting weights.
    frequencies : ndarray of shape (K,)
        Overall frequencies of the rating values in fit (positive, summing to 1).
    penalty : float
        Strength of the pull of w towards w_prior.
    n_steps : int, optional
        Majorise-minimise steps (default ``FOLD_IN_STEPS``).
    """
    n_values = prior.shape[0]
    # Start at the prior's weights, with biases at the log of the user's counts plus the pseudo-ratings
    # (the biases' maximum if the weights were zero).
    counts = np.bincount(codes, minlength=n_values) + FOLD_IN_PRIOR_RATINGS * frequencies
    theta = np.hstack([prior, np.log(counts / counts.sum())[:, None]])
    if codes.size == 0:
        return theta
    bound = 0.5 * rows.T @ rows
    bound[:-1, :-1] += penalty * np.eye(rows.shape[1] - 1)
    bound[-1, -1] += 0.5 * FOLD_IN_PRIOR_RATINGS
    factor = cho_factor(bound)
    observed = np.arange(codes.size)
    for _ in range(FOLD_IN_STEPS if n_steps is None else n_steps):
        residual = softmax(rows @ theta.T)  # (n_rated, K): P, then P - Y
        residual[observed, codes] -= 1.0
        gradient = residual.T @ rows
        gradient[:, :-1] += penalty * (theta[:, :-1] - prior)
        gradient[:, -1] += FOLD_IN_PRIOR_RATINGS * (softmax(theta[:, -1]) - frequencies)
        theta -= cho_solve(factor, gradient.T).T
    return theta


def user_rows(features, indices):
    """[f_i, 1] (float64) of the items ``indices``: the regression's rows."""
    rows = np.ones((indices.size, features.shape[1] + 1))
    rows[:, :-1] = features[indices]
    return rows


def folded_in_ratings(indptr, indices, codes, q_indptr, q_indices, *, features, values, prior, frequencies, penalty):
    """Expected rating (float64) of every queried pair, each user folded in from their own ratings.

    ``features`` (n_items, n_features) are the items' hidden features; (indptr, indices, codes) the
    users' observed ratings and (q_indptr, q_indices) the queried pairs, both CSR patterns over the
    same users. Returns ``sum_k value_k p(r_uq = value_k)`` in query order.
    """
    expected = np.empty(q_indices.size)
    with _one_blas_thread():
        for user in range(indptr.size - 1):
            lo, hi = q_indptr[user], q_indptr[user + 1]
            if lo == hi:
                continue
            theta = _fold_in_row(user, indptr, indices, codes, features, prior, frequencies, penalty)
            probabilities = softmax(user_rows(features, q_indices[lo:hi]) @ theta.T)
            expected[lo:hi] = probabilities @ values
    return expected


def folded_in_tastes(indptr, indices, codes, *, features, values, prior, frequencies, penalty):
    """Each user's taste vector (n_users, n_features): ``sum_k (value_k - mean value) w_k``, the
    direction of item features that raises the user's expected rating (to first order, at equal
    probabilities of the values)."""
    centred = values - values.mean()
    tastes = np.empty((indptr.size - 1, features.shape[1]))
    with _one_blas_thread():
        for user in range(indptr.size - 1):
            theta = _fold_in_row(user, indptr, indices, codes, features, prior, frequencies, penalty)
            tastes[user] = centred @ theta[:, :-1]
    return tastes


def _fold_in_row(user, indptr, indices, codes, features, prior, frequencies, penalty):
    """theta (K, n_features + 1) of row ``user`` of the CSR ratings (indptr, indices, codes)."""
    seen = slice(indptr[user], indptr[user + 1])
    return fold_in_user(user_rows(features, indices[seen]), codes[seen], prior, frequencies, penalty)


def _one_blas_thread():
    """One BLAS thread for the fold-in's small products: threaded, they ran 6x slower on 2 cores (the
    threads' hand-offs cost more than products of ~150 x 100 x 10), and one thread makes each user's
    result independent of the BLAS thread count."""
    return threadpool_limits(limits=1, user_api="blas")
