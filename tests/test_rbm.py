"""deepgm.RBM: numerics against float64 NumPy oracles (free energy, CD-k statistics, exact log Z, AIS,
Gibbs sampling), learning on MNIST, Gaussian visible units, PCD, momentum and weight decay, the
scikit-learn BernoulliRBM contract (names, partial_fit, score_samples, pipelines, grid search, sparse
input), dtype, determinism and bad input."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats
from scipy.special import expit, logsumexp
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import minmax_scale

from deepgm import RBM, LogPartition, _core

# --------------------------------------------------------------------------------------------------
# float64 oracles, written from the definitions
#
# Bernoulli visible units: E(v, h) = -b.v - c.h - h.W v
# Gaussian visible units (unit variance): E(v, h) = |v - b|^2 / 2 - c.h - h.W v
# W = components_ (n_hidden, n_visible), b = intercept_visible_, c = intercept_hidden_.


def f64(a):
    return np.asarray(a, dtype=np.float64)


def softplus(x):
    return np.logaddexp(0.0, x)


def all_states(n):
    """The 2^n binary vectors of length n, (2^n, n) float64."""
    return ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)


def energy_bernoulli(V, H, W, b, c):
    """E(v, h) for every pair of rows of V and H: (len(V), len(H))."""
    V, H, W, b, c = map(f64, (V, H, W, b, c))
    return -(V @ b)[:, None] - (H @ c)[None, :] - V @ W.T @ H.T


def free_energy_closed_form(V, W, b, c, visible="bernoulli"):
    V, W, b, c = map(f64, (V, W, b, c))
    hidden = softplus(V @ W.T + c).sum(axis=1)
    if visible == "bernoulli":
        return -V @ b - hidden
    return 0.5 * ((V - b) ** 2).sum(axis=1) - hidden


def free_energy_enumerated(V, W, b, c):
    """F(v) = -log sum_h exp(-E(v, h)) by enumerating every hidden state."""
    H = all_states(np.shape(W)[0])
    return -logsumexp(-energy_bernoulli(V, H, W, b, c), axis=1)


def log_z_brute_force(W, b, c):
    """log Z = log sum_{v, h} exp(-E(v, h)) over every joint state."""
    nh, nv = np.shape(W)
    return float(logsumexp(-energy_bernoulli(all_states(nv), all_states(nh), W, b, c)))


def log_z_sum_hidden(W, b, c, visible="bernoulli"):
    """log Z by summing over hidden states with v integrated out in closed form."""
    W, b, c = map(f64, (W, b, c))
    nv = W.shape[1]
    H = all_states(W.shape[0])
    A = b + H @ W  # visible input for each hidden state
    if visible == "bernoulli":
        terms = H @ c + softplus(A).sum(axis=1)
    else:  # integral of exp(-|v - b|^2 / 2 + h.W v) dv
        terms = H @ c + 0.5 * (A**2).sum(axis=1) - 0.5 * (b**2).sum() + 0.5 * nv * np.log(2 * np.pi)
    return float(logsumexp(terms))


def exact_visible_distribution(W, b, c):
    """p(v) over all_states(n_visible) for a tiny Bernoulli RBM."""
    V = all_states(np.shape(W)[1])
    log_p = -free_energy_closed_form(V, W, b, c)
    return np.exp(log_p - logsumexp(log_p))


def state_index(V):
    """Row index of each binary row of V in all_states(V.shape[1])."""
    V = np.rint(f64(V)).astype(np.int64)
    return (V << np.arange(V.shape[1])[None, :]).sum(axis=1)


def random_params(nh, nv, scale, seed):
    r = np.random.default_rng(seed)
    return r.normal(0, scale, (nh, nv)), r.normal(0, scale, nv), r.normal(0, scale, nh)


def rbm_with_params(W, b, c, visible="bernoulli", **kwargs):
    """A fitted float64 RBM whose parameters are then set to (W, b, c), as a user would do."""
    W, b, c = map(f64, (W, b, c))
    nh, nv = W.shape
    r = np.random.default_rng(0)
    data = (r.random((40, nv)) < 0.5).astype(np.float64) if visible == "bernoulli" else r.standard_normal((40, nv))
    params = dict(n_components=nh, visible=visible, n_iter=1, batch_size=10, random_state=0, dtype="float64")
    params.update(kwargs)
    rbm = RBM(**params).fit(data)
    rbm.components_[...] = W
    rbm.intercept_visible_[...] = b
    rbm.intercept_hidden_[...] = c
    return rbm


def base_rate_log_likelihood(X_train, X_test):
    """Mean log-likelihood of independent Bernoulli pixels with the training means (clipped)."""
    p = np.clip(f64(X_train).mean(axis=0), 1e-3, 1 - 1e-3)
    X = f64(X_test)
    return float(np.mean(X @ np.log(p) + (1 - X) @ np.log(1 - p)))


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def rbm64(mnist_small):
    X, _ = mnist_small
    return RBM(n_components=64, n_iter=3, random_state=0).fit(X)


@pytest.fixture(scope="module")
def rbm12(mnist_split):
    X_train, _, _, _ = mnist_split
    return RBM(n_components=12, n_iter=3, random_state=0).fit(X_train)


# --------------------------------------------------------------------------------------------------
# free energy


def test_free_energy_matches_enumeration_and_closed_form():
    W, b, c = random_params(5, 7, 1.0, seed=1)
    rbm = rbm_with_params(W, b, c)
    r = np.random.default_rng(2)
    V = np.vstack([all_states(7)[::5], r.random((10, 7))])  # binary and fractional rows
    got = rbm.free_energy(V)
    assert got.shape == (len(V),)
    np.testing.assert_allclose(got, free_energy_enumerated(V, W, b, c), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got, free_energy_closed_form(V, W, b, c), rtol=1e-10, atol=1e-10)


def test_free_energy_mnist_float32_model_against_float64_oracle(rbm64, mnist):
    X, _ = mnist
    V = X[9000:9200]
    got = rbm64.free_energy(V)
    want = free_energy_closed_form(V, rbm64.components_, rbm64.intercept_visible_, rbm64.intercept_hidden_)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_free_energy_gaussian_visible_in_standardised_space(rng):
    X = 3.0 + 2.0 * rng.standard_normal((200, 6))
    rbm = RBM(n_components=4, visible="gaussian", n_iter=3, random_state=0, dtype="float64").fit(X)
    Z = (X - rbm.mean_) / rbm.scale_
    want = free_energy_closed_form(Z, rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_, "gaussian")
    np.testing.assert_allclose(rbm.free_energy(X), want, rtol=1e-10, atol=1e-10)


def test_free_energy_and_transform_gaussian_hidden_units(rng):
    """Linear hidden units with unit-variance noise (the code layer of a deep autoencoder):
    E(v, h) = -b.v + |h - c|^2 / 2 - h.W v, so F(v) = -b.v - c.x - |x|^2 / 2 - n_hidden / 2 log(2 pi)
    with x = W v, and the hidden mean is c + W v."""
    X = rng.random((40, 6))
    rbm = RBM(3, hidden="gaussian", n_iter=3, random_state=0, dtype="float64").fit(X)
    W, b, c = rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_
    x = X @ W.T
    want = -X @ b - x @ c - 0.5 * (x**2).sum(axis=1) - 1.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(rbm.free_energy(X), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(rbm.transform(X), x + c, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# CD-k gradient statistics, driven through the kernel with lr = 1, momentum = 0, weight decay = 0


def cd_step(
    X, W, b, c, *, h_samples=None, k=1, lr=1.0, momentum=0.0, weight_decay=0.0, velocities=None, visible="bernoulli", seed=0, step=0
):
    """One rbm_cd_step on float64 copies; returns the new (W, b, c) and velocities."""
    W, b, c = (np.array(a, dtype=np.float64) for a in (W, b, c))
    if velocities is None:
        velocities = (np.zeros_like(W), np.zeros_like(b), np.zeros_like(c))
    vW, vb, vc = (np.array(a, dtype=np.float64) for a in velocities)
    _core.rbm_cd_step(
        np.ascontiguousarray(X, dtype=np.float64),
        W,
        b,
        c,
        vW,
        vb,
        vc,
        h_samples=h_samples,
        visible=visible,
        k=k,
        learning_rate=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=seed,
        step=step,
    )
    return (W, b, c), (vW, vb, vc)


def recover_model_sample(X, W, b, c, new, visible="bernoulli"):
    """From one CD update with lr = 1, a single negative-phase chain, no momentum and no decay:
    checks the update against <v h>_data - <v h>_model in float64 and returns the chain's visible
    sample v_model (recovered from the visible-bias update, db = mean(v_data) - v_model)."""
    X, W, b, c = map(f64, (X, W, b, c))
    W1, b1, c1 = new
    v_model = X.mean(axis=0) - (b1 - b)
    if visible == "bernoulli":
        np.testing.assert_allclose(v_model, np.rint(v_model), atol=1e-9, err_msg="the negative visible sample is not binary")
        v_model = np.rint(v_model)
    p_data = expit(X @ W.T + c)
    p_model = expit(W @ v_model + c)
    np.testing.assert_allclose(c1 - c, p_data.mean(axis=0) - p_model, atol=1e-10, err_msg="hidden bias statistics")
    want_dW = p_data.T @ X / len(X) - np.outer(p_model, v_model)
    np.testing.assert_allclose(W1 - W, want_dW, atol=1e-10, err_msg="weight statistics <v h>_data - <v h>_model")
    return v_model


def test_cd_update_equals_data_minus_model_statistics_pcd_one_chain(rng):
    """PCD with one persistent chain: the data statistics are averaged over the 5 minibatch rows
    (binary and grey values), the model statistics come from the chain's single visible sample."""
    W, b, c = random_params(4, 7, 1.0, seed=3)
    X = np.vstack([(rng.random((3, 7)) < 0.5), rng.random((2, 7))]).astype(np.float64)
    chain = (rng.random((1, 4)) < 0.5).astype(np.float64)
    before = chain.copy()
    for k in (1, 3):
        chain[...] = before
        new, _ = cd_step(X, W, b, c, h_samples=chain, k=k, seed=11, step=5)
        recover_model_sample(X, W, b, c, new)
        assert set(np.unique(chain)) <= {0.0, 1.0}, "the persistent chain holds binary hidden states"


