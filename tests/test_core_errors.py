"""deepgm._core argument checking and robustness: bad dtypes, layouts, shapes and names, aliasing of
writable arrays, hyper-parameter validation, panic mapping, GIL release and bit-identical results
for any n_jobs."""

from __future__ import annotations

import threading
import time

import _oracles as ref
import numpy as np
import pytest

from deepgm import _core

ACTS2 = ["tanh", "identity"]


def net(dtype=np.float64, sizes=(4, 5, 3), seed=0):
    w, b = ref.random_mlp(list(sizes), dtype, seed=seed)
    return w, b


def data(dtype=np.float64, n=6, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)


def train(x, y, w, b, slots=None, acts=ACTS2, loss="squared_error", **kw):
    if slots is None:
        slots = ref.zero_slots(w, b, 2 if kw.get("optimizer") == "adam" else 1)
    return _core.mlp_train_step(x, y, w, b, acts, loss, slots, **kw)


# --------------------------------------------------------------------------------------------------
# dtypes


def test_gemm_dtype_mismatch_names_argument():
    a32, b32, c32 = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), np.zeros((2, 4), np.float32)
    with pytest.raises(TypeError, match=r"\bb\b"):
        _core.gemm(a32, b32.astype(np.float64), c32)
    with pytest.raises(TypeError, match=r"\ba\b"):
        _core.gemm(a32.astype(np.float64), b32, c32)
    with pytest.raises(TypeError, match=r"\ba\b"):
        _core.gemm(a32, b32, c32.astype(np.float64))


@pytest.mark.parametrize("bad", [np.int64, np.int32, np.float16, np.complex128, np.complex64, np.bool_, object])
def test_non_float_dtypes_are_type_errors(bad):
    arr = np.ones((3, 3), dtype=bad)
    ok = np.ones((3, 3))
    with pytest.raises(TypeError, match=r"\bc\b"):
        _core.gemm(ok, ok, arr.copy())
    with pytest.raises(TypeError, match=r"\ba\b"):
        _core.gemm(arr, ok, ok.copy())
    with pytest.raises(TypeError, match=r"\bx\b"):
        _core.activation(arr, "tanh")
    with pytest.raises(TypeError, match="probs"):
        _core.bernoulli(arr, seed=0)
    with pytest.raises(TypeError, match="mean"):
        _core.gaussian(arr, np.ones(1), seed=0)
    with pytest.raises(TypeError, match="pre"):
        _core.sigmoid_bernoulli(arr, np.zeros(3), seed=0)
    with pytest.raises(TypeError, match="bias"):
        _core.sigmoid_bernoulli(ok, np.zeros(3, dtype=bad), seed=0)
    with pytest.raises(TypeError, match="param"):
        _core.optimizer_step(arr, ok, [ok.copy()], optimizer="sgd", learning_rate=0.1)


def test_mlp_dtype_mismatch_names_argument():
    x, y = data(np.float64)
    w, b = net(np.float32)
    with pytest.raises(TypeError, match=r"weights\[0\]"):
        _core.mlp_forward(x, w, b, ACTS2)
    with pytest.raises(TypeError, match=r"weights\[0\]"):
        _core.mlp_loss_gradients(x, y, w, b, ACTS2, "squared_error")
    with pytest.raises(TypeError, match=r"weights\[0\]"):
        train(x, y, w, b)
    w64, b64 = net(np.float64)
    b64[1] = b64[1].astype(np.float32)
    with pytest.raises(TypeError, match=r"biases\[1\]"):
        _core.mlp_forward(x, w64, b64, ACTS2)
    w64, b64 = net(np.float64)
    with pytest.raises(TypeError, match=r"\by\b"):
        _core.mlp_loss_gradients(x, y.astype(np.float32), w64, b64, ACTS2, "squared_error")
    slots = ref.zero_slots(w64, b64, 1)
    slots[2][0] = slots[2][0].astype(np.float32)
    with pytest.raises(TypeError, match=r"slots\[2\]"):
        train(x, y, w64, b64, slots)
    with pytest.raises(TypeError, match=r"\bx\b"):
        _core.mlp_forward(x.astype(np.int64), w64, b64, ACTS2)
    with pytest.raises(TypeError, match=r"\bx\b"):
        _core.mlp_forward(x.astype(np.complex128), w64, b64, ACTS2)
    with pytest.raises(TypeError, match="grad"):
        _core.optimizer_step(np.ones(4), np.ones(4, np.float32), [np.zeros(4)], optimizer="sgd", learning_rate=0.1)
    with pytest.raises(TypeError, match="slots"):
        _core.optimizer_step(np.ones(4), np.ones(4), [np.zeros(4, np.float32)], optimizer="sgd", learning_rate=0.1)


