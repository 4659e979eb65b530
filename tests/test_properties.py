"""Property tests (hypothesis) of the RBM and VAE kernels of deepgm._core: random shapes, float32 and
float64, and extreme values (weights and biases from 1e-4 up to near the largest pre-activations the
dtype holds; logits and log-variances far into saturation) never produce NaN or inf where the maths is
finite, and agree with a float64 oracle computed from the definitions on the same inputs.

The agreement is judged against a rigorous forward error bound (running error analysis: each dot
product of n terms of total magnitude M is off by at most about n * eps * M, activations are
1-Lipschitz), so huge values are held to the precision their magnitude allows and moderate ones to
nearly full precision. (test_core_activations.py and test_core_linalg.py do the same for the
activations and GEMM; test_core_mlp.py for the MLP losses.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.special import expit, log_expit

from deepgm import _core

# The oracles' magnitude estimates may overflow for the most extreme draws: those are then excluded by assume().
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}
LOG_VAR_MIN, LOG_VAR_MAX = -30.0, 20.0  # the encoder's clip of log-variances (rust/vae.rs)


def f64(a):
    return np.asarray(a, dtype=np.float64)


def softplus(x):
    return np.logaddexp(0.0, x)


@st.composite
def scaled(draw, shape, dtype, max_exp):
    """Normal draws times 10^e, e drawn in [-4, max_exp]; some entries exactly 0."""
    e = draw(st.floats(-4, max_exp))
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)
    a = r.standard_normal(shape) * 10.0**e
    a[r.random(shape) < 0.1] = 0.0
    return a.astype(dtype)


def max_exp(dtype):
    """Exponents of weights that keep a dozen-term dot product far from overflow."""
    return 35.0 if dtype is np.float32 else 300.0


def fits(dtype, *magnitudes, margin=1e3):
    """Whether every magnitude stays below the dtype's largest value by ``margin``."""
    return all(float(np.max(m, initial=0.0)) < float(np.finfo(dtype).max) / margin for m in magnitudes)


# --------------------------------------------------------------------------------------------------
# RBM kernels


@st.composite
def rbm_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(1, 6))
    nv = draw(st.integers(1, 12))
    nh = draw(st.integers(1, 8))
    W = draw(scaled((nh, nv), dtype, max_exp(dtype)))
    b = draw(scaled((nv,), dtype, max_exp(dtype)))
    c = draw(scaled((nh,), dtype, max_exp(dtype)))
    seed = draw(st.integers(0, 2**32 - 1))
    v = (np.random.default_rng(seed).random((n, nv)) < 0.5).astype(dtype)
    return dtype, v, W, b, c


def pre_bound(v, W, c, eps):
    """(pre-activations v W^T + c in float64, their magnitude |v| |W|^T + |c|, their error bound)."""
    v, W, c = f64(v), f64(W), f64(c)
    pre = v @ W.T + c
    mag = np.abs(v) @ np.abs(W).T + np.abs(c)
    return pre, mag, (W.shape[1] + 2) * eps * mag


@SETTINGS
@given(case=rbm_case(), hidden=st.sampled_from(["bernoulli", "gaussian"]))
def test_rbm_hidden_finite_and_matches_oracle(case, hidden):
    dtype, v, W, b, c = case
    pre, mag, err = pre_bound(v, W, c, EPS[dtype])
    assume(fits(dtype, mag))
    got = f64(_core.rbm_hidden(v, W, c, hidden=hidden))
    assert got.dtype == np.float64 and np.all(np.isfinite(got))
    if hidden == "bernoulli":
        assert np.all((got >= 0) & (got <= 1))
        want, bound = expit(pre), np.minimum(1.0, 0.25 * err) + 4 * EPS[dtype]
    else:
        want, bound = pre, err + EPS[dtype] * np.abs(pre)
    assert np.all(np.abs(got - want) <= 4 * bound)