def test_cd1_negative_phase_samples_from_the_kernels_positive_hidden_sample():
    """CD-1 with one data row: the kernel's positive-phase hidden sample is reproduced with
    rbm_hidden(seed, step); grouped by that sample, the recovered negative visible samples follow
    p(v | h) = sigmoid(b + h W) (chi-square over groups and units), and the update equals
    <v h>_data - <v h>_model at every step."""
    W, b, c = random_params(2, 6, 1.5, seed=4)
    x = np.array([[1.0, 0.0, 1.0, 1.0, 0.0, 0.0]])
    n_steps = 2000
    H0 = np.empty((n_steps, 2))
    VM = np.empty((n_steps, 6))
    for t in range(n_steps):
        _, h0 = _core.rbm_hidden(x, W, c, seed=99, step=t)
        new, _ = cd_step(x, W, b, c, seed=99, step=t)
        H0[t] = h0[0]
        VM[t] = recover_model_sample(x, W, b, c, new)
    z2 = 0.0
    dof = 0
    for h in all_states(2):
        rows = np.all(H0 == h, axis=1)
        m = rows.sum()
        if m < 20:
            continue
        p = expit(b + h @ W)
        z2 += np.sum((VM[rows].sum(axis=0) - m * p) ** 2 / (m * p * (1 - p)))
        dof += 6
    assert dof >= 12
    assert stats.chi2.sf(z2, dof) > 1e-4, f"negative-phase samples do not follow p(v | h_0): chi2 {z2:.1f} on {dof} dof"