def test_lists_and_scalars_instead_of_arrays_are_type_errors():
    with pytest.raises(TypeError, match=r"\ba\b"):
        _core.gemm([[1.0]], np.ones((1, 1)), np.zeros((1, 1)))
    with pytest.raises(TypeError, match=r"\bc\b"):
        _core.gemm(np.ones((1, 1)), np.ones((1, 1)), [[0.0]])
    with pytest.raises(TypeError, match=r"\bx\b"):
        _core.activation([1.0, 2.0], "relu")
    with pytest.raises(TypeError):
        _core.activation(1.0, "relu")
    with pytest.raises(TypeError, match="probs"):
        _core.bernoulli([0.5], seed=0)
    x, y = data()
    w, b = net()
    with pytest.raises(TypeError, match=r"\bx\b"):
        _core.mlp_forward(x.tolist(), w, b, ACTS2)
    with pytest.raises(TypeError, match=r"weights\[0\]"):
        _core.mlp_forward(x, [w[0].tolist(), w[1]], b, ACTS2)
    with pytest.raises(TypeError, match="weights"):
        _core.mlp_forward(x, w[0], b, ACTS2)  # an array, not a list of arrays
    with pytest.raises(TypeError, match="activations"):
        _core.mlp_forward(x, w, b, "tanh")
    with pytest.raises(TypeError, match="slots"):
        train(x, y, w, b, slots=np.zeros(3))
    with pytest.raises(TypeError, match="rows"):
        train(x, y, w, b, rows=[0, 1])
    with pytest.raises(TypeError, match="rows"):
        train(x, y, w, b, rows=np.array([0.0, 1.0]))


# --------------------------------------------------------------------------------------------------
# layout and ndim


def test_non_contiguous_is_value_error_naming_argument():
    base = np.ones((6, 8))
    strided = base[:, ::2]  # (6, 4), not contiguous
    fortran = np.asfortranarray(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"\ba\b.*C-contiguous"):
        _core.gemm(strided, np.ones((4, 3)), np.zeros((6, 3)))
    with pytest.raises(ValueError, match=r"\bb\b.*C-contiguous"):
        _core.gemm(np.ones((6, 4)), fortran, np.zeros((6, 3)))
    with pytest.raises(ValueError, match=r"\bc\b.*C-contiguous"):
        _core.gemm(np.ones((6, 4)), np.ones((4, 3)), np.zeros((3, 6)).T)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.activation(strided, "tanh")
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.bernoulli(np.full((4, 6), 0.5)[:, ::2], seed=0)
    x, y = data(d=4)
    w, b = net()
    with pytest.raises(ValueError, match=r"\bx\b"):
        _core.mlp_forward(np.asfortranarray(x), w, b, ACTS2)
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        _core.mlp_forward(x, [np.asfortranarray(w[0]), w[1]], b, ACTS2)
    wt = [np.ascontiguousarray(w[0].T).T, w[1]]  # right shape, wrong layout
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        train(x, y, wt, b)
    with pytest.raises(ValueError, match=r"biases\[0\]"):
        _core.mlp_forward(x, w, [np.zeros(10)[::2], b[1]], ACTS2)


def test_c_contiguous_views_are_accepted():
    # A C-contiguous slice is not a copy problem: it must be accepted and used as is.
    buf = np.zeros((10, 4))
    x = buf[2:8]
    w, b = net()
    out = _core.mlp_forward(x, w, b, ACTS2)
    np.testing.assert_allclose(out, ref.mlp_forward(x, w, b, ACTS2), rtol=1e-13)


