"""CollaborativeRBM: conditionals and CD statistics against float64 oracles (missing ratings, the
conditional RBM's item sets), Gibbs sampling against the exact distribution, fold-in of new users,
determinism, dtypes, bad input, persistence and the scikit-learn contract."""

from __future__ import annotations

import pickle
import signal
import warnings

import _softmax_oracles as oracle
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_digits

import deepgm
from deepgm import CollaborativeRBM, _core
from deepgm.collaborative import PRIOR_RATINGS, auto_cd_steps

VALUES = (1.0, 2.0, 3.0, 4.0, 5.0)


def random_ratings(n_users, n_items, density, rng):
    """A sparse ratings matrix (float64, values 1..5) and its dense code array (-1 where unrated)."""
    mask = rng.random((n_users, n_items)) < density
    codes = np.where(mask, rng.integers(0, len(VALUES), size=(n_users, n_items)), -1)
    return from_codes(codes), codes


def from_codes(codes):
    """The sparse ratings matrix of a code array (-1 where unrated)."""
    rows, cols = np.nonzero(codes >= 0)
    return sp.csr_matrix((np.asarray(VALUES)[codes[rows, cols]], (rows, cols)), shape=codes.shape)


def low_rank_ratings(n_users, n_items, rng, density=0.3):
    """Ratings 1..5 from two user tastes and two item kinds, with noise: learnable structure."""
    taste = rng.integers(0, 2, n_users)
    kind = rng.integers(0, 2, n_items)
    quality = rng.normal(0, 0.5, n_items)
    full = 3 + 1.5 * np.where(taste[:, None] == kind[None, :], 1, -1) + quality[None, :] + rng.normal(0, 0.4, (n_users, n_items))
    full = np.clip(np.round(full), 1, 5)
    mask = rng.random((n_users, n_items)) < density
    rows, cols = np.nonzero(mask)
    return sp.csr_matrix((full[rows, cols], (rows, cols)), shape=(n_users, n_items)), full


def arrays(R, values):
    R = sp.csr_matrix(R)
    codes = np.searchsorted(np.asarray(values), R.data).astype(np.int64)
    return R.indptr.astype(np.int64), R.indices.astype(np.int64), codes


def params(n_items, n_values, n_hidden, rng, dtype=np.float64, scale=0.5, conditional=False):
    W = (rng.normal(0, scale, (n_items, n_values, n_hidden))).astype(dtype)
    b = rng.normal(0, scale, (n_items, n_values)).astype(dtype)
    c = rng.normal(0, scale, n_hidden).astype(dtype)
    D = rng.normal(0, scale, (n_items, n_hidden)).astype(dtype) if conditional else None
    return W, b, c, D


def dense_reconstruction(recon, users, indptr, indices, n_items):
    """A CD step's reconstruction (user after user, each in their CSR order) as a (B, n_items) code array
    with -1 where the user did not rate."""
    dense = -np.ones((users.size, n_items), dtype=np.int64)
    at = 0
    for n, u in enumerate(users):
        items = indices[indptr[u] : indptr[u + 1]]
        dense[n, items] = recon[at : at + items.size]
        at += items.size
    assert at == recon.size
    return dense


# --------------------------------------------------------------------------------------------------
# conditionals and gradient statistics


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("conditional", [False, True])
def test_conditionals_match_float64_oracle(dtype, conditional, rng):
    _, codes = random_ratings(7, 9, 0.4, rng)
    codes[3] = -1  # a user without ratings: p(h | nothing) = sigmoid(c)
    R = from_codes(codes)
    indptr, indices, kcodes = arrays(R, [1, 2, 3, 4, 5])
    W, b, c, D = params(9, 5, 4, rng, dtype, conditional=conditional)
    # The conditional RBM's item sets: the rated items plus some queried ones.
    r_mask = (codes >= 0) | (rng.random(codes.shape) < 0.2)
    r = sp.csr_matrix(r_mask.astype(float))
    extra = dict(conditional_weights=D, r_indptr=r.indptr.astype(np.int64), r_indices=r.indices.astype(np.int64)) if conditional else {}
    H = _core.collab_hidden(indptr, indices, kcodes, W, c, **extra)
    assert H.dtype == dtype
    want = oracle.collab_hidden(codes, W, c, D, r_mask if conditional else None)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(H, want, atol=tol)
    alone = oracle.collab_hidden(-np.ones((1, 9), int), W, c, D, r_mask[3:4] if conditional else None)[0]
    np.testing.assert_allclose(H[3], alone, atol=tol)

    # p(v | h) for a query pattern, rows in the pattern's order.
    q = sp.csr_matrix((rng.random((7, 9)) < 0.5).astype(float))
    P = _core.collab_visible(H, q.indptr.astype(np.int64), q.indices.astype(np.int64), W, b)
    full = oracle.collab_visible(H, W, b)
    rows = np.repeat(np.arange(7), np.diff(q.indptr))
    np.testing.assert_allclose(P, full[rows, q.indices], atol=tol)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=tol)


@pytest.mark.parametrize("k, conditional", [(1, False), (1, True), (4, True)])
def test_cd_statistics_match_float64_oracle(k, conditional, rng):
    """With learning_rate 1 and no momentum or decay, each parameter moves by its CD statistic, which the
    oracle recomputes from the data and the reconstruction the step returns (T = k Gibbs steps: only the
    final reconstruction enters the statistics)."""
    _, codes = random_ratings(12, 10, 0.35, rng)
    users = np.array([5, 0, 11, 2, 7], dtype=np.int64)
    codes[users, 9] = -1  # item 9: rated by users outside the minibatch only
    codes[1, 9] = 2
    R = from_codes(codes)
    indptr, indices, kcodes = arrays(R, [1, 2, 3, 4, 5])
    W, b, c, D = params(10, 5, 6, rng, conditional=conditional)
    state = [W.copy(), b.copy(), c.copy(), np.zeros_like(W), np.zeros_like(b), np.zeros_like(c)]
    extra = dict(conditional_weights=D.copy(), conditional_weights_velocity=np.zeros_like(D)) if conditional else {}
    recon = _core.collab_cd_step(
        indptr,
        indices,
        kcodes,
        *state,
        users=users,
        last_update=np.full(10, 9, dtype=np.int64),
        k=k,
        learning_rate=1.0,
        momentum=0.0,
        weight_decay=0.0,
        seed=3,
        step=9,
        return_reconstruction=True,
        **extra,
    )
    recon_dense = dense_reconstruction(recon, users, indptr, indices, 10)
    assert np.all((recon >= 0) & (recon < 5))
    dW, db, dc, dD = oracle.collab_gradients(codes[users], recon_dense, W, c, D)
    np.testing.assert_allclose(state[0] - W, dW, atol=1e-12)
    np.testing.assert_allclose(state[1] - b, db, atol=1e-12)
    np.testing.assert_allclose(state[2] - c, dc, atol=1e-12)
    if conditional:
        np.testing.assert_allclose(extra["conditional_weights"] - D, dD, atol=1e-12)
    # Items nobody in the minibatch rated keep their parameters and velocities exactly.
    untouched = ~(codes[users] >= 0).any(axis=0)
    assert untouched[9]
    np.testing.assert_array_equal(state[0][untouched], W[untouched])
    np.testing.assert_array_equal(state[3][untouched], 0.0)