@SETTINGS
@given(case=rbm_case(), visible=st.sampled_from(["bernoulli", "gaussian"]))
def test_rbm_visible_finite_and_matches_oracle(case, visible):
    dtype, v, W, b, c = case
    h = (np.random.default_rng(0).random((v.shape[0], W.shape[0])) < 0.5).astype(dtype)
    pre, mag, err = pre_bound(h, W.T.copy(), b, EPS[dtype])
    assume(fits(dtype, mag))
    got = f64(_core.rbm_visible(h, W, b, visible=visible))
    assert np.all(np.isfinite(got))
    if visible == "bernoulli":
        want, bound = expit(pre), np.minimum(1.0, 0.25 * err) + 4 * EPS[dtype]
    else:
        want, bound = pre, err + EPS[dtype] * np.abs(pre)
    assert np.all(np.abs(got - want) <= 4 * bound)


def free_energy64(v, W, b, c, visible, hidden):
    v, W, b, c = f64(v), f64(W), f64(b), f64(c)
    x = v @ W.T
    if hidden == "bernoulli":
        h_term = -softplus(x + c).sum(axis=1)
    else:
        h_term = -(x @ c) - 0.5 * (x**2).sum(axis=1) - 0.5 * W.shape[0] * math.log(2 * math.pi)
    v_term = -(v @ b) if visible == "bernoulli" else 0.5 * ((v - b) ** 2).sum(axis=1)
    return v_term + h_term


@SETTINGS
@given(case=rbm_case(), visible=st.sampled_from(["bernoulli", "gaussian"]), hidden=st.sampled_from(["bernoulli", "gaussian"]))
def test_rbm_free_energy_finite_and_matches_oracle(case, visible, hidden):
    dtype, v, W, b, c = case
    eps = EPS[dtype]
    _, mag, err = pre_bound(v, W, c, eps)
    vb = np.abs(f64(v)) @ np.abs(f64(b)) if visible == "bernoulli" else 0.5 * ((np.abs(f64(v)) + np.abs(f64(b))) ** 2).sum(axis=1)
    assume(fits(dtype, mag, vb))
    if hidden == "gaussian":
        # |W v|^2 / 2: the squares must be representable in the kernel's dtype too
        with np.errstate(over="ignore"):
            assume(fits(dtype, mag**2))
    got = _core.rbm_free_energy(v, W, b, c, visible=visible, hidden=hidden)
    assert got.dtype == np.float64 and got.shape == (v.shape[0],) and np.all(np.isfinite(got))
    want = free_energy64(v, W, b, c, visible, hidden)
    if hidden == "bernoulli":  # softplus(pre) <= |pre| + log 2, each rounded in the kernel's dtype
        bound = err.sum(axis=1) + (W.shape[0] + W.shape[1] + 4) * eps * (mag.sum(axis=1) + W.shape[0] * math.log(2) + vb)
    else:
        bound = (W.shape[0] + W.shape[1] + 4) * eps * (mag.sum(axis=1) + (mag**2).sum(axis=1) + vb) + 2 * (mag * err).sum(axis=1)
    assert np.all(np.abs(got - want) <= 4 * bound + 1e-12 * np.abs(want))


@SETTINGS
@given(case=rbm_case())
def test_rbm_pseudo_likelihood_finite_nonpositive_and_matches_oracle(case):
    dtype, v, W, b, c = case
    eps = EPS[dtype]
    _, mag, err = pre_bound(v, W, c, eps)
    vb = np.abs(f64(v)) @ np.abs(f64(b))
    flip_mag = (np.abs(W).astype(np.float64).sum(axis=1) + mag.max(axis=1, keepdims=True)).max(axis=1)
    assume(fits(dtype, mag, vb, flip_mag))
    got = _core.rbm_pseudo_likelihood(v, W, b, c, seed=3)
    assert got.shape == (v.shape[0],) and np.all(np.isfinite(got)) and np.all(got <= 0)
    F = free_energy64(v, W, b, c, "bernoulli", "bernoulli")
    nv = v.shape[1]
    bound_F = err.sum(axis=1) + (W.shape[0] + nv + 4) * eps * (
        mag.sum(axis=1) + vb + np.abs(f64(b)).sum() + np.abs(f64(W)).sum() + W.shape[0] * math.log(2) + 1
    )
    for i in range(v.shape[0]):
        candidates = []
        for j in range(nv):
            flipped = v[i : i + 1].copy()
            flipped[0, j] = 1 - flipped[0, j]
            F_flip = free_energy64(flipped, W, b, c, "bernoulli", "bernoulli")[0]
            candidates.append(nv * log_expit(F_flip - F[i]))
        # one randomly chosen unit was flipped: the value is one of the candidates, to within the error bound
        assert min(abs(got[i] - cand) for cand in candidates) <= 8 * nv * bound_F[i] + 8 * nv * eps * (1 + abs(got[i]))


