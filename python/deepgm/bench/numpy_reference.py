"""Plain NumPy reference implementations of one training epoch of each deepgm algorithm.

These are what a careful NumPy user would write: vectorised over the minibatch (no Python loop over
samples), float32 by default, in-place operations where they come naturally, one
``np.random.Generator`` per model for all randomness. They use the same hyperparameters and the same
update rules as deepgm's Rust core, so that timing one epoch of each is an apples-to-apples
comparison:

a. :class:`NumpyRBM` -- Bernoulli RBM trained by CD-k or persistent CD-k (SGD with momentum and L2
   weight decay on the weights, folded into the velocity as deepgm does).
b. :class:`NumpyMLP` -- minibatch SGD with momentum of a sigmoid MLP with a softmax cross-entropy
   output (the fine-tuning of a DBN classifier).
c. :class:`NumpyAutoencoder` -- fine-tuning of a deep autoencoder (sigmoid hidden layers, a linear code
   layer, logits trained by binary cross-entropy).
d. :class:`NumpyVAE` -- a VAE with ReLU hidden layers, Bernoulli likelihood and Adam.
e. :class:`NumpyVAE` with ``conditioning="prior_mean"`` or ``"concat"`` -- the two CVAE variants.
f. :func:`ais_log_partition` -- annealed importance sampling of an RBM's log partition function from
   a base-rate model, vectorised over chains.

Conventions (those of deepgm): a dense layer is ``a_out = f(a_in @ W + b)`` with ``W`` of shape
(n_in, n_out); losses are per-sample sums over outputs, averaged over the minibatch; SGD is
``v = momentum * v - lr * (g + wd * p); p += v``; Adam is bias-corrected.

Run ``python -m deepgm.bench.numpy_reference`` to run :func:`check_gradients` (every hand-written backward
pass against float64 central finite differences) and the AIS check, and ``--smoke`` to also time one
small epoch of each algorithm.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
from scipy.special import expit, logsumexp

#: deepgm clamps the VAE's log-variances to this range in the forward pass (zero gradient outside).
LOG_VAR_MIN = -30.0
LOG_VAR_MAX = 20.0

#: The deep autoencoder of Hinton & Salakhutdinov (2006).
AUTOENCODER_SIZES = (784, 1000, 500, 250, 30, 250, 500, 1000, 784)
#: The DBN classifier fine-tuned by backpropagation.
DBN_CLASSIFIER_SIZES = (784, 500, 500, 2000, 10)


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), elementwise and overflow-free; same shape and dtype as x."""
    return np.logaddexp(0.0, x, dtype=x.dtype)


def one_hot(labels: np.ndarray, n_classes: int, dtype=np.float32) -> np.ndarray:
    """(n,) integer labels -> (n, n_classes) one-hot rows."""
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def minibatches(n: int, batch_size: int, rng: np.random.Generator):
    """Index arrays of the minibatches of one epoch over n samples, from a random permutation.

    The last minibatch may be smaller than batch_size.
    """
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def glorot_layers(sizes: Sequence[int], rng: np.random.Generator, dtype=np.float32):
    """Glorot-uniform weights (n_in, n_out) and zero biases (n_out,) for consecutive ``sizes``."""
    weights, biases = [], []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / (n_in + n_out))
        weights.append(rng.uniform(-bound, bound, size=(n_in, n_out)).astype(dtype))
        biases.append(np.zeros(n_out, dtype=dtype))
    return weights, biases


# ---------------------------------------------------------------------------------------------
# Dense chains: forward, losses, backward
# ---------------------------------------------------------------------------------------------


def apply_activation_(z: np.ndarray, name: str) -> None:
    """z <- f(z) in place, for f in 'identity', 'sigmoid', 'relu', 'tanh'."""
    if name == "sigmoid":
        expit(z, out=z)
    elif name == "relu":
        np.maximum(z, 0, out=z)
    elif name == "tanh":
        np.tanh(z, out=z)
    elif name != "identity":
        raise ValueError(f"unknown activation {name!r}")


