"""deepgm._core MLP kernels: mlp_forward against a float64 oracle, mlp_loss_gradients against
central finite differences for every loss, mlp_train_step and optimizer_step against a numpy
re-implementation of SGD/Adam, rows selection, convergence, dropout, weight decay and divergence."""

from __future__ import annotations

import _oracles as ref
import numpy as np
import pytest

from deepgm import _core

ACTS = ref.ACTIVATIONS


def copy_params(weights, biases):
    return [w.copy() for w in weights], [b.copy() for b in biases]


def copy_slots(slots):
    return [[a.copy() for a in s] for s in slots]


def assert_close_to_norm(got, want, rtol, what=""):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.linalg.norm(got - want)
    assert err <= rtol * (np.linalg.norm(want) + 1e-30), f"{what}: error {err:.3e} vs norm {np.linalg.norm(want):.3e}"


def targets(loss, n, n_out, rng, soft=False):
    if loss == "squared_error":
        return rng.standard_normal((n, n_out))
    if loss == "binary_cross_entropy":
        return rng.random((n, n_out)) if soft else (rng.random((n, n_out)) < 0.5).astype(np.float64)
    if soft:
        y = rng.random((n, n_out)) + 0.05
        return y / y.sum(axis=1, keepdims=True)
    return np.eye(n_out)[rng.integers(0, n_out, n)]


def kink_free_problem(sizes, acts, loss, n=5, soft=False, seed=0):
    """A network, inputs and targets whose relu pre-activations all stay away from 0."""
    for s in range(seed, seed + 200):
        rng = np.random.default_rng(s)
        weights, biases = ref.random_mlp(sizes, np.float64, seed=s, scale=1.2)
        x = rng.standard_normal((n, sizes[0]))
        zs = ref.pre_activations(x, weights, biases, acts)
        if all(np.min(np.abs(z)) > 1e-3 for z, a in zip(zs, acts) if a == "relu"):
            return x, targets(loss, n, sizes[-1], rng, soft), weights, biases
    raise AssertionError("no kink-free data found")


# --------------------------------------------------------------------------------------------------
# Forward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ACTS)
def test_forward_matches_oracle(act, dtype):
    rng = np.random.default_rng(0)
    sizes = [7, 12, 9, 4]
    weights, biases = ref.random_mlp(sizes, dtype, seed=1, scale=2.0)
    x = (rng.standard_normal((23, 7)) * 2).astype(dtype)
    for acts in ([act, act, act], [act, "tanh", "identity"], ["sigmoid", act, act]):
        out = _core.mlp_forward(x, weights, biases, acts)
        want = ref.mlp_forward(x, weights, biases, acts)
        assert out.shape == (23, 4) and out.dtype == dtype
        rtol = 1e-5 if dtype is np.float32 else 1e-13
        assert ref.max_rel_err(out, want) <= rtol, acts
        layers = _core.mlp_forward(x, weights, biases, acts, all_layers=True)
        wants = ref.mlp_forward(x, weights, biases, acts, all_layers=True)
        assert isinstance(layers, list) and len(layers) == 3
        for got_l, want_l, width in zip(layers, wants, sizes[1:]):
            assert got_l.shape == (23, width) and got_l.dtype == dtype
            assert ref.max_rel_err(got_l, want_l) <= rtol
        assert np.array_equal(layers[-1], out)


def test_forward_single_layer_and_large_batch():
    rng = np.random.default_rng(1)
    w, b = ref.random_mlp([30, 50], np.float64, seed=3)
    x = rng.standard_normal((1000, 30))
    out = _core.mlp_forward(x, w, b, ["softplus"])
    np.testing.assert_allclose(out, ref.mlp_forward(x, w, b, ["softplus"]), rtol=1e-13, atol=1e-14)