def test_momentum_and_weight_decay_follow_the_recursion(rng):
    R, _ = random_ratings(6, 5, 0.6, rng)
    indptr, indices, kcodes = arrays(R, [1, 2, 3, 4, 5])
    W, b, c, _ = params(5, 5, 3, rng)
    users = np.arange(6, dtype=np.int64)

    def step(lr, mu, wd, velocity):
        s = [W.copy(), b.copy(), c.copy(), np.full_like(W, velocity), np.zeros_like(b), np.zeros_like(c)]
        _core.collab_cd_step(
            indptr,
            indices,
            kcodes,
            *s,
            users=users,
            last_update=np.zeros(5, dtype=np.int64),
            k=1,
            learning_rate=lr,
            momentum=mu,
            weight_decay=wd,
            seed=1,
            step=0,
        )
        return s[0]

    grad = step(1.0, 0.0, 0.0, 0.0) - W  # the same draws: the same statistic
    rated = np.isin(np.arange(5), indices)
    got = step(0.2, 0.5, 0.01, 0.1)
    want = W + 0.5 * 0.1 + 0.2 * grad - 0.2 * 0.01 * W
    np.testing.assert_allclose(got[rated], want[rated], atol=1e-12)


@pytest.mark.parametrize("decay_per", ["step", "rating"])
def test_weight_decay_per_step_or_per_rating_matches_the_oracle(decay_per, rng):
    """One step with momentum and decay from items that missed different numbers of steps, then a
    catch-up of every item: W and D against the float64 oracle. Per rating, item i decays by
    weight_decay * (its ratings in the minibatch) / (users in the minibatch) and not at all in the
    steps it missed; per step, every item by weight_decay at every step."""
    _, codes = random_ratings(12, 10, 0.35, rng)
    users = np.array([5, 0, 11, 2, 7], dtype=np.int64)
    codes[users, 9] = -1  # item 9: rated by users outside the minibatch only
    codes[users[:3], 4] = 1  # item 4: rated by 3 of the 5
    codes[users[3:], 4] = -1
    R = from_codes(codes)
    indptr, indices, kcodes = arrays(R, [1, 2, 3, 4, 5])
    W, b, c, D = params(10, 5, 6, rng, conditional=True)
    vW, vD = rng.normal(0, 0.05, W.shape), rng.normal(0, 0.05, D.shape)
    missed = rng.integers(0, 4, 10)
    step, (lr, mu, wd) = 6, (0.3, 0.7, 0.2)

    state = [W.copy(), b.copy(), c.copy(), vW.copy(), np.zeros_like(b), np.zeros_like(c)]
    last_update = step - missed
    extra = dict(conditional_weights=D.copy(), conditional_weights_velocity=vD.copy())
    settings = dict(learning_rate=lr, momentum=mu, weight_decay=wd, decay_per=decay_per)
    recon = _core.collab_cd_step(
        indptr, indices, kcodes, *state, users=users, last_update=last_update, k=1, seed=3, step=step,
        return_reconstruction=True, **settings, **extra,
    )  # fmt: skip
    _core.collab_catch_up(*state, last_update=last_update, step=step + 1, **settings, **extra)
    assert np.all(last_update == step + 1)
    W1, D1 = state[0], extra["conditional_weights"]
    # The statistics, from the step's reconstruction and the parameters it read: every item caught up
    # with the steps it missed.
    W_read, vW_read = oracle.collab_catch_up(W, vW, missed, lr, mu, wd, decay_per)
    D_read, vD_read = oracle.collab_catch_up(D, vD, missed, lr, mu, wd, decay_per)
    recon_dense = dense_reconstruction(recon, users, indptr, indices, 10)
    dW, _, _, dD = oracle.collab_gradients(codes[users], recon_dense, W_read, c, D_read)
    n_ratings = (codes[users] >= 0).sum(axis=0)
    assert n_ratings[9] == 0 and n_ratings[4] == 3
    want_W, _ = oracle.collab_momentum_step(W_read, vW_read, dW, n_ratings, lr, mu, wd, users.size, decay_per)
    want_D, _ = oracle.collab_momentum_step(D_read, vD_read, dD, n_ratings, lr, mu, wd, users.size, decay_per)
    np.testing.assert_allclose(W1, want_W, atol=1e-12)
    np.testing.assert_allclose(D1, want_D, atol=1e-12)
    if decay_per == "rating":
        # Item 9, rated by nobody in the minibatch, moved by momentum alone.
        np.testing.assert_allclose(W1[9], W[9] + vW[9] * sum(mu**n for n in range(1, missed[9] + 2)), atol=1e-12)


def test_gibbs_sampling_matches_exact_distribution(rng):
    """3 items rated by one user, 3 rating values, 2 hidden units (conditional, with an extra queried
    item in r): 27 rating vectors; 4,000 independent chains against the exact p(V), chi-square."""
    n_items, n_values = 5, 3
    W, b, c, D = params(n_items, n_values, 2, np.random.default_rng(4), scale=1.0, conditional=True)
    items = [0, 2, 3]
    n = 4000
    indptr = np.arange(0, 3 * n + 1, 3, dtype=np.int64)
    indices = np.tile(np.array(items, dtype=np.int64), n)
    start = np.zeros(3 * n, dtype=np.int64)
    r_indptr = np.arange(0, 4 * n + 1, 4, dtype=np.int64)
    r_indices = np.tile(np.array([0, 2, 3, 4], dtype=np.int64), n)
    # Item 4 is in r but unrated: the exact p(V) includes its row of D.
    exact = {}
    for combo in np.ndindex(*(n_values,) * 3):
        row = -np.ones(n_items, dtype=np.int64)
        row[items] = combo
        V = oracle.one_hot_ratings(row[None], n_values)[0]
        x = c + np.einsum("ik,ikf->f", V, W) + D[[0, 2, 3, 4]].sum(axis=0)
        exact[combo] = (V * b).sum() + oracle.softplus(x).sum()
    log_z = np.logaddexp.reduce(list(exact.values()))
    probs = {k: np.exp(v - log_z) for k, v in exact.items()}
    sets = dict(conditional_weights=D, r_indptr=r_indptr, r_indices=r_indices)
    out = _core.collab_gibbs(indptr, indices, start, W, b, c, **sets, n_steps=25, seed=8)
    keys = list(probs)
    counts = np.zeros(len(keys))
    for chain in out.reshape(n, 3):
        counts[keys.index(tuple(chain))] += 1
    p = np.array([probs[k] for k in keys])
    # 26 degrees of freedom: P(chi2 > 54.05) = 0.001.
    assert oracle.chi_square(counts, p) < 54.05
    # The same test rejects the distribution without the conditional term.
    without = oracle.collab_rating_distribution(items, W, b, c, D=None)
    assert oracle.chi_square(counts, np.array([without[k] for k in keys])) > 54.05
    again = _core.collab_gibbs(indptr, indices, start, W, b, c, **sets, n_steps=25, seed=8, n_jobs=1)
    np.testing.assert_array_equal(out, again)


# --------------------------------------------------------------------------------------------------
# the estimator


@pytest.fixture(scope="module")
def ratings():
    R, full = low_rank_ratings(120, 40, np.random.default_rng(0))
    return R, full


@pytest.fixture(scope="module")
def fitted(ratings):
    R, _ = ratings
    return CollaborativeRBM(16, orientation="users", n_iter=8, batch_size=10, random_state=0).fit(R)


def test_auto_schedule_raises_the_gibbs_steps():
    assert [auto_cd_steps(e, 10) for e in range(10)] == [1, 1, 1, 1, 1, 3, 3, 3, 5, 5]
    R, _ = low_rank_ratings(30, 10, np.random.default_rng(1))
    model = CollaborativeRBM(4, n_iter=10, random_state=0).fit(R)
    assert model.history_["k"] == [1, 1, 1, 1, 1, 3, 3, 3, 5, 5]
    assert CollaborativeRBM(4, n_iter=3, k=2, random_state=0).fit(R).history_["k"] == [2, 2, 2]