def test_wrong_ndim_is_value_error():
    with pytest.raises(ValueError, match=r"\ba\b.*2-D"):
        _core.gemm(np.ones(3), np.ones((3, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"\bc\b"):
        _core.gemm(np.ones((2, 3)), np.ones((3, 2)), np.zeros((2, 2, 1)))
    x, y = data()
    w, b = net()
    with pytest.raises(ValueError, match=r"\bx\b"):
        _core.mlp_forward(x[0], w, b, ACTS2)
    with pytest.raises(ValueError, match=r"biases\[0\]"):
        _core.mlp_forward(x, w, [b[0][None, :], b[1]], ACTS2)
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        _core.mlp_forward(x, [w[0], w[1].reshape(-1)], b, ACTS2)
    with pytest.raises(ValueError, match=r"\by\b"):
        _core.mlp_loss_gradients(x, y.reshape(-1), w, b, ACTS2, "squared_error")
    with pytest.raises(ValueError, match="pre"):
        _core.sigmoid_bernoulli(np.zeros(5), np.zeros(5), seed=0)
    with pytest.raises(ValueError, match="bias"):
        _core.sigmoid_bernoulli(np.zeros((2, 5)), np.zeros((1, 5)), seed=0)
    with pytest.raises(ValueError, match="rows"):
        train(x, y, w, b, rows=np.array([[0, 1]]))


# --------------------------------------------------------------------------------------------------
# shapes


def test_shape_mismatches_are_value_errors():
    x, y = data(d=4, k=3)
    w, b = net(sizes=(4, 5, 3))
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        _core.mlp_forward(x[:, :3].copy(), w, b, ACTS2)
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        _core.mlp_forward(x, [w[0], np.ones((6, 3))], b, ACTS2)
    with pytest.raises(ValueError, match=r"biases\[0\]"):
        _core.mlp_forward(x, w, [np.zeros(4), b[1]], ACTS2)
    with pytest.raises(ValueError):
        _core.mlp_forward(x, w, b[:1], ACTS2)  # 2 weights, 1 bias
    with pytest.raises(ValueError, match=r"\by\b"):
        _core.mlp_loss_gradients(x, y[:, :2].copy(), w, b, ACTS2, "squared_error")
    with pytest.raises(ValueError, match=r"\by\b"):
        _core.mlp_loss_gradients(x, y[:5].copy(), w, b, ACTS2, "squared_error")
    with pytest.raises(ValueError):
        train(x, y[:5].copy(), w, b)
    with pytest.raises(ValueError):
        train(x, y[:, :2].copy(), w, b)
    with pytest.raises(ValueError, match="bias"):
        _core.sigmoid_bernoulli(np.zeros((2, 5)), np.zeros(4), seed=0)
    with pytest.raises(ValueError, match="grad"):
        _core.optimizer_step(np.ones((2, 3)), np.ones((3, 2)), [np.zeros((2, 3))], optimizer="sgd", learning_rate=0.1)


# --------------------------------------------------------------------------------------------------
# names and hyper-parameters


def test_unknown_names_are_value_errors():
    x, y = data()
    w, b = net()
    with pytest.raises(ValueError, match="gelu"):
        _core.activation(np.ones(3), "gelu")
    with pytest.raises(ValueError):
        _core.activation(np.ones(3), "")
    with pytest.raises(ValueError, match="bogus"):
        _core.mlp_forward(x, w, b, ["tanh", "bogus"])
    with pytest.raises(ValueError, match="activations"):
        _core.mlp_forward(x, w, b, ["tanh"])  # one per layer
    with pytest.raises(ValueError, match="hinge"):
        _core.mlp_loss_gradients(x, y, w, b, ACTS2, "hinge")
    with pytest.raises(ValueError, match="hinge"):
        train(x, y, w, b, loss="hinge")
    with pytest.raises(ValueError, match="rmsprop"):
        train(x, y, w, b, optimizer="rmsprop")
    with pytest.raises(ValueError, match="rmsprop"):
        _core.optimizer_step(np.ones(3), np.ones(3), [np.zeros(3)], optimizer="rmsprop", learning_rate=0.1)


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "softmax_cross_entropy"])
def test_logit_losses_need_identity_output(loss):
    x, y = data()
    w, b = net()
    with pytest.raises(ValueError, match="identity"):
        _core.mlp_loss_gradients(x, y, w, b, ["tanh", "sigmoid"], loss)
    with pytest.raises(ValueError, match="identity"):
        train(x, y, w, b, acts=["tanh", "sigmoid"], loss=loss)