def test_forward_does_not_modify_inputs():
    rng = np.random.default_rng(2)
    w, b = ref.random_mlp([4, 5, 3], np.float32, seed=0)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    snap = [a.copy() for a in [x, *w, *b]]
    _core.mlp_forward(x, w, b, ["relu", "sigmoid"])
    for a, s in zip([x, *w, *b], snap):
        assert np.array_equal(a, s)


# --------------------------------------------------------------------------------------------------
# Gradients vs finite differences

GRAD_CASES = [
    # (sizes, activations, loss, soft targets)
    ([4, 6, 5, 3], ["sigmoid", "tanh", "identity"], "squared_error", False),
    ([4, 6, 3], ["softplus", "sigmoid"], "squared_error", False),
    ([3, 5, 4, 2], ["relu", "relu", "tanh"], "squared_error", False),
    ([3, 6, 2], ["tanh", "softplus"], "squared_error", False),
    ([3, 4, 2], ["identity", "relu"], "squared_error", False),
    ([5, 3], ["identity"], "squared_error", False),
    ([4, 7, 6, 3], ["relu", "sigmoid", "identity"], "binary_cross_entropy", False),
    ([4, 6, 3], ["softplus", "identity"], "binary_cross_entropy", True),
    ([3, 2], ["identity"], "binary_cross_entropy", True),
    ([4, 6, 6, 3], ["tanh", "relu", "identity"], "softmax_cross_entropy", False),
    ([4, 5, 4], ["sigmoid", "identity"], "softmax_cross_entropy", True),
    ([4, 5, 4], ["identity", "identity"], "softmax_cross_entropy", True),
]


@pytest.mark.parametrize("sizes,acts,loss,soft", GRAD_CASES)
def test_gradients_match_finite_differences(sizes, acts, loss, soft):
    x, y, weights, biases = kink_free_problem(sizes, acts, loss, soft=soft)
    value, gw, gb, gx = _core.mlp_loss_gradients(x, y, weights, biases, acts, loss)
    assert isinstance(value, float)
    np.testing.assert_allclose(value, ref.mlp_loss(x, y, weights, biases, acts, loss), rtol=1e-13)
    fw, fb, fx = ref.finite_difference_gradients(x, y, weights, biases, acts, loss, h=1e-6)
    assert len(gw) == len(gb) == len(weights)
    for l in range(len(weights)):
        assert gw[l].shape == weights[l].shape and gw[l].dtype == np.float64
        assert gb[l].shape == biases[l].shape
        np.testing.assert_allclose(gw[l], fw[l], rtol=1e-6, atol=1e-8, err_msg=f"dW{l}")
        np.testing.assert_allclose(gb[l], fb[l], rtol=1e-6, atol=1e-8, err_msg=f"db{l}")
    assert gx.shape == x.shape
    np.testing.assert_allclose(gx, fx, rtol=1e-6, atol=1e-8, err_msg="dx")


@pytest.mark.parametrize("sizes,acts,loss,soft", GRAD_CASES)
def test_float32_gradients_close_to_float64(sizes, acts, loss, soft):
    x, y, weights, biases = kink_free_problem(sizes, acts, loss, soft=soft, seed=50)
    # Both computations start from exactly the same (float32-representable) numbers.
    c32 = lambda a: a.astype(np.float32)  # noqa: E731
    x32, y32 = c32(x), c32(y)
    w32, b32 = [c32(w) for w in weights], [c32(b) for b in biases]
    w64, b64 = [w.astype(np.float64) for w in w32], [b.astype(np.float64) for b in b32]
    v32, gw32, gb32, gx32 = _core.mlp_loss_gradients(x32, y32, w32, b32, acts, loss)
    v64, gw64, gb64, gx64 = _core.mlp_loss_gradients(x32.astype(np.float64), y32.astype(np.float64), w64, b64, acts, loss)
    assert abs(v32 - v64) <= 1e-5 * (1 + abs(v64))
    for l in range(len(w32)):
        assert gw32[l].dtype == np.float32
        assert_close_to_norm(gw32[l], gw64[l], 1e-4, f"dW{l}")
        assert_close_to_norm(gb32[l], gb64[l], 1e-4, f"db{l}")
    assert_close_to_norm(gx32, gx64, 1e-4, "dx")