@pytest.mark.parametrize("orientation", ["items", "users"])
def test_learns_held_out_ratings_better_than_item_means(orientation, rng):
    R, full = low_rank_ratings(200, 40, np.random.default_rng(5), density=0.4)
    coo = R.tocoo()
    held = rng.random(coo.nnz) < 0.2
    train = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=R.shape)
    test = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=R.shape)
    model = CollaborativeRBM(20, orientation=orientation, n_iter=30, learning_rate=0.05, batch_size=10, random_state=0).fit(train)
    item_mean = np.asarray(train.sum(axis=0)).ravel() / np.maximum(1, np.diff(train.tocsc().indptr))
    tc = test.tocoo()
    baseline = np.sqrt(np.mean((item_mean[tc.col] - tc.data) ** 2))
    assert -model.score(train, test) < 0.85 * baseline


def gaussian_rank_two_ratings(n_users, n_items, rng):
    """Ratings 1..5 of a rank-2 interaction (no user or item biases to fall back on), 30% observed;
    returns (train, test) with a fifth of the ratings held out."""
    full = np.clip(
        np.round(3 + rng.normal(size=(n_users, 2)) @ rng.normal(size=(2, n_items)) + 0.3 * rng.normal(size=(n_users, n_items))), 1, 5
    )
    observed = rng.random(full.shape) < 0.3
    held = observed & (rng.random(full.shape) < 0.2)
    as_csr = lambda mask: sp.csr_matrix((full[mask], np.nonzero(mask)), shape=full.shape)  # noqa: E731
    return as_csr(observed & ~held), as_csr(held)


@pytest.mark.parametrize(
    "n_users, n_items, orientation, epochs", [(120, 40, "users", 500), (1000, 50, "users", 80), (50, 400, "items", 200)]
)
def test_defaults_learn_small_tables(n_users, n_items, orientation, epochs):
    """At its defaults the model trains long enough on a small table to beat the global mean by far:
    n_iter="auto" gives at least 4,000 updates (batches of 20 training cases) within 30-500 epochs."""
    train, test = gaussian_rank_two_ratings(n_users, n_items, np.random.default_rng(0))
    model = CollaborativeRBM(random_state=0).fit(train)
    assert model.orientation_ == orientation
    assert model.history_["epoch"][-1] == len(model.history_["epoch"]) == epochs
    global_mean = np.sqrt(np.mean((train.data.mean() - test.data) ** 2))
    assert -model.score(train, test) < 0.8 * global_mean


def test_auto_length_keeps_thirty_epochs_on_movielens_size_data_and_an_int_is_exact():
    from deepgm._schedule import COLLABORATIVE_BUDGET, plan_epochs

    assert plan_epochs("auto", 8658, 20, COLLABORATIVE_BUDGET) == 30  # ml-latest-small's items
    assert plan_epochs("auto", 100_000, 20, COLLABORATIVE_BUDGET) == 30
    assert plan_epochs("auto", 20, 20, COLLABORATIVE_BUDGET) == 500
    R, _ = low_rank_ratings(30, 12, np.random.default_rng(0))
    assert len(CollaborativeRBM(4, n_iter=7, random_state=0).fit(R).history_["epoch"]) == 7


def dense_codes(R, values):
    """(n_users, n_items) rating-value indices of R, -1 where unrated."""
    codes = -np.ones(R.shape, dtype=np.int64)
    coo = sp.coo_matrix(R)
    codes[coo.row, coo.col] = np.searchsorted(values, coo.data)
    return codes


def oracle_prediction(model, R, query, r_mask=None):
    """The model's prediction of query's pairs by the float64 oracle: the expected rating and, with
    offsets, the user's offset (from their leave-one-out errors) and the item's. Dense (users, items)."""
    codes = dense_codes(R, model.rating_values_)
    W = model.components_ + (model.shared_components_[None] if model.shared_weights else 0)
    D = getattr(model, "conditional_weights_", None) if model.conditional else None
    query = sp.csr_matrix(query)
    if r_mask is None:
        r_mask = (codes >= 0) | (query.toarray() != 0)
    H = oracle.collab_hidden(codes, W, model.intercept_hidden_, D, r_mask)
    expected = oracle.collab_visible(H, W, model.intercept_visible_) @ model.rating_values_
    if not model._with_offsets:
        return expected
    loo = oracle.collab_leave_one_out(codes, W, model.intercept_visible_, model.intercept_hidden_, model.rating_values_, D)
    user = oracle.collab_user_offsets(codes, loo, model.item_offsets_, model.rating_values_, model.offset_penalty)
    values = model.rating_values_
    return np.clip(expected + user[:, None] + model.item_offsets_[None], values.min(), values.max())


def test_transform_and_predict_match_the_oracle(fitted, ratings):
    R, _ = ratings
    codes = dense_codes(R, fitted.rating_values_)
    # Shared weights (on by default) add S to every item's weights.
    W = fitted.components_ + fitted.shared_components_[None]
    H = oracle.collab_hidden(codes, W, fitted.intercept_hidden_)
    np.testing.assert_allclose(fitted.transform(R), H, atol=1e-5)
    query = sp.csr_matrix((np.random.default_rng(2).random(R.shape) < 0.3).astype(float))
    qc = query.tocoo()
    pred = fitted.predict(R, query)
    assert pred.shape == R.shape and pred.nnz == query.nnz
    want = oracle_prediction(fitted, R, query)
    np.testing.assert_allclose(pred.toarray()[qc.row, qc.col], want[qc.row, qc.col], atol=1e-4)
    # Without offsets, the prediction is the RBM's expected rating alone.
    plain = pickle.loads(pickle.dumps(fitted)).set_params(offsets=False)
    expected = oracle.collab_visible(H, W, fitted.intercept_visible_) @ fitted.rating_values_
    np.testing.assert_allclose(plain.predict(R, query).toarray()[qc.row, qc.col], expected[qc.row, qc.col], atol=1e-4)
    assert np.abs(fitted.item_offsets_).max() > 1e-3, "the offsets are in use"


@pytest.mark.parametrize("conditional", [False, True])
def test_item_offsets_minimise_the_penalised_leave_one_out_error(conditional, ratings):
    """item_offsets_ (with the users' offsets) minimise sum (r - loo - o_u - o_i)^2 + penalty |o|^2 over
    the training ratings, loo the oracle's leave-one-out expected ratings: the normal equations' solution."""
    R, _ = ratings
    model = CollaborativeRBM(10, orientation="users", conditional=conditional, n_iter=3, offset_penalty=3.0, random_state=0).fit(R)
    codes = dense_codes(R, model.rating_values_)
    W = model.components_ + model.shared_components_[None]
    D = model.conditional_weights_ if conditional else None
    loo = oracle.collab_leave_one_out(codes, W, model.intercept_visible_, model.intercept_hidden_, model.rating_values_, D)
    users, items = np.nonzero(codes >= 0)
    residual = model.rating_values_[codes[users, items]] - loo[users, items]
    n_users, n_items = R.shape
    design = np.zeros((users.size, n_users + n_items))
    design[np.arange(users.size), users] = 1.0
    design[np.arange(users.size), n_users + items] = 1.0
    gram = design.T @ design + model.offset_penalty * np.eye(n_users + n_items)
    optimum = np.linalg.solve(gram, design.T @ residual)
    np.testing.assert_allclose(model.item_offsets_, optimum[n_users:], atol=2e-3)
    assert model.item_offsets_.dtype == np.float64 and model.item_offsets_.shape == (n_items,)


