"""deepgm._core.gemm against a float64 numpy oracle: transposes, alpha/beta, shapes, dtypes,
thread-count determinism, in-place semantics (no copies) and shape errors."""

from __future__ import annotations

import _oracles as ref
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deepgm import _core

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
TRANS = [(False, False), (True, False), (False, True), (True, True)]


def operands(m, k, n, trans_a, trans_b, dtype, seed, c_fill=None):
    rng = np.random.default_rng(seed)
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal(b_shape).astype(dtype)
    if c_fill is None:
        c = rng.standard_normal((m, n)).astype(dtype)
    else:
        c = np.full((m, n), c_fill, dtype=dtype)
    return a, b, c


def check_gemm(a, b, c, alpha, beta, trans_a, trans_b, n_jobs=None):
    dtype = c.dtype.type
    # The kernel computes with alpha and beta rounded to the array's dtype.
    alpha, beta = float(dtype(alpha)), float(dtype(beta))
    c0 = c.copy()
    want = ref.gemm(a, b, c0, alpha, beta, trans_a, trans_b)
    ret = _core.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, n_jobs=n_jobs)
    assert ret is None, "gemm works in place and returns None"
    assert c.dtype == dtype and c.shape == want.shape
    assert np.all(np.isfinite(c))
    err = float(np.linalg.norm(c.astype(np.float64) - want))
    scale = ref.gemm_error_scale(a, b, c0, alpha, beta, trans_a, trans_b)
    # plus an absolute term for results in the subnormal range (rounded or flushed to zero)
    k = a.shape[0] if trans_a else a.shape[1]
    floor = 4 * float(np.finfo(dtype).tiny) * np.sqrt(c.size) * (k + 1)
    assert err <= RTOL[dtype] * scale + floor, (
        f"{dtype.__name__} {a.shape}x{b.shape} ta={trans_a} tb={trans_b} alpha={alpha} beta={beta}: error {err:.3e} vs scale {scale:.3e}"
    )
    return c