@pytest.mark.parametrize(
    "kw",
    [
        dict(learning_rate=0.0),
        dict(learning_rate=-1.0),
        dict(learning_rate=float("nan")),
        dict(learning_rate=float("inf")),
        dict(momentum=1.0),
        dict(momentum=-0.1),
        dict(optimizer="adam", beta1=1.0),
        dict(optimizer="adam", beta2=1.5),
        dict(optimizer="adam", epsilon=0.0),
        dict(optimizer="adam", t=0),
        dict(weight_decay=-0.1),
        dict(weight_decay=float("nan")),
        dict(dropout=1.0),
        dict(dropout=-0.1),
    ],
)
def test_bad_hyper_parameters_are_value_errors(kw):
    x, y = data()
    w, b = net()
    w0 = [a.copy() for a in w + b]
    with pytest.raises(ValueError):
        train(x, y, w, b, **kw)
    assert all(np.array_equal(a, a0) for a, a0 in zip(w + b, w0)), "nothing updated on a refused call"


def test_optimizer_step_bad_hyper_parameters():
    p = np.ones(3)
    with pytest.raises(ValueError):
        _core.optimizer_step(p, p.copy(), [np.zeros(3)], optimizer="sgd", learning_rate=0.0)
    with pytest.raises(ValueError):
        _core.optimizer_step(p, p.copy(), [np.zeros(3), np.zeros(3)], optimizer="adam", learning_rate=0.1, t=0)
    with pytest.raises(ValueError):
        _core.optimizer_step(p, p.copy(), [np.zeros(3)], optimizer="sgd", learning_rate=0.1, weight_decay=-1.0)


# --------------------------------------------------------------------------------------------------
# slots and rows


def test_slots_wrong_count_or_shape():
    x, y = data()
    w, b = net()
    with pytest.raises(ValueError, match="slots"):
        train(x, y, w, b, slots=ref.zero_slots(w, b, 1)[:3])  # 3 entries for 4 parameters
    with pytest.raises(ValueError, match="slots"):
        train(x, y, w, b, slots=ref.zero_slots(w, b, 1) + [[np.zeros(3)]])
    with pytest.raises(ValueError, match="slots"):
        train(x, y, w, b, slots=ref.zero_slots(w, b, 2), optimizer="sgd")  # 2 arrays each for sgd
    with pytest.raises(ValueError, match="slots"):
        train(x, y, w, b, slots=ref.zero_slots(w, b, 1), optimizer="adam")  # 1 array each for adam
    bad = ref.zero_slots(w, b, 1)
    bad[1] = [np.zeros(b[0].size + 1)]
    with pytest.raises(ValueError, match="slots"):
        train(x, y, w, b, slots=bad)
    bad = ref.zero_slots(w, b, 2)
    bad[2][1] = np.zeros((w[1].shape[0], w[1].shape[1] + 1))
    with pytest.raises(ValueError, match="slots"):
        train(x, y, w, b, slots=bad, optimizer="adam")
    with pytest.raises(ValueError, match="slots"):
        _core.optimizer_step(np.ones(3), np.ones(3), [np.zeros(4)], optimizer="sgd", learning_rate=0.1)
    with pytest.raises(ValueError, match="slots"):
        _core.optimizer_step(np.ones(3), np.ones(3), [np.zeros(3)], optimizer="adam", learning_rate=0.1)


