"""Pure-numpy float64 reference implementations ("oracles") for the tests of ``deepgm._core``.

Everything here is written from the mathematical definitions, independently of the Rust kernels,
and always computes in float64 whatever the dtype of its inputs.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "softplus")
LOSSES = ("squared_error", "binary_cross_entropy", "softmax_cross_entropy")


def f64(x):
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# GEMM


def gemm(a, b, c, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """alpha * op(a) @ op(b) + beta * c in float64 (beta == 0 ignores c entirely, as BLAS does)."""
    a, b, c = f64(a), f64(b), f64(c)
    oa = a.T if trans_a else a
    ob = b.T if trans_b else b
    out = alpha * (oa @ ob)
    if beta != 0.0:
        out = out + beta * c
    return out


def gemm_error_scale(a, b, c, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """Frobenius norm of |alpha| |op(a)| |op(b)| + |beta| |c|: the natural scale of rounding errors."""
    a, b, c = np.abs(f64(a)), np.abs(f64(b)), np.abs(f64(c))
    oa = a.T if trans_a else a
    ob = b.T if trans_b else b
    s = abs(alpha) * (oa @ ob)
    if beta != 0.0:
        s = s + abs(beta) * c
    return float(np.linalg.norm(s))


# --------------------------------------------------------------------------------------------------
# Activations (stable closed forms)


def sigmoid(x):
    x = f64(x)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def softplus(x):
    x = f64(x)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def activation(x, name):
    x = f64(x)
    if name == "identity":
        return x.copy()
    if name == "sigmoid":
        return sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "softplus":
        return softplus(x)
    raise ValueError(name)


def activation_derivative(x, name):
    x = f64(x)
    if name == "identity":
        return np.ones_like(x)
    if name == "sigmoid":
        s = sigmoid(x)
        return s * (1.0 - s)
    if name == "tanh":
        # 1 - tanh^2 = 1 / cosh^2, written without cancellation
        return 1.0 / np.cosh(np.clip(x, -350.0, 350.0)) ** 2
    if name == "relu":
        return (x > 0).astype(np.float64)
    if name == "softplus":
        return sigmoid(x)
    raise ValueError(name)


# --------------------------------------------------------------------------------------------------
# MLP


def mlp_forward(x, weights, biases, activations, all_layers=False):
    """Layer outputs a_l = f_l(a_{l-1} @ W_l + b_l), in float64."""
    a = f64(x)
    outs = []
    for w, b, act in zip(weights, biases, activations):
        a = activation(a @ f64(w) + f64(b), act)
        outs.append(a)
    if all_layers:
        return outs
    return outs[-1] if outs else f64(x)


def logsumexp_rows(z):
    m = np.max(z, axis=1, keepdims=True)
    return (m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)))[:, 0]


def per_sample_loss(out, y, loss):
    out, y = f64(out), f64(y)
    if loss == "squared_error":
        return 0.5 * np.sum((out - y) ** 2, axis=1)
    if loss == "binary_cross_entropy":
        return np.sum(softplus(out) - y * out, axis=1)
    if loss == "softmax_cross_entropy":
        return logsumexp_rows(out) - np.sum(y * out, axis=1)
    raise ValueError(loss)


def mlp_loss(x, y, weights, biases, activations, loss):
    """Mean over the batch of the per-sample loss, in float64."""
    out = mlp_forward(x, weights, biases, activations)
    return float(np.mean(per_sample_loss(out, y, loss)))


def finite_difference_gradients(x, y, weights, biases, activations, loss, h=1e-6):
    """Central differences of `mlp_loss` w.r.t. every weight, bias and input, in float64."""
    weights = [f64(w).copy() for w in weights]
    biases = [f64(b).copy() for b in biases]
    x = f64(x).copy()
    y = f64(y)

    def fd(arr):
        g = np.zeros_like(arr)
        flat, gflat = arr.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + h
            up = mlp_loss(x, y, weights, biases, activations, loss)
            flat[i] = orig - h
            down = mlp_loss(x, y, weights, biases, activations, loss)
            flat[i] = orig
            gflat[i] = (up - down) / (2.0 * h)
        return g

    gw = [fd(w) for w in weights]
    gb = [fd(b) for b in biases]
    gx = fd(x)
    return gw, gb, gx


def pre_activations(x, weights, biases, activations):
    """Every layer's pre-activation z_l (float64), e.g. to keep test data away from relu kinks."""
    a = f64(x)
    zs = []
    for w, b, act in zip(weights, biases, activations):
        z = a @ f64(w) + f64(b)
        zs.append(z)
        a = activation(z, act)
    return zs


# --------------------------------------------------------------------------------------------------
# Optimisers


def sgd_step(param, grad, velocity, lr, momentum, weight_decay=0.0):
    """v <- momentum v - lr (g + wd p); p <- p + v. Returns the new (param, velocity)."""
    p, g, v = f64(param), f64(grad), f64(velocity)
    v = momentum * v - lr * (g + weight_decay * p)
    return p + v, v


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, t, weight_decay=0.0):
    """Adam with bias correction at the 1-based step t. Returns the new (param, m, v)."""
    p, g, m, v = f64(param), f64(grad), f64(m), f64(v)
    g = g + weight_decay * p
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    m_hat = m / (1.0 - beta1**t)
    v_hat = v / (1.0 - beta2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


# --------------------------------------------------------------------------------------------------
# Helpers shared by the test files


def random_mlp(sizes, dtype=np.float64, seed=0, scale=0.8):
    """Weights (n_in, n_out) and biases (n_out,) of a chain with the given layer sizes."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        weights.append((rng.standard_normal((n_in, n_out)) * scale / np.sqrt(n_in)).astype(dtype))
        biases.append((rng.standard_normal(n_out) * 0.3).astype(dtype))
    return weights, biases


def zero_slots(weights, biases, n_slots):
    """Optimiser state: one list of `n_slots` zero arrays per parameter, in the order W0, b0, W1, ..."""
    slots = []
    for w, b in zip(weights, biases):
        slots.append([np.zeros_like(w) for _ in range(n_slots)])
        slots.append([np.zeros_like(b) for _ in range(n_slots)])
    return slots


def params_in_order(weights, biases):
    out = []
    for w, b in zip(weights, biases):
        out.extend([w, b])
    return out


def max_rel_err(got, want):
    """max |got - want| / (1 + |want|)."""
    got, want = f64(got), f64(want)
    return float(np.max(np.abs(got - want) / (1.0 + np.abs(want)))) if want.size else 0.0
