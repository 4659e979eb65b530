"""Interrupted and failed training (docs/architecture.md, "Bad input").

Ctrl-C: a real KeyboardInterrupt (``_thread.interrupt_main``, what the terminal's SIGINT does) sent while
an estimator fits stops the fit within about one minibatch; the KeyboardInterrupt propagates out of fit,
and the estimator is left usable: finite parameters equal to those after the last whole minibatch
update (checked exactly against an uninterrupted run), ``history_`` holding the completed epochs only,
and training can go on. An interrupt before the new model exists (e.g. during pretraining of a
fine-tuned network) leaves the estimator as it was before the call.

Divergence: a huge learning rate makes training diverge; fit raises deepgm.DivergenceError (a
FloatingPointError, ValueError and RuntimeError) with a clear message, and the estimator holds the
parameters of the start of the failing epoch (again checked exactly), never NaN; when that epoch is the
first, there is no model and the estimator is left as it was before fit (test_failed_fit.py).
"""

from __future__ import annotations

import _thread
import pickle
import signal
import threading
import time

import numpy as np
import pytest

from deepgm import DBN, RBM, VAE, DBNClassifier, DBNRegressor, DeepAutoencoder, DivergenceError, _core


@pytest.fixture(scope="module")
def digits(mnist):
    X, y = mnist
    return X[:6000], y[:6000]


def all_arrays(est):
    """Every float array the estimator holds (learned parameters, optimiser state, ...)."""
    out = []
    for value in vars(est).values():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                out.append(v)
            elif isinstance(v, RBM):
                out += all_arrays(v)
    return out


def assert_finite(est):
    arrays = all_arrays(est)
    assert arrays and all(np.all(np.isfinite(a)) for a in arrays)


def assert_whole_epochs(est, n_epochs):
    history = est.history_
    assert all(len(v) == n_epochs for v in history.values()), {k: len(v) for k, v in history.items()}
    if n_epochs:
        assert history["epoch"] == list(range(1, n_epochs + 1))
        assert all(np.isfinite(v) for key, values in history.items() for v in values)


def interrupt_fit(fit, delay):
    """Runs fit() and sends Ctrl-C to the main thread after ``delay`` seconds; returns the seconds
    between the interrupt and the KeyboardInterrupt leaving fit."""
    sent = []

    def fire():
        sent.append(time.perf_counter())
        _thread.interrupt_main()

    timer = threading.Timer(delay, fire)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            fit()
        caught = time.perf_counter()
    finally:
        timer.cancel()
    assert sent, "the interrupt was never sent"
    return caught - sent[0]


def seconds_per_batch(make, fit_args, n_batches):
    est = make(1)
    start = time.perf_counter()
    est.fit(*fit_args)
    return (time.perf_counter() - start) / n_batches


# --------------------------------------------------------------------------------------------------
# a real Ctrl-C


CASES = {
    # (estimator factory taking the number of epochs, needs y, minibatches per epoch on 6,000 images)
    "RBM": (lambda n: RBM(256, n_iter=n, batch_size=100, random_state=0), False, 60),
    "RBM-persistent": (lambda n: RBM(256, persistent=True, k=2, n_iter=n, batch_size=100, random_state=0), False, 60),
    "VAE": (lambda n: VAE(16, hidden_layer_sizes=(256,), n_iter=n, batch_size=64, random_state=0), False, 94),
    "DBNClassifier": (lambda n: DBNClassifier((256,), pretrain=False, finetune_iter=n, batch_size=32, random_state=0), True, 188),
    "DeepAutoencoder": (lambda n: DeepAutoencoder((128,), 16, pretrain=False, finetune_iter=n, batch_size=32, random_state=0), False, 188),
}


def epochs_done(est):
    return getattr(est, "_epochs_done", None) if isinstance(est, RBM) else est.n_iter_