@SETTINGS
@given(case=rbm_case(), visible=st.sampled_from(["bernoulli", "gaussian"]), n_steps=st.integers(1, 3))
def test_rbm_gibbs_means_finite_and_in_range(case, visible, n_steps):
    dtype, v, W, b, c = case
    _, mag, _ = pre_bound(v, W, c, EPS[dtype])
    assume(fits(dtype, mag, np.abs(f64(W)).sum(axis=0) + np.abs(f64(b))))
    sample, mean = _core.rbm_gibbs(v, W, b, c, n_steps=n_steps, visible=visible, seed=1)
    assert sample.shape == v.shape == mean.shape and sample.dtype == mean.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(sample)) and np.all(np.isfinite(mean))
    if visible == "bernoulli":
        assert np.all((mean >= 0) & (mean <= 1)) and np.all((sample == 0) | (sample == 1))


@SETTINGS
@given(
    case=rbm_case(),
    visible=st.sampled_from(["bernoulli", "gaussian"]),
    k=st.integers(1, 2),
    persistent=st.booleans(),
    lr_exp=st.floats(-4, 0),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    weight_decay=st.sampled_from([0.0, 2e-4]),
)
def test_rbm_cd_step_updates_are_finite_and_bounded(case, visible, k, persistent, lr_exp, momentum, weight_decay):
    """One CD-k/PCD-k update from extreme parameters: every statistic is a mean of products of values
    in [0, 1] (Bernoulli units), so the step is bounded by the learning rate and nothing becomes NaN."""
    dtype, v, W, b, c = case
    if visible == "gaussian":
        assume(
            fits(
                dtype,
                np.abs(f64(b)) + np.abs(f64(W)).sum(axis=0),
                np.abs(f64(W)).sum(axis=1) * (np.abs(f64(b)) + np.abs(f64(W)).sum(axis=0)).max(),
            )
        )
    _, mag, _ = pre_bound(v, W, c, EPS[dtype])
    assume(fits(dtype, mag, np.abs(f64(W)).sum(axis=0) + np.abs(f64(b))))
    lr = 10.0**lr_exp
    params = [W.copy(), b.copy(), c.copy()]
    velocities = [np.zeros_like(p) for p in params]
    h_samples = np.zeros((v.shape[0], W.shape[0]), dtype) if persistent else None
    _core.rbm_cd_step(
        v,
        *params,
        *velocities,
        h_samples=h_samples,
        visible=visible,
        k=k,
        learning_rate=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=5,
        step=0,
    )
    for new, old in zip(params, (W, b, c)):
        assert np.all(np.isfinite(new))
    if visible == "bernoulli":  # |<v h>_data - <v h>_model| <= 1, |decay| = wd |W|
        step = np.abs(f64(params[0]) - f64(W))
        assert np.all(step <= lr * (1 + weight_decay * np.abs(f64(W))) * (1 + 1e-5) + 4 * EPS[dtype] * np.abs(f64(W)))
        assert np.all(np.abs(f64(params[2]) - f64(c)) <= lr * (1 + 1e-5) + 4 * EPS[dtype] * np.abs(f64(c)))


# --------------------------------------------------------------------------------------------------
# VAE kernels


@SETTINGS
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    n=st.integers(1, 6),
    k=st.integers(1, 5),
    mu_exp=st.floats(-4, 15),
    log_var=st.floats(-700, 700),
    spread=st.floats(0, 50),
    with_prior=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_gaussian_kl_finite_and_matches_oracle(dtype, n, k, mu_exp, log_var, spread, with_prior, seed):
    r = np.random.default_rng(seed)
    mu = (r.standard_normal((n, k)) * 10.0**mu_exp).astype(dtype)
    lv = np.clip(log_var + spread * r.standard_normal((n, k)), -700, 700).astype(dtype)
    prior = (r.standard_normal((n, k)) * 10.0**mu_exp).astype(dtype) if with_prior else None
    assume(fits(dtype, np.abs(f64(mu)), np.abs(f64(lv))))
    got = _core.gaussian_kl(mu, lv, prior) if with_prior else _core.gaussian_kl(mu, lv)
    p = f64(prior) if with_prior else 0.0
    want = 0.5 * np.sum((f64(mu) - p) ** 2 + np.exp(f64(lv)) - f64(lv) - 1, axis=1)
    assert got.dtype == np.float64 and got.shape == (n,) and np.all(np.isfinite(got)) and np.all(got >= 0)
    # mu - prior_mean may be formed in the inputs' dtype: errors relative to the terms' magnitude
    magnitude = np.sum((np.abs(f64(mu)) + np.abs(p)) ** 2 + np.exp(f64(lv)) + np.abs(f64(lv)) + 1, axis=1)
    assert np.all(np.abs(got - want) <= 8 * (k + 2) * EPS[dtype] * magnitude)


