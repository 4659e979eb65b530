"""deepgm._core activation functions (values and derivatives against stable float64 closed forms,
including extreme inputs) and the random samplers sigmoid_bernoulli, bernoulli and gaussian
(statistics, consistency, reproducibility and thread-count independence)."""

from __future__ import annotations

import _oracles as ref
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from deepgm import _core

ACTS = ref.ACTIVATIONS
DTYPES = [np.float32, np.float64]
EXTREMES = np.array([-1e4, -1e3, -700.0, -100.0, -80.0, -30.0, -1e-8, 0.0, 1e-8, 30.0, 80.0, 100.0, 700.0, 1e3, 1e4])
GRID = np.concatenate([np.linspace(-40.0, 40.0, 8001), EXTREMES])
# Mixed absolute/relative tolerance |got - want| <= TOL * (1 + |want|).
TOL = {np.float32: 4e-7, np.float64: 1e-12}
# Pure relative tolerance of the function values where the value is a normal number of the dtype.
REL = {np.float32: 4e-7, np.float64: 1e-14}


def mixed_err(got, want):
    return ref.max_rel_err(got, want)


# --------------------------------------------------------------------------------------------------
# Activations


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTS)
def test_values_match_float64_oracle(name, dtype):
    x = GRID.astype(dtype)
    got = _core.activation(x, name)
    assert got.dtype == dtype and got.shape == x.shape
    assert np.all(np.isfinite(got)), f"{name}: non-finite output for finite input"
    want = ref.activation(x, name)  # oracle evaluated at the (rounded) input actually passed
    assert mixed_err(got, want) <= TOL[dtype], f"{name} {dtype.__name__}: {mixed_err(got, want):.3e}"
    # Relative accuracy where the true value is a normal number well above underflow.
    big = np.abs(want) > 1e3 * np.finfo(dtype).tiny
    rel = np.abs(got[big].astype(np.float64) - want[big]) / np.abs(want[big])
    assert rel.max() <= REL[dtype], f"{name} {dtype.__name__}: relative error {rel.max():.3e} at {x[big][rel.argmax()]}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTS)
def test_derivatives_match_float64_oracle(name, dtype):
    x = GRID.astype(dtype)
    if name == "relu":
        x = x[x != 0]  # the kink: its convention is checked separately
    got = _core.activation(x, name, derivative=True)
    assert got.dtype == dtype and got.shape == x.shape
    assert np.all(np.isfinite(got))
    want = ref.activation_derivative(x, name)
    assert mixed_err(got, want) <= TOL[dtype], f"{name}' {dtype.__name__}: {mixed_err(got, want):.3e}"


def test_relu_derivative_at_zero_is_zero_or_one():
    for dtype in DTYPES:
        d = _core.activation(np.zeros(3, dtype), "relu", derivative=True)
        assert np.all((d == 0) | (d == 1)) and np.all(d == d[0])