SHAPES = [
    (1, 1, 1),
    (1, 7, 13),  # 1xN output
    (13, 7, 1),  # Nx1 output
    (1, 1, 9),
    (9, 1, 1),  # outer product / k = 1
    (5, 17, 3),
    (33, 31, 35),  # above the parallel threshold, odd sizes
    (64, 128, 32),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_gemm_matches_oracle_all_transposes(dtype, trans_a, trans_b, m, k, n):
    for i, (alpha, beta) in enumerate([(1.0, 0.0), (0.5, 1.0), (-2.0, 0.5), (1.0, -1.0), (3.0, 2.0)]):
        a, b, c = operands(m, k, n, trans_a, trans_b, dtype, seed=hash((m, k, n, i)) % 2**32)
        check_gemm(a, b, c, alpha, beta, trans_a, trans_b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_gemm_large(dtype, trans_a, trans_b):
    a, b, c = operands(300, 500, 200, trans_a, trans_b, dtype, seed=7)
    check_gemm(a, b, c, 1.5, -0.5, trans_a, trans_b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_b", [False, True])
def test_the_estimators_matmul_helper_matches_float64_numpy(dtype, trans_b):
    """``deepgm._base.matmul``, which estimators use instead of NumPy's ``@`` between kernel calls:
    a's dtype out (b converted to it), a non-contiguous a accepted, values as a float64 product."""
    from deepgm._base import matmul

    rng = np.random.default_rng(3)
    a = rng.standard_normal((70, 90)).astype(dtype)[:, ::2]  # a strided view, 45 columns
    b = rng.standard_normal((30, 45) if trans_b else (45, 30))  # float64 whatever a's dtype
    out = matmul(a, b, trans_b=trans_b, n_jobs=2)
    expected = a.astype(np.float64) @ (b.T if trans_b else b)
    assert out.dtype == dtype and out.shape == (70, 30)
    np.testing.assert_allclose(out, expected, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-12)


def test_gemm_exact_small_integers():
    # Products of small integers are exact in both dtypes: the result must be exact too.
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        a = rng.integers(-5, 6, size=(6, 4)).astype(dtype)
        b = rng.integers(-5, 6, size=(4, 5)).astype(dtype)
        c = rng.integers(-5, 6, size=(6, 5)).astype(dtype)
        want = 2.0 * (a.astype(np.int64) @ b.astype(np.int64)) + 3.0 * c.astype(np.int64)
        _core.gemm(a, b, c, alpha=2.0, beta=3.0)
        assert np.array_equal(c, want.astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_beta_zero_ignores_nan_and_inf_in_c(dtype, trans_a, trans_b):
    for fill in (np.nan, np.inf, -np.inf):
        a, b, c = operands(40, 30, 50, trans_a, trans_b, dtype, seed=11, c_fill=fill)
        out = check_gemm(a, b, c, 1.25, 0.0, trans_a, trans_b)
        assert np.all(np.isfinite(out))


def test_beta_nonzero_propagates_nan():
    # Only beta == 0 may ignore c; with beta != 0 a NaN in c is part of the result.
    a, b, c = operands(4, 3, 5, False, False, np.float64, seed=1)
    c[2, 3] = np.nan
    _core.gemm(a, b, c, beta=0.5)
    assert np.isnan(c[2, 3])
    assert np.isfinite(np.delete(c.reshape(-1), 2 * 5 + 3)).all()


def test_alpha_zero_scales_c_only():
    a, b, c = operands(8, 6, 7, False, True, np.float64, seed=2)
    c0 = c.copy()
    _core.gemm(a, b, c, alpha=0.0, beta=2.5, trans_b=True)
    np.testing.assert_allclose(c, 2.5 * c0, rtol=1e-15, atol=0)


def test_empty_inner_dimension():
    # k = 0: op(a) @ op(b) is the zero matrix.
    a = np.zeros((3, 0), np.float64)
    b = np.zeros((0, 4), np.float64)
    c = np.full((3, 4), np.nan)
    _core.gemm(a, b, c)
    assert np.array_equal(c, np.zeros((3, 4)))
    c = np.ones((3, 4))
    _core.gemm(a, b, c, beta=2.0)
    assert np.array_equal(c, np.full((3, 4), 2.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_bit_identical_for_any_n_jobs(dtype, trans_a, trans_b):
    a, b, c = operands(257, 301, 190, trans_a, trans_b, dtype, seed=5)
    results = []
    for n_jobs in (1, 2, 4, None, -1):
        out = c.copy()
        _core.gemm(a, b, out, alpha=0.7, beta=0.3, trans_a=trans_a, trans_b=trans_b, n_jobs=n_jobs)
        results.append(out)
    for out in results[1:]:
        assert np.array_equal(results[0], out)


def test_writes_into_the_array_passed_no_copy():
    # c is a C-contiguous view into a larger buffer: the result must land in the buffer itself.
    rng = np.random.default_rng(0)
    buf = np.zeros((10, 6), np.float32)
    c = buf[2:5]  # rows 2..4: a C-contiguous view, not a copy
    assert c.flags.c_contiguous and c.base is buf
    a_buf = rng.standard_normal((8, 4)).astype(np.float32)
    a = a_buf[1:4]  # C-contiguous view of a float32 array, accepted as is
    b = rng.standard_normal((4, 6)).astype(np.float32)
    c_id = id(c)
    _core.gemm(a, b, c)
    assert id(c) == c_id
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(buf[2:5], want, rtol=1e-5, atol=1e-5)
    assert np.all(buf[:2] == 0) and np.all(buf[5:] == 0), "only the view's rows are written"
    # Inputs are not modified.
    assert np.array_equal(a_buf[1:4], a)


def test_same_array_as_both_read_only_operands():
    a = np.random.default_rng(6).standard_normal((40, 30))
    c = np.zeros((40, 40))
    _core.gemm(a, a, c, trans_b=True)  # a @ a.T: a is only read, twice
    np.testing.assert_allclose(c, a @ a.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, c.T, rtol=1e-12, atol=1e-12)


def test_inputs_unchanged():
    a, b, c = operands(20, 15, 10, True, False, np.float64, seed=4)
    a0, b0 = a.copy(), b.copy()
    _core.gemm(a, b, c, trans_a=True, beta=1.0)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_inner_dimension_mismatch_is_value_error(trans_a, trans_b):
    a_shape = (4, 3) if trans_a else (3, 4)
    b_shape = (6, 5) if trans_b else (5, 6)  # k: 4 vs 5
    a, b = np.ones(a_shape), np.ones(b_shape)
    c = np.zeros((3, 6))
    with pytest.raises(ValueError, match="inner"):
        _core.gemm(a, b, c, trans_a=trans_a, trans_b=trans_b)
    assert np.array_equal(c, np.zeros((3, 6))), "c untouched on error"


def test_output_shape_mismatch_names_c():
    a, b = np.ones((3, 4)), np.ones((4, 5))
    for bad in [(3, 4), (5, 3), (3, 6), (15, 1)]:
        with pytest.raises(ValueError, match=r"\bc\b"):
            _core.gemm(a, b, np.zeros(bad))


# --------------------------------------------------------------------------------------------------
# Property tests

shape_dims = st.integers(min_value=1, max_value=24)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=shape_dims,
    k=shape_dims,
    n=shape_dims,
    trans_a=st.booleans(),
    trans_b=st.booleans(),
    alpha=st.one_of(st.just(0.0), st.floats(0.01, 4), st.floats(-4, -0.01)),
    beta=st.sampled_from([0.0, 1.0, -0.5, 2.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_random_shapes_match_oracle(m, k, n, trans_a, trans_b, alpha, beta, dtype, seed):
    a, b, c = operands(m, k, n, trans_a, trans_b, dtype, seed)
    check_gemm(a, b, c, alpha, beta, trans_a, trans_b)


@st.composite
def gemm_case(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    m, k, n = draw(shape_dims), draw(shape_dims), draw(shape_dims)
    ta, tb = draw(st.booleans()), draw(st.booleans())
    width = 32 if dtype is np.float32 else 64
    elems = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=width)
    a = draw(hnp.arrays(dtype, (k, m) if ta else (m, k), elements=elems))
    b = draw(hnp.arrays(dtype, (n, k) if tb else (k, n), elements=elems))
    c = draw(hnp.arrays(dtype, (m, n), elements=elems))
    return a, b, c, ta, tb


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=gemm_case(), beta=st.sampled_from([0.0, 1.0, -1.5]))
def test_property_arbitrary_values_finite_and_match_oracle(case, beta):
    a, b, c, ta, tb = case
    check_gemm(a, b, c, 1.0, beta, ta, tb)
