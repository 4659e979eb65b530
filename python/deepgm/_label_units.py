"""Label units in a DBN's top RBM (Hinton, Osindero & Teh 2006): the maths and the training step.

The top RBM's visible layer is ``[f, y]``: the d features f of the penultimate layer (Bernoulli units)
and a K-way label group y, one softmax unit whose state is a one-hot vector. Its weights
``W = [W_f | W_y]`` (n_hidden, d + K), visible biases ``b = [b_f | b_y]`` and hidden biases c define

    E(f, y, h)       = -b_f . f - b_y . y - c . h - h . (W_f f + W_y y)
    p(h_j = 1 | f, y) = sigmoid(c_j + W_f[j] . f + W_y[j] . y)
    p(f_i = 1 | h)   = sigmoid(b_f[i] + h . W_f[:, i])
    p(y = k | h)     = softmax_k(b_y[k] + h . W_y[:, k])
    F(f, y = k)      = -b_f . f - b_y[k] - sum_j softplus(c_j + W_f[j] . f + W_y[j, k])
    p(y = k | f)     = softmax_k(-F(f, k))

The last line is exact and costs one product ``f W_f^T`` and K softplus sums: it is the generative
classifier (``DBN.predict_proba``). The label group's own pieces (one-hot rows, its softmax, its
draw, where its biases start) are :data:`deepgm._units.SOFTMAX`'s. Clamping y = k makes the label a constant: the chain over (f, h)
is that of an ordinary RBM whose hidden biases are ``c + W_y[:, k]``, which the Rust Gibbs kernel runs.

Training is CD-k / PCD-k with RBM's update rule (momentum, weight decay folded into the velocity):
the positive phase clamps the true one-hot label; the negative phase samples f by its Bernoulli units
and y as a one-hot draw from the softmax. The step runs in Python on the Rust GEMM and sampling
kernels; the 10-wide label group is NumPy. Every draw comes from a stream keyed by
(seed, purpose, Gibbs step, training step), so results do not depend on the thread count. With the
DBN's ``k="auto"``, the top RBM trains by CD-10 (:func:`label_cd_steps`); with ``n_iter="auto"`` for
at least 34 epochs (:data:`LABEL_RBM_BUDGET`), and with ``learning_rate="auto"`` the last
:data:`LABEL_LATE_SHARE` of its epochs at a tenth of the rate (:func:`label_learning_rate`).
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._base import batch_rows, deferred_interrupts, interruption_point, matmul
from ._schedule import Budget, plan_epochs
from ._streams import rbm_epoch_generator
from ._units import SOFTMAX

#: ``n_iter="auto"`` for the top RBM of a labelled DBN: at least 2,720 updates (34 epochs of 8,000
#: MNIST digits in batches of 100), within 34 to 200 epochs. The label weights learn slowly, and the
#: class modes need longer than the 10 epochs that suffice for features (RBM_BUDGET): 24 epochs at
#: the full rate, then 10 at a tenth of it (:func:`label_learning_rate`); see benches/NOTES.md,
#: entries 28, 33 and 34.
LABEL_RBM_BUDGET = Budget(updates=2720, min_epochs=34, max_epochs=200)

#: The share of the top RBM's epochs that :func:`label_learning_rate` trains at a tenth of the rate.
LABEL_LATE_SHARE = 10 / 34

#: The factor of the learning rate in those last epochs.
LABEL_LATE_FACTOR = 0.1

#: The k of :func:`label_cd_steps` (the CD-10 of Hinton, Osindero & Teh 2006's top RBM).
LABEL_FINAL_K = 10

# Purposes of the random streams (the seed of each draw is keyed by purpose and Gibbs step).
_HIDDEN, _FEATURES, _LABELS, _CLASS_CHAINS, _JOINT_START = 1, 2, 3, 4, 5


def stream_seed(seed: int, purpose: int, gibbs: int = 0) -> int:
    """The seed of the draws for ``purpose`` at Gibbs step ``gibbs`` (a training step is the ``step`` of
    the kernel, or the last key of a NumPy stream)."""
    return int(np.random.SeedSequence([seed % 2**63, 1717, purpose, gibbs]).generate_state(1, np.uint64)[0])


#: One draw of the label group per row: logits (n, K) -> one-hot (n, K) (the group's sampler).
sample_one_hot = SOFTMAX.sample


def _hidden(V, rbm, seed, step, n_jobs):
    """p(h | V) (n, n_hidden) and a Bernoulli draw of h; V (n, d + K) = [f, y]."""
    pre = matmul(V, rbm.components_, trans_b=True, n_jobs=n_jobs)
    return _core.sigmoid_bernoulli(pre, rbm.intercept_hidden_, seed=seed, step=step, n_jobs=n_jobs)


def visible_draw(H, rbm, n_features, *, seed, gibbs, step, n_jobs):
    """A draw of [f, y] (n, d + K) given hidden states H (n, n_hidden): f by its Bernoulli units,
    y one-hot from the label group's softmax."""
    pre = matmul(H, rbm.components_, n_jobs=n_jobs)
    b = rbm.intercept_visible_
    _, features = _core.sigmoid_bernoulli(
        np.ascontiguousarray(pre[:, :n_features]), b[:n_features], seed=stream_seed(seed, _FEATURES, gibbs), step=step, n_jobs=n_jobs
    )
    rng = np.random.default_rng([seed % 2**63, _LABELS, gibbs, step])
    labels = SOFTMAX.sample(pre[:, n_features:] + b[n_features:], rng)
    return np.concatenate([features, labels], axis=1)