def test_cd_k_runs_k_gibbs_steps():
    """With one row of data, the negative sample of CD-1 follows the one-step distribution from the
    data, and that of CD-30 the model's equilibrium distribution (exact, by enumeration); the two
    differ clearly for this strongly coupled model."""
    W = np.array([[3.0, 3.0, -3.0], [-2.5, 2.5, 2.5]])
    b = np.array([-1.0, -1.0, 1.0])
    c = np.array([-1.5, -1.0])
    x = np.array([[1.0, 0.0, 0.0]])
    n_steps = 1500
    V = all_states(3)
    p_eq = exact_visible_distribution(W, b, c)
    # One Gibbs step from x: sum_h p(h | x) p(v | h).
    H = all_states(2)
    ph = np.prod(np.where(H == 1, expit(W @ x[0] + c), 1 - expit(W @ x[0] + c)), axis=1)
    pv_h = np.array([np.prod(np.where(V == 1, expit(b + h @ W), 1 - expit(b + h @ W)), axis=1) for h in H])
    p_one = ph @ pv_h
    assert 0.5 * np.abs(p_one - p_eq).sum() > 0.15
    for k, p_want in ((1, p_one), (30, p_eq)):
        counts = np.zeros(8)
        for t in range(n_steps):
            new, _ = cd_step(x, W, b, c, k=k, seed=7, step=t)
            counts[state_index(recover_model_sample(x, W, b, c, new)[None, :])[0]] += 1
        keep = p_want * n_steps >= 5
        chi2 = np.sum((counts[keep] - n_steps * p_want[keep]) ** 2 / (n_steps * p_want[keep]))
        assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4, f"CD-{k}: chi2 {chi2:.1f}, counts {counts}, want {n_steps * p_want}"


def test_cd_statistics_gaussian_visible():
    """Gaussian visible units: v_model ~ N(b + h_0 W, I) and the update equals the statistics."""
    W, b, c = random_params(1, 4, 1.0, seed=5)
    x = np.array([[0.5, -1.0, 2.0, 0.0]])
    n_steps = 1500
    H0 = np.empty(n_steps)
    VM = np.empty((n_steps, 4))
    for t in range(n_steps):
        _, h0 = _core.rbm_hidden(x, W, c, seed=3, step=t)
        new, _ = cd_step(x, W, b, c, visible="gaussian", seed=3, step=t)
        H0[t] = h0[0, 0]
        VM[t] = recover_model_sample(x, W, b, c, new, visible="gaussian")
    for h in (0.0, 1.0):
        rows = H0 == h
        m = rows.sum()
        assert m > 100
        resid = VM[rows] - (b + h * W[0])
        assert np.all(np.abs(resid.mean(axis=0)) < 5 / np.sqrt(m)), "mean of v | h"
        assert np.all(np.abs(resid.var(axis=0) - 1) < 5 * np.sqrt(2 / m)), "unit variance of v | h"


def test_momentum_and_weight_decay_in_the_update(rng):
    """Same random draws (same seed and step): the update with momentum mu and weight decay wd differs
    from the plain one by mu * velocity - lr * wd * W for the weights and mu * velocity for the biases
    (biases are not decayed); the new velocity is the applied step."""
    W, b, c = random_params(5, 8, 0.5, seed=6)
    X = (rng.random((6, 8)) < 0.5).astype(np.float64)
    vel = (rng.normal(0, 0.1, W.shape), rng.normal(0, 0.1, b.shape), rng.normal(0, 0.1, c.shape))
    lr, mu, wd = 0.3, 0.7, 0.05
    (W1, b1, c1), _ = cd_step(X, W, b, c, lr=lr, seed=1, step=2)
    (W2, b2, c2), (vW, vb, vc) = cd_step(X, W, b, c, lr=lr, momentum=mu, weight_decay=wd, velocities=vel, seed=1, step=2)
    np.testing.assert_allclose(W2 - W1, mu * vel[0] - lr * wd * W, atol=1e-12)
    np.testing.assert_allclose(b2 - b1, mu * vel[1], atol=1e-12)
    np.testing.assert_allclose(c2 - c1, mu * vel[2], atol=1e-12)
    np.testing.assert_allclose(vW, W2 - W, atol=1e-12)
    np.testing.assert_allclose(vb, b2 - b, atol=1e-12)
    np.testing.assert_allclose(vc, c2 - c, atol=1e-12)


def test_momentum_schedule_switches_after_initial_epochs(mnist_tiny):
    X, _ = mnist_tiny
    common = dict(n_components=16, batch_size=50, random_state=0, momentum=0.5, initial_momentum_epochs=1)
    a1 = RBM(final_momentum=0.9, n_iter=1, **common).fit(X)
    b1 = RBM(final_momentum=0.5, n_iter=1, **common).fit(X)
    np.testing.assert_array_equal(a1.components_, b1.components_)  # epoch 1: momentum for both
    a2 = RBM(final_momentum=0.9, n_iter=2, **common).fit(X)
    b2 = RBM(final_momentum=0.5, n_iter=2, **common).fit(X)
    assert not np.array_equal(a2.components_, b2.components_)  # epoch 2: final_momentum
    # With the switch after 5 epochs, 2 epochs never see final_momentum.
    late = dict(common, initial_momentum_epochs=5)
    np.testing.assert_array_equal(
        RBM(final_momentum=0.9, n_iter=2, **late).fit(X).components_, RBM(final_momentum=0.5, n_iter=2, **late).fit(X).components_
    )
    # momentum itself is applied
    assert not np.array_equal(RBM(n_iter=1, **dict(common, momentum=0.0)).fit(X).components_, a1.components_)


def test_weight_decay_shrinks_weights(mnist_tiny):
    X, _ = mnist_tiny
    norms = [np.linalg.norm(RBM(16, weight_decay=wd, n_iter=5, batch_size=50, random_state=0).fit(X).components_) for wd in (0.0, 0.05)]
    assert norms[1] < 0.9 * norms[0]


# --------------------------------------------------------------------------------------------------
# partition function


@pytest.mark.parametrize("nh, nv", [(4, 6), (7, 5)])  # enumerates the hidden, then the visible layer
def test_exact_log_partition_matches_brute_force(nh, nv):
    W, b, c = random_params(nh, nv, 1.0, seed=nh)
    rbm = rbm_with_params(W, b, c)
    lp = rbm.log_partition(method="exact")
    assert isinstance(lp, LogPartition) and lp.method == "exact"
    want = log_z_brute_force(W, b, c)
    assert abs(lp.log_z - want) < 1e-9 * max(1.0, abs(want))
    assert lp.std_error == 0 and lp.lower == lp.log_z == lp.upper


def test_exact_log_partition_gaussian_visible_matches_closed_form():
    W, b, c = random_params(3, 4, 0.5, seed=8)
    rbm = rbm_with_params(W, b, c, visible="gaussian")
    assert abs(rbm.log_partition(method="exact").log_z - log_z_sum_hidden(W, b, c, "gaussian")) < 1e-9