def test_rows_out_of_range():
    x, y = data(n=6)
    w, b = net()
    for rows in ([0, 6], [-1, 2], [100]):
        with pytest.raises(ValueError, match="rows"):
            train(x, y, w, b, rows=np.array(rows))
    with pytest.raises(ValueError):
        train(x, y, w, b, rows=np.array([], dtype=np.int64))  # an empty minibatch
    train(x, y, w, b, rows=np.array([5, 0]))  # the bounds themselves are fine


# --------------------------------------------------------------------------------------------------
# aliasing: the same array writable twice (or writable and read) in one call


ALIAS = "twice|cannot be read"


def test_same_array_twice_is_value_error_not_crash():
    x, y = data(k=5)
    w, b = net(sizes=(4, 5, 5))  # b0 and b1 (and W1) have equal sizes: only aliasing is wrong
    snapshot = [a.copy() for a in w + b]

    def check(**kw):
        with pytest.raises(ValueError, match=ALIAS):
            train(x, y, w, b, **kw)

    slots = ref.zero_slots(w, b, 1)
    slots[0] = [w[0]]  # the weight itself as its own velocity
    check(slots=slots)
    slots = ref.zero_slots(w, b, 1)
    slots[3] = [slots[1][0]]  # one velocity array shared by b0 and b1
    check(slots=slots)
    slots = ref.zero_slots(w, b, 1)
    slots[3] = [b[0]]  # a bias as the velocity of another bias
    check(slots=slots)
    slots = ref.zero_slots(w, b, 2)
    slots[0] = [slots[0][0], slots[0][0]]  # Adam's m and v the same array
    check(slots=slots, optimizer="adam")
    # one bias array used for two layers
    with pytest.raises(ValueError, match=ALIAS):
        train(x, y, w, [b[0], b[0]])
    assert all(np.array_equal(a, a0) for a, a0 in zip(w + b, snapshot)), "nothing written"
    # the input x also a parameter that is written
    sq = np.ones((4, 4))
    with pytest.raises(ValueError, match=ALIAS):
        train(sq, np.zeros((4, 4)), [sq], [np.zeros(4)], acts=["identity"], slots=[[np.zeros((4, 4))], [np.zeros(4)]])
    assert np.array_equal(sq, np.ones((4, 4)))
    # gemm: the output also an input
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match=ALIAS):
        _core.gemm(a, np.ones((3, 3)), a)
    with pytest.raises(ValueError, match=ALIAS):
        _core.gemm(np.ones((3, 3)), a, a)
    assert np.array_equal(a, np.ones((3, 3)))
    # optimizer_step: the param as its own gradient or state; one array as both of Adam's states
    p = np.ones(5)
    with pytest.raises(ValueError, match=ALIAS):
        _core.optimizer_step(p, p, [np.zeros(5)], optimizer="sgd", learning_rate=0.1)
    with pytest.raises(ValueError, match=ALIAS):
        _core.optimizer_step(p, np.ones(5), [p], optimizer="sgd", learning_rate=0.1)
    v = np.zeros(5)
    with pytest.raises(ValueError, match=ALIAS):
        _core.optimizer_step(p, np.ones(5), [v, v], optimizer="adam", learning_rate=0.1)
    assert np.array_equal(p, np.ones(5))


def test_overlapping_views_are_not_written_twice():
    # Two overlapping views of one buffer as writable arguments: refused like the same array twice.
    x, y = data(k=3)
    w, b = net(sizes=(4, 5, 3))
    buf = np.zeros(10)
    slots = ref.zero_slots(w, b, 1)
    slots[1] = [buf[:5]]
    slots[3] = [buf[3:6]]
    with pytest.raises(ValueError, match=ALIAS):
        train(x, y, w, b, slots=slots)
    assert np.array_equal(buf, np.zeros(10))
    # Disjoint views are fine, and are written in place (no copies).
    slots[3] = [buf[5:8]]
    train(x, y, w, b, slots=slots, learning_rate=0.1)
    assert np.any(buf[:8] != 0) and np.all(buf[8:] == 0)