def label_cd_step(rbm, V0, *, n_features, learning_rate, momentum, seed, step, n_jobs, k=None):
    """One CD-k / PCD-k update of the top RBM ``rbm`` on V0 = [f, one-hot y] (B, d + K), in place
    (k Gibbs steps: ``rbm.k`` unless given).

    As Rust's ``cd_step``: ``vel = mu vel + lr (P0^T V0 / B - Pk^T Vk / C) - lr wd W``, ``W += vel``;
    bias velocities from the column means of the same statistics. Raises FloatingPointError if the
    parameters become non-finite."""
    P0, H = _hidden(V0, rbm, stream_seed(seed, _HIDDEN, 0), step, n_jobs)
    if rbm.persistent:
        H = rbm.h_samples_
    for g in range(1, (rbm.k if k is None else k) + 1):
        Vk = visible_draw(H, rbm, n_features, seed=seed, gibbs=g, step=step, n_jobs=n_jobs)
        Pk, H = _hidden(Vk, rbm, stream_seed(seed, _HIDDEN, g), step, n_jobs)
    if rbm.persistent:
        rbm.h_samples_[...] = H
    lr, wd = learning_rate, rbm.weight_decay
    b, c = V0.shape[0], Vk.shape[0]
    velocity = rbm.components_velocity_
    _core.gemm(P0, V0, velocity, alpha=lr / b, beta=momentum, trans_a=True, n_jobs=n_jobs)
    _core.gemm(Pk, Vk, velocity, alpha=-lr / c, beta=1.0, trans_a=True, n_jobs=n_jobs)
    # A diverging step overflows here; the check below turns that into one clear error, so NumPy's
    # overflow warning would only be noise before it.
    with np.errstate(over="ignore", invalid="ignore"):
        velocity -= np.asarray(lr * wd, dtype=velocity.dtype) * rbm.components_
        rbm.components_ += velocity
        for bias, bias_velocity, data, model in (
            (rbm.intercept_visible_, rbm.intercept_visible_velocity_, V0, Vk),
            (rbm.intercept_hidden_, rbm.intercept_hidden_velocity_, P0, Pk),
        ):
            gradient = data.mean(axis=0, dtype=np.float64) - model.mean(axis=0, dtype=np.float64)
            bias_velocity *= momentum
            bias_velocity += (lr * gradient).astype(bias_velocity.dtype)
            bias += bias_velocity
    if not (
        np.all(np.isfinite(rbm.components_)) and np.all(np.isfinite(rbm.intercept_visible_)) and np.all(np.isfinite(rbm.intercept_hidden_))
    ):
        raise FloatingPointError("the top RBM's parameters became non-finite: training diverged (try a smaller learning_rate)")


def free_energies(rbm, F, n_features, n_jobs):
    """F(f, y = k) for every class: F (n, d) penultimate features -> (n, K) float64."""
    W = rbm.components_
    pre = matmul(np.asarray(F, dtype=W.dtype), W[:, :n_features], trans_b=True, n_jobs=n_jobs)
    pre = pre.astype(np.float64) + rbm.intercept_hidden_.astype(np.float64)
    b = rbm.intercept_visible_.astype(np.float64)
    label_weights = W[:, n_features:].astype(np.float64)  # (n_hidden, K)
    energy = np.empty((F.shape[0], label_weights.shape[1]))
    for k in range(label_weights.shape[1]):
        energy[:, k] = -np.logaddexp(0.0, pre + label_weights[:, k]).sum(axis=1) - b[n_features + k]
    return energy - F.astype(np.float64) @ b[:n_features, None]