@pytest.mark.parametrize("name", sorted(CASES))
def test_ctrl_c_stops_fit_within_a_minibatch_and_leaves_a_usable_model(name, digits):
    make, needs_y, n_batches = CASES[name]
    X, y = digits
    args = (X, y) if needs_y else (X,)
    per_batch = seconds_per_batch(make, args, n_batches)
    est = make(1000)  # minutes of training if nothing stopped it
    latency = interrupt_fit(lambda: est.fit(*args), delay=max(0.4, 15 * per_batch))
    # "within one minibatch": the time of a few minibatches, plus slack for a busy shared machine
    assert latency < 0.5 + 5 * per_batch, f"KeyboardInterrupt took {latency:.3f}s (one minibatch: {per_batch:.4f}s)"
    done = epochs_done(est)
    assert done < 1000
    assert_whole_epochs(est, done)
    assert_finite(est)
    out = est.predict(X[:50]) if needs_y else est.transform(X[:50])
    assert np.all(np.isfinite(out)) if out.dtype.kind == "f" else out.shape == (50,)
    # Pickling works and training can go on
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.transform(X[:20]), est.transform(X[:20]))
    if hasattr(est, "partial_fit"):
        est.partial_fit(X[:500])
        assert epochs_done(est) == done + 1
        assert_whole_epochs(est, done + 1)
    est.set_params(**({"n_iter": 1} if hasattr(est, "n_iter") else {"finetune_iter": 1}))
    est.fit(*args)
    assert_whole_epochs(est, 1)


def test_ctrl_c_during_dbn_pretraining_keeps_the_layers_trained_so_far(digits):
    X, _ = digits
    dbn = DBN((128, 64), n_iter=1000, random_state=0)
    interrupt_fit(lambda: dbn.fit(X), delay=1.5)
    assert 1 <= len(dbn.rbms_) <= 2
    assert dbn.rbms_[0].n_components == 128
    for rbm in dbn.rbms_:
        assert_whole_epochs(rbm, rbm._epochs_done)
        assert_finite(rbm)
    # history_: the completed epochs of every layer kept, layer by layer.
    assert dbn.history_["layer"] == [i + 1 for i, rbm in enumerate(dbn.rbms_) for _ in range(rbm._epochs_done)]
    H = dbn.transform(X[:10])
    assert H.shape == (10, dbn.rbms_[-1].n_components) and np.all(np.isfinite(H))


def test_ctrl_c_before_the_new_network_exists_keeps_the_previous_state(digits):
    """An interrupt during the pretraining of a DBNClassifier: the new network does not exist yet, so
    the estimator is restored as it was (unfitted, or the previous model)."""
    X, y = digits
    clf = DBNClassifier((256,), pretrain_iter=1000, finetune_iter=1, random_state=0)
    before = pickle.dumps(clf.__dict__)
    interrupt_fit(lambda: clf.fit(X, y), delay=0.5)
    assert pickle.dumps(clf.__dict__) == before and not hasattr(clf, "n_features_in_")
    clf.set_params(hidden_layer_sizes=(16,), pretrain_iter=1)
    clf.fit(X[:500], y[:500])
    clf.set_params(hidden_layer_sizes=(256,), pretrain_iter=1000)
    fitted = pickle.dumps(clf.__dict__)
    interrupt_fit(lambda: clf.fit(X, y), delay=0.5)
    assert pickle.dumps(clf.__dict__) == fitted
    assert clf.predict(X[:5]).shape == (5,)


# --------------------------------------------------------------------------------------------------
# the state after an interrupt, exactly


class _AfterCall:
    """Wraps a kernel: after its ``k``-th call returns, either snapshots ``params()`` or raises SIGINT
    (as if Ctrl-C had been pressed while that call ran)."""

    def __init__(self, kernel, k, params, interrupt):
        self.kernel, self.k, self.params, self.interrupt = kernel, k, params, interrupt
        self.calls = 0
        self.snapshot = None

    def __call__(self, *args, **kwargs):
        out = self.kernel(*args, **kwargs)
        self.calls += 1
        if self.calls == self.k:
            if self.interrupt:
                signal.raise_signal(signal.SIGINT)
            else:
                self.snapshot = [p.copy() for p in self.params()]
        return out