@pytest.mark.parametrize("conditional", [False, True])
def test_fold_in_equals_the_prediction_for_a_user_present_at_fit(conditional, ratings):
    """A prediction is a function of the user's own row of X (and of query), not of whether the user was
    in the training set, nor of the other rows: the same ratings give bit-identical predictions."""
    R, _ = ratings
    model = CollaborativeRBM(12, orientation="users", conditional=conditional, n_iter=4, batch_size=10, random_state=0).fit(R)
    query = sp.csr_matrix((np.random.default_rng(3).random(R.shape) < 0.25).astype(float))
    full = model.predict(R, query).toarray()
    for u in (0, 17, 119):
        alone = model.predict(R[u], query[u]).toarray()[0]
        np.testing.assert_array_equal(alone, full[u])
    # A new user who gives the ratings of training user 17 gets user 17's predictions.
    newcomer = sp.vstack([R[17], R[5]])
    np.testing.assert_array_equal(model.predict(newcomer, sp.vstack([query[17], query[5]])).toarray(), full[[17, 5]])
    # A model fit without user 17 folds it in from its ratings: the prediction is the formula of the
    # parameters applied to that row (as for any training user).
    others = model.__class__(**model.get_params()).fit(R[np.arange(R.shape[0]) != 17])
    row = R[17]
    want = oracle_prediction(others, row, query[17])[0]
    got = others.predict(row, query[17])
    np.testing.assert_allclose(got.data, want[got.indices], atol=1e-4)


# --------------------------------------------------------------------------------------------------
# the items orientation: the RBM on the transposed matrix, users folded in by softmax regression


def fold_in_objective(theta, rows, codes, prior, frequencies, penalty):
    """The fold-in's objective (float64): sum of log p(r) over the user's ratings, plus the biases' prior
    (PRIOR pseudo-ratings spread as ``frequencies``), minus penalty / 2 times the squared distance of
    the weights from the prior's."""
    from scipy.special import log_softmax

    from deepgm._user_fold_in import FOLD_IN_PRIOR_RATINGS

    log_p = log_softmax(rows @ theta.T, axis=1)
    pseudo = FOLD_IN_PRIOR_RATINGS * frequencies @ log_softmax(theta[:, -1])
    return log_p[np.arange(codes.size), codes].sum() + pseudo - 0.5 * penalty * ((theta[:, :-1] - prior) ** 2).sum()


def oracle_fold_in(rows, codes, prior, frequencies, penalty):
    """The maximiser of the fold-in's objective by scipy's L-BFGS (analytic gradients) from zero:
    independent of the majorise-minimise iteration."""
    from scipy.optimize import approx_fprime, minimize
    from scipy.special import softmax

    from deepgm._user_fold_in import FOLD_IN_PRIOR_RATINGS

    n_values, width = prior.shape[0], rows.shape[1]
    one_hot = np.eye(n_values)[codes]

    def negative(flat):
        theta = flat.reshape(n_values, width)
        gradient = (softmax(rows @ theta.T, axis=1) - one_hot).T @ rows
        gradient[:, :-1] += penalty * (theta[:, :-1] - prior)
        gradient[:, -1] += FOLD_IN_PRIOR_RATINGS * (softmax(theta[:, -1]) - frequencies)
        return -fold_in_objective(theta, rows, codes, prior, frequencies, penalty), gradient.ravel()

    # The gradient handed to L-BFGS is itself checked against finite differences of the objective.
    point = np.random.default_rng(0).normal(0, 0.3, n_values * width)
    numeric = approx_fprime(point, lambda flat: negative(flat)[0], 1e-6)
    np.testing.assert_allclose(negative(point)[1], numeric, rtol=1e-4, atol=1e-4)
    result = minimize(negative, np.zeros(n_values * width), jac=True, method="L-BFGS-B", options=dict(maxiter=5000, gtol=1e-10, ftol=1e-15))
    assert result.success, result.message
    return result.x.reshape(n_values, width)


def test_fold_in_converges_to_the_penalised_maximum_and_never_goes_down(rng):
    from deepgm._user_fold_in import fold_in_user, user_rows

    features = rng.random((30, 6))
    items = rng.choice(30, size=18, replace=False)
    codes = rng.integers(0, 4, size=18)
    prior = rng.normal(0, 0.5, (4, 6))
    frequencies = np.array([0.1, 0.2, 0.3, 0.4])
    rows = user_rows(features, items)
    np.testing.assert_array_equal(rows[:, :-1], features[items])
    np.testing.assert_array_equal(rows[:, -1], 1.0)
    want = oracle_fold_in(rows, codes, prior, frequencies, 0.7)
    got = fold_in_user(rows, codes, prior, frequencies, 0.7, n_steps=2000)
    # Softmax biases are defined up to a common shift: compare the probabilities and the weights.
    np.testing.assert_allclose(got[:, :-1], want[:, :-1], atol=1e-4)
    np.testing.assert_allclose(got[:, -1] - got[:, -1].mean(), want[:, -1] - want[:, -1].mean(), atol=1e-4)
    # A majorise-minimise step never lowers the objective.
    objectives = [
        fold_in_objective(fold_in_user(rows, codes, prior, frequencies, 0.7, n_steps=n), rows, codes, prior, frequencies, 0.7)
        for n in range(12)
    ]
    assert np.all(np.diff(objectives) >= -1e-9), objectives
    # A user without ratings keeps the prior: its weights and the log of the overall frequencies.
    empty = fold_in_user(rows[:0], codes[:0], prior, frequencies, 0.7)
    np.testing.assert_array_equal(empty[:, :-1], prior)
    np.testing.assert_allclose(empty[:, -1], np.log(frequencies))


def items_model(R, **params):
    settings = dict(n_components=8, n_iter=4, batch_size=10, random_state=0) | params
    return CollaborativeRBM(orientation="items", **settings).fit(R)


@pytest.mark.parametrize("conditional", [False, True])
def test_items_orientation_is_the_rbm_of_the_transposed_matrix(conditional, ratings):
    """The RBM trained with orientation="items" is the users-orientation RBM trained on X.T; the items'
    features are its p(h | an item's ratings), by the oracle; the users' prior is the mean of the fit
    users' weights (shared weights added)."""
    R, _ = ratings
    model = items_model(R, conditional=conditional)
    twin = CollaborativeRBM(8, orientation="users", offsets=False, conditional=conditional, n_iter=4, batch_size=10, random_state=0).fit(
        R.T
    )
    for name in ("components_", "intercept_visible_", "intercept_hidden_", "shared_components_"):
        np.testing.assert_array_equal(getattr(model, name), getattr(twin, name))
    assert model.n_features_in_ == R.shape[1] and model.components_.shape[0] == R.shape[0]
    codes = dense_codes(R.T, model.rating_values_)
    W = model.components_ + model.shared_components_[None]
    D = model.conditional_weights_ if conditional else None
    np.testing.assert_allclose(model.item_features_, oracle.collab_hidden(codes, W, model.intercept_hidden_, D), atol=1e-5)
    np.testing.assert_allclose(model.user_prior_components_, W.mean(axis=0), atol=1e-6)
    values = np.searchsorted(model.rating_values_, R.data)
    np.testing.assert_allclose(model.rating_frequencies_, np.bincount(values, minlength=model.rating_values_.size) / R.nnz)
    assert not hasattr(model, "item_offsets_")


def oracle_items_prediction(model, R, query):
    """Each user's expected ratings of query's items (dense users x items) with their softmax weights
    fitted to their ratings by the oracle maximiser."""
    codes = dense_codes(R, model.rating_values_)
    features = np.hstack([model.item_features_.astype(np.float64), np.ones((R.shape[1], 1))])
    out = np.zeros(R.shape)
    for u in range(R.shape[0]):
        rated = np.flatnonzero(codes[u] >= 0)
        theta = oracle_fold_in(
            features[rated], codes[u, rated], model.user_prior_components_, model.rating_frequencies_, model.fold_in_penalty
        )
        scores = features @ theta.T
        p = np.exp(scores - scores.max(1, keepdims=True))
        out[u] = (p / p.sum(1, keepdims=True)) @ model.rating_values_
    return out