def multiply_by_derivative_(delta: np.ndarray, a: np.ndarray, name: str) -> None:
    """delta <- delta * f'(z) in place, with f'(z) written in terms of the output a = f(z)."""
    if name == "sigmoid":
        delta *= a
        delta *= 1 - a
    elif name == "relu":
        delta *= a > 0
    elif name == "tanh":
        delta *= 1 - a * a
    elif name != "identity":
        raise ValueError(f"unknown activation {name!r}")


def mlp_forward(x: np.ndarray, weights, biases, activations) -> list:
    """Outputs of every layer for a batch x (B, n_in): a list of (B, n_out_l) arrays."""
    outputs = []
    a = x
    for w, b, act in zip(weights, biases, activations):
        z = np.dot(a, w)
        z += b
        apply_activation_(z, act)
        outputs.append(z)
        a = z
    return outputs


def loss_and_delta(out: np.ndarray, y: np.ndarray, loss: str):
    """Mean loss of the batch and d(mean loss)/d(out), out being the logits (B, n_out).

    'softmax_cross_entropy': logsumexp(z) * sum(y) - y.z per sample (y rows sum to 1).
    'binary_cross_entropy': sum_j softplus(z_j) - y_j z_j per sample.
    """
    n = out.shape[0]
    if loss == "softmax_cross_entropy":
        shifted = out - out.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sum_exp = exp.sum(axis=1, keepdims=True)
        log_probs = shifted - np.log(sum_exp)
        value = -float(np.sum(y * log_probs, dtype=np.float64)) / n
        delta = exp
        delta /= sum_exp
        delta *= y.sum(axis=1, keepdims=True)
        delta -= y
    elif loss == "binary_cross_entropy":
        value = float(np.sum(softplus(out) - y * out, dtype=np.float64)) / n
        delta = expit(out)
        delta -= y
    else:
        raise ValueError(f"unknown loss {loss!r}")
    delta /= n
    return value, delta


def mlp_backward(x: np.ndarray, outputs, weights, activations, delta: np.ndarray, input_grad: bool = False):
    """Backward pass of a chain run by :func:`mlp_forward`.

    x: (B, n_in) input; outputs: the layers' outputs; delta: (B, n_out) d(loss)/d(last pre-activation).
    Returns (weight grads [(n_in_l, n_out_l)], bias grads [(n_out_l,)], d(loss)/dx (B, n_in) or None).
    """
    n_layers = len(weights)
    grad_w, grad_b = [None] * n_layers, [None] * n_layers
    for layer in reversed(range(n_layers)):
        a_in = x if layer == 0 else outputs[layer - 1]
        grad_w[layer] = np.dot(a_in.T, delta)
        grad_b[layer] = delta.sum(axis=0)
        if layer == 0 and not input_grad:
            return grad_w, grad_b, None
        delta = np.dot(delta, weights[layer].T)
        if layer > 0:
            multiply_by_derivative_(delta, outputs[layer - 1], activations[layer - 1])
    return grad_w, grad_b, delta


def mlp_loss_gradients(x, y, weights, biases, activations, loss, input_grad=False):
    """Mean loss and gradients of a chain on (x (B, n_in), y (B, n_out)).

    Mirrors ``deepgm._core.mlp_loss_gradients`` (which always returns the input gradient; pass
    input_grad=True to compute it too). Returns (loss, weight grads, bias grads, input grad or None).
    """
    outputs = mlp_forward(x, weights, biases, activations)
    value, delta = loss_and_delta(outputs[-1], y, loss)
    grad_w, grad_b, grad_x = mlp_backward(x, outputs, weights, activations, delta, input_grad)
    return value, grad_w, grad_b, grad_x


# ---------------------------------------------------------------------------------------------
# Optimisers (deepgm's update rules)
# ---------------------------------------------------------------------------------------------


class SGDMomentum:
    """``v = momentum * v - lr * (g + wd * p); p += v`` on a list of parameter arrays, in place.

    Weight decay applies to the parameters flagged in ``decay`` (deepgm: weights, not biases).
    """

    def __init__(self, params, learning_rate, momentum, weight_decay=0.0, decay=None):
        self.params = params
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.decay = decay if decay is not None else [True] * len(params)
        self.velocities = [np.zeros_like(p) for p in params]

    def step(self, grads) -> None:
        """Updates the parameters; consumes (overwrites) ``grads``."""
        for p, v, g, decay in zip(self.params, self.velocities, grads, self.decay):
            if decay and self.weight_decay:
                g += self.weight_decay * p
            g *= self.learning_rate
            v *= self.momentum
            v -= g
            p += v