@pytest.mark.parametrize("name", ACTS)
def test_derivative_is_derivative_of_value(name):
    # Central differences of the kernel's own float64 values agree with its derivative.
    x = np.linspace(-6.0, 6.0, 241)
    x = x[np.abs(x) > 1e-3]  # away from the relu kink
    h = 1e-6
    fd = (_core.activation(x + h, name) - _core.activation(x - h, name)) / (2 * h)
    d = _core.activation(x, name, derivative=True)
    np.testing.assert_allclose(d, fd, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_inputs(dtype):
    big = np.array([1e4, -1e4, 100.0, -100.0, 80.0, -80.0], dtype)
    sp = _core.activation(big, "softplus")
    assert sp[0] == dtype(1e4), "softplus(1e4) = 1e4 exactly (no overflow)"
    assert sp[2] == dtype(100.0) and sp[4] == dtype(80.0)
    assert np.all(np.isfinite(sp)) and np.all(sp >= 0)
    # softplus(-1e4) = e^-10000: zero, or at most a value negligible next to the smallest normal
    assert 0 <= sp[1] <= 10 * np.finfo(dtype).tiny
    s = _core.activation(big, "sigmoid")
    assert np.all((s >= 0) & (s <= 1))
    assert s[0] == 1.0 and s[2] == 1.0 and s[4] == 1.0
    assert s[1] <= 1e-38 and s[3] <= 1e-38
    np.testing.assert_allclose(float(s[5]), np.exp(-80.0), rtol=1e-6)  # sigmoid(-80) ~ e^-80, no flush
    t = _core.activation(big, "tanh")
    assert np.array_equal(t, np.array([1, -1, 1, -1, 1, -1], dtype))
    for name in ACTS:
        for deriv in (False, True):
            out = _core.activation(big, name, derivative=deriv)
            assert np.all(np.isfinite(out)), (name, deriv)
    # Saturated derivatives are zero-ish, not NaN.
    for name in ("sigmoid", "tanh"):
        d = _core.activation(big, name, derivative=True)
        assert np.all(d >= 0) and np.all(d <= 1e-30)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_in_unit_interval_and_monotone(dtype):
    x = np.sort(np.concatenate([GRID, np.linspace(-1e4, 1e4, 10001)])).astype(dtype)
    s = _core.activation(x, "sigmoid")
    assert np.all((s >= 0) & (s <= 1))
    assert np.all(np.diff(s.astype(np.float64)) >= 0), "sigmoid must be non-decreasing"
    # symmetry sigmoid(-x) = 1 - sigmoid(x)
    np.testing.assert_allclose(_core.activation(-x, "sigmoid"), 1 - s, atol=2 * TOL[dtype])


@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (2, 3, 4), (0,), (4, 0)])
def test_shape_dtype_preserved_and_input_untouched(shape):
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        x = rng.standard_normal(shape).astype(dtype)
        x0 = x.copy()
        for name in ACTS:
            for deriv in (False, True):
                out = _core.activation(x, name, derivative=deriv)
                assert isinstance(out, np.ndarray)
                assert out.shape == x.shape and out.dtype == dtype
                assert out is not x and not np.shares_memory(out, x)
                want = (ref.activation_derivative if deriv else ref.activation)(x, name)
                if name == "relu" and deriv:
                    want = np.where(x == 0, out, want)
                assert mixed_err(out, want) <= TOL[dtype]
        assert np.array_equal(x, x0)


def test_identity_values_and_derivative():
    x = np.linspace(-2, 2, 11)
    np.testing.assert_array_equal(_core.activation(x, "identity"), x)
    np.testing.assert_array_equal(_core.activation(x, "identity", derivative=True), np.ones_like(x))


@pytest.mark.parametrize("name", ACTS)
def test_activation_thread_count_independent(name):
    x = np.random.default_rng(0).standard_normal(3 * 4096 + 77).astype(np.float32) * 10
    outs = [_core.activation(x, name, n_jobs=j) for j in (1, 2, 4)]
    for o in outs[1:]:
        assert np.array_equal(outs[0], o)


@st.composite
def float_array(draw, lo=-1e4, hi=1e4):
    dtype = draw(st.sampled_from(DTYPES))
    width = 32 if dtype is np.float32 else 64
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    x = draw(hnp.arrays(dtype, shape, elements=st.floats(lo, hi, allow_nan=False, width=width)))
    return x


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=float_array(), name=st.sampled_from(ACTS), deriv=st.booleans())
def test_property_matches_oracle_and_finite(x, name, deriv):
    dtype = x.dtype.type
    out = _core.activation(x, name, derivative=deriv)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.all(np.isfinite(out))
    want = (ref.activation_derivative if deriv else ref.activation)(x, name)
    if name == "relu" and deriv:
        want = np.where(x == 0, out, want)
    assert mixed_err(out, want) <= TOL[dtype]
    if name == "sigmoid" and not deriv:
        assert np.all((out >= 0) & (out <= 1))
    if name == "softplus" and not deriv:
        assert np.all(out >= 0) and np.all(out.astype(np.float64) >= x.astype(np.float64))


# --------------------------------------------------------------------------------------------------
# bernoulli


def within_5se(freq, p, reps):
    se = np.sqrt(np.asarray(p) * (1 - np.asarray(p)) / reps)
    return np.abs(freq - p) <= 5 * se + 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_frequencies(dtype):
    ps = np.linspace(0.0, 1.0, 41)
    reps = 5000
    probs = np.tile(ps, (reps, 1)).astype(dtype)  # (reps, 41), spans many 4096-element chunks
    s = _core.bernoulli(probs, seed=3, step=1)
    assert s.shape == probs.shape and s.dtype == dtype
    assert np.all((s == 0) | (s == 1))
    freq = s.mean(axis=0, dtype=np.float64)
    p32 = probs[0].astype(np.float64)
    assert np.all(within_5se(freq, p32, reps)), f"frequencies {freq} vs {p32}"
    assert freq[0] == 0.0 and freq[-1] == 1.0, "p = 0 never fires, p = 1 always fires"
    # The same test rejects a wrong probability: every frequency is far from p + 0.05.
    shifted = p32 + 0.05
    interior = (p32 > 0) & (shifted < 1)
    assert not np.any(within_5se(freq[interior], shifted[interior], reps))
    assert not np.any(within_5se(freq[interior], (p32 - 0.05)[interior].clip(0, 1), reps)[p32[interior] > 0.05])