def test_items_prediction_and_transform_match_the_oracle(ratings, monkeypatch):
    import deepgm._user_fold_in as fold_in

    R, _ = ratings
    model = items_model(R, fold_in_penalty=2.0)
    users = R[:12]
    query = sp.csr_matrix((np.random.default_rng(5).random(users.shape) < 0.3).astype(float))
    qc = query.tocoo()
    monkeypatch.setattr(fold_in, "FOLD_IN_STEPS", 3000)  # converged, to compare with the maximiser
    want = oracle_items_prediction(model, users, query)
    np.testing.assert_allclose(model.predict(users, query).toarray()[qc.row, qc.col], want[qc.row, qc.col], atol=1e-4)
    monkeypatch.undo()
    # At the default number of steps the predictions are already close to the maximiser's.
    np.testing.assert_allclose(model.predict(users, query).toarray()[qc.row, qc.col], want[qc.row, qc.col], atol=0.05)
    # transform: the taste vector sum_k (value_k - mean value) w_k of each user's folded-in weights.
    features = np.hstack([model.item_features_.astype(np.float64), np.ones((R.shape[1], 1))])
    codes = dense_codes(users, model.rating_values_)
    centred = model.rating_values_ - model.rating_values_.mean()
    monkeypatch.setattr(fold_in, "FOLD_IN_STEPS", 3000)
    tastes = model.transform(users)
    assert tastes.shape == (12, 8)
    for u in range(12):
        rated = np.flatnonzero(codes[u] >= 0)
        theta = oracle_fold_in(features[rated], codes[u, rated], model.user_prior_components_, model.rating_frequencies_, 2.0)
        np.testing.assert_allclose(tastes[u], centred @ theta[:, :-1], atol=1e-4)


@pytest.mark.parametrize("conditional", [False, True])
def test_items_fold_in_equals_the_prediction_for_a_user_present_at_fit(conditional, ratings):
    """With orientation="items" every user is folded in from their own row of X: the same ratings give
    bit-identical predictions alone, among others, or as a user the model never saw."""
    R, _ = ratings
    model = items_model(R, conditional=conditional)
    query = sp.csr_matrix((np.random.default_rng(3).random(R.shape) < 0.25).astype(float))
    full = model.predict(R, query).toarray()
    for u in (0, 17, 119):
        np.testing.assert_array_equal(model.predict(R[u], query[u]).toarray()[0], full[u])
    newcomer = sp.vstack([R[17], R[5]])
    np.testing.assert_array_equal(model.predict(newcomer, sp.vstack([query[17], query[5]])).toarray(), full[[17, 5]])
    # A user without ratings gets the prior's predictions: the mean weights and overall frequencies.
    nobody = sp.csr_matrix((1, R.shape[1]))
    everything = sp.csr_matrix(np.ones((1, R.shape[1])))
    scores = model.item_features_.astype(np.float64) @ model.user_prior_components_.T + np.log(model.rating_frequencies_)
    p = np.exp(scores - scores.max(1, keepdims=True))
    np.testing.assert_allclose(
        model.predict(nobody, everything).toarray()[0], (p / p.sum(1, keepdims=True)) @ model.rating_values_, atol=1e-12
    )


def test_auto_orientation_makes_the_more_numerous_side_the_cases(ratings):
    """ "auto" trains on the items when there are at least as many items as users, on the users
    otherwise, and on the users when offsets=True asks for their offsets; orientation_ says which, and
    the model is the one the explicit orientation gives."""
    R, _ = ratings  # 120 users x 40 items
    for X, want in ((R, "users"), (sp.csr_matrix(R.T), "items"), (R[:40], "items")):
        model = CollaborativeRBM(4, n_iter=1, random_state=0).fit(X)
        assert model.orientation_ == want
        twin = CollaborativeRBM(4, orientation=want, n_iter=1, random_state=0).fit(X)
        np.testing.assert_array_equal(model.components_, twin.components_)
        np.testing.assert_array_equal(model.predict(X, X).toarray(), twin.predict(X, X).toarray())
    assert CollaborativeRBM(4, n_iter=1, offsets=True).fit(R.T).orientation_ == "users"


def test_items_orientation_refusals(ratings):
    R, _ = ratings
    with pytest.raises(ValueError, match=r"offsets=True needs orientation='users'.*got offsets=True, orientation='items'"):
        CollaborativeRBM(4, orientation="items", n_iter=1, offsets=True).fit(R)
    with pytest.raises(ValueError, match="orientation must be one of 'auto', 'items', 'users'; got 'rows'"):
        CollaborativeRBM(4, n_iter=1, orientation="rows").fit(R)
    with pytest.raises(ValueError, match="fold_in_penalty"):
        CollaborativeRBM(4, n_iter=1, fold_in_penalty=0.0).fit(R)
    with pytest.raises(ValueError, match="early_stopping needs an item with at least two ratings"):
        CollaborativeRBM(2, n_iter=1, early_stopping=True).fit(sp.csr_matrix(np.eye(3) * 4.0))
    with pytest.raises(TypeError, match="offsets must be 'auto', True or False; got 'yes'"):
        CollaborativeRBM(4, n_iter=1, offsets="yes").fit(R)
    # fold_in_penalty acts at prediction time: a bad value set after fit is refused there, by name.
    fitted = CollaborativeRBM(4, orientation="items", n_iter=1, random_state=0).fit(R)
    for bad in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="fold_in_penalty"):
            clone(fitted).set_params(**fitted.get_params()).fit(R).set_params(fold_in_penalty=bad).predict(R, R)
    # Offsets switched on after a fit without them: refused with the way out, not an AttributeError.
    bare = CollaborativeRBM(4, n_iter=1, orientation="users", offsets=False, random_state=0).fit(R)
    with pytest.raises(ValueError, match="fitted without them: fit it again"):
        bare.set_params(offsets="auto").predict(R, R)
    # The fitted orientation is what fit left: set_params takes effect at the next fit, as in scikit-learn.
    fitted = CollaborativeRBM(4, orientation="items", n_iter=1, random_state=0).fit(R)
    want = fitted.predict(R[:3], R[:3]).toarray()
    np.testing.assert_array_equal(fitted.set_params(orientation="users").predict(R[:3], R[:3]).toarray(), want)
    # A refit in the other orientation drops what only the first one had.
    model = CollaborativeRBM(4, n_iter=1, orientation="users", random_state=0).fit(R)
    model.set_params(orientation="items").fit(R)
    assert not hasattr(model, "item_offsets_") and model.item_features_.shape == (R.shape[1], 4)
    model.set_params(orientation="users").fit(R)
    assert not hasattr(model, "item_features_") and model.item_offsets_.shape == (R.shape[1],)


def test_offsets_without_penalty_stay_finite_for_users_and_items_without_ratings(ratings):
    R, _ = ratings
    coo = R.tocoo()
    kept = coo.col != 3  # item 3 never rated
    R = sp.csr_matrix((coo.data[kept], (coo.row[kept], coo.col[kept])), shape=R.shape)
    model = CollaborativeRBM(6, orientation="users", n_iter=2, offset_penalty=0.0, random_state=0).fit(R)
    assert model.item_offsets_[3] == 0.0 and np.all(np.isfinite(model.item_offsets_))
    nobody = sp.csr_matrix((1, R.shape[1]))  # a user with no ratings: no user offset
    query = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 3])), shape=(1, R.shape[1]))
    pred = model.predict(nobody, query)
    plain = pickle.loads(pickle.dumps(model)).set_params(offsets=False).predict(nobody, query)
    np.testing.assert_allclose(pred.data, plain.data + model.item_offsets_[[0, 3]])