def test_logit_losses_are_stable_for_huge_logits():
    x = np.ones((1, 1))
    # binary cross-entropy on logits +-800: softplus(800) - 0 + softplus(-800) + 800 = 1600
    w, b = [np.array([[800.0, -800.0]])], [np.zeros(2)]
    loss, gw, gb, gx = _core.mlp_loss_gradients(x, np.array([[0.0, 1.0]]), w, b, ["identity"], "binary_cross_entropy")
    assert loss == pytest.approx(1600.0, rel=1e-14)
    np.testing.assert_allclose(gb[0], [1.0, -1.0], atol=1e-15)
    np.testing.assert_allclose(gw[0], [[1.0, -1.0]], atol=1e-15)
    # softmax cross-entropy with logits (1000, 0, -1000) and target class 1: loss 1000
    w, b = [np.array([[1000.0, 0.0, -1000.0]])], [np.zeros(3)]
    loss, gw, gb, gx = _core.mlp_loss_gradients(x, np.array([[0.0, 1.0, 0.0]]), w, b, ["identity"], "softmax_cross_entropy")
    assert loss == pytest.approx(1000.0, rel=1e-14)
    np.testing.assert_allclose(gb[0], [1.0, -1.0, 0.0], atol=1e-15)
    for dtype in (np.float32,):
        loss32, gw32, gb32, _ = _core.mlp_loss_gradients(
            x.astype(dtype),
            np.array([[0.0, 1.0, 0.0]], dtype),
            [w[0].astype(dtype)],
            [b[0].astype(dtype)],
            ["identity"],
            "softmax_cross_entropy",
        )
        assert np.isfinite(loss32) and loss32 == pytest.approx(1000.0, rel=1e-6)
        assert np.all(np.isfinite(gb32[0]))


def test_loss_is_mean_over_batch():
    rng = np.random.default_rng(5)
    w, b = ref.random_mlp([3, 4, 2], np.float64, seed=5)
    x = rng.standard_normal((8, 3))
    y = rng.standard_normal((8, 2))
    acts = ["tanh", "identity"]
    full, gw, gb, _ = _core.mlp_loss_gradients(x, y, w, b, acts, "squared_error")
    halves = [_core.mlp_loss_gradients(x[s], y[s], w, b, acts, "squared_error") for s in (slice(0, 4), slice(4, 8))]
    assert full == pytest.approx((halves[0][0] + halves[1][0]) / 2, rel=1e-13)
    np.testing.assert_allclose(gw[0], (halves[0][1][0] + halves[1][1][0]) / 2, rtol=1e-12, atol=1e-15)
    # 0.5 * sum of squares per sample, not the mean over outputs
    out = ref.mlp_forward(x, w, b, acts)
    assert full == pytest.approx(np.mean(0.5 * np.sum((out - y) ** 2, axis=1)), rel=1e-13)


# --------------------------------------------------------------------------------------------------
# Train step vs a numpy re-implementation


def numpy_train_step(x, y, weights, biases, acts, loss, slots, optimizer, lr, momentum=0.0, beta1=0.9, beta2=0.999, eps=1e-8, t=1, wd=0.0):
    """Returns (loss, new params in order, new slots) computed in float64 from the kernel's gradients."""
    value, gw, gb, _ = _core.mlp_loss_gradients(x, y, [w.copy() for w in weights], [b.copy() for b in biases], acts, loss)
    params = ref.params_in_order(weights, biases)
    grads = ref.params_in_order(gw, gb)
    new_params, new_slots = [], []
    for i, (p, g, s) in enumerate(zip(params, grads, slots)):
        decay = wd if i % 2 == 0 else 0.0  # no weight decay on biases
        if optimizer == "sgd":
            p2, v2 = ref.sgd_step(p, g, s[0], lr, momentum, decay)
            new_params.append(p2)
            new_slots.append([v2])
        else:
            p2, m2, v2 = ref.adam_step(p, g, s[0], s[1], lr, beta1, beta2, eps, t, decay)
            new_params.append(p2)
            new_slots.append([m2, v2])
    return value, new_params, new_slots


