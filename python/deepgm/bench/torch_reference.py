"""PyTorch (CPU) reference implementations of one training epoch of each deepgm algorithm.

Written as a typical PyTorch user would: ``nn.Linear`` / ``nn.Sequential`` modules, autograd, and
``torch.optim.SGD`` (momentum) / ``torch.optim.Adam`` for (b)-(e); plain tensor operations (uniform
comparisons for the Bernoulli draws) for the RBM (a). float32, CPU only. The hyperparameters and update rules are those
of deepgm and of ``numpy_reference``:

a. :class:`TorchRBM` -- CD-k / PCD-k, SGD with momentum, L2 weight decay folded into the velocity.
b. :class:`TorchMLP` -- sigmoid MLP classifier, softmax cross-entropy, SGD momentum 0.9, lr 0.1.
c. :class:`TorchAutoencoder` -- deep autoencoder, BCE on logits (sum over pixels, mean over batch).
d. :class:`TorchVAE` -- VAE with ReLU hidden layers, Bernoulli likelihood, Adam.
e. :class:`TorchVAE` with ``conditioning="prior_mean"`` or ``"concat"`` -- the two CVAE variants.

Minibatches are drawn by indexing tensors with ``torch.randperm`` (what a user does when the data set
fits in memory; a ``DataLoader`` would only add Python overhead).

torch is imported lazily: this module imports without it, with ``TORCH_AVAILABLE`` False, and the
classes raise ImportError when built. ``set_threads(n)`` (or ``n_threads=`` of each class) sets
``torch.set_num_threads``.

Run ``python -m deepgm.bench.torch_reference`` to check the gradients of (b)-(e) against the hand-written
NumPy backward passes of ``numpy_reference`` (float64, same parameters and noise), and ``--smoke`` to
also time one small epoch of each.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Sequence

import numpy as np

#: Whether torch can be imported (it is not imported until a class is built).
TORCH_AVAILABLE = importlib.util.find_spec("torch") is not None

AUTOENCODER_SIZES = (784, 1000, 500, 250, 30, 250, 500, 1000, 784)
DBN_CLASSIFIER_SIZES = (784, 500, 500, 2000, 10)
LOG_VAR_MIN, LOG_VAR_MAX = -30.0, 20.0


def _torch():
    """The torch module, imported on first use."""
    if not TORCH_AVAILABLE:
        raise ImportError("PyTorch is not installed: the torch reference implementations are unavailable")
    import torch

    return torch


def set_threads(n_threads: int | None) -> None:
    """torch.set_num_threads(n_threads) (None leaves torch's default)."""
    if n_threads is not None:
        _torch().set_num_threads(int(n_threads))


def as_tensor(array, dtype=None):
    """A numpy array (or tensor) as a torch tensor, without a copy when possible."""
    torch = _torch()
    t = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    return t.to(dtype) if dtype is not None else t


def _minibatches(n: int, batch_size: int, generator):
    """Index tensors of one epoch's minibatches from a random permutation (the last may be short)."""
    order = _torch().randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _activation_module(name: str):
    nn = _torch().nn
    modules = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}
    if name not in modules:
        raise ValueError(f"unknown activation {name!r}")
    return modules[name]()


def build_mlp(sizes: Sequence[int], activations: Sequence[str], dtype=None):
    """nn.Sequential of Linear layers, each followed by its activation module ('identity': none)."""
    nn = _torch().nn
    layers = []
    for (n_in, n_out), act in zip(zip(sizes[:-1], sizes[1:]), activations):
        layers.append(nn.Linear(n_in, n_out, dtype=dtype))
        if act != "identity":
            layers.append(_activation_module(act))
    return nn.Sequential(*layers)


def linear_layers(model) -> list:
    """The nn.Linear modules of a Sequential, in order."""
    nn = _torch().nn
    return [m for m in model if isinstance(m, nn.Linear)]


def load_numpy_layers(model, weights, biases) -> None:
    """Copies numpy weights (n_in, n_out) and biases (n_out,) into the Linear layers of model."""
    torch = _torch()
    with torch.no_grad():
        for layer, w, b in zip(linear_layers(model), weights, biases):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            layer.bias.copy_(torch.from_numpy(b))