def test_ctrl_c_leaves_a_model_with_offsets_for_its_parameters(ratings, monkeypatch):
    """A KeyboardInterrupt during training leaves the parameters of the last whole update, and the
    offsets fitted to them: predict works and equals the oracle of those parameters."""
    R, _ = ratings
    kernel = _core.collab_cd_step
    calls = []

    def interrupted_step(*args, **kwargs):
        kernel(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C: deferred to the next minibatch boundary

    monkeypatch.setattr(_core, "collab_cd_step", interrupted_step)
    model = CollaborativeRBM(6, orientation="users", n_iter=3, batch_size=10, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(R)
    monkeypatch.setattr(_core, "collab_cd_step", kernel)
    assert model._steps == 3 and model.item_offsets_.shape == (R.shape[1],)
    query = sp.csr_matrix((np.random.default_rng(4).random(R.shape) < 0.2).astype(float))
    qc = query.tocoo()
    want = oracle_prediction(model, R, query)
    np.testing.assert_allclose(model.predict(R, query).toarray()[qc.row, qc.col], want[qc.row, qc.col], atol=1e-4)


def test_conditional_prediction_uses_the_queried_items(ratings):
    R, _ = ratings
    model = CollaborativeRBM(8, orientation="users", conditional=True, n_iter=3, random_state=0).fit(R)
    assert np.abs(model.conditional_weights_).max() > 0
    i, j = np.setdiff1d(np.arange(R.shape[1]), R[0].indices)[:2]  # two items user 0 did not rate
    q1 = sp.csr_matrix(([1.0, 1.0], ([0, 0], [i, j])), shape=(1, R.shape[1]))
    q2 = sp.csr_matrix(([1.0], ([0], [i])), shape=(1, R.shape[1]))
    # Item i's prediction changes when item j is queried too (r holds both).
    assert model.predict(R[0], q1)[0, i] != model.predict(R[0], q2)[0, i]
    # Without D, it would not.
    plain = CollaborativeRBM(8, orientation="users", n_iter=3, random_state=0).fit(R)
    assert plain.predict(R[0], q1)[0, i] == plain.predict(R[0], q2)[0, i]


def test_dense_nan_input_gives_the_same_model_as_sparse(ratings):
    R, _ = ratings
    dense = np.full(R.shape, np.nan)
    coo = R.tocoo()
    dense[coo.row, coo.col] = coo.data
    a = CollaborativeRBM(6, n_iter=2, random_state=1).fit(R)
    b = CollaborativeRBM(6, n_iter=2, random_state=1).fit(dense)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.transform(R), b.transform(dense))


def test_recommend_ranks_unrated_items_by_expected_rating(fitted, ratings):
    R, _ = ratings
    top = fitted.recommend(R[:5], n=4)
    assert top.shape == (5, 4) and top.dtype == np.int64
    everything = sp.csr_matrix(np.ones(R[:5].shape))
    expected = fitted.predict(R[:5], everything).toarray()
    for u in range(5):
        rated = set(R[u].indices)
        assert not rated & set(top[u])
        scores = expected[u, top[u]]
        assert np.all(np.diff(scores) <= 0)
        unrated = np.setdiff1d(np.arange(R.shape[1]), R[u].indices)
        assert scores[-1] >= np.sort(expected[u, unrated])[-4] - 1e-6
    # Fewer unrated items than asked: padded with -1.
    full_user = sp.csr_matrix(np.full((1, R.shape[1]), 3.0))
    assert np.all(fitted.recommend(full_user, n=3) == -1)


def test_recommend_n_is_at_most_the_number_of_items_and_short_rows_are_padded_at_the_end():
    """n above the number of items is refused (every row would be padding); a user with fewer unrated
    items than n gets all of them first, then -1s (not an item: a caller must mask them)."""
    D = load_digits().data[:200]
    R = sp.csr_matrix(np.ceil(D / 4))  # ratings 1-4 where a pixel is lit, unrated where it is blank
    model = CollaborativeRBM(4, n_iter=2, n_jobs=1, random_state=0).fit(R)
    n_items = R.shape[1]
    with pytest.raises(ValueError, match=rf"n must be at most the number of items \({n_items}\).*got n={n_items + 1}"):
        model.recommend(R[:3], n=n_items + 1)
    top = model.recommend(R[:20], n=n_items)
    for u in range(20):
        unrated = np.setdiff1d(np.arange(n_items), R[u].indices)
        k = len(unrated)
        assert 0 < k < n_items  # every user here has both rated and unrated items
        assert sorted(top[u, :k]) == list(unrated) and np.all(top[u, k:] == -1)


@pytest.mark.parametrize(
    "orientation, conditional, decay_per",
    [("users", False, "step"), ("users", True, "step"), ("users", True, "rating"), ("items", True, "step")],
)
def test_thread_count_independence(orientation, conditional, decay_per, ratings):
    R, _ = ratings

    def fit(n_jobs):
        settings = dict(orientation=orientation, conditional=conditional, decay_per=decay_per, n_iter=3, k=2, batch_size=7)
        return CollaborativeRBM(8, random_state=4, n_jobs=n_jobs, **settings).fit(R)

    one, two = fit(1), fit(2)
    np.testing.assert_array_equal(one.components_, two.components_)
    np.testing.assert_array_equal(one.intercept_visible_, two.intercept_visible_)
    np.testing.assert_array_equal(one.intercept_hidden_, two.intercept_hidden_)
    if conditional:
        np.testing.assert_array_equal(one.conditional_weights_, two.conditional_weights_)
    np.testing.assert_array_equal(one.transform(R), two.transform(R))


def test_same_seed_same_model_other_seed_other_model(ratings):
    R, _ = ratings
    a = CollaborativeRBM(6, n_iter=2, random_state=3).fit(R)
    b = CollaborativeRBM(6, n_iter=2, random_state=3).fit(R)
    c = CollaborativeRBM(6, n_iter=2, random_state=4).fit(R)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert not np.array_equal(a.components_, c.components_)


def test_output_dtypes_follow_the_input(ratings):
    R, _ = ratings
    for model_dtype in ("float32", "float64"):
        model = CollaborativeRBM(4, n_iter=1, random_state=0, dtype=model_dtype).fit(R)
        assert model.components_.dtype == model_dtype
        for X, want in ((R.astype(np.float32), np.float32), (R, np.float64), (R.astype(np.int64), np.float64)):
            assert model.transform(X).dtype == want
            assert model.predict(X, X).dtype == want
    with pytest.raises(ValueError, match="dtype"):
        CollaborativeRBM(dtype="float16").fit(R)


def test_history_and_visible_bias_initialisation(ratings):
    R, _ = ratings
    model = CollaborativeRBM(4, orientation="users", n_iter=3, random_state=0).fit(R)
    assert set(model.history_) == {"epoch", "k", "train_rmse", "time"}
    assert model.history_["epoch"] == [1, 2, 3]
    fresh = CollaborativeRBM(4, orientation="users", n_iter=1, learning_rate=1e-12, random_state=0).fit(R)
    # Visible biases start at the log of each item's (smoothed) rating frequencies.
    counts = np.zeros((R.shape[1], fresh.rating_values_.size))
    coo = R.tocoo()
    np.add.at(counts, (coo.col, np.searchsorted(fresh.rating_values_, coo.data)), 1)
    overall = counts.sum(0) / counts.sum()
    want = np.log((counts + PRIOR_RATINGS * overall) / (counts.sum(1, keepdims=True) + PRIOR_RATINGS))
    np.testing.assert_allclose(fresh.intercept_visible_, want, atol=1e-5)
    np.testing.assert_allclose(np.exp(fresh.intercept_visible_).sum(1), 1.0, atol=1e-5)


def overfitting_model(**params):
    """Settings under which the validation RMSE of ``ratings`` rises again within 30 epochs."""
    return CollaborativeRBM(
        16,
        orientation="users",
        k=1,
        learning_rate=0.1,
        batch_size=10,
        n_iter=30,
        early_stopping=True,
        tol=0.0,
        validation_fraction=0.2,
        random_state=0,
        **params,
    )


def test_early_stopping_logs_the_validation_rmse_and_keeps_the_best_epoch(ratings):
    R, _ = ratings
    full = overfitting_model(n_iter_no_change=30).fit(R)  # never stops early: every epoch logged
    curve = full.history_["validation_rmse"]
    assert len(curve) == 30 and all(np.isfinite(curve))
    best = int(np.argmin(curve)) + 1
    assert full.best_epoch_ == best < 30, "these settings overfit: the best epoch is not the last"
    # The kept parameters are those after epoch `best`: a fit that ends there has the same ones.
    ended = overfitting_model(n_iter_no_change=30).set_params(n_iter=best).fit(R)
    assert ended.best_epoch_ == best
    np.testing.assert_array_equal(full.components_, ended.components_)
    np.testing.assert_array_equal(full.intercept_visible_, ended.intercept_visible_)
    np.testing.assert_array_equal(full.shared_components_, ended.shared_components_)
    # Stopping: n_iter_no_change epochs without improvement after the best one, then the same model.
    stopped = overfitting_model(n_iter_no_change=3).fit(R)
    # The first epoch that is a strict new minimum followed by three epochs none of which is below it.
    running = np.minimum.accumulate(curve)
    first_best = next(e for e in range(1, 28) if (e == 1 or curve[e - 1] < running[e - 2]) and min(curve[e : e + 3]) >= curve[e - 1])
    assert stopped.history_["epoch"][-1] == first_best + 3
    assert stopped.best_epoch_ == first_best
    assert stopped.history_["validation_rmse"] == curve[: first_best + 3]
    assert not hasattr(stopped.set_params(early_stopping=False, n_iter=1).fit(R), "best_epoch_"), "a stale best epoch"


def test_early_stopping_does_not_train_on_the_held_out_ratings(ratings):
    R, _ = ratings
    model = CollaborativeRBM(4, orientation="users", n_iter=1, early_stopping=True, validation_fraction=0.25, random_state=0).fit(R)
    train, codes, (v_ptr, v_idx, truth) = model._split_validation(R, model._codes(R))
    per_user = np.diff(R.indptr)
    np.testing.assert_array_equal(np.diff(v_ptr), np.maximum(1, np.rint(0.25 * per_user)) * (per_user >= 2))
    held = sp.csr_matrix((truth, v_idx, v_ptr), shape=R.shape)
    kept = sp.csr_matrix((model.rating_values_[codes], train.indices, train.indptr), shape=R.shape)
    assert kept.multiply(held).nnz == 0  # disjoint...
    np.testing.assert_array_equal((held + kept).toarray(), R.toarray())  # ...and together all of R
    # The held-out ratings' RMSE logged is that of predicting them from the rest by the final model's
    # expected ratings (the offsets are fitted after training).
    plain = pickle.loads(pickle.dumps(model)).set_params(offsets=False)
    assert model.history_["validation_rmse"][0] == pytest.approx(-plain.score(kept, held), rel=1e-6)


@pytest.mark.parametrize("orientation", ["items", "users"])
def test_early_stopping_with_a_value_seen_only_in_the_held_out_ratings(orientation):
    """A rating value whose only ratings are held out for early stopping keeps a positive overall
    frequency (from all of X): the initial biases and the fold-in's prior stay finite."""
    rng = np.random.default_rng(0)
    codes = np.where(rng.random((12, 8)) < 0.7, rng.integers(1, 5, size=(12, 8)), -1)
    codes[0, 0] = 0  # the only rating of value 1
    R = from_codes(codes)
    for seed in range(6):
        model = CollaborativeRBM(3, orientation=orientation, n_iter=2, early_stopping=True, validation_fraction=0.3, random_state=seed).fit(
            R
        )
        assert np.all(np.isfinite(model.intercept_visible_))
        assert np.all(np.isfinite(model.predict(R, R).data))


def test_early_stopping_needs_a_user_with_two_ratings():
    R = sp.csr_matrix(np.array([[5.0, 0, 0], [0, 3.0, 0], [0, 0, 1.0]]))
    with pytest.raises(ValueError, match="early_stopping needs a user with at least two ratings"):
        CollaborativeRBM(2, orientation="users", n_iter=1, early_stopping=True).fit(R)
    assert CollaborativeRBM(2, n_iter=1).fit(R).history_["epoch"] == [1]


# --------------------------------------------------------------------------------------------------
# bad input


def test_refuses_bad_ratings_with_clear_errors(ratings, fitted):
    R, _ = ratings
    model = CollaborativeRBM(4, n_iter=1)
    with pytest.raises(ValueError, match="X holds no ratings"):
        model.fit(sp.csr_matrix(R.shape))
    with pytest.raises(ValueError, match="X holds no ratings"):
        model.fit(np.full((3, 4), np.nan))
    bad = R.copy().astype(np.float64)
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="X must hold finite values"):
        model.fit(bad)
    with pytest.raises(ValueError, match="X contains infinity"):
        model.fit(np.array([[1.0, np.inf], [np.nan, 2.0]]))
    with pytest.raises(ValueError, match="X .*2-D"):
        model.fit(np.array([1.0, 2.0]))
    with pytest.raises(TypeError, match="X"):
        model.fit(np.array([["a", "b"]]))
    dup = sp.coo_matrix(([4.0, 5.0], ([0, 0], [1, 1])), shape=(2, 3))
    with pytest.raises(ValueError, match="twice"):
        model.fit(dup)
    with pytest.raises(ValueError, match="distinct rating values"):
        model.fit(sp.csr_matrix(np.random.default_rng(0).random((20, 20))))
    with pytest.raises(ValueError, match=r"rating values unseen in fit: \[2.5\]"):
        fitted.transform(sp.csr_matrix(([2.5], ([0], [0])), shape=(1, R.shape[1])))
    with pytest.raises(ValueError, match="X has 3 features"):
        fitted.transform(sp.csr_matrix((2, 3)))
    with pytest.raises(ValueError, match=r"query must have the shape of X \(4, 40\); got \(4, 39\)"):
        fitted.predict(R[:4], sp.csr_matrix((4, 39)))
    with pytest.raises(ValueError, match="query must be"):
        fitted.predict(R[:4], None)
    with pytest.raises(ValueError, match="y holds no ratings"):
        fitted.score(R[:4], sp.csr_matrix((4, 40)))
    with pytest.raises(ValueError, match="n == 0, must be >= 1"):
        fitted.recommend(R[:2], n=0)