class Adam:
    """Bias-corrected Adam (Kingma & Ba 2015) on a list of parameter arrays, in place."""

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.params = params
        self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads) -> None:
        """Updates the parameters; consumes (overwrites) ``grads``."""
        self.t += 1
        step_size = self.learning_rate / (1 - self.beta1**self.t)
        inv_c2 = 1 / (1 - self.beta2**self.t)
        for p, m, v, g in zip(self.params, self.m, self.v, grads):
            m *= self.beta1
            m += (1 - self.beta1) * g
            np.square(g, out=g)
            g *= 1 - self.beta2
            v *= self.beta2
            v += g
            denom = v * inv_c2
            np.sqrt(denom, out=denom)
            denom += self.epsilon
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom


# ---------------------------------------------------------------------------------------------
# (a) RBM: CD-k and persistent CD-k
# ---------------------------------------------------------------------------------------------


class NumpyRBM:
    """Bernoulli-Bernoulli RBM trained by CD-k (persistent=False) or PCD-k (persistent=True).

    Parameters: W (n_hidden, n_visible), b visible bias (n_visible,), c hidden bias (n_hidden,), and
    their velocities. The persistent chain holds hidden states (batch_size, n_hidden), initially zeros.
    """

    def __init__(
        self,
        n_visible=784,
        n_hidden=500,
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=2e-4,
        batch_size=100,
        k=1,
        persistent=False,
        seed=0,
        dtype=np.float32,
    ):
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.learning_rate, self.momentum, self.weight_decay = learning_rate, momentum, weight_decay
        self.batch_size, self.k, self.persistent = batch_size, k, persistent
        self.W = (0.01 * self.rng.standard_normal((n_hidden, n_visible))).astype(dtype)
        self.b = np.zeros(n_visible, dtype=dtype)
        self.c = np.zeros(n_hidden, dtype=dtype)
        self.vel_W = np.zeros_like(self.W)
        self.vel_b = np.zeros_like(self.b)
        self.vel_c = np.zeros_like(self.c)
        self.chain = np.zeros((batch_size, n_hidden), dtype=dtype) if persistent else None

    def _sample(self, probs: np.ndarray) -> np.ndarray:
        """Bernoulli draws (same shape and dtype as probs): 1 where a uniform falls below probs."""
        return (self.rng.random(probs.shape, dtype=self.dtype) < probs).astype(self.dtype)

    def hidden_probs(self, v: np.ndarray) -> np.ndarray:
        """p(h = 1 | v) (B, n_hidden) for v (B, n_visible)."""
        pre = np.dot(v, self.W.T)
        pre += self.c
        return expit(pre, out=pre)

    def visible_probs(self, h: np.ndarray) -> np.ndarray:
        """p(v = 1 | h) (B, n_visible) for h (B, n_hidden)."""
        pre = np.dot(h, self.W)
        pre += self.b
        return expit(pre, out=pre)

    def cd_step(self, v0: np.ndarray) -> None:
        """One CD-k / PCD-k update on the minibatch v0 (B, n_visible), in place."""
        lr, mom = self.learning_rate, self.momentum
        h0_probs = self.hidden_probs(v0)
        h_states = self.chain if self.persistent else self._sample(h0_probs)
        for g in range(1, self.k + 1):
            v_states = self._sample(self.visible_probs(h_states))
            h_probs = self.hidden_probs(v_states)
            if g < self.k or self.persistent:
                h_states = self._sample(h_probs)
        if self.persistent:
            self.chain = h_states
        n_data, n_chain = v0.shape[0], v_states.shape[0]
        # vel_W = mom * vel_W + lr * (H0p^T V0 / B - Hp^T Vs / C); the 1/B, 1/C and lr scale the
        # (B, n_hidden) factors rather than the (n_hidden, n_visible) products.
        step = np.dot((h0_probs * (lr / n_data)).T, v0)
        step -= np.dot((h_probs * (lr / n_chain)).T, v_states)
        self.vel_W *= mom
        self.vel_W += step
        self.vel_W -= (lr * self.weight_decay) * self.W
        self.W += self.vel_W
        self.vel_b *= mom
        self.vel_b += lr * (v0.mean(axis=0) - v_states.mean(axis=0))
        self.b += self.vel_b
        self.vel_c *= mom
        self.vel_c += lr * (h0_probs.mean(axis=0) - h_probs.mean(axis=0))
        self.c += self.vel_c

    def fit_epoch(self, X: np.ndarray) -> None:
        """One epoch over the rows of X (n, n_visible), minibatches from a random permutation."""
        for rows in minibatches(X.shape[0], self.batch_size, self.rng):
            self.cd_step(X[rows])

    def reconstruction_error(self, X: np.ndarray) -> float:
        """Mean squared error of the mean-field reconstruction v -> p(h|v) -> p(v|h)."""
        recon = self.visible_probs(self.hidden_probs(X))
        return float(np.mean((recon - X) ** 2))