def random_slots(weights, biases, optimizer, rng, dtype):
    slots = []
    for p in ref.params_in_order(weights, biases):
        if optimizer == "sgd":
            slots.append([(rng.standard_normal(p.shape) * 0.1).astype(dtype)])
        else:
            slots.append([(rng.standard_normal(p.shape) * 0.1).astype(dtype), (rng.random(p.shape) * 0.01).astype(dtype)])
    return slots


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "loss,acts",
    [
        ("squared_error", ["tanh", "sigmoid"]),
        ("binary_cross_entropy", ["relu", "identity"]),
        ("softmax_cross_entropy", ["softplus", "identity"]),
    ],
)
def test_train_step_float64_matches_numpy(optimizer, loss, acts):
    rng = np.random.default_rng(7)
    sizes = [6, 10, 3]
    weights, biases = ref.random_mlp(sizes, np.float64, seed=7)
    x = rng.standard_normal((16, 6))
    y = targets(loss, 16, 3, rng)
    slots = random_slots(weights, biases, optimizer, rng, np.float64)
    hp = dict(learning_rate=0.05, momentum=0.9, beta1=0.8, beta2=0.99, epsilon=1e-7, t=3, weight_decay=0.01)
    want_loss, want_params, want_slots = numpy_train_step(
        x, y, weights, biases, acts, loss, slots, optimizer, 0.05, 0.9, 0.8, 0.99, 1e-7, 3, 0.01
    )
    got = _core.mlp_train_step(x, y, weights, biases, acts, loss, slots, optimizer=optimizer, **hp)
    assert isinstance(got, float)
    assert got == pytest.approx(want_loss, rel=1e-14), "returns the loss before the update"
    for p, w in zip(ref.params_in_order(weights, biases), want_params):
        np.testing.assert_allclose(p, w, rtol=1e-11, atol=1e-13)
    for s, ws in zip(slots, want_slots):
        for a, wa in zip(s, ws):
            np.testing.assert_allclose(a, wa, rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_train_step_float32_matches_numpy(optimizer):
    rng = np.random.default_rng(8)
    weights, biases = ref.random_mlp([5, 8, 2], np.float32, seed=8)
    x = rng.standard_normal((12, 5)).astype(np.float32)
    y = rng.standard_normal((12, 2)).astype(np.float32)
    slots = random_slots(weights, biases, optimizer, rng, np.float32)
    want_loss, want_params, want_slots = numpy_train_step(
        x, y, weights, biases, ["sigmoid", "identity"], "squared_error", slots, optimizer, 0.01, 0.5, 0.9, 0.999, 1e-8, 2, 0.1
    )
    got = _core.mlp_train_step(
        x,
        y,
        weights,
        biases,
        ["sigmoid", "identity"],
        "squared_error",
        slots,
        optimizer=optimizer,
        learning_rate=0.01,
        momentum=0.5,
        t=2,
        weight_decay=0.1,
    )
    assert got == pytest.approx(want_loss, rel=1e-12)
    for p, w in zip(ref.params_in_order(weights, biases), want_params):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, w, rtol=1e-5, atol=1e-6)
    for s, ws in zip(slots, want_slots):
        for a, wa in zip(s, ws):
            np.testing.assert_allclose(a, wa, rtol=1e-5, atol=1e-7)