class Bounded:
    """Forward pass in float64 of float32/float64 parameters with a running bound on the error the
    kernel (computing in the parameters' dtype) can make: |kernel - oracle| <= err, elementwise."""

    ACTS = {"identity": lambda a: a, "relu": lambda a: np.maximum(a, 0), "tanh": np.tanh, "sigmoid": expit, "softplus": softplus}

    def __init__(self, eps):
        self.eps = eps

    def layers(self, a, err, weights, biases, acts):
        for W, b, act in zip(weights, biases, acts):
            W, b = f64(W), f64(b)
            pre = a @ W + b
            mag = np.abs(a) @ np.abs(W) + np.abs(b)
            err = err @ np.abs(W) + (W.shape[0] + 2) * self.eps * mag  # all activations are 1-Lipschitz
            a = self.ACTS[act](pre)
            err = err + 2 * self.eps * np.abs(a)
        return a, err


@st.composite
def vae_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n, d, k = draw(st.integers(1, 5)), draw(st.integers(1, 8)), draw(st.integers(1, 3))
    hidden = draw(st.lists(st.integers(1, 6), min_size=0, max_size=2))
    act = draw(st.sampled_from(["relu", "tanh", "sigmoid", "softplus"]))
    likelihood = draw(st.sampled_from(["bernoulli", "gaussian"]))
    enc_exp = draw(st.floats(-2, 3))  # encoder output layer: means up to ~1e3, log-variances past the clip
    dec_exp = draw(st.floats(-2, 15 if dtype is np.float32 else 100))  # decoder output layer: logits far into saturation
    seed = draw(st.integers(0, 2**32 - 1))
    r = np.random.default_rng(seed)

    def chain(widths, last_scale):
        ws, bs = [], []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            scale = last_scale if i == len(widths) - 2 else 1.0 / math.sqrt(a)
            ws.append((r.standard_normal((a, b)) * scale).astype(dtype))
            bs.append((r.standard_normal(b) * scale).astype(dtype))
        return ws, bs

    ew, eb = chain([d] + hidden + [2 * k], 10.0**enc_exp)
    dw, db = chain([k] + hidden[::-1] + [d], 10.0**dec_exp)
    acts = [act] * len(hidden) + ["identity"]
    x = (r.random((n, d)) < 0.5).astype(dtype) if likelihood == "bernoulli" else (r.standard_normal((n, d)) * 3).astype(dtype)
    eps = r.standard_normal((n, k)).astype(dtype)
    variance = draw(st.sampled_from([1.0, 0.01, 100.0]))
    return dtype, x, eps, (ew, eb, acts, dw, db, acts), k, likelihood, variance