def test_bernoulli_draws_are_independent():
    n = 3 * 4096 * 10
    s = _core.bernoulli(np.full(n, 0.5), seed=11)
    se = 1 / np.sqrt(n)
    assert abs(s.mean() - 0.5) < 5 * 0.5 * se
    x = s - s.mean()
    lag1 = np.dot(x[:-1], x[1:]) / np.dot(x, x)
    assert abs(lag1) < 5 * se, f"lag-1 autocorrelation {lag1}"
    # Each 4096-element chunk reads its own stream: chunks must not repeat each other.
    chunks = s[: 4 * 4096].reshape(4, 4096)
    for i in range(4):
        for j in range(i + 1, 4):
            agree = np.mean(chunks[i] == chunks[j])
            assert abs(agree - 0.5) < 5 * 0.5 / np.sqrt(4096), (i, j, agree)


def test_bernoulli_reproducibility_and_keys():
    probs = np.random.default_rng(0).random((30, 500))
    a = _core.bernoulli(probs, seed=5, step=2)
    assert np.array_equal(a, _core.bernoulli(probs, seed=5, step=2))
    assert not np.array_equal(a, _core.bernoulli(probs, seed=6, step=2))
    assert not np.array_equal(a, _core.bernoulli(probs, seed=5, step=3))
    for j in (1, 2, 4):
        assert np.array_equal(a, _core.bernoulli(probs, seed=5, step=2, n_jobs=j))


def test_bernoulli_shapes_and_input_untouched():
    for shape in [(), (5,), (4, 6), (2, 3, 4)]:
        p = np.full(shape, 0.3, np.float32)
        p0 = p.copy()
        s = _core.bernoulli(p, seed=1)
        assert s.shape == shape and s.dtype == np.float32
        assert np.array_equal(p, p0)


def test_bernoulli_rejects_probabilities_outside_unit_interval():
    for bad in (-0.1, 1.5, np.nan):
        with pytest.raises(ValueError):
            _core.bernoulli(np.array([0.2, bad]), seed=0)


# --------------------------------------------------------------------------------------------------
# sigmoid_bernoulli


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_bernoulli_consistency(dtype):
    rng = np.random.default_rng(2)
    rows, cols = 37, 300  # 11100 values: chunk boundaries fall mid-row
    pre = (rng.standard_normal((rows, cols)) * 4).astype(dtype)
    bias = np.linspace(-3, 3, cols).astype(dtype)
    pre0, bias0 = pre.copy(), bias.copy()
    probs, samples = _core.sigmoid_bernoulli(pre, bias, seed=9, step=4)
    assert probs.shape == samples.shape == (rows, cols)
    assert probs.dtype == samples.dtype == dtype
    assert np.array_equal(pre, pre0) and np.array_equal(bias, bias0)
    want = ref.sigmoid(pre.astype(dtype) + bias.astype(dtype))  # the sum is taken in the array dtype
    assert np.max(np.abs(probs - want)) <= (1e-6 if dtype is np.float32 else 1e-14)
    assert np.all((samples == 0) | (samples == 1))
    # Samples are exactly bernoulli(probs) with the same stream.
    assert np.array_equal(samples, _core.bernoulli(probs, seed=9, step=4))
    # Frequencies match the probabilities on aggregate.
    assert abs(samples.mean() - probs.mean()) < 5 * np.sqrt(0.25 / samples.size)


def test_sigmoid_bernoulli_extreme_and_statistics():
    pre = np.array([[-1e4, 1e4, 0.0]] * 20000)
    probs, samples = _core.sigmoid_bernoulli(pre, np.zeros(3), seed=1)
    assert np.all(probs[:, 0] == 0.0) and np.all(probs[:, 1] == 1.0) and np.all(probs[:, 2] == 0.5)
    assert np.all(samples[:, 0] == 0) and np.all(samples[:, 1] == 1)
    assert within_5se(samples[:, 2].mean(), 0.5, 20000)