# ---------------------------------------------------------------------------------------------
# (b) MLP fine-tuning and (c) deep autoencoder fine-tuning
# ---------------------------------------------------------------------------------------------


class NumpyMLP:
    """A dense chain trained by minibatch SGD with momentum.

    Default: a classifier with sigmoid hidden layers and a linear output trained by softmax
    cross-entropy; targets are (n, n_out) rows (one-hot labels for a classifier).
    """

    def __init__(
        self,
        sizes=DBN_CLASSIFIER_SIZES,
        activations=None,
        loss="softmax_cross_entropy",
        learning_rate=0.1,
        momentum=0.9,
        weight_decay=0.0,
        batch_size=100,
        seed=0,
        dtype=np.float32,
    ):
        self.rng = np.random.default_rng(seed)
        self.sizes = tuple(sizes)
        n_layers = len(sizes) - 1
        self.activations = list(activations) if activations is not None else ["sigmoid"] * (n_layers - 1) + ["identity"]
        self.loss = loss
        self.batch_size = batch_size
        self.weights, self.biases = glorot_layers(sizes, self.rng, dtype)
        params = [p for wb in zip(self.weights, self.biases) for p in wb]
        self.optimizer = SGDMomentum(params, learning_rate, momentum, weight_decay, decay=[True, False] * n_layers)

    def loss_gradients(self, x: np.ndarray, y: np.ndarray):
        """(mean loss, weight grads, bias grads) of the batch (x (B, n_in), y (B, n_out))."""
        value, grad_w, grad_b, _ = mlp_loss_gradients(x, y, self.weights, self.biases, self.activations, self.loss)
        return value, grad_w, grad_b

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """Forward, backward and SGD update on one minibatch; returns the loss before the update."""
        value, grad_w, grad_b = self.loss_gradients(x, y)
        self.optimizer.step([g for gwb in zip(grad_w, grad_b) for g in gwb])
        return value

    def fit_epoch(self, X: np.ndarray, Y: np.ndarray) -> float:
        """One epoch over (X (n, n_in), Y (n, n_out)); returns the mean minibatch loss."""
        losses = [self.train_step(X[rows], Y[rows]) for rows in minibatches(X.shape[0], self.batch_size, self.rng)]
        return float(np.mean(losses))


def autoencoder_activations(sizes: Sequence[int]) -> list:
    """Sigmoid hidden layers, a linear code layer (the narrowest) and a linear output (logits)."""
    n_layers = len(sizes) - 1
    code_layer = int(np.argmin(sizes[1:-1]))
    acts = ["sigmoid"] * n_layers
    acts[code_layer] = "identity"
    acts[-1] = "identity"
    return acts