@SETTINGS
@given(case=vae_case())
def test_vae_losses_finite_and_match_oracle(case):
    dtype, x, eps_noise, net, k, likelihood, variance = case
    ew, eb, acts, dw, db, _ = net
    tol = EPS[dtype]
    B = Bounded(tol)
    enc, enc_err = B.layers(f64(x), np.zeros(x.shape), ew, eb, acts)
    mu, log_var = enc[:, :k], np.clip(enc[:, k:], LOG_VAR_MIN, LOG_VAR_MAX)
    mu_err, lv_err = enc_err[:, :k], enc_err[:, k:]
    sigma = np.exp(0.5 * log_var)
    z = mu + sigma * f64(eps_noise)
    z_err = mu_err + sigma * np.abs(f64(eps_noise)) * (0.5 * lv_err + 4 * tol) * np.exp(0.5 * lv_err) + 4 * tol * np.abs(z)
    out, out_err = B.layers(z, z_err, dw, db, acts)
    assume(fits(dtype, np.abs(out) + out_err, np.abs(enc) + enc_err, margin=1e6))
    X = f64(x)
    if likelihood == "bernoulli":
        recon = (softplus(out) - X * out).sum(axis=1)
        recon_err = (out_err * np.maximum(1.0, np.abs(X))).sum(axis=1) + 4 * X.shape[1] * tol * (
            softplus(out) + np.abs(out) * (1 + np.abs(X))
        ).sum(axis=1)
    else:
        sq = (X - out) ** 2
        recon = 0.5 * sq.sum(axis=1) / variance + 0.5 * X.shape[1] * math.log(2 * math.pi * variance)
        assume(fits(dtype, sq / variance, margin=1e6))
        recon_err = ((np.abs(X - out) * out_err + out_err**2) / variance).sum(axis=1) + 8 * X.shape[1] * tol * (
            sq.sum(axis=1) / variance + 1
        )
    kl = 0.5 * np.sum(mu**2 + np.exp(log_var) - log_var - 1, axis=1)
    kl_err = np.sum(np.abs(mu) * mu_err + mu_err**2 + (np.exp(log_var) + 1) * lv_err * np.exp(lv_err), axis=1) + 8 * k * tol * (kl + 1)

    got_recon, got_kl = _core.vae_losses(x, *net, eps=eps_noise, n_latent=k, likelihood=likelihood, decoder_variance=variance)
    assert np.all(np.isfinite(got_recon)) and np.all(np.isfinite(got_kl))
    assert np.all(got_kl >= -1e-6 * (1 + kl))
    assert np.all(np.abs(got_recon - recon) <= 4 * recon_err + 1e-9 * np.abs(recon)), (got_recon, recon, recon_err)
    assert np.all(np.abs(got_kl - kl) <= 4 * kl_err + 1e-9 * np.abs(kl)), (got_kl, kl, kl_err)

    got_mu, got_lv = _core.vae_encode(x, *net, n_latent=k)
    assert np.all(np.isfinite(got_mu)) and np.all(np.isfinite(got_lv))
    assert np.all((got_lv >= LOG_VAR_MIN) & (got_lv <= LOG_VAR_MAX)), "log-variances are clipped"
    assert np.all(np.abs(f64(got_mu) - mu) <= 4 * mu_err + 4 * tol * np.abs(mu))
    decoded = _core.vae_decode(np.ascontiguousarray(z, dtype=dtype), *net, n_latent=k, likelihood=likelihood)
    assert np.all(np.isfinite(decoded))
    if likelihood == "bernoulli":
        assert np.all((decoded >= 0) & (decoded <= 1))


@SETTINGS
@given(case=vae_case(), n_importance=st.integers(1, 8))
def test_vae_log_likelihood_and_gradients_finite(case, n_importance):
    """The importance-weighted log-likelihood (a log-mean-exp over draws) and every gradient are finite
    for saturated logits and clipped log-variances."""
    dtype, x, eps_noise, net, k, likelihood, variance = case
    B = Bounded(EPS[dtype])
    enc, enc_err = B.layers(f64(x), np.zeros(x.shape), *net[:3])
    z = enc[:, :k] + np.exp(0.5 * np.clip(enc[:, k:], LOG_VAR_MIN, LOG_VAR_MAX)) * 4
    out, out_err = B.layers(z, np.zeros(z.shape), *net[3:])
    assume(fits(dtype, np.abs(out) + out_err, np.abs(enc) + enc_err, (f64(x) - out) ** 2 / variance, margin=1e8))
    ll = _core.vae_log_likelihood(x, *net, n_importance=n_importance, seed=2, n_latent=k, likelihood=likelihood, decoder_variance=variance)
    assert ll.shape == (x.shape[0],) and np.all(np.isfinite(ll))
    loss, enc_grads, dec_grads, _ = _core.vae_gradients(x, eps_noise, *net, n_latent=k, likelihood=likelihood, decoder_variance=variance)
    assert np.isfinite(loss)
    assert all(np.all(np.isfinite(g)) for pair in enc_grads + dec_grads for g in pair)