def test_sigmoid_bernoulli_reproducibility_and_thread_count():
    rng = np.random.default_rng(3)
    pre = rng.standard_normal((64, 500)).astype(np.float32)
    bias = rng.standard_normal(500).astype(np.float32)
    p, s = _core.sigmoid_bernoulli(pre, bias, seed=7, step=1)
    for j in (1, 2, 4):
        p2, s2 = _core.sigmoid_bernoulli(pre, bias, seed=7, step=1, n_jobs=j)
        assert np.array_equal(p, p2) and np.array_equal(s, s2)
    assert not np.array_equal(s, _core.sigmoid_bernoulli(pre, bias, seed=8, step=1)[1])
    assert not np.array_equal(s, _core.sigmoid_bernoulli(pre, bias, seed=7, step=2)[1])


# --------------------------------------------------------------------------------------------------
# gaussian


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_moments(dtype):
    n = 200_000
    mean = np.full(n, 2.0, dtype)
    scale = np.full(n, 3.0, dtype)
    out, eps = _core.gaussian(mean, scale, seed=5, step=2)
    assert out.shape == eps.shape == (n,) and out.dtype == eps.dtype == dtype
    e = eps.astype(np.float64)
    m, v = e.mean(), e.var()
    kurt = np.mean((e - m) ** 4) / v**2
    skew = np.mean((e - m) ** 3) / v**1.5
    assert abs(m) < 5 / np.sqrt(n), m
    assert abs(v - 1) < 5 * np.sqrt(2 / n), v
    assert abs(skew) < 5 * np.sqrt(6 / n), skew
    assert abs(kurt - 3) < 5 * np.sqrt(24 / n), kurt
    o = out.astype(np.float64)
    assert abs(o.mean() - 2) < 5 * 3 / np.sqrt(n)
    assert abs(o.var() - 9) < 5 * 9 * np.sqrt(2 / n)
    # Distribution shape: Kolmogorov-Smirnov against N(0, 1).
    assert stats.kstest(e, "norm").pvalue > 1e-4
    # The returned sample is exactly mean + scale * eps in the array dtype.
    assert np.array_equal(out, mean + scale * eps)


def test_gaussian_elementwise_and_scalar_scale():
    rng = np.random.default_rng(4)
    for dtype in DTYPES:
        mean = rng.standard_normal((50, 170)).astype(dtype)
        scale = rng.random((50, 170)).astype(dtype) + 0.1
        out, eps = _core.gaussian(mean, scale, seed=1, step=0)
        assert np.array_equal(out, mean + scale * eps)
        # One-element scale broadcasts, and the noise does not depend on the scale's shape.
        out1, eps1 = _core.gaussian(mean, np.array([0.5], dtype), seed=1, step=0)
        assert np.array_equal(eps1, eps)
        assert np.array_equal(out1, mean + dtype(0.5) * eps1)
        full, _ = _core.gaussian(mean, np.full(mean.shape, 0.5, dtype), seed=1, step=0)
        assert np.array_equal(out1, full)
        # Zero scale returns the mean itself.
        out0, _ = _core.gaussian(mean, np.zeros(1, dtype), seed=1)
        assert np.array_equal(out0, mean)


def test_gaussian_reproducibility_and_thread_count():
    mean = np.zeros((40, 700))
    scale = np.ones(1)
    out, eps = _core.gaussian(mean, scale, seed=3, step=9)
    for j in (1, 2, 4):
        o2, e2 = _core.gaussian(mean, scale, seed=3, step=9, n_jobs=j)
        assert np.array_equal(out, o2) and np.array_equal(eps, e2)
    assert not np.array_equal(eps, _core.gaussian(mean, scale, seed=4, step=9)[1])
    assert not np.array_equal(eps, _core.gaussian(mean, scale, seed=3, step=10)[1])
    # chunks of the stream do not repeat
    e = eps.reshape(-1)
    assert abs(np.corrcoef(e[:4096], e[4096:8192])[0, 1]) < 5 / np.sqrt(4096)


def test_gaussian_scale_shape_mismatch():
    with pytest.raises(ValueError, match="scale"):
        _core.gaussian(np.zeros((3, 4)), np.ones((4,)), seed=0)
    with pytest.raises(ValueError, match="scale"):
        _core.gaussian(np.zeros((3, 4)), np.ones((4, 3)), seed=0)