KERNELS = {
    # (factory, kernel name, needs y, the learned arrays)
    "RBM": (
        lambda: RBM(32, n_iter=4, batch_size=50, random_state=3),
        "rbm_cd_step",
        False,
        lambda e: [e.components_, e.intercept_hidden_, e.intercept_visible_, e.components_velocity_],
    ),
    "VAE": (
        lambda: VAE(4, hidden_layer_sizes=(32,), n_iter=4, batch_size=50, random_state=3),
        "vae_train_step",
        False,
        lambda e: e._params(),
    ),
    "DBNClassifier": (
        lambda: DBNClassifier((32,), pretrain_iter=1, finetune_iter=4, batch_size=50, random_state=3),
        "mlp_train_step",
        True,
        lambda e: e.coefs_ + e.intercepts_,
    ),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("k", [7, 10, 17])  # mid-epoch, the last minibatch of epoch 1, mid-epoch 2
def test_interrupted_model_equals_the_model_after_k_whole_updates(name, k, digits, monkeypatch):
    make, kernel_name, needs_y, learned = KERNELS[name]
    X, y = digits[0][:500], digits[1][:500]  # 10 minibatches per epoch
    args = (X, y) if needs_y else (X,)
    kernel = getattr(_core, kernel_name)

    reference = make()
    spy = _AfterCall(kernel, k, lambda: learned(reference), interrupt=False)
    monkeypatch.setattr(_core, kernel_name, spy)
    reference.fit(*args)
    assert spy.snapshot is not None

    est = make()
    monkeypatch.setattr(_core, kernel_name, _AfterCall(kernel, k, lambda: learned(est), interrupt=True))
    with pytest.raises(KeyboardInterrupt):
        est.fit(*args)
    monkeypatch.setattr(_core, kernel_name, kernel)
    for got, want in zip(learned(est), spy.snapshot):
        np.testing.assert_array_equal(got, want)
    completed = k // 10
    assert epochs_done(est) == completed
    assert_whole_epochs(est, completed)
    steps = est._steps if name != "DBNClassifier" else est._finetune_steps
    assert steps == k, "the step counter matches the parameters (the next update uses the right random stream)"


def test_interrupt_between_epochs_is_raised_after_the_epoch_is_logged(digits, monkeypatch):
    """Ctrl-C during an epoch's bookkeeping (monitoring, history) is deferred until it is complete."""
    X = digits[0][:300]
    rbm = RBM(16, n_iter=5, batch_size=100, random_state=0)
    original = RBM._monitor
    calls = []

    def monitor(self, X):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        return original(self, X)

    monkeypatch.setattr(RBM, "_monitor", monitor)
    with pytest.raises(KeyboardInterrupt):
        rbm.fit(X)
    assert rbm._epochs_done == 2 and rbm._steps == 6
    assert_whole_epochs(rbm, 2)


def test_sigint_handler_is_restored(digits, monkeypatch):
    X = digits[0][:200]
    handler = signal.getsignal(signal.SIGINT)
    RBM(8, n_iter=1, random_state=0).fit(X)
    VAE(2, hidden_layer_sizes=(8,), n_iter=1, random_state=0).fit(X)
    assert signal.getsignal(signal.SIGINT) is handler
    monkeypatch.setattr(_core, "rbm_cd_step", _AfterCall(_core.rbm_cd_step, 1, list, interrupt=True))
    with pytest.raises(KeyboardInterrupt):
        RBM(8, n_iter=1, random_state=0).fit(X)
    assert signal.getsignal(signal.SIGINT) is handler


# --------------------------------------------------------------------------------------------------
# divergence


def _check_divergence(err, est_name):
    assert isinstance(err, DivergenceError)
    assert isinstance(err, FloatingPointError) and isinstance(err, ValueError) and isinstance(err, RuntimeError)
    msg = str(err)
    assert est_name in msg and "diverged" in msg and "epoch" in msg and "learning_rate" in msg


@pytest.mark.parametrize(
    "make, needs_y, data",
    [
        (lambda n: RBM(16, learning_rate=1e6, n_iter=n, batch_size=50, random_state=0), False, "digits"),
        (lambda n: RBM(16, visible="gaussian", learning_rate=10.0, n_iter=n, batch_size=50, random_state=0), False, "real"),
        (lambda n: RBM(16, hidden="gaussian", learning_rate=1.0, n_iter=n, batch_size=50, random_state=0), False, "digits"),
        (lambda n: VAE(4, hidden_layer_sizes=(16,), learning_rate=1e30, n_iter=n, batch_size=50, random_state=0), False, "digits"),
        (
            lambda n: VAE(4, hidden_layer_sizes=(16,), likelihood="gaussian", learning_rate=1e20, n_iter=n, batch_size=50, random_state=0),
            False,
            "real",
        ),
        (lambda n: DBNRegressor((16,), pretrain_iter=1, finetune_iter=n, learning_rate=1e6, batch_size=50, random_state=0), True, "real"),
        (
            lambda n: DeepAutoencoder(
                (16,), 4, pretrain_iter=1, finetune_iter=n, optimizer="sgd", learning_rate=1e6, batch_size=50, random_state=0
            ),
            False,
            "real",
        ),
    ],
    ids=["RBM", "RBM-gaussian-visible", "RBM-gaussian-hidden", "VAE", "VAE-gaussian", "DBNRegressor", "DeepAutoencoder"],
)
def test_divergence_is_reported_and_the_last_good_epoch_kept(make, needs_y, data, digits):
    if data == "digits":
        X, y = digits[0][:500], None
    else:
        X = np.random.default_rng(0).standard_normal((500, 20)).astype(np.float32) * 5
        y = X[:, 0] * 3
    args = (X, y) if needs_y else (X,)
    est = make(8)
    with pytest.raises(DivergenceError) as info:
        est.fit(*args)
    _check_divergence(info.value, type(est).__name__)
    if "epoch 1 " in str(info.value):  # no whole epoch: no model (test_failed_fit.py)
        assert not hasattr(est, "n_features_in_") and not hasattr(est, "history_")
        return
    done = epochs_done(est)
    assert 0 < done < 8 and f"epoch {done + 1}" in str(info.value)
    assert_whole_epochs(est, done)
    assert_finite(est)
    out = est.predict(X[:10]) if needs_y else est.transform(X[:10])
    assert np.all(np.isfinite(out))
    # the parameters are those at the start of the failing epoch: a fit of `done` epochs
    reference = make(done).fit(*args)
    learned = ("components_", "intercept_hidden_", "intercept_visible_") if isinstance(est, RBM) else None
    if learned is None:
        learned = ("encoder_coefs_", "decoder_coefs_") if isinstance(est, VAE) else ("coefs_", "intercepts_")
    for name in learned:
        got, want = getattr(est, name), getattr(reference, name)
        for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            np.testing.assert_array_equal(g, w)


def test_a_vae_loss_that_explodes_without_overflowing_is_divergence(digits):
    """Adam at a rate of 10 keeps the -ELBO finite but drives it from ~550 to ~1e13 in one epoch:
    that is divergence (as for fine-tuning), not a model to return."""
    X = digits[0][:300]
    est = VAE(learning_rate=10.0, n_iter=5, random_state=0)
    with pytest.raises(DivergenceError, match="grew from .* smaller learning_rate") as info:
        est.fit(X)
    _check_divergence(info.value, "VAE")
    assert "epoch 1 " in str(info.value) and not hasattr(est, "n_iter_"), "no whole epoch: no model"
    assert VAE(n_iter=2, random_state=0).fit(X).history_["loss"][-1] < 550, "a normal rate still trains"


def test_divergence_in_a_dbn_layer_keeps_the_layers_trained_so_far(digits):
    X = digits[0][:500]
    dbn = DBN((16, 8), n_iter=5, batch_size=50, layer_params=[{}, {"learning_rate": 1e6}], random_state=0)
    with pytest.raises(DivergenceError, match="RBM"):
        dbn.fit(X)
    assert len(dbn.rbms_) == 2 and dbn.rbms_[0]._epochs_done == 5
    assert_finite(dbn)
    for rbm in dbn.rbms_:
        assert_finite(rbm)
    assert np.all(np.isfinite(dbn.transform(X[:10])))


def test_non_finite_monitoring_counts_as_divergence(digits):
    """float32 weights near 1e37 are finite, but their products overflow: the monitored
    pseudo-likelihood turns NaN; that is divergence, not a model to return."""
    X = digits[0][:500]
    rbm = RBM(16, learning_rate=1e6, n_iter=3, batch_size=100, random_state=0)
    with pytest.raises(DivergenceError, match="pseudo_likelihood"):
        rbm.fit(X)
    assert all(np.isfinite(v) for v in rbm.history_["pseudo_likelihood"])