def test_adam_several_steps_from_zero_state():
    rng = np.random.default_rng(9)
    acts, loss = ["tanh", "identity"], "binary_cross_entropy"
    weights, biases = ref.random_mlp([3, 5, 2], np.float64, seed=9)
    x = rng.standard_normal((10, 3))
    y = (rng.random((10, 2)) < 0.5).astype(np.float64)
    slots = ref.zero_slots(weights, biases, 2)
    mw, mb = copy_params(weights, biases)
    mslots = copy_slots(slots)
    for t in range(1, 6):
        _, new_params, new_slots = numpy_train_step(x, y, mw, mb, acts, loss, mslots, "adam", 0.02, t=t, wd=0.001)
        mw, mb = new_params[0::2], new_params[1::2]
        mslots = new_slots
        _core.mlp_train_step(x, y, weights, biases, acts, loss, slots, optimizer="adam", learning_rate=0.02, t=t, weight_decay=0.001)
        for p, w in zip(ref.params_in_order(weights, biases), new_params):
            np.testing.assert_allclose(p, w, rtol=1e-10, atol=1e-12, err_msg=f"t={t}")


def test_train_step_updates_in_place_same_objects():
    weights, biases = ref.random_mlp([3, 4, 1], np.float64, seed=1)
    ids = [id(a) for a in weights + biases]
    before = [a.copy() for a in weights + biases]
    slots = ref.zero_slots(weights, biases, 1)
    x, y = np.ones((2, 3)), np.zeros((2, 1))
    _core.mlp_train_step(x, y, weights, biases, ["tanh", "identity"], "squared_error", slots, learning_rate=0.1)
    assert [id(a) for a in weights + biases] == ids
    assert all(not np.array_equal(a, b) for a, b in zip(weights + biases, before))
    assert all(np.any(s[0] != 0) for s in slots), "velocities are written"


# --------------------------------------------------------------------------------------------------
# rows


@pytest.mark.parametrize("rows_dtype", [np.int64, np.int32, np.uint16, np.intp])
@pytest.mark.parametrize("optimizer,dropout", [("sgd", 0.0), ("adam", 0.0), ("sgd", 0.3)])
def test_rows_equals_explicit_minibatch(rows_dtype, optimizer, dropout):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.standard_normal((10, 2)).astype(np.float32)
    rows = np.array([7, 2, 2, 5, 0], dtype=rows_dtype)
    acts = ["relu", "identity"]
    w1, b1 = ref.random_mlp([4, 6, 2], np.float32, seed=10)
    w2, b2 = copy_params(w1, b1)
    n_slots = 1 if optimizer == "sgd" else 2
    s1, s2 = ref.zero_slots(w1, b1, n_slots), ref.zero_slots(w2, b2, n_slots)
    kw = dict(optimizer=optimizer, learning_rate=0.05, momentum=0.5, dropout=dropout, seed=4, step=2)
    x0 = x.copy()
    l1 = _core.mlp_train_step(x, y, w1, b1, acts, "squared_error", s1, rows=rows, **kw)
    l2 = _core.mlp_train_step(np.ascontiguousarray(x[rows]), np.ascontiguousarray(y[rows]), w2, b2, acts, "squared_error", s2, **kw)
    assert l1 == l2
    for a, b in zip(w1 + b1, w2 + b2):
        assert np.array_equal(a, b)
    assert np.array_equal(x, x0)


# --------------------------------------------------------------------------------------------------
# Convergence


def test_xor_converges():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    weights, biases = ref.random_mlp([2, 8, 1], np.float32, seed=0, scale=2.0)
    slots = ref.zero_slots(weights, biases, 2)
    acts = ["tanh", "identity"]
    first = None
    for t in range(1, 1501):
        loss = _core.mlp_train_step(x, y, weights, biases, acts, "binary_cross_entropy", slots, optimizer="adam", learning_rate=0.03, t=t)
        first = loss if first is None else first
    assert first > 0.5
    assert loss < 0.05, f"XOR not learnt: loss {loss}"
    pred = ref.sigmoid(_core.mlp_forward(x, weights, biases, acts)) > 0.5
    assert np.array_equal(pred, y > 0.5)