def test_exact_log_partition_and_log_likelihood_mnist(rbm12, mnist_split):
    _, _, X_test, _ = mnist_split
    W, b, c = rbm12.components_, rbm12.intercept_visible_, rbm12.intercept_hidden_
    log_z = rbm12.log_partition(method="exact").log_z
    want = log_z_sum_hidden(W, b, c)
    assert abs(log_z - want) < 1e-6 * abs(want)
    ll = rbm12.log_likelihood(X_test, method="exact")
    want_ll = float(np.mean(-free_energy_closed_form(X_test, W, b, c))) - want
    assert abs(ll - want_ll) < 1e-3
    # log_z given explicitly is used as is
    assert abs(rbm12.log_likelihood(X_test, log_z=want) - want_ll) < 1e-3


@pytest.mark.parametrize("n_hidden", [10, 12])
def test_ais_within_half_a_nat_of_exact_on_mnist(n_hidden, mnist_split):
    X_train = mnist_split[0]
    rbm = RBM(n_components=n_hidden, n_iter=2, random_state=n_hidden).fit(X_train)
    exact = rbm.log_partition(method="exact").log_z
    ais = rbm.log_partition(method="ais", random_state=0)
    assert ais.method == "ais" and np.isfinite(ais.std_error)
    assert abs(ais.log_z - exact) < 0.5, f"AIS {ais.log_z:.3f} vs exact {exact:.3f}"
    assert ais.lower <= ais.log_z <= ais.upper


def test_log_partition_is_a_number_that_unpacks_as_estimate_and_spread(rbm12):
    exact = rbm12.log_partition(method="exact")
    ais = rbm12.log_partition(method="ais", n_chains=20, n_betas=300, random_state=0)
    # The estimate itself: arithmetic and comparisons work on it directly.
    assert float(exact) == exact.log_z and abs(exact - exact.log_z) == 0.0
    assert abs(ais - exact) < 1.0
    # ... and the pair (estimate, spread).
    log_z, spread = ais
    assert (log_z, spread) == (ais.log_z, ais.std_error) and spread > 0
    assert tuple(exact) == (exact.log_z, 0.0) and exact[0] == exact.log_z and exact[1] == 0.0
    # A number for pytest.approx and NumPy too (not a two-element sequence), on either side.
    assert ais == pytest.approx(exact, abs=1.0) and exact == pytest.approx(float(exact))
    assert float(exact) == pytest.approx(exact) and exact == pytest.approx(exact.log_z + 0.4, abs=0.5)
    assert exact != pytest.approx(exact.log_z + 0.6, abs=0.5)
    assert np.isclose(ais, exact, atol=1.0) and np.asarray(exact).shape == ()
    assert ais.lower <= log_z <= ais.upper and ais.method == "ais"
    again = pickle.loads(pickle.dumps(ais))
    assert isinstance(again, LogPartition) and repr(again) == repr(ais) and tuple(again) == tuple(ais)
    assert rbm12.log_likelihood(np.zeros((2, rbm12.n_features_in_)), log_z=ais) == rbm12.log_likelihood(
        np.zeros((2, rbm12.n_features_in_)), log_z=float(ais)
    )


def test_ais_gaussian_visible_close_to_exact(rng):
    Z = rng.standard_normal((2000, 3))
    X = 5 + 2 * (Z @ rng.standard_normal((3, 20)) + 0.3 * rng.standard_normal((2000, 20)))
    rbm = RBM(10, visible="gaussian", n_iter=10, random_state=0).fit(X)
    exact = rbm.log_partition(method="exact").log_z
    W, b, c = rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_
    assert abs(exact - log_z_sum_hidden(W, b, c, "gaussian")) < 1e-6 * abs(exact)
    assert abs(rbm.log_partition(method="ais", random_state=0).log_z - exact) < 0.5


def test_gaussian_log_likelihood_is_a_normalised_density_in_data_space():
    """log p(x) of a Gaussian RBM (standardisation and its Jacobian included) integrates to one over
    the data space, and log_likelihood is its mean."""
    r = np.random.default_rng(1)
    X = r.standard_normal((500, 2)) * [1.0, 3.0] + [2.0, -1.0]
    rbm = RBM(3, visible="gaussian", n_iter=2, random_state=0, dtype="float64").fit(X)
    W, b, c = random_params(3, 2, 1.0, seed=21)
    rbm.components_[...], rbm.intercept_visible_[...], rbm.intercept_hidden_[...] = W, b, c
    g1 = np.linspace(2 - 12, 2 + 12, 481)
    g2 = np.linspace(-1 - 36, -1 + 36, 481)
    G = np.stack(np.meshgrid(g1, g2, indexing="ij"), axis=-1).reshape(-1, 2)
    Zs = (G - rbm.mean_) / rbm.scale_
    log_p = -free_energy_closed_form(Zs, W, b, c, "gaussian") - log_z_sum_hidden(W, b, c, "gaussian") - np.log(rbm.scale_).sum()
    assert np.exp(log_p).sum() * (g1[1] - g1[0]) * (g2[1] - g2[0]) == pytest.approx(1.0, abs=1e-4)
    assert rbm.log_likelihood(G[::97], method="exact") == pytest.approx(log_p[::97].mean(), abs=1e-8)


# --------------------------------------------------------------------------------------------------
# sampling


def test_gibbs_sampling_matches_exact_distribution():
    W, b, c = random_params(3, 4, 1.0, seed=12)
    rbm = rbm_with_params(W, b, c)
    n = 20000
    V = rbm.sample(n_samples=n, n_steps=30)  # the default: samples, not means
    assert V.shape == (n, 4) and set(np.unique(V)) <= {0.0, 1.0}
    counts = np.bincount(state_index(V), minlength=16)
    p = exact_visible_distribution(W, b, c)
    chi2, pvalue = stats.chisquare(counts, n * p)
    assert pvalue > 1e-4, f"chi2 {chi2:.1f}"