# ---------------------------------------------------------------------------------------------
# (a) RBM
# ---------------------------------------------------------------------------------------------


class TorchRBM:
    """Bernoulli RBM trained by CD-k or persistent CD-k with manual tensor operations.

    W (n_hidden, n_visible), b visible bias, c hidden bias, and their velocities; the persistent chain
    is (batch_size, n_hidden) hidden states, initially zeros.
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
        n_threads=None,
    ):
        torch = _torch()
        set_threads(n_threads)
        self.generator = torch.Generator().manual_seed(seed)
        self.learning_rate, self.momentum, self.weight_decay = learning_rate, momentum, weight_decay
        self.batch_size, self.k, self.persistent = batch_size, k, persistent
        self.W = 0.01 * torch.randn(n_hidden, n_visible, generator=self.generator)
        self.b = torch.zeros(n_visible)
        self.c = torch.zeros(n_hidden)
        self.vel_W, self.vel_b, self.vel_c = torch.zeros_like(self.W), torch.zeros_like(self.b), torch.zeros_like(self.c)
        self.chain = torch.zeros(batch_size, n_hidden) if persistent else None

    def _sample(self, probs):
        """Bernoulli draws: 1 where a uniform falls below probs. (A uniform comparison rather than
        torch.bernoulli, which measured 3x slower on the CPU with torch 2.15.)"""
        torch = _torch()
        return (torch.rand(probs.shape, generator=self.generator) < probs).to(probs.dtype)

    def hidden_probs(self, v):
        """p(h = 1 | v) (B, n_hidden) for v (B, n_visible)."""
        torch = _torch()
        return torch.sigmoid(torch.addmm(self.c, v, self.W.t()))

    def visible_probs(self, h):
        """p(v = 1 | h) (B, n_visible) for h (B, n_hidden)."""
        torch = _torch()
        return torch.sigmoid(torch.addmm(self.b, h, self.W))

    def cd_step(self, v0) -> None:
        """One CD-k / PCD-k update on the minibatch v0 (B, n_visible), in place."""
        torch = _torch()
        lr, mom = self.learning_rate, self.momentum
        with torch.no_grad():
            h0_probs = self.hidden_probs(v0)
            h_states = self.chain if self.persistent else self._sample(h0_probs)
            for step in range(1, self.k + 1):
                v_states = self._sample(self.visible_probs(h_states))
                h_probs = self.hidden_probs(v_states)
                if step < self.k or self.persistent:
                    h_states = self._sample(h_probs)
            if self.persistent:
                self.chain = h_states
            n_data, n_chain = v0.shape[0], v_states.shape[0]
            self.vel_W.mul_(mom)
            self.vel_W.addmm_(h0_probs.t(), v0, alpha=lr / n_data)
            self.vel_W.addmm_(h_probs.t(), v_states, alpha=-lr / n_chain)
            self.vel_W.add_(self.W, alpha=-lr * self.weight_decay)
            self.W.add_(self.vel_W)
            self.vel_b.mul_(mom).add_(v0.mean(0) - v_states.mean(0), alpha=lr)
            self.b.add_(self.vel_b)
            self.vel_c.mul_(mom).add_(h0_probs.mean(0) - h_probs.mean(0), alpha=lr)
            self.c.add_(self.vel_c)

    def fit_epoch(self, X) -> None:
        """One epoch over the rows of X (n, n_visible) (numpy array or tensor)."""
        X = as_tensor(X)
        for rows in _minibatches(X.shape[0], self.batch_size, self.generator):
            self.cd_step(X[rows])


# ---------------------------------------------------------------------------------------------
# (b) MLP and (c) autoencoder
# ---------------------------------------------------------------------------------------------


class TorchMLP:
    """A dense chain trained with torch.optim.SGD (momentum). Default: sigmoid classifier trained by
    softmax cross-entropy on class indices (F.cross_entropy)."""

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
        n_threads=None,
        dtype=None,
    ):
        torch = _torch()
        set_threads(n_threads)
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        n_layers = len(sizes) - 1
        self.activations = list(activations) if activations is not None else ["sigmoid"] * (n_layers - 1) + ["identity"]
        self.loss_name = loss
        self.batch_size = batch_size
        self.model = build_mlp(sizes, self.activations, dtype=dtype)
        # deepgm decays weights, not biases.
        weights = [layer.weight for layer in linear_layers(self.model)]
        biases = [layer.bias for layer in linear_layers(self.model)]
        self.optimizer = torch.optim.SGD(
            [{"params": weights, "weight_decay": weight_decay}, {"params": biases, "weight_decay": 0.0}],
            lr=learning_rate,
            momentum=momentum,
        )

    def loss(self, x, y):
        """Mean loss of the batch: y holds class indices (B,) for softmax cross-entropy, targets
        (B, n_out) for binary cross-entropy."""
        F = _torch().nn.functional
        out = self.model(x)
        if self.loss_name == "softmax_cross_entropy":
            return F.cross_entropy(out, y)
        if self.loss_name == "binary_cross_entropy":
            return F.binary_cross_entropy_with_logits(out, y, reduction="sum") / x.shape[0]
        raise ValueError(f"unknown loss {self.loss_name!r}")

    def train_step(self, x, y) -> float:
        """zero_grad, forward, backward, SGD step; returns the loss before the update."""
        self.optimizer.zero_grad()
        loss = self.loss(x, y)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def fit_epoch(self, X, Y) -> float:
        """One epoch over (X (n, n_in), Y); returns the mean minibatch loss."""
        X, Y = as_tensor(X), as_tensor(Y)
        losses = [self.train_step(X[rows], Y[rows]) for rows in _minibatches(X.shape[0], self.batch_size, self.generator)]
        return float(np.mean(losses))


def autoencoder_activations(sizes: Sequence[int]) -> list:
    """Sigmoid hidden layers, a linear code layer (the narrowest) and a linear output (logits)."""
    acts = ["sigmoid"] * (len(sizes) - 1)
    acts[int(np.argmin(sizes[1:-1]))] = "identity"
    acts[-1] = "identity"
    return acts


class TorchAutoencoder(TorchMLP):
    """Deep autoencoder fine-tuning: BCE with logits (sum over pixels, mean over batch), SGD momentum."""

    def __init__(
        self,
        sizes=AUTOENCODER_SIZES,
        learning_rate=0.01,
        momentum=0.9,
        weight_decay=0.0,
        batch_size=100,
        seed=0,
        n_threads=None,
        dtype=None,
    ):
        super().__init__(
            sizes,
            autoencoder_activations(sizes),
            "binary_cross_entropy",
            learning_rate,
            momentum,
            weight_decay,
            batch_size,
            seed,
            n_threads,
            dtype,
        )

    def fit_epoch(self, X, Y=None) -> float:
        """One epoch of reconstructing X (n, n_features)."""
        return super().fit_epoch(X, X if Y is None else Y)


# ---------------------------------------------------------------------------------------------
# (d) VAE and (e) CVAE
# ---------------------------------------------------------------------------------------------


class TorchVAE:
    """VAE ('none') or CVAE ('prior_mean', 'concat'): ReLU MLP encoder to [mu | log_var], ReLU MLP
    decoder to logits, Bernoulli likelihood, Adam on every parameter."""

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
        n_threads=None,
        dtype=None,
    ):
        torch = _torch()
        if conditioning not in ("none", "prior_mean", "concat"):
            raise ValueError(f"unknown conditioning {conditioning!r}")
        set_threads(n_threads)
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.n_latent, self.n_classes, self.conditioning, self.batch_size = n_latent, n_classes, conditioning, batch_size
        label_width = n_classes if conditioning == "concat" else 0
        acts = ["relu"] * len(hidden) + ["identity"]
        self.encoder = build_mlp([n_features + label_width, *hidden, 2 * n_latent], acts, dtype=dtype)
        self.decoder = build_mlp([n_latent + label_width, *reversed(hidden), n_features], acts, dtype=dtype)
        self.class_means = None
        if conditioning == "prior_mean":
            self.class_means = torch.nn.Parameter(torch.zeros(n_classes, n_latent, dtype=dtype))
        self.optimizer = torch.optim.Adam(self.parameters(), lr=learning_rate, betas=(beta1, beta2), eps=epsilon)

    def parameters(self) -> list:
        """Encoder then decoder (weight, bias) of each Linear, then the class means."""
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return params + ([self.class_means] if self.class_means is not None else [])

    def loss(self, x, labels=None, eps=None):
        """Mean -ELBO of the batch x (B, n_features); labels (B,) int64 for a CVAE; eps (B, n_latent)."""
        torch = _torch()
        F = torch.nn.functional
        onehot = F.one_hot(labels, self.n_classes).to(x.dtype) if self.conditioning == "concat" else None
        h = self.encoder(torch.cat([x, onehot], dim=1) if onehot is not None else x)
        mu, log_var = h[:, : self.n_latent], h[:, self.n_latent :].clamp(LOG_VAR_MIN, LOG_VAR_MAX)
        if eps is None:
            eps = torch.randn(mu.shape, generator=self.generator, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * log_var) * eps
        logits = self.decoder(torch.cat([z, onehot], dim=1) if onehot is not None else z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        prior_mean = self.class_means[labels] if self.class_means is not None else 0.0
        kl = 0.5 * torch.sum((mu - prior_mean) ** 2 + log_var.exp() - log_var - 1)
        return (recon + kl) / x.shape[0]

    def train_step(self, x, labels=None) -> float:
        self.optimizer.zero_grad()
        loss = self.loss(x, labels)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def fit_epoch(self, X, labels=None) -> float:
        """One epoch over X (n, n_features) (and labels (n,) for a CVAE); returns the mean loss."""
        X = as_tensor(X)
        labels = as_tensor(labels) if labels is not None else None
        losses = []
        for rows in _minibatches(X.shape[0], self.batch_size, self.generator):
            losses.append(self.train_step(X[rows], labels[rows] if labels is not None else None))
        return float(np.mean(losses))

    def load_numpy(self, reference) -> None:
        """Copies the parameters of a numpy_reference.NumpyVAE of the same shape."""
        torch = _torch()
        load_numpy_layers(self.encoder, reference.enc_w, reference.enc_b)
        load_numpy_layers(self.decoder, reference.dec_w, reference.dec_b)
        if self.class_means is not None:
            with torch.no_grad():
                self.class_means.copy_(torch.from_numpy(reference.class_means))


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def _grads_of(loss, params) -> list:
    torch = _torch()
    return [g.numpy() for g in torch.autograd.grad(loss, params)]


def _compare(name, torch_loss, numpy_loss, torch_grads, numpy_grads, tol=1e-9):
    """Max abs difference of loss and gradients, relative to the largest gradient; raises above tol."""
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in numpy_grads))
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(torch_grads, numpy_grads)) / scale
    loss_err = abs(torch_loss - numpy_loss) / max(1.0, abs(numpy_loss))
    if not (err <= tol and loss_err <= tol):
        raise AssertionError(f"{name}: torch and numpy disagree (gradients {err:.3g}, loss {loss_err:.3g})")
    return name, err, loss_err


def check_against_numpy(verbose=True) -> list:
    """Loss and gradients of (b)-(e) in torch (autograd) against numpy_reference's hand-written
    backward passes, float64, same parameters, data and noise. Raises AssertionError on a mismatch."""
    torch = _torch()
    from . import numpy_reference as rn

    rng = np.random.default_rng(5)
    f64 = torch.float64
    results = []
    n = 6

    # (b) classifier
    ref = rn.NumpyMLP(sizes=(12, 9, 7, 4), seed=1, dtype=np.float64)
    for p in ref.weights + ref.biases:
        p[...] = 0.5 * rng.standard_normal(p.shape)
    mlp = TorchMLP(sizes=(12, 9, 7, 4), dtype=f64)
    load_numpy_layers(mlp.model, ref.weights, ref.biases)
    x, labels = rng.random((n, 12)), rng.integers(0, 4, n)
    loss_np, gw, gb = ref.loss_gradients(x, rn.one_hot(labels, 4, np.float64))
    loss_t = mlp.loss(torch.from_numpy(x), torch.from_numpy(labels))
    grads_t = _grads_of(loss_t, list(mlp.model.parameters()))
    grads_np = [g for pair in zip(gw, gb) for g in (pair[0].T, pair[1])]
    results.append(_compare("(b) MLP", loss_t.item(), loss_np, grads_t, grads_np))

    # (c) autoencoder
    sizes = (10, 8, 6, 3, 6, 8, 10)
    ref = rn.NumpyAutoencoder(sizes=sizes, seed=2, dtype=np.float64)
    for p in ref.weights + ref.biases:
        p[...] = 0.5 * rng.standard_normal(p.shape)
    ae = TorchAutoencoder(sizes=sizes, dtype=f64)
    load_numpy_layers(ae.model, ref.weights, ref.biases)
    x = rng.random((n, 10))
    loss_np, gw, gb = ref.loss_gradients(x, x)
    xt = torch.from_numpy(x)
    loss_t = ae.loss(xt, xt)
    grads_t = _grads_of(loss_t, list(ae.model.parameters()))
    grads_np = [g for pair in zip(gw, gb) for g in (pair[0].T, pair[1])]
    results.append(_compare("(c) autoencoder", loss_t.item(), loss_np, grads_t, grads_np))

    # (d) VAE, (e) CVAEs
    for conditioning in ("none", "prior_mean", "concat"):
        ref = rn.NumpyVAE(n_features=10, hidden=(8, 6), n_latent=3, n_classes=4, conditioning=conditioning, seed=3, dtype=np.float64)
        for p in ref.parameters():
            p[...] = 0.5 * rng.standard_normal(p.shape)
        vae = TorchVAE(n_features=10, hidden=(8, 6), n_latent=3, n_classes=4, conditioning=conditioning, dtype=f64)
        vae.load_numpy(ref)
        x, labels, eps = rng.random((n, 10)), rng.integers(0, 4, n), rng.standard_normal((n, 3))
        lab = labels if conditioning != "none" else None
        loss_np, grads_np = ref.loss_gradients(x, lab, eps)
        loss_t = vae.loss(torch.from_numpy(x), torch.from_numpy(labels) if lab is not None else None, torch.from_numpy(eps))
        grads_t = _grads_of(loss_t, vae.parameters())
        # Same order (encoder W, b, ..., decoder W, b, ..., class means); Linear weights are transposed.
        n_layer_grads = len(grads_np) - (1 if ref.class_means is not None else 0)
        grads_np = [g.T if i < n_layer_grads and g.ndim == 2 else g for i, g in enumerate(grads_np)]
        name = "(d) VAE" if conditioning == "none" else f"(e) CVAE {conditioning}"
        results.append(_compare(name, loss_t.item(), loss_np, grads_t, grads_np))

    if verbose:
        for name, err, loss_err in results:
            print(f"  PASS {name:<20} max gradient difference {err:.1e}, loss difference {loss_err:.1e}")
    return results


def _smoke(n=1000, n_threads=None) -> None:
    """Times one epoch of each on n random binary 'images' (not a benchmark)."""
    rng = np.random.default_rng(0)
    X = (rng.random((n, 784)) < 0.2).astype(np.float32)
    labels = rng.integers(0, 10, n)
    cases = [
        ("RBM CD-1", lambda: TorchRBM(n_threads=n_threads).fit_epoch(X)),
        ("RBM PCD-1", lambda: TorchRBM(persistent=True, n_threads=n_threads).fit_epoch(X)),
        ("DBN classifier fine-tune", lambda: TorchMLP(n_threads=n_threads).fit_epoch(X, labels)),
        ("autoencoder fine-tune", lambda: TorchAutoencoder(n_threads=n_threads).fit_epoch(X)),
        ("VAE", lambda: TorchVAE(n_threads=n_threads).fit_epoch(X)),
        ("CVAE prior_mean", lambda: TorchVAE(conditioning="prior_mean", n_threads=n_threads).fit_epoch(X, labels)),
        ("CVAE concat", lambda: TorchVAE(conditioning="concat", n_threads=n_threads).fit_epoch(X, labels)),
    ]
    for name, fn in cases:
        t0 = time.perf_counter()
        fn()
        print(f"  {name:<26} one epoch of {n}: {time.perf_counter() - t0:.3f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="also time one small epoch of each algorithm")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the smoke run")
    args = parser.parse_args(argv)
    if not TORCH_AVAILABLE:
        print("torch is not installed: nothing to check")
        return 0
    print("torch autograd against the numpy hand-written gradients (float64):")
    check_against_numpy()
    if args.smoke:
        print(f"Smoke run (torch {_torch().__version__}, {args.threads or _torch().get_num_threads()} threads):")
        _smoke(n_threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