def test_two_class_softmax_minibatch_sgd_converges():
    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 2, n)
    centers = np.array([[-1.5, 1.0], [1.5, -1.0]])
    x = (centers[labels] + rng.standard_normal((n, 2)) * 0.7).astype(np.float64)
    y = np.eye(2)[labels]
    weights, biases = ref.random_mlp([2, 16, 2], np.float64, seed=1)
    slots = ref.zero_slots(weights, biases, 1)
    acts = ["relu", "identity"]
    step = 0
    for epoch in range(20):
        perm = rng.permutation(n)
        for i in range(0, n, 32):
            _core.mlp_train_step(
                x,
                y,
                weights,
                biases,
                acts,
                "softmax_cross_entropy",
                slots,
                rows=perm[i : i + 32],
                learning_rate=0.1,
                momentum=0.9,
                step=step,
            )
            step += 1
    out = _core.mlp_forward(x, weights, biases, acts)
    acc = np.mean(out.argmax(axis=1) == labels)
    assert acc > 0.95, acc
    final, *_ = _core.mlp_loss_gradients(x, y, weights, biases, acts, "softmax_cross_entropy")
    assert final < 0.2


# --------------------------------------------------------------------------------------------------
# Dropout


def _dropout_run(dropout, seed=0, step=0, dtype=np.float64):
    rng = np.random.default_rng(11)
    weights, biases = ref.random_mlp([5, 40, 30, 2], dtype, seed=11)
    x = rng.standard_normal((20, 5)).astype(dtype)
    y = rng.standard_normal((20, 2)).astype(dtype)
    slots = ref.zero_slots(weights, biases, 1)
    loss = _core.mlp_train_step(
        x,
        y,
        weights,
        biases,
        ["tanh", "relu", "identity"],
        "squared_error",
        slots,
        learning_rate=0.1,
        dropout=dropout,
        seed=seed,
        step=step,
    )
    return loss, weights + biases


def test_dropout_changes_result_and_is_reproducible():
    l0, p0 = _dropout_run(0.0)
    l1, p1 = _dropout_run(0.5, seed=3, step=1)
    assert l0 != l1
    assert not all(np.array_equal(a, b) for a, b in zip(p0, p1))
    l2, p2 = _dropout_run(0.5, seed=3, step=1)
    assert l1 == l2 and all(np.array_equal(a, b) for a, b in zip(p1, p2))
    l3, p3 = _dropout_run(0.5, seed=4, step=1)
    l4, p4 = _dropout_run(0.5, seed=3, step=2)
    assert not all(np.array_equal(a, b) for a, b in zip(p1, p3))
    assert not all(np.array_equal(a, b) for a, b in zip(p1, p4))
    # Seed and step are irrelevant without dropout.
    l5, p5 = _dropout_run(0.0, seed=99, step=7)
    assert l5 == l0 and all(np.array_equal(a, b) for a, b in zip(p0, p5))


def test_no_dropout_on_the_output_layer():
    # A net without hidden layers has nothing to drop.
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    res = []
    for d in (0.0, 0.5):
        w, b = ref.random_mlp([3, 2], np.float64, seed=12)
        s = ref.zero_slots(w, b, 1)
        res.append((_core.mlp_train_step(x, y, w, b, ["identity"], "squared_error", s, dropout=d, seed=1), w[0], b[0]))
    assert res[0][0] == res[1][0]
    assert np.array_equal(res[0][1], res[1][1]) and np.array_equal(res[0][2], res[1][2])