class NumpyAutoencoder(NumpyMLP):
    """Deep autoencoder fine-tuning: logits of the reconstruction trained by binary cross-entropy
    (sum over pixels, mean over the batch) with SGD + momentum."""

    def __init__(
        self, sizes=AUTOENCODER_SIZES, learning_rate=0.01, momentum=0.9, weight_decay=0.0, batch_size=100, seed=0, dtype=np.float32
    ):
        super().__init__(
            sizes, autoencoder_activations(sizes), "binary_cross_entropy", learning_rate, momentum, weight_decay, batch_size, seed, dtype
        )

    def fit_epoch(self, X: np.ndarray, Y: np.ndarray | None = None) -> float:
        """One epoch of reconstructing X (n, n_features) (values in [0, 1])."""
        return super().fit_epoch(X, X if Y is None else Y)


# ---------------------------------------------------------------------------------------------
# (d) VAE and (e) CVAE
# ---------------------------------------------------------------------------------------------


class NumpyVAE:
    """VAE (conditioning='none') or CVAE ('prior_mean' or 'concat') with Bernoulli likelihood, ReLU
    hidden layers and Adam.

    Encoder: [x (| one-hot y)] -> hidden (ReLU) -> [mu | log_var] (2 * n_latent, linear).
    Decoder: [z (| one-hot y)] -> reversed hidden (ReLU) -> logits (n_features, linear).
    Loss: mean over the batch of sum_pixels(softplus(l) - x l) + 0.5 sum((mu - m_y)^2 + e^lv - lv - 1),
    m_y = 0 except with 'prior_mean' (a learned (n_classes, n_latent) table of prior means).
    """

    def __init__(
        self,
        n_features=784,
        hidden=(400,),
        n_latent=20,
        n_classes=10,
        conditioning="none",
        learning_rate=1e-3,
        beta1=0.9,
        beta2=0.999,
        epsilon=1e-8,
        batch_size=128,
        seed=0,
        dtype=np.float32,
    ):
        if conditioning not in ("none", "prior_mean", "concat"):
            raise ValueError(f"unknown conditioning {conditioning!r}")
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.n_features, self.n_latent, self.n_classes = n_features, n_latent, n_classes
        self.conditioning = conditioning
        self.batch_size = batch_size
        label_width = n_classes if conditioning == "concat" else 0
        enc_sizes = [n_features + label_width, *hidden, 2 * n_latent]
        dec_sizes = [n_latent + label_width, *reversed(hidden), n_features]
        self.enc_w, self.enc_b = glorot_layers(enc_sizes, self.rng, dtype)
        self.dec_w, self.dec_b = glorot_layers(dec_sizes, self.rng, dtype)
        self.enc_acts = ["relu"] * len(hidden) + ["identity"]
        self.dec_acts = ["relu"] * len(hidden) + ["identity"]
        self.class_means = np.zeros((n_classes, n_latent), dtype=dtype) if conditioning == "prior_mean" else None
        self.optimizer = Adam(self.parameters(), learning_rate, beta1, beta2, epsilon)

    def parameters(self) -> list:
        """Every parameter array: encoder W, b pairs, decoder W, b pairs, then the class means."""
        params = [p for wb in zip(self.enc_w, self.enc_b) for p in wb]
        params += [p for wb in zip(self.dec_w, self.dec_b) for p in wb]
        if self.class_means is not None:
            params.append(self.class_means)
        return params

    def loss_gradients(self, x: np.ndarray, labels: np.ndarray | None = None, eps: np.ndarray | None = None):
        """(mean loss, gradients in the order of :meth:`parameters`) of the batch x (B, n_features).

        labels: (B,) ints (CVAE only); eps: (B, n_latent) standard normal noise (drawn if None).
        """
        n, nl = x.shape[0], self.n_latent
        onehot = one_hot(labels, self.n_classes, self.dtype) if self.conditioning != "none" else None
        concat = self.conditioning == "concat"
        if eps is None:
            eps = self.rng.standard_normal((n, nl), dtype=self.dtype)

        # Forward.
        enc_in = np.hstack([x, onehot]) if concat else x
        enc_out = mlp_forward(enc_in, self.enc_w, self.enc_b, self.enc_acts)
        mu, log_var_raw = enc_out[-1][:, :nl], enc_out[-1][:, nl:]
        log_var = np.clip(log_var_raw, LOG_VAR_MIN, LOG_VAR_MAX)
        sigma = np.exp(0.5 * log_var)
        z = sigma * eps
        z += mu
        dec_in = np.hstack([z, onehot]) if concat else z
        dec_out = mlp_forward(dec_in, self.dec_w, self.dec_b, self.dec_acts)
        logits = dec_out[-1]
        diff = mu - np.dot(onehot, self.class_means) if self.class_means is not None else mu
        var = sigma * sigma
        recon = np.sum(softplus(logits) - x * logits, dtype=np.float64)
        kl = 0.5 * np.sum(diff * diff + var - log_var - 1, dtype=np.float64)
        value = float(recon + kl) / n

        # Backward.
        d_logits = expit(logits)
        d_logits -= x
        d_logits /= n
        dec_gw, dec_gb, d_dec_in = mlp_backward(dec_in, dec_out, self.dec_w, self.dec_acts, d_logits, input_grad=True)
        d_z = d_dec_in[:, :nl]
        d_h = np.empty((n, 2 * nl), dtype=x.dtype)
        d_mu, d_log_var = d_h[:, :nl], d_h[:, nl:]
        np.add(d_z, diff / n, out=d_mu)
        # dz/dlog_var = 0.5 * sigma * eps; dKL/dlog_var = 0.5 * (exp(lv) - 1)
        np.multiply(d_z, eps, out=d_log_var)
        d_log_var *= sigma
        d_log_var += (var - 1) / n
        d_log_var *= 0.5
        d_log_var *= (log_var_raw >= LOG_VAR_MIN) & (log_var_raw <= LOG_VAR_MAX)
        enc_gw, enc_gb, _ = mlp_backward(enc_in, enc_out, self.enc_w, self.enc_acts, d_h)

        grads = [g for gwb in zip(enc_gw, enc_gb) for g in gwb] + [g for gwb in zip(dec_gw, dec_gb) for g in gwb]
        if self.class_means is not None:
            grads.append(np.dot(onehot.T, diff) * (-1.0 / n))
        return value, grads

    def train_step(self, x: np.ndarray, labels: np.ndarray | None = None) -> float:
        """One Adam step on the minibatch; returns the loss before the update."""
        value, grads = self.loss_gradients(x, labels)
        self.optimizer.step(grads)
        return value

    def fit_epoch(self, X: np.ndarray, labels: np.ndarray | None = None) -> float:
        """One epoch over X (n, n_features) (and labels (n,) for a CVAE); returns the mean loss."""
        losses = []
        for rows in minibatches(X.shape[0], self.batch_size, self.rng):
            losses.append(self.train_step(X[rows], None if labels is None else labels[rows]))
        return float(np.mean(losses))