def test_read_only_outputs_are_value_errors():
    c = np.zeros((2, 2))
    c.flags.writeable = False
    with pytest.raises(ValueError, match=r"\bc\b"):
        _core.gemm(np.ones((2, 2)), np.ones((2, 2)), c)
    x, y = data()
    w, b = net()
    w[0].flags.writeable = False
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        train(x, y, w, b)
    # read-only inputs are fine
    x.flags.writeable = False
    _core.mlp_forward(x, w, b, ACTS2)


# --------------------------------------------------------------------------------------------------
# n_jobs


@pytest.mark.parametrize("bad", [0, -2, -100])
def test_bad_n_jobs(bad):
    x, y = data()
    w, b = net()
    calls = [
        lambda: _core.gemm(np.ones((2, 2)), np.ones((2, 2)), np.zeros((2, 2)), n_jobs=bad),
        lambda: _core.activation(np.ones(3), "tanh", n_jobs=bad),
        lambda: _core.bernoulli(np.full(3, 0.5), seed=0, n_jobs=bad),
        lambda: _core.gaussian(np.zeros(3), np.ones(1), seed=0, n_jobs=bad),
        lambda: _core.sigmoid_bernoulli(np.zeros((2, 3)), np.zeros(3), seed=0, n_jobs=bad),
        lambda: _core.mlp_forward(x, w, b, ACTS2, n_jobs=bad),
        lambda: _core.mlp_loss_gradients(x, y, w, b, ACTS2, "squared_error", n_jobs=bad),
        lambda: train(x, y, w, b, n_jobs=bad),
        lambda: _core.optimizer_step(np.ones(3), np.ones(3), [np.zeros(3)], optimizer="sgd", learning_rate=0.1, n_jobs=bad),
        lambda: _core.effective_n_jobs(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="n_jobs"):
            call()


def test_effective_n_jobs():
    all_cores = _core.effective_n_jobs()
    assert isinstance(all_cores, int) and all_cores >= 1
    assert _core.effective_n_jobs(-1) == all_cores
    assert _core.effective_n_jobs(None) == all_cores
    assert _core.effective_n_jobs(1) == 1
    assert _core.effective_n_jobs(3) == min(3, all_cores)
    assert _core.effective_n_jobs(10_000) == all_cores, "more threads than cores are capped"


# --------------------------------------------------------------------------------------------------
# panics


def test_panic_becomes_runtime_error():
    with pytest.raises(RuntimeError) as info:
        _core._panic_for_testing()
    err = info.value
    assert isinstance(err, Exception), "a panic must not surface as pyo3's PanicException (a BaseException)"
    assert type(err).__name__ != "PanicException"
    assert "panic" in str(err)
    # The module (and its thread pools) still work afterwards, repeatedly.
    for _ in range(3):
        with pytest.raises(RuntimeError):
            _core._panic_for_testing()
    a = np.random.default_rng(0).standard_normal((64, 64))
    c = np.zeros((64, 64))
    _core.gemm(a, a, c, n_jobs=2)
    np.testing.assert_allclose(c, a @ a, rtol=1e-12, atol=1e-12)


def test_panic_is_catchable_by_except_exception():
    caught = False
    try:
        _core._panic_for_testing()
    except Exception:  # noqa: BLE001 - the point of the test
        caught = True
    assert caught


# --------------------------------------------------------------------------------------------------
# GIL release


def test_gemm_releases_the_gil():
    n = 2400  # ~0.1-0.5 s per single-threaded product: far above the 5 ms GIL switch interval
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    c = np.zeros((n, n), np.float32)
    t0 = time.perf_counter()
    _core.gemm(a, b, c, n_jobs=1)
    one_call = time.perf_counter() - t0
    done = threading.Event()
    errors = []

    def work():
        try:
            for _ in range(3):
                _core.gemm(a, b, c, n_jobs=1)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            done.set()

    worker = threading.Thread(target=work)
    counter = 0
    max_gap = 0.0
    worker.start()
    last = start = time.perf_counter()
    while not done.is_set():
        counter += 1
        now = time.perf_counter()
        max_gap = max(max_gap, now - last)
        last = now
    elapsed = time.perf_counter() - start
    worker.join()
    assert not errors, errors
    assert elapsed > 2 * one_call, "the main loop did not overlap the worker's calls"
    assert counter > 1000, f"main thread advanced only {counter} times in {elapsed:.2f}s"
    # A call holding the GIL would freeze the main thread for a whole product (one_call seconds):
    # with the GIL released the main loop never stalls for more than a fraction of it.
    assert max_gap < 0.5 * one_call, f"main thread stalled {max_gap:.3f}s (one gemm takes {one_call:.3f}s)"


def test_concurrent_calls_from_threads_are_correct():
    rng = np.random.default_rng(1)
    mats = [rng.standard_normal((200, 200)) for _ in range(4)]
    outs = [np.zeros((200, 200)) for _ in range(4)]
    threads = [threading.Thread(target=_core.gemm, args=(m, m, o), kwargs=dict(n_jobs=2)) for m, o in zip(mats, outs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m, o in zip(mats, outs):
        np.testing.assert_allclose(o, m @ m, rtol=1e-12, atol=1e-11)


# --------------------------------------------------------------------------------------------------
# determinism across n_jobs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mlp_results_identical_for_any_n_jobs(dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 64)).astype(dtype)  # products above the parallel threshold
    y = (rng.random((300, 10)) < 0.3).astype(dtype)
    acts = ["relu", "sigmoid", "identity"]
    results = []
    for n_jobs in (1, 2, 4):
        w, b = ref.random_mlp([64, 128, 96, 10], dtype, seed=3)
        fwd = _core.mlp_forward(x, w, b, acts, all_layers=True, n_jobs=n_jobs)
        grads = _core.mlp_loss_gradients(x, y, w, b, acts, "binary_cross_entropy", n_jobs=n_jobs)
        sgd_slots = ref.zero_slots(w, b, 1)
        losses = []
        for step in range(3):
            losses.append(
                _core.mlp_train_step(
                    x,
                    y,
                    w,
                    b,
                    acts,
                    "binary_cross_entropy",
                    sgd_slots,
                    rows=np.arange(0, 300, 2),
                    learning_rate=0.05,
                    momentum=0.9,
                    dropout=0.3,
                    seed=1,
                    step=step,
                    n_jobs=n_jobs,
                )
            )
        adam_slots = ref.zero_slots(w, b, 2)
        for t in range(1, 4):
            losses.append(
                _core.mlp_train_step(
                    x,
                    y,
                    w,
                    b,
                    acts,
                    "binary_cross_entropy",
                    adam_slots,
                    optimizer="adam",
                    learning_rate=0.01,
                    t=t,
                    weight_decay=1e-3,
                    n_jobs=n_jobs,
                )
            )
        results.append((fwd, grads, losses, w + b))
    base = results[0]
    for other in results[1:]:
        assert all(np.array_equal(p, q) for p, q in zip(base[0], other[0])), "mlp_forward"
        assert base[1][0] == other[1][0]
        for gp, gq in zip(base[1][1] + base[1][2] + [base[1][3]], other[1][1] + other[1][2] + [other[1][3]]):
            assert np.array_equal(gp, gq), "mlp_loss_gradients"
        assert base[2] == other[2], "train losses"
        assert all(np.array_equal(p, q) for p, q in zip(base[3], other[3])), "trained parameters"


def test_samplers_identical_for_any_n_jobs():
    rng = np.random.default_rng(4)
    probs = rng.random((50, 1000)).astype(np.float32)
    pre = rng.standard_normal((50, 1000)).astype(np.float32)
    bias = rng.standard_normal(1000).astype(np.float32)
    res = []
    for n_jobs in (1, 2, 4, None):
        res.append(
            (
                _core.bernoulli(probs, seed=2, step=3, n_jobs=n_jobs),
                *_core.sigmoid_bernoulli(pre, bias, seed=2, step=3, n_jobs=n_jobs),
                *_core.gaussian(pre, probs, seed=2, step=3, n_jobs=n_jobs),
            )
        )
    for other in res[1:]:
        assert all(np.array_equal(p, q) for p, q in zip(res[0], other))