@pytest.mark.parametrize("rate", [0.5, 0.25])
def test_inverted_dropout_scaling(rate):
    # Hidden layer: 4000 identity units all equal to 1; output = mean of the (dropped, rescaled) units.
    width = 4000
    w = [np.ones((1, width)), np.full((width, 1), 1.0 / width)]
    b = [np.zeros(width), np.zeros(1)]
    slots = ref.zero_slots(w, b, 1)
    y = np.array([[-100.0]])  # the output is always above y, so loss = (out - y)^2 / 2 gives out
    loss = _core.mlp_train_step(
        np.ones((1, 1)), y, w, b, ["identity", "identity"], "squared_error", slots, learning_rate=1e-12, dropout=rate, seed=5
    )
    out = y[0, 0] + np.sqrt(2 * loss)
    kept = out * width * (1 - rate)  # number of kept units if survivors are scaled by 1/(1-rate)
    assert abs(kept - round(kept)) < 1e-6, f"survivors not scaled by 1/(1-p): out={out}"
    sd = np.sqrt(width * rate * (1 - rate))
    assert abs(kept - width * (1 - rate)) < 5 * sd, "dropped fraction inconsistent with the rate"
    assert abs(out - 1.0) < 5 * sd / (width * (1 - rate)), "expectation preserved (inverted dropout)"
    assert out != 1.0


# --------------------------------------------------------------------------------------------------
# Weight decay


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_applies_to_weights_not_biases(optimizer):
    rng = np.random.default_rng(13)
    x, y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    acts = ["sigmoid", "identity"]
    n_slots = 1 if optimizer == "sgd" else 2
    results = {}
    for wd in (0.0, 0.5):
        w, b = ref.random_mlp([3, 4, 2], np.float64, seed=13)
        s = ref.zero_slots(w, b, n_slots)
        _core.mlp_train_step(x, y, w, b, acts, "squared_error", s, optimizer=optimizer, learning_rate=0.1, weight_decay=wd)
        results[wd] = (w, b)
    w0, b0 = ref.random_mlp([3, 4, 2], np.float64, seed=13)
    for l in range(2):
        assert np.array_equal(results[0.0][1][l], results[0.5][1][l]), "biases are not decayed"
        # (Adam's first step from a zero state is ~lr * sign(g): decay changes the weights only slightly)
        assert not np.array_equal(results[0.0][0][l], results[0.5][0][l]), "weights are decayed"
    if optimizer == "sgd":
        # plain SGD (zero velocity): W_wd - W = -lr * wd * W_before
        for l in range(2):
            np.testing.assert_allclose(results[0.5][0][l] - results[0.0][0][l], -0.1 * 0.5 * w0[l], rtol=1e-10, atol=1e-14)


def test_weight_decay_alone_shrinks_weights():
    # A zero gradient (the loss does not depend on W: zero input) leaves only the decay.
    w, b = [np.full((2, 3), 2.0)], [np.full(3, 2.0)]
    s = ref.zero_slots(w, b, 1)
    x, y = np.zeros((4, 2)), np.full((4, 3), 2.0)  # output = b = y: zero loss, zero gradients
    loss = _core.mlp_train_step(x, y, w, b, ["identity"], "squared_error", s, learning_rate=0.1, weight_decay=0.5)
    assert loss == 0.0
    np.testing.assert_allclose(w[0], 2.0 * (1 - 0.1 * 0.5), rtol=1e-15)
    assert np.array_equal(b[0], np.full(3, 2.0))


# --------------------------------------------------------------------------------------------------
# Divergence