@pytest.mark.parametrize(
    "param, value, error, match",
    [
        ("n_components", 0, ValueError, "n_components"),
        ("k", "fast", ValueError, "k must be 'auto'"),
        ("k", 0, ValueError, "k must be 'auto' or an int >= 1; got 0"),
        ("conditional", "yes", TypeError, "conditional"),
        ("learning_rate", -1.0, ValueError, "learning_rate"),
        ("momentum", 1.0, ValueError, "momentum"),
        ("weight_decay", -1e-3, ValueError, "weight_decay"),
        ("decay_per", "user", ValueError, "decay_per must be one of 'step', 'rating'"),
        ("batch_size", 0, ValueError, "batch_size"),
        ("n_iter", 0, ValueError, "n_iter"),
        ("early_stopping", 1, TypeError, "early_stopping"),
        ("validation_fraction", 1.0, ValueError, "validation_fraction"),
        ("validation_fraction", 0.0, ValueError, "validation_fraction"),
        ("n_iter_no_change", 0, ValueError, "n_iter_no_change"),
        ("tol", -1.0, ValueError, "tol"),
        ("offsets", "yes", TypeError, "offsets"),
        ("offset_penalty", -1.0, ValueError, "offset_penalty"),
    ],
)
def test_refuses_bad_hyperparameters(param, value, error, match, ratings):
    R, _ = ratings
    model = CollaborativeRBM(4, n_iter=1).set_params(**{param: value})
    with pytest.raises(error, match=match):
        model.fit(R)
    assert not hasattr(model, "components_"), "a failed fit leaves the estimator unfitted"