def test_one_gibbs_step_matches_exact_transition():
    W, b, c = random_params(3, 4, 1.0, seed=13)
    rbm = rbm_with_params(W, b, c)
    v0 = np.array([1.0, 0.0, 1.0, 0.0])
    n = 20000
    V1 = rbm.gibbs(np.tile(v0, (n, 1)))
    assert V1.shape == (n, 4) and set(np.unique(V1)) <= {0.0, 1.0}
    V, H = all_states(4), all_states(3)
    p_h = expit(W @ v0 + c)
    ph = np.prod(np.where(H == 1, p_h, 1 - p_h), axis=1)
    p = ph @ np.array([np.prod(np.where(V == 1, expit(b + h @ W), 1 - expit(b + h @ W)), axis=1) for h in H])
    _, pvalue = stats.chisquare(np.bincount(state_index(V1), minlength=16), n * p)
    assert pvalue > 1e-4


def test_gibbs_api(rbm64, mnist_tiny):
    X, _ = mnist_tiny
    V1 = rbm64.gibbs(X[:20])
    assert V1.shape == (20, 784) and V1.dtype == np.float32
    assert set(np.unique(V1)) <= {0.0, 1.0}
    assert not np.array_equal(V1, rbm64.gibbs(X[:20])), "successive calls draw fresh samples"


def test_sample_shape_range_and_init(rbm64, mnist):
    X, _ = mnist
    S = rbm64.sample(n_samples=7, n_steps=20, return_means=True)
    assert S.shape == (7, 784) and np.all((S >= 0) & (S <= 1)) and len(np.unique(S)) > 2
    B = rbm64.sample(n_samples=5, n_steps=3)  # samples by default, as the method's name says
    assert B.shape == (5, 784) and B.dtype == np.float32 and set(np.unique(B)) <= {0.0, 1.0}
    init = X[9000:9010]
    np.testing.assert_array_equal(rbm64.sample(n_steps=0, init=init), init)
    assert rbm64.sample(n_samples=len(init), n_steps=1, init=init).shape == init.shape  # one chain per row
    with pytest.raises(ValueError, match=r"n_samples must be None or the number of rows of init.*n_samples=3.*10 rows"):
        rbm64.sample(n_samples=3, n_steps=1, init=init)  # not silently 10 chains
    # The chains start from init: averaged over 200 chains from each of 5 digits of different
    # classes, one step gives E[v | h ~ p(h | init)], close to the mean-field reconstruction of its own
    # starting image and far from those of the others.
    X_test, y_test = X[9000:], mnist[1][9000:]
    starts = X_test[[np.flatnonzero(y_test == digit)[0] for digit in (0, 1, 3, 4, 7)]]
    M = rbm64.sample(n_steps=1, init=np.repeat(starts, 200, axis=0), return_means=True).reshape(5, 200, 784).mean(axis=1)
    R = rbm64.reconstruct(starts)
    d = ((M[:, None, :] - R[None, :, :]) ** 2).sum(axis=-1)
    own = np.diag(d)
    others = np.min(d + np.diag(np.full(5, np.inf)), axis=1)
    assert np.all(own < 0.1 * others), (own, others)


# --------------------------------------------------------------------------------------------------
# learning


def test_training_raises_exact_log_likelihood(mnist_split):
    X_train, _, X_test, _ = mnist_split
    base = base_rate_log_likelihood(X_train, X_test)
    lls = [RBM(10, n_iter=n, random_state=0).fit(X_train).log_likelihood(X_test, method="exact") for n in (1, 8)]
    assert lls[0] > base, "one epoch beats the independent-pixel base rate"
    assert lls[1] > lls[0] + 1.0, f"more epochs raise the log-likelihood: {lls}"


def test_persistent_cd_learns(mnist_split):
    X_train, _, X_test, _ = mnist_split
    rbm = RBM(10, persistent=True, learning_rate=0.05, n_iter=5, random_state=0).fit(X_train)
    assert rbm.log_likelihood(X_test, method="exact") > base_rate_log_likelihood(X_train, X_test) + 5


def test_cd_k_estimator(mnist_small):
    X, _ = mnist_small
    r1 = RBM(32, k=1, n_iter=2, random_state=0).fit(X)
    r3 = RBM(32, k=3, n_iter=2, random_state=0).fit(X)
    assert np.all(np.isfinite(r3.components_))
    assert not np.allclose(r1.components_, r3.components_)
    assert r3.history_["reconstruction_error"][-1] < r3.history_["reconstruction_error"][0]


def test_persistent_chains_kept_across_minibatches_and_partial_fit(mnist_small):
    X, _ = mnist_small
    rbm = RBM(16, persistent=True, batch_size=20, random_state=0)
    rbm.partial_fit(X[:100])
    h1 = rbm.h_samples_.copy()
    assert h1.shape == (20, 16) and set(np.unique(h1)) <= {0.0, 1.0} and h1.any()
    rbm.partial_fit(X[100:200])
    assert not np.array_equal(rbm.h_samples_, h1), "the chains move on between partial_fit calls"
    # The next update starts from h_samples_: changing the chains changes the result.
    a, b = copy.deepcopy(rbm), copy.deepcopy(rbm)
    b.h_samples_[...] = 1.0 - b.h_samples_
    a.partial_fit(X[200:220])
    b.partial_fit(X[200:220])
    assert not np.array_equal(a.components_, b.components_)
    # Plain CD ignores h_samples_.
    cd = RBM(16, persistent=False, batch_size=20, random_state=0).partial_fit(X[:100])
    c1, c2 = copy.deepcopy(cd), copy.deepcopy(cd)
    c2.h_samples_[...] = 1.0
    c1.partial_fit(X[100:120])
    c2.partial_fit(X[100:120])
    np.testing.assert_array_equal(c1.components_, c2.components_)