@pytest.mark.parametrize("dtype,big", [(np.float32, 1e30), (np.float64, 1e200)])
def test_non_finite_loss_raises_and_leaves_params_unchanged(dtype, big):
    w, b = [np.full((2, 1), big, dtype)], [np.zeros(1, dtype)]
    x = np.full((1, 2), big, dtype)  # x @ W overflows to inf
    y = np.zeros((1, 1), dtype)
    for optimizer, n_slots in (("sgd", 1), ("adam", 2)):
        s = ref.zero_slots(w, b, n_slots)
        with pytest.raises(FloatingPointError):
            _core.mlp_train_step(x, y, w, b, ["identity"], "squared_error", s, optimizer=optimizer, learning_rate=0.1)
        assert np.array_equal(w[0], np.full((2, 1), big, dtype))
        assert np.array_equal(b[0], np.zeros(1, dtype))
        assert all(np.array_equal(a, np.zeros_like(a)) for sl in s for a in sl), "slots untouched"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_learning_rate_diverges_with_floating_point_error(dtype):
    rng = np.random.default_rng(14)
    w, b = ref.random_mlp([3, 8, 2], dtype, seed=14)
    x = rng.standard_normal((16, 3)).astype(dtype)
    y = rng.standard_normal((16, 2)).astype(dtype)
    s = ref.zero_slots(w, b, 1)
    acts = ["tanh", "identity"]
    for step in range(200):
        before = [a.copy() for a in w + b]
        slots_before = copy_slots(s)
        try:
            loss = _core.mlp_train_step(x, y, w, b, acts, "squared_error", s, learning_rate=1e6, momentum=0.9)
        except FloatingPointError:
            # the failed step left parameters and optimiser state as they were
            for a, a0 in zip(w + b, before):
                assert np.array_equal(a, a0, equal_nan=True)
            for sl, sl0 in zip(s, slots_before):
                for a, a0 in zip(sl, sl0):
                    assert np.array_equal(a, a0, equal_nan=True)
            return
        assert np.isfinite(loss), "a non-finite loss must raise, not be returned"
    pytest.fail("training with learning_rate=1e6 never reported divergence")


# --------------------------------------------------------------------------------------------------
# optimizer_step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (50, 100), (3, 4, 5)])
def test_optimizer_step_sgd(dtype, shape):
    rng = np.random.default_rng(15)
    p = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    v = (rng.standard_normal(shape) * 0.1).astype(dtype)
    want_p, want_v = ref.sgd_step(p, g, v, 0.1, 0.9, 0.01)
    ret = _core.optimizer_step(p, g, [v], optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=0.01)
    assert ret is None
    tol = dict(rtol=1e-6, atol=1e-6) if dtype is np.float32 else dict(rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(v, want_v, **tol)
    np.testing.assert_allclose(p, want_p, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (50, 100)])
def test_optimizer_step_adam(dtype, shape):
    rng = np.random.default_rng(16)
    p = rng.standard_normal(shape).astype(dtype)
    m = (rng.standard_normal(shape) * 0.1).astype(dtype)
    v = (rng.random(shape) * 0.1).astype(dtype)
    for t in (1, 2, 10):
        g = rng.standard_normal(shape).astype(dtype)
        want_p, want_m, want_v = ref.adam_step(p, g, m, v, 0.01, 0.85, 0.995, 1e-6, t, 0.05)
        _core.optimizer_step(
            p, g, [m, v], optimizer="adam", learning_rate=0.01, beta1=0.85, beta2=0.995, epsilon=1e-6, t=t, weight_decay=0.05
        )
        tol = dict(rtol=2e-6, atol=1e-6) if dtype is np.float32 else dict(rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(m, want_m, **tol)
        np.testing.assert_allclose(v, want_v, **tol)
        np.testing.assert_allclose(p, want_p, **tol)
        # the next t continues from the kernel's own state, so float32 errors do not accumulate


def test_optimizer_step_thread_count_independent():
    rng = np.random.default_rng(17)
    p0 = rng.standard_normal((300, 70)).astype(np.float32)
    g = rng.standard_normal((300, 70)).astype(np.float32)
    outs = []
    for j in (1, 2, 4):
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        _core.optimizer_step(p, g, [m, v], optimizer="adam", learning_rate=0.01, n_jobs=j)
        outs.append((p, m, v))
    for o in outs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(outs[0], o))