def test_kernels_refuse_malformed_structures():
    W, b, c, _ = params(3, 2, 2, np.random.default_rng(0))
    good = (np.array([0, 1], dtype=np.int64), np.array([0], dtype=np.int64), np.array([1], dtype=np.int64))
    with pytest.raises(ValueError, match="x_indices"):
        _core.collab_hidden(good[0], np.array([7], dtype=np.int64), good[2], W, c)
    with pytest.raises(ValueError, match="x_codes"):
        _core.collab_hidden(good[0], good[1], np.array([2], dtype=np.int64), W, c)
    with pytest.raises(ValueError, match="x_indptr"):
        _core.collab_hidden(np.array([0, 2], dtype=np.int64), good[1], good[2], W, c)
    with pytest.raises(ValueError, match="users"):
        _core.collab_cd_step(
            *good,
            W.copy(),
            b.copy(),
            c.copy(),
            np.zeros_like(W),
            np.zeros_like(b),
            np.zeros_like(c),
            users=np.array([3]),
            last_update=np.zeros(3, dtype=np.int64),
            seed=0,
            step=0,
        )


# --------------------------------------------------------------------------------------------------
# persistence and the scikit-learn contract


@pytest.mark.parametrize("orientation, conditional", [("items", False), ("items", True), ("users", True)])
def test_save_load_pickle_and_clone(orientation, conditional, ratings, tmp_path):
    R, _ = ratings
    model = CollaborativeRBM(6, orientation=orientation, conditional=conditional, n_iter=2, random_state=0).fit(R)
    query = sp.csr_matrix((np.random.default_rng(1).random(R.shape) < 0.2).astype(float))
    want = model.predict(R, query).toarray()
    path = model.save(tmp_path / "collab.safetensors")
    for other in (deepgm.load(path), pickle.loads(pickle.dumps(model))):
        assert type(other) is CollaborativeRBM
        np.testing.assert_array_equal(other.predict(R, query).toarray(), want)
        np.testing.assert_array_equal(other.rating_values_, model.rating_values_)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "components_")
    np.testing.assert_array_equal(twin.fit(R).predict(R, query).toarray(), want)


def test_in_a_pipeline_and_with_feature_names(ratings):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    R, full = ratings
    y = (full[:, 0] > 3).astype(int)
    pipe = make_pipeline(CollaborativeRBM(6, n_iter=2, random_state=0), LogisticRegression()).fit(R, y)
    assert pipe.predict(R).shape == (R.shape[0],)
    model = pipe[0]
    assert list(model.get_feature_names_out()) == [f"collaborativerbm{j}" for j in range(6)]


def test_a_dense_table_with_zeros_for_unrated_items_gets_a_warning(ratings):
    """`.toarray()` or `fillna(0)` turns "not rated" into 0, which a dense table reads as a rating of 0
    (NaN marks unrated items): fit and score warn, and the model equals that of an explicit 0 rating."""
    R, _ = ratings
    zeros = R.toarray()  # unstored -> 0
    with pytest.warns(UserWarning, match=r"X is dense and \d+% of its entries are 0.*NaN"):
        model = CollaborativeRBM(4, n_iter=1, random_state=0).fit(zeros)
    assert 0.0 in model.rating_values_
    fitted = CollaborativeRBM(4, n_iter=1, random_state=0).fit(R)
    with pytest.warns(UserWarning, match=r"y is dense and \d+% of its entries are 0"):
        fitted.score(R, zeros)
    dense_nan = np.where(zeros == 0, np.nan, zeros)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN for unrated items, a boolean query: no warning
        fitted.score(R, dense_nan)
        fitted.predict(R, ~np.isnan(dense_nan))
        CollaborativeRBM(4, n_iter=1, random_state=0).fit(dense_nan)


def test_offsets_never_carry_a_prediction_past_the_rating_scale():
    """A user who rates everything 5 (or 1), items everyone likes: the user's and the item's offsets
    add up beyond the scale, where no rating lies; predictions stay within ``rating_values_``."""
    rng = np.random.default_rng(3)
    R = rng.integers(1, 6, (60, 15)).astype(float)
    R[rng.random(R.shape) < 0.4] = np.nan
    R[:3] = 5.0
    R[3:6] = 1.0
    R[6:, :2] = 5.0
    model = CollaborativeRBM(8, orientation="users", offsets=True, n_iter=30, offset_penalty=0, random_state=0, n_jobs=1).fit(R)
    everything = model.predict(R, np.ones(R.shape, bool)).toarray()
    assert everything.min() >= 1.0 and everything.max() <= 5.0
    assert np.isclose(everything.max(), 5.0), "some prediction was carried to the top of the scale (and kept there)"
    # The unclipped sum the oracle builds goes past the scale here: the clip is what kept it inside.
    codes = dense_codes(sp.csr_matrix(np.nan_to_num(R)), model.rating_values_)
    W = model.components_ + model.shared_components_[None]
    H = oracle.collab_hidden(codes, W, model.intercept_hidden_)
    expected = oracle.collab_visible(H, W, model.intercept_visible_) @ model.rating_values_
    loo = oracle.collab_leave_one_out(codes, W, model.intercept_visible_, model.intercept_hidden_, model.rating_values_, None)
    user = oracle.collab_user_offsets(codes, loo, model.item_offsets_, model.rating_values_, model.offset_penalty)
    raw = expected + user[:, None] + model.item_offsets_[None]
    assert raw.max() > 5.0 or raw.min() < 1.0
    np.testing.assert_allclose(everything, np.clip(raw, 1.0, 5.0), atol=1e-4)


@pytest.mark.parametrize("container", [np.asarray, pd.DataFrame, lambda m: m.tolist()], ids=["array", "DataFrame", "list"])
def test_a_boolean_query_is_a_mask_in_any_container(fitted, ratings, container):
    R, _ = ratings
    mask = np.zeros(R.shape, bool)
    mask[0, 0] = mask[5, 7] = True
    pred = fitted.predict(R, container(mask))
    assert pred.nnz == 2 and set(zip(*pred.nonzero())) == {(0, 0), (5, 7)}
    np.testing.assert_allclose(pred.toarray()[mask], fitted.predict(R, sp.csr_matrix(mask)).toarray()[mask])


def test_a_dense_query_of_zeros_and_ones_predicts_every_pair_and_says_how_to_pick_some(fitted, ratings):
    R, _ = ratings
    mask = np.zeros(R.shape, int)
    mask[0, 0] = 1
    with pytest.warns(UserWarning, match=r"query is dense and \d+% of its entries are 0: every entry that is not NaN is predicted"):
        pred = fitted.predict(R, mask)
    assert pred.nnz == R.shape[0] * R.shape[1]


def test_n_iter_counts_the_epochs_trained(ratings):
    R, _ = ratings
    model = CollaborativeRBM(4, n_iter=3, random_state=0, n_jobs=1)
    assert not hasattr(model, "n_iter_")
    model.fit(R)
    assert model.n_iter_ == 3 == len(model.history_["epoch"])
    assert pickle.loads(pickle.dumps(model)).n_iter_ == 3
    stopped = overfitting_model(n_iter_no_change=3).fit(R)
    assert stopped.n_iter_ == len(stopped.history_["epoch"]) >= stopped.best_epoch_