def label_log_posterior(rbm, F, n_features, n_jobs):
    """log p(y = k | f) = log_softmax_k(-F(f, k)): F (n, d) -> (n, K) float64."""
    return SOFTMAX.log_mean(-free_energies(rbm, F, n_features, n_jobs))


#: DBN.sample(label_strength="auto"): the clamped label unit's value. Above 1 the label weighs more
#: than in the model's own p(x | y). On the MNIST split (default 500-500-2000 DBN fitted with labels,
#: 1,000 Gibbs steps, 100 samples per class, two sampling seeds; benches/NOTES.md, entry 34) the
#: share recognised by an MLP trained on real digits was 89.3-89.7% at 1, 95.9-96.5% at 1.25 and
#: 95.0% at 1.5, where the digit "1" fell to 62%.
LABEL_STRENGTH = 1.25


def clamped_feature_chains(rbm, F0, codes, n_features, n_steps, seed, n_jobs, label_strength=1.0):
    """Gibbs chains over (f, h) with the label clamped: chain i starts from F0[i] (n, d) with label
    codes[i], its unit at ``label_strength`` (1: the model's p(f | y); above 1 the label weighs more,
    hidden biases ``c + label_strength W_y[:, k]``). Returns the mean of f | h at the last step (n, d)."""
    W = rbm.components_
    W_f = np.ascontiguousarray(W[:, :n_features])
    b_f = np.ascontiguousarray(rbm.intercept_visible_[:n_features])
    means = np.empty_like(F0)
    for k in np.unique(codes):
        rows = np.flatnonzero(codes == k)
        hidden_bias = np.ascontiguousarray(rbm.intercept_hidden_ + np.asarray(label_strength, dtype=W.dtype) * W[:, n_features + k])
        _, means[rows] = _core.rbm_gibbs(
            np.ascontiguousarray(F0[rows]),
            W_f,
            b_f,
            hidden_bias,
            n_steps=n_steps,
            visible="bernoulli",
            hidden="bernoulli",
            seed=stream_seed(seed, _CLASS_CHAINS, int(k)),
            n_jobs=n_jobs,
        )
    return means


def free_label_chains(rbm, F0, n_classes, n_features, n_steps, seed, n_jobs):
    """Gibbs chains over (f, y, h) with the label free (it starts from a uniform class draw).
    Returns the mean of f | h at the last step (n, d)."""
    rng = np.random.default_rng([seed % 2**63, _JOINT_START])
    V = np.concatenate([F0, SOFTMAX.one_hot(rng.integers(0, n_classes, F0.shape[0]), n_classes, F0.dtype)], axis=1)
    for step in range(n_steps):
        _, H = _hidden(V, rbm, stream_seed(seed, _HIDDEN, 1), step, n_jobs)
        V = visible_draw(H, rbm, n_features, seed=seed, gibbs=1, step=step, n_jobs=n_jobs)
    if n_steps == 0:
        return F0
    pre = matmul(H, rbm.components_[:, :n_features], n_jobs=n_jobs)
    return _core.activation(pre + rbm.intercept_visible_[:n_features], "sigmoid", n_jobs=n_jobs)


def init_label_rbm(rbm, F, codes, n_classes):
    """Initialises the top RBM ``rbm`` (an unfitted :class:`deepgm.RBM`) on [F, one-hot(codes)]: as
    RBM does, with the label biases at the log of the class frequencies (the softmax's base rates)."""
    V = np.concatenate([F, SOFTMAX.one_hot(codes, n_classes, F.dtype)], axis=1)
    rbm.n_features_in_ = V.shape[1]
    rbm._init_params(V)
    frequencies = np.bincount(codes, minlength=n_classes) / len(codes)
    rbm.intercept_visible_[F.shape[1] :] = SOFTMAX.initial_biases(frequencies, rbm.intercept_visible_.dtype, floor=1e-3)
    return V


def label_epochs(n_iter, n_samples, batch_size):
    """Epochs of the top RBM of a labelled DBN: ``n_iter``, or for "auto" :data:`LABEL_RBM_BUDGET`."""
    return plan_epochs(n_iter, n_samples, batch_size, LABEL_RBM_BUDGET)


def label_cd_steps(epoch: int, n_epochs: int) -> int:
    """The Gibbs steps k of every epoch under the DBN's ``k="auto"``: :data:`LABEL_FINAL_K`.

    CD-1 leaves the top RBM with a spurious mode that chains of every label fall into. A k rising
    1, 3, 5, 10 over 40 epochs cost as much as CD-10 for 24 epochs and generated worse samples (60%
    recognised against 80.5%; benches/NOTES.md, entries 28 and 33)."""
    return LABEL_FINAL_K