def test_gaussian_visible_learns_standardised_real_data(rng):
    n, d = 2000, 20
    Z = rng.standard_normal((n, 3))
    X = Z @ rng.standard_normal((3, d)) + 0.3 * rng.standard_normal((n, d))
    X = 50.0 + 10.0 * X  # far from [0, 1] and from unit scale
    rbm = RBM(n_components=32, visible="gaussian", n_iter=15, batch_size=50, random_state=0).fit(X)
    np.testing.assert_allclose(rbm.mean_, X.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(rbm.scale_, X.std(axis=0), rtol=1e-3)
    for name in ("components_", "intercept_hidden_", "intercept_visible_"):
        assert np.all(np.isfinite(getattr(rbm, name))), name
    err = rbm.history_["reconstruction_error"]
    assert np.all(np.isfinite(err)) and err[-1] < 0.8 * err[0]
    R = rbm.reconstruct(X)
    assert R.shape == X.shape and np.all(np.isfinite(R))
    assert np.all(np.isfinite(rbm.transform(X))) and np.all(np.isfinite(rbm.free_energy(X)))
    mse = np.mean(np.sum((X - R) ** 2, axis=1))
    assert mse < 0.5 * np.sum(X.var(axis=0)), "reconstructions beat predicting the mean"
    S = rbm.sample(n_samples=10, n_steps=50)
    assert S.shape == (10, d) and np.all(np.isfinite(S))


# --------------------------------------------------------------------------------------------------
# the scikit-learn BernoulliRBM contract


def test_same_names_as_bernoulli_rbm(rbm64):
    assert set(BernoulliRBM().get_params()) <= set(RBM().get_params())
    for method in ("fit", "partial_fit", "transform", "fit_transform", "gibbs", "score_samples"):
        assert callable(getattr(RBM, method))
    assert rbm64.components_.shape == (64, 784)
    assert rbm64.intercept_hidden_.shape == (64,)
    assert rbm64.intercept_visible_.shape == (784,)
    assert rbm64.h_samples_.shape == (rbm64.batch_size, 64)
    assert rbm64.n_features_in_ == 784
    assert set(rbm64.history_) >= {"reconstruction_error"} and len(rbm64.history_["reconstruction_error"]) == 3


def test_default_learning_rate_is_bernoulli_rbm_default(mnist_tiny):
    """The spec's default learning_rate is 0.1 (BernoulliRBM's): a default RBM trains like one with
    learning_rate=0.1."""
    X, _ = mnist_tiny
    a = RBM(16, n_iter=2, random_state=0).fit(X)
    b = RBM(16, n_iter=2, random_state=0, learning_rate=0.1).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)


def test_fit_returns_self_and_defaults_from_spec():
    rbm = RBM()
    p = rbm.get_params()
    assert p["n_components"] == 256 and p["visible"] == "bernoulli" and p["k"] == 1 and p["persistent"] is False
    assert p["momentum"] == 0.5 and p["final_momentum"] == 0.5 and p["weight_decay"] == 2e-4
    # BernoulliRBM's defaults where the names are shared (issue 15: a switch changes only the speed)
    from sklearn.neural_network import BernoulliRBM

    shared = BernoulliRBM().get_params()
    for name in ("n_components", "batch_size", "n_iter"):
        assert p[name] == shared[name], name
    assert p["learning_rate"] == "auto" and RBM()._learning_rate() == shared["learning_rate"]
    assert p["dtype"] == "float32"
    X = (np.random.default_rng(0).random((30, 5)) < 0.5).astype(np.float32)
    assert RBM(3, n_iter=1).fit(X).__class__ is RBM
    est = RBM(3, n_iter=1)
    assert est.fit(X) is est and est.partial_fit(X) is est


def test_transform_is_hidden_probabilities(rbm64, mnist):
    X, _ = mnist
    V = X[9000:9100]
    H = rbm64.transform(V)
    assert H.shape == (100, 64) and H.dtype == np.float32
    want = expit(f64(V) @ f64(rbm64.components_).T + f64(rbm64.intercept_hidden_))
    np.testing.assert_allclose(H, want, atol=1e-5)


def test_transform_float64_model_matches_oracle(rng):
    X = rng.random((50, 9))
    rbm = RBM(5, n_iter=2, random_state=0, dtype="float64").fit(X)
    H = rbm.transform(X)
    assert H.dtype == np.float64
    np.testing.assert_allclose(H, expit(X @ rbm.components_.T + rbm.intercept_hidden_), rtol=1e-12, atol=1e-14)


def test_fit_transform_equals_fit_then_transform(mnist_tiny):
    X, _ = mnist_tiny
    a = RBM(16, n_iter=2, random_state=0).fit_transform(X)
    b = RBM(16, n_iter=2, random_state=0).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)


def test_reconstruct_is_mean_field_reconstruction(rbm64, mnist):
    X, _ = mnist
    V = X[9000:9050]
    R = rbm64.reconstruct(V)
    W, b = f64(rbm64.components_), f64(rbm64.intercept_visible_)
    want = expit(expit(f64(V) @ W.T + f64(rbm64.intercept_hidden_)) @ W + b)
    assert R.shape == V.shape
    np.testing.assert_allclose(R, want, atol=1e-5)
    assert np.mean(np.sum((V - R) ** 2, axis=1)) < np.mean(np.sum((V - V.mean(axis=0)) ** 2, axis=1))


def test_partial_fit_single_step_when_X_fits_in_a_batch(mnist_tiny):
    """X no larger than batch_size: one CD update on all of X, as BernoulliRBM.partial_fit."""
    X, _ = mnist_tiny
    rbm = RBM(8, learning_rate=1.0, momentum=0.0, final_momentum=0.0, weight_decay=0.0, batch_size=100, random_state=0, dtype="float64")
    rbm.partial_fit(X[:100])
    W, b, c = rbm.components_.copy(), rbm.intercept_visible_.copy(), rbm.intercept_hidden_.copy()
    x = f64(X[100:101])
    rbm.partial_fit(x)
    # One step on one row: the update is exactly <v h>_data - <v h>_model with a binary v_model.
    recover_model_sample(x, W, b, c, (rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_))
    # The same X as one batch of 10 (batch_size 10 or 50) gives the same model; batch_size 5 does not.
    fits = {bs: RBM(8, batch_size=bs, random_state=0).partial_fit(X[:10]).components_ for bs in (5, 10, 50)}
    np.testing.assert_array_equal(fits[10], fits[50])
    assert not np.array_equal(fits[5], fits[10])


@pytest.mark.parametrize("persistent", [False, True])
def test_a_batch_size_beyond_the_data_trains_as_one_batch_of_it(mnist_tiny, persistent):
    """As MLPClassifier clips batch_size to the data: batch_size=1e12 allocated 1e12 persistent chains
    (a MemoryError of terabytes, for PCD and plain CD alike). A fit now keeps a chain per training row,
    and the model is the one batch_size = n_samples gives."""
    X, _ = mnist_tiny
    X = X[:40]
    huge = RBM(8, n_iter=3, persistent=persistent, batch_size=10**12, random_state=0).fit(X)
    exact = RBM(8, n_iter=3, persistent=persistent, batch_size=40, random_state=0).fit(X)
    assert huge.h_samples_.shape == (40, 8)
    np.testing.assert_array_equal(huge.components_, exact.components_)
    np.testing.assert_array_equal(huge.h_samples_, exact.h_samples_)