# ---------------------------------------------------------------------------------------------
# (f) AIS for an RBM
# ---------------------------------------------------------------------------------------------


def base_rate_bias(X: np.ndarray, smoothing: float = 0.05) -> np.ndarray:
    """Visible biases of the base-rate model: logits of the (smoothed) pixel means of X (n, n_visible)."""
    p = (X.mean(axis=0) * X.shape[0] + smoothing) / (X.shape[0] + 2 * smoothing)
    return np.log(p / (1 - p)).astype(X.dtype)


def ais_log_weights(W, b, c, base_bias, betas, n_chains, rng: np.random.Generator) -> np.ndarray:
    """AIS log importance weights (n_chains,) for the RBM (W (nh, nv), b (nv,), c (nh,)).

    Intermediate distributions p_k(v) ~ exp((1 - beta_k) a.v + beta_k log p*(v)), a = base_bias, with
    log p*(v) = b.v + sum_j softplus(c_j + (W v)_j); transitions h | v then v | h at beta_k.
    """
    dtype = W.dtype
    n_hidden, n_visible = W.shape

    def log_p(v, pre_h, beta):
        visible_bias = ((1 - beta) * base_bias + beta * b).astype(dtype)
        linear = np.dot(v, visible_bias).astype(np.float64)
        return linear + np.sum(softplus(beta * (pre_h + c)), axis=1, dtype=np.float64)

    v = (rng.random((n_chains, n_visible), dtype=dtype) < expit(base_bias)).astype(dtype)
    log_w = np.zeros(n_chains)
    for k in range(1, len(betas)):
        pre_h = np.dot(v, W.T)
        log_w += log_p(v, pre_h, betas[k]) - log_p(v, pre_h, betas[k - 1])
        if k == len(betas) - 1:
            break
        beta = dtype.type(betas[k])
        h = (rng.random((n_chains, n_hidden), dtype=dtype) < expit(beta * (pre_h + c))).astype(dtype)
        pre_v = np.dot(h, W)
        pre_v += b
        pre_v *= beta
        pre_v += (1 - beta) * base_bias
        v = (rng.random((n_chains, n_visible), dtype=dtype) < expit(pre_v)).astype(dtype)
    return log_w