def label_learning_rate(epoch: int, n_epochs: int, learning_rate: float) -> float:
    """The learning rate of every epoch under the DBN's ``learning_rate="auto"``: the rate, then a
    tenth of it (:data:`LABEL_LATE_FACTOR`) for the last :data:`LABEL_LATE_SHARE` of the epochs
    (rounded; none when there are fewer than two epochs).

    On MNIST (benches/NOTES.md, entry 34), ten such epochs after CD-10 for 24 epochs kept the share
    of samples recognised as their class (90.5% against 90.0%, two sampling seeds each) but raised
    the worst class from 74% to 78-84%, the samples' diversity from 0.68 to 0.75 of real digits'
    and lowered the generative classifier's test error from 2.75% to 2.25%."""
    late = int(round(n_epochs * LABEL_LATE_SHARE)) if n_epochs > 1 else 0
    return learning_rate * LABEL_LATE_FACTOR if epoch >= n_epochs - late else learning_rate


def train_label_rbm(rbm, V, n_features, cd_steps=None, learning_rates=None):
    """Label CD on V = [f, one-hot y] (n, d + K) for :func:`label_epochs` epochs, with RBM's momentum
    schedule, shuffling, divergence guard and Ctrl-C handling. ``cd_steps(epoch, n_epochs)`` gives
    each epoch's k (``rbm.k`` throughout by default); ``learning_rates(epoch, n_epochs, rate)`` each
    epoch's learning rate (the RBM's throughout by default). Logs per epoch ``k``,
    ``learning_rate``, ``reconstruction_error`` (of the features, on up to 500 rows), ``label_error``
    (of p(y | f) on the same rows) and ``time``."""
    n_jobs = rbm._n_jobs()
    base_rate = rbm._learning_rate()
    rng = rbm_epoch_generator(rbm._fit_seed, rbm._epochs_done)
    n_epochs = label_epochs(rbm.n_iter, V.shape[0], rbm.batch_size)
    with deferred_interrupts():
        for epoch in range(n_epochs):
            k = rbm.k if cd_steps is None else cd_steps(epoch, n_epochs)
            lr = base_rate if learning_rates is None else learning_rates(epoch, n_epochs, base_rate)
            start = rbm._timer()
            momentum = rbm.momentum if rbm._epochs_done < rbm.initial_momentum_epochs else rbm.final_momentum
            batches = batch_rows(V.shape[0], rbm.batch_size, rng)
            bar = rbm._progress(len(batches), f"label RBM epoch {rbm._epochs_done + 1}")
            try:
                with rbm._epoch_guard(rbm._epochs_done):
                    for rows in batches:
                        interruption_point()
                        label_cd_step(
                            rbm,
                            np.ascontiguousarray(V[rows]),
                            n_features=n_features,
                            learning_rate=lr,
                            momentum=momentum,
                            seed=rbm._fit_seed,
                            step=rbm._steps,
                            n_jobs=n_jobs,
                            k=k,
                        )
                        rbm._steps += 1
                        bar.update()
                    metrics = _monitor(rbm, V, n_features)
            finally:
                bar.close()
            rbm._epochs_done += 1
            rbm._log_epoch(epoch=rbm._epochs_done, updates=rbm._steps, k=k, learning_rate=lr, **metrics, time=rbm._timer() - start)
            interruption_point()


def _monitor(rbm, V, n_features):
    """Reconstruction error of the features and error of the generative classifier on the monitor rows."""
    M = V[rbm._monitor_rows]
    F, Y = M[:, :n_features], M[:, n_features:]
    n_jobs = rbm._n_jobs()
    P, _ = _hidden(np.ascontiguousarray(M), rbm, 0, 0, n_jobs)
    pre = matmul(P, rbm.components_[:, :n_features], n_jobs=n_jobs)
    recon = _core.activation(pre + rbm.intercept_visible_[:n_features], "sigmoid", n_jobs=n_jobs)
    with np.errstate(over="ignore", invalid="ignore"):
        error = float(np.mean(np.sum((F - recon) ** 2, axis=1)))
        predicted = np.argmax(label_log_posterior(rbm, F, n_features, n_jobs), axis=1)
    return {"reconstruction_error": error, "label_error": float(np.mean(predicted != np.argmax(Y, axis=1)))}