def test_partial_fit_continues_training(mnist_small):
    X, _ = mnist_small
    rbm = RBM(32, random_state=0)
    rbm.partial_fit(X[:500])
    W = rbm.components_.copy()
    for start in range(500, 2000, 500):
        rbm.partial_fit(X[start : start + 500])
    assert rbm.components_.shape == W.shape and not np.array_equal(rbm.components_, W)
    assert len(rbm.history_["reconstruction_error"]) == 4
    assert rbm.history_["reconstruction_error"][-1] < rbm.history_["reconstruction_error"][0]


def sklearn_pseudo_likelihood(V, W, b, c, flip):
    """scikit-learn's BernoulliRBM.score_samples with the flipped unit of each row given."""
    V = f64(V)
    V_ = V.copy()
    rows = np.arange(len(V))
    V_[rows, flip] = 1 - V_[rows, flip]
    fe = free_energy_closed_form(V, W, b, c)
    fe_ = free_energy_closed_form(V_, W, b, c)
    return -V.shape[1] * np.logaddexp(0, -(fe_ - fe))


def test_score_samples_is_sklearn_pseudo_likelihood(mnist):
    X, _ = mnist
    rbm = RBM(24, n_iter=2, random_state=7, dtype="float64").fit(X[:500])
    V = f64(X[9000:9300])
    got = rbm.score_samples(V)
    assert got.shape == (300,) and np.all(got <= 0)
    W, b, c = rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_
    candidates = np.stack([sklearn_pseudo_likelihood(V, W, b, c, np.full(len(V), k)) for k in range(784)], axis=1)
    err = np.abs(candidates - got[:, None])
    flipped = np.argmin(err, axis=1)
    assert np.all(err[np.arange(len(V)), flipped] < 1e-8 * (1 + np.abs(got))), "no flipped unit reproduces the value"
    assert len(np.unique(flipped)) > 100, "the flipped unit is drawn at random per sample"
    # Reproducible with an int random_state, for the same estimator and for a refitted clone.
    np.testing.assert_array_equal(rbm.score_samples(V), got)
    np.testing.assert_array_equal(clone(rbm).fit(X[:500]).score_samples(V), got)


@pytest.mark.parametrize("random_state", [0, 123])
def test_score_samples_equals_bernoulli_rbm_with_the_same_parameters(mnist, random_state):
    """Same weights and random_state: the same flipped units, so the same scores as BernoulliRBM."""
    X, _ = mnist
    V = X[9000:9400]
    rbm = RBM(32, n_iter=1, random_state=random_state, dtype="float64").fit(X[:300])
    sk = BernoulliRBM(n_components=32, random_state=random_state).fit(X[:20])
    sk.components_, sk.intercept_hidden_, sk.intercept_visible_ = rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_
    np.testing.assert_allclose(rbm.score_samples(V), sk.score_samples(V), rtol=1e-6, atol=1e-6)
    # A RandomState instance advances, as scikit-learn's does: the second call flips other units.
    rbm.random_state, sk.random_state = np.random.RandomState(5), np.random.RandomState(5)
    first = rbm.score_samples(V)
    np.testing.assert_allclose(first, sk.score_samples(V), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rbm.score_samples(V), sk.score_samples(V), rtol=1e-6, atol=1e-6)
    assert not np.array_equal(rbm.score_samples(V), first)


def test_sklearn_rbm_logistic_pipeline_clone_and_grid_search():
    """scikit-learn's "Restricted Boltzmann Machine features for digit classification" example with
    deepgm.RBM in place of BernoulliRBM (without the nudged copies of the data, to stay fast)."""
    X, y = load_digits(return_X_y=True)
    X = minmax_scale(np.asarray(X, "float32"), feature_range=(0, 1))
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    # The example's tol=1 makes newton-cg stop before learning anything with scikit-learn 1.9 (for
    # BernoulliRBM features too), so the solver runs with its default tolerance here.
    logistic = LogisticRegression(solver="newton-cg")
    rbm = RBM(random_state=0, verbose=False)
    pipe = Pipeline(steps=[("rbm", rbm), ("logistic", logistic)])
    rbm.learning_rate = 0.06
    rbm.n_iter = 10
    rbm.n_components = 100
    logistic.C = 6000
    pipe.fit(X_train, y_train)
    score = pipe.score(X_test, y_test)
    reference = Pipeline(
        [("rbm", BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10, random_state=0)), ("logistic", clone(logistic))]
    )
    assert score > 0.85 and score > reference.fit(X_train, y_train).score(X_test, y_test) - 0.03
    cloned = clone(pipe)
    assert cloned.get_params()["rbm__n_components"] == 100 and not hasattr(cloned.named_steps["rbm"], "components_")
    grid = GridSearchCV(pipe, {"rbm__n_components": [16, 48], "logistic__C": [100.0, 6000.0]}, cv=2)
    grid.fit(X_train[:600], y_train[:600])
    assert grid.best_params_["rbm__n_components"] in (16, 48)
    assert grid.best_estimator_.named_steps["rbm"].components_.shape[1] == 64
    assert grid.score(X_test, y_test) > 0.7


def test_sparse_input_gives_the_same_model(mnist_tiny):
    X, _ = mnist_tiny
    Xs = sp.csr_matrix(X)
    dense = RBM(16, n_iter=2, random_state=0).fit(X)
    sparse = RBM(16, n_iter=2, random_state=0).fit(Xs)
    np.testing.assert_array_equal(dense.components_, sparse.components_)
    np.testing.assert_array_equal(dense.transform(X), sparse.transform(Xs))
    np.testing.assert_array_equal(dense.score_samples(X), dense.score_samples(Xs))
    np.testing.assert_allclose(dense.free_energy(sp.csc_matrix(X)), dense.free_energy(X))
    RBM(16, random_state=0).partial_fit(sp.coo_matrix(X))