def ais_log_partition(W, b, c, base_bias, betas, n_chains=100, rng=None):
    """AIS estimate of log Z of the RBM; returns (log_z, log_weights)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    log_w = ais_log_weights(W, b, c, base_bias, betas, n_chains, rng)
    log_z_base = float(np.sum(softplus(base_bias.astype(np.float64)))) + W.shape[0] * np.log(2.0)
    return log_z_base + float(logsumexp(log_w) - np.log(n_chains)), log_w


def exact_log_partition(W, b, c) -> float:
    """log Z of a small RBM by enumerating its 2^n_hidden hidden states (n_hidden <= 20), float64."""
    W, b, c = (np.asarray(a, dtype=np.float64) for a in (W, b, c))
    n_hidden = W.shape[0]
    states = ((np.arange(2**n_hidden)[:, None] >> np.arange(n_hidden)) & 1).astype(np.float64)
    log_p_h = states @ c + np.sum(softplus(states @ W + b), axis=1)
    return float(logsumexp(log_p_h))


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


def _finite_difference_check(name, params, loss_fn, analytic, h=1e-6, tol=1e-6):
    """Compares analytic gradients with central differences of loss_fn() over every entry of params.

    Returns (name, max abs error, max |gradient|); raises AssertionError if an error exceeds
    tol * max(1, max |gradient|).
    """
    max_err, max_grad = 0.0, 0.0
    for p, g in zip(params, analytic):
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + h
            up = loss_fn()
            flat[i] = orig - h
            down = loss_fn()
            flat[i] = orig
            fd = (up - down) / (2 * h)
            max_err = max(max_err, abs(fd - gflat[i]))
            max_grad = max(max_grad, abs(fd))
    if not max_err <= tol * max(1.0, max_grad):
        raise AssertionError(f"{name}: max |analytic - finite difference| = {max_err:.3g} (max |grad| {max_grad:.3g})")
    return name, max_err, max_grad


def _random_params_(params, rng, scale=0.5):
    for p in params:
        p[...] = scale * rng.standard_normal(p.shape)


def check_gradients(verbose=True) -> list:
    """Checks the hand-written backward passes of (b) MLP, (c) autoencoder, (d) VAE and (e) both CVAE
    variants against float64 central finite differences on tiny sizes. Returns one
    (name, max abs error, max |gradient|) tuple per check; raises AssertionError on a mismatch."""
    rng = np.random.default_rng(1234)
    results = []
    f64 = np.float64
    n = 5

    # (b) classifier: sigmoid hidden layers, softmax cross-entropy; also d(loss)/dx.
    mlp = NumpyMLP(sizes=(6, 5, 4, 3), seed=1, dtype=f64)
    _random_params_(mlp.weights + mlp.biases, rng)
    x = rng.random((n, 6))
    y = one_hot(rng.integers(0, 3, n), 3, f64)
    loss_fn = lambda: mlp_loss_gradients(x, y, mlp.weights, mlp.biases, mlp.activations, mlp.loss)[0]
    _, gw, gb, gx = mlp_loss_gradients(x, y, mlp.weights, mlp.biases, mlp.activations, mlp.loss, input_grad=True)
    results.append(_finite_difference_check("(b) MLP softmax CE", mlp.weights + mlp.biases + [x], loss_fn, gw + gb + [gx]))

    # (c) autoencoder: sigmoid layers, linear code, BCE on logits.
    ae = NumpyAutoencoder(sizes=(6, 5, 4, 2, 4, 5, 6), seed=2, dtype=f64)
    _random_params_(ae.weights + ae.biases, rng)
    x = rng.random((n, 6))
    loss_fn = lambda: ae.loss_gradients(x, x)[0]
    _, gw, gb = ae.loss_gradients(x, x)
    results.append(_finite_difference_check("(c) autoencoder BCE", ae.weights + ae.biases, loss_fn, gw + gb))

    # (d) VAE and (e) CVAEs, with fixed noise.
    for conditioning in ("none", "prior_mean", "concat"):
        vae = NumpyVAE(n_features=6, hidden=(5, 4), n_latent=3, n_classes=3, conditioning=conditioning, seed=3, dtype=f64)
        params = vae.parameters()
        _random_params_(params, rng)
        x = rng.random((n, 6))
        labels = rng.integers(0, 3, n) if conditioning != "none" else None
        eps = rng.standard_normal((n, 3))
        loss_fn = lambda: vae.loss_gradients(x, labels, eps)[0]
        _, grads = vae.loss_gradients(x, labels, eps)
        label = "(d) VAE" if conditioning == "none" else f"(e) CVAE {conditioning}"
        results.append(_finite_difference_check(label, params, loss_fn, grads))

    if verbose:
        for name, err, gmax in results:
            print(f"  PASS {name:<24} max abs error {err:.2e}  (max |grad| {gmax:.2e})")
    return results


def check_ais(verbose=True) -> float:
    """AIS on a tiny RBM must agree with the exact log Z (enumeration) within 0.1 nats."""
    rng = np.random.default_rng(7)
    n_hidden, n_visible = 8, 20
    W = (0.4 * rng.standard_normal((n_hidden, n_visible))).astype(np.float32)
    b = (0.4 * rng.standard_normal(n_visible)).astype(np.float32)
    c = (0.4 * rng.standard_normal(n_hidden)).astype(np.float32)
    exact = exact_log_partition(W, b, c)
    est, _ = ais_log_partition(W, b, c, 0.5 * b, np.linspace(0, 1, 2000), n_chains=200, rng=rng)
    if not abs(est - exact) < 0.1:
        raise AssertionError(f"AIS log Z {est:.4f} vs exact {exact:.4f}")
    if verbose:
        print(f"  PASS (f) AIS log Z {est:.4f} vs exact {exact:.4f} (|diff| {abs(est - exact):.4f})")
    return est - exact


def _smoke(n=1000, seed=0) -> None:
    """Times one epoch of each reference on n random binary 'images' (not a benchmark)."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, 784)) < 0.2).astype(np.float32)
    labels = rng.integers(0, 10, n)
    Y = one_hot(labels, 10)
    cases = [
        ("RBM CD-1", lambda: NumpyRBM().fit_epoch(X)),
        ("RBM PCD-1", lambda: NumpyRBM(persistent=True).fit_epoch(X)),
        ("DBN classifier fine-tune", lambda: NumpyMLP().fit_epoch(X, Y)),
        ("autoencoder fine-tune", lambda: NumpyAutoencoder().fit_epoch(X)),
        ("VAE", lambda: NumpyVAE().fit_epoch(X)),
        ("CVAE prior_mean", lambda: NumpyVAE(conditioning="prior_mean").fit_epoch(X, labels)),
        ("CVAE concat", lambda: NumpyVAE(conditioning="concat").fit_epoch(X, labels)),
    ]
    for name, fn in cases:
        t0 = time.perf_counter()
        fn()
        print(f"  {name:<26} one epoch of {n}: {time.perf_counter() - t0:.3f} s")
    rbm = NumpyRBM()
    t0 = time.perf_counter()
    ais_log_partition(rbm.W, rbm.b, rbm.c, base_rate_bias(X), np.linspace(0, 1, 100), n_chains=100)
    print(f"  {'AIS 100 chains x 100 betas':<26} {time.perf_counter() - t0:.3f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="also time one small epoch of each algorithm")
    args = parser.parse_args(argv)
    print("Gradient self-checks (float64 central differences):")
    check_gradients()
    print("AIS self-check:")
    check_ais()
    if args.smoke:
        print("Smoke run:")
        _smoke()


if __name__ == "__main__":
    main()