def test_float64_dtype(mnist_tiny):
    X, _ = mnist_tiny
    rbm = RBM(16, n_iter=1, random_state=0, dtype="float64").fit(X)
    for name in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
        assert getattr(rbm, name).dtype == np.float64, name
    # Outputs follow the input's dtype (scikit-learn's convention), whatever the model computes in.
    assert rbm.transform(X).dtype == np.float32 and rbm.reconstruct(X).dtype == np.float32
    X64 = X.astype(np.float64)
    assert rbm.transform(X64).dtype == np.float64 and rbm.reconstruct(X64).dtype == np.float64
    rbm32 = RBM(16, n_iter=1, random_state=0).fit(X)
    assert rbm32.components_.dtype == np.float32
    assert rbm32.transform(X64).dtype == np.float64 and rbm32.transform((X > 0.5).astype(np.int64)).dtype == np.float64
    np.testing.assert_allclose(rbm32.transform(X64), rbm32.transform(X), rtol=1e-6)


@pytest.mark.parametrize("persistent, k", [(False, 1), (True, 2)])
def test_same_model_for_any_number_of_threads(mnist_small, persistent, k):
    X, _ = mnist_small
    fits = [RBM(32, persistent=persistent, k=k, n_iter=2, random_state=3, n_jobs=n).fit(X) for n in (1, 2)]
    for name in ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_"):
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name), err_msg=name)
    np.testing.assert_array_equal(fits[0].sample(4, n_steps=5), fits[1].sample(4, n_steps=5))


def test_same_random_state_same_model_and_samples(mnist_tiny):
    X, _ = mnist_tiny
    a = RBM(16, n_iter=2, random_state=5).fit(X)
    b = RBM(16, n_iter=2, random_state=5).fit(X)
    c = RBM(16, n_iter=2, random_state=6).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert not np.array_equal(a.components_, c.components_)
    np.testing.assert_array_equal(a.gibbs(X[:10]), b.gibbs(X[:10]))
    # A numpy Generator is accepted.
    RBM(16, n_iter=1, random_state=np.random.default_rng(0)).fit(X)


def test_memory_mapped_float64_input(tmp_path, mnist_tiny):
    """A float64 numpy.memmap (np.load(..., mmap_mode="r")) works like the same data in memory."""
    X = f64(mnist_tiny[0])
    np.save(tmp_path / "x.npy", X)
    M = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = RBM(8, n_iter=2, random_state=0).fit(X)
    b = RBM(8, n_iter=2, random_state=0).fit(M)
    np.testing.assert_array_equal(a.components_, b.components_)
    for method in ("transform", "free_energy", "reconstruct", "score_samples"):
        np.testing.assert_array_equal(getattr(a, method)(M), getattr(a, method)(X), err_msg=method)


def test_pickle_round_trip(rbm64, mnist_tiny):
    X, _ = mnist_tiny
    again = pickle.loads(pickle.dumps(rbm64))
    np.testing.assert_array_equal(again.transform(X), rbm64.transform(X))
    np.testing.assert_array_equal(again.free_energy(X), rbm64.free_energy(X))


# --------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "params, name",
    [
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"visible": "binary"}, "visible"),
        ({"hidden": "poisson"}, "hidden"),
        ({"k": 0}, "k"),
        ({"batch_size": 0}, "batch_size"),
        ({"n_iter": 0}, "n_iter"),
        ({"momentum": 1.5}, "momentum"),
        ({"final_momentum": -0.1}, "final_momentum"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"dtype": "float16"}, "dtype"),
        ({"persistent": "yes"}, "persistent"),
    ],
)
def test_invalid_hyperparameters(params, name, mnist_tiny):
    X, _ = mnist_tiny
    with pytest.raises((ValueError, TypeError), match=name):
        RBM(**params).fit(X[:50])
    with pytest.raises((ValueError, TypeError), match=name):
        RBM(**params).partial_fit(X[:50])


def test_bad_data(rbm64, mnist_tiny):
    X, _ = mnist_tiny
    X_nan = X[:50].copy()
    X_nan[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RBM(4).fit(X_nan)
    X_inf = X[:50].copy()
    X_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="X"):
        RBM(4).fit(X_inf)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RBM(4).fit(X[:50] * 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RBM(4).fit(X[:50] - 0.5)
    with pytest.raises(ValueError, match="2D"):
        RBM(4).fit(X[0])  # 1-D (scikit-learn's message, which does not name X)
    with pytest.raises(ValueError):
        RBM(4).fit(np.empty((0, 784)))
    for method in (rbm64.transform, rbm64.score_samples, rbm64.free_energy, rbm64.reconstruct, rbm64.gibbs):
        with pytest.raises(ValueError, match="features"):
            method(X[:5, :100])
        with pytest.raises(ValueError, match="NaN"):
            method(X_nan[:5])
    # The likelihood methods and Gibbs sampling (whose input is a visible state) refuse values outside
    # [0, 1]; transform and reconstruct accept them (p(h | v) is defined for any real v).
    for method in (rbm64.score_samples, rbm64.free_energy, rbm64.gibbs):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            method(X[:5] + 1)
    outside = X[:5] * 1.2 - 0.1
    H = rbm64.transform(outside)
    expected = 1 / (1 + np.exp(-(outside.astype(np.float64) @ rbm64.components_.T + rbm64.intercept_hidden_)))
    np.testing.assert_allclose(H, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(rbm64.reconstruct(outside)))
    with pytest.raises(ValueError, match="features|init"):
        rbm64.sample(init=X[:5, :100], n_steps=1)
    with pytest.raises((ValueError, TypeError), match="n_samples"):
        rbm64.sample(n_samples=0)
    with pytest.raises(ValueError, match="method"):
        rbm64.log_partition(method="exact-ish")
    with pytest.raises(ValueError):
        rbm64.log_partition(method="exact")  # 64 hidden units: too many to enumerate


def test_methods_need_a_fitted_model(mnist_tiny):
    from sklearn.exceptions import NotFittedError

    X, _ = mnist_tiny
    for method in ("transform", "score_samples", "free_energy", "reconstruct", "gibbs"):
        with pytest.raises(NotFittedError):
            getattr(RBM(4), method)(X[:5])


def test_gaussian_units_accept_real_values_and_score_by_free_energy(rng):
    X = rng.standard_normal((60, 5)) * 3
    rbm = RBM(4, visible="gaussian", n_iter=2, random_state=0).fit(X)
    assert rbm.transform(X).shape == (60, 4)
    # Flipping a unit means nothing for Gaussian units: the score is the unnormalised log-density.
    np.testing.assert_array_equal(rbm.score_samples(X), -rbm.free_energy(X))
