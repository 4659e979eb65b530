"""A fit that fails leaves the estimator in its last consistent state (docs/architecture.md, "Bad input").

A failure other than Ctrl-C before the first whole training epoch of the call (here: divergence in epoch
1 at a huge learning rate, or a kernel that raises) leaves no model behind: a first fit leaves the
estimator unfitted, a refit (or a partial_fit) leaves the previous model exactly as it was. A failure
after whole epochs keeps the model of the start of the failing epoch (see test_interrupts.py), and
Ctrl-C keeps the model after the last whole update (test_interrupts.py too).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from _bundled import small_data
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

import deepgm
from deepgm import _core

KW = dict(n_jobs=1, random_state=0)


@pytest.fixture(scope="module")
def data():
    d = small_data()
    X, y, D = d["X"], d["y"], d["D"]
    return {
        "iris": (X,),
        "iris-y": (X, y),
        "iris-regression": (X[:, 1:], X[:, 0]),
        "digits": (D,),
        "digits-y": (D, d["dy"]),
        "counts": (d["C"],),
        "ratings": (d["R"],),
    }


def _lr(rate):
    return {} if rate is None else {"learning_rate": rate}


# name: (factory of a learning rate (None: the default), data, the output a fitted model gives)
CASES = {
    "RBM": (lambda lr: deepgm.RBM(8, n_iter=3, **_lr(lr), **KW), "digits", "transform"),
    "RBM-gaussian": (lambda lr: deepgm.RBM(8, visible="gaussian", n_iter=3, **_lr(lr), **KW), "iris", "transform"),
    "DBN": (lambda lr: deepgm.DBN((8, 4), n_iter=3, **_lr(lr), **KW), "digits", "transform"),
    "DBN-labels": (lambda lr: deepgm.DBN((8,), n_iter=3, **_lr(lr), **KW), "digits-y", "predict_proba"),
    "DBNClassifier": (
        lambda lr: deepgm.DBNClassifier((8,), pretrain_iter=1, finetune_iter=3, optimizer="sgd", **_lr(lr), **KW),
        "iris-y",
        "predict_proba",
    ),
    "DBNRegressor": (
        lambda lr: deepgm.DBNRegressor((8,), pretrain_iter=1, finetune_iter=3, optimizer="sgd", **_lr(lr), **KW),
        "iris-regression",
        "predict",
    ),
    "DeepAutoencoder": (
        lambda lr: deepgm.DeepAutoencoder((8,), 2, pretrain_iter=1, finetune_iter=3, optimizer="sgd", **_lr(lr), **KW),
        "iris",
        "transform",
    ),
    "VAE": (lambda lr: deepgm.VAE(2, hidden_layer_sizes=(8,), likelihood="gaussian", n_iter=3, **_lr(lr), **KW), "iris", "transform"),
    "CVAE": (lambda lr: deepgm.CVAE(2, hidden_layer_sizes=(8,), likelihood="gaussian", n_iter=3, **_lr(lr), **KW), "iris-y", "transform"),
    "ReplicatedSoftmax": (lambda lr: deepgm.ReplicatedSoftmax(3, max_iter=3, **_lr(lr), **KW), "counts", "transform"),
    "CollaborativeRBM": (lambda lr: deepgm.CollaborativeRBM(4, n_iter=3, **_lr(lr), **KW), "ratings", "transform"),
}

#: A learning rate at which every case above diverges in its first epoch.
HUGE = 1e30


def _output(est, method, args):
    if method == "transform" and isinstance(est, deepgm.CVAE):
        return est.transform(*args)
    return getattr(est, method)(args[0])


def _state(est):
    return pickle.dumps(est.__dict__)


# A diverging fit reports one DivergenceError, not NumPy overflow warnings before it.
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_first_fit_that_diverges_in_epoch_1_leaves_the_estimator_unfitted(name, data):
    make, key, method = CASES[name]
    args = data[key]
    est = make(HUGE)
    before = _state(est)
    with pytest.raises(deepgm.DivergenceError, match="epoch 1"):
        est.fit(*args)
    assert _state(est) == before, "the failed fit left attributes behind"
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    with pytest.raises(AttributeError):  # NotFittedError, or available_if's error for a DBN's predict_proba
        _output(est, method, args)


# A diverging fit reports one DivergenceError, not NumPy overflow warnings before it.
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_refit_that_diverges_in_epoch_1_keeps_the_previous_model(name, data):
    make, key, method = CASES[name]
    args = data[key]
    est = make(None).fit(*args)
    expected = _output(est, method, args)
    est.set_params(learning_rate=HUGE)
    before = _state(est)
    with pytest.raises(deepgm.DivergenceError, match="epoch 1"):
        est.fit(*args)
    assert _state(est) == before, "the failed refit changed the fitted model"
    np.testing.assert_array_equal(_output(est, method, args), expected)


def test_the_review_case_a_vae_fit_on_huge_values(data):
    """X * 1e20 overflows the Gaussian likelihood in the first epoch: no model from random weights."""
    (X,) = data["iris"]
    vae = deepgm.VAE(n_components=2, likelihood="gaussian", n_iter=3, **KW)
    with pytest.raises(ValueError):
        vae.fit(X * 1e20)
    with pytest.raises(NotFittedError):
        vae.transform(X[:1])
    vae.fit(X)
    codes = vae.transform(X)
    with pytest.raises(ValueError):
        vae.fit(X * 1e20)
    np.testing.assert_array_equal(vae.transform(X), codes)
    assert len(vae.history_["loss"]) == 3


def test_parameters_that_overflow_while_the_loss_stays_finite_are_divergence(data):
    """A second review case: on digits * 1e20 the loss stays finite (the all-zero pixel columns keep
    NaN weights out of it) while an update overflows some weights. The fit must fail there, not end
    with a model whose every later call fails."""
    (D,) = data["digits"]
    vae = deepgm.VAE(n_components=3, hidden_layer_sizes=(8,), likelihood="gaussian", n_iter=5, **KW)
    with pytest.warns(UserWarning), pytest.raises(deepgm.DivergenceError, match="NaN or infinity"):
        vae.fit(D * 1e20)
    with pytest.raises(NotFittedError):
        vae.sample(2)


# Learning rates far too large, but not so large that the first update overflows: the review found
# ReplicatedSoftmax's perplexity overflowing ``math.exp`` at 1e3 (an OverflowError naming nothing).
@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("rate", [1e2, 1e3, 1e5])
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_too_large_learning_rate_fits_or_is_a_divergence_error(name, rate, data):
    make, key, method = CASES[name]
    args = data[key]
    est = make(rate)
    try:
        est.fit(*args)
    except deepgm.DivergenceError as err:
        assert "learning_rate" in str(err)
        return
    assert np.all(np.isfinite(_output(est, method, args)))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_huge_weight_decay_in_the_topic_model_is_a_divergence_error(data):
    (C,) = data["counts"]
    est = deepgm.ReplicatedSoftmax(3, max_iter=3, weight_decay=1e12, **KW)
    with pytest.raises(deepgm.DivergenceError, match="epoch 1"):
        est.fit(C)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


@pytest.mark.parametrize("name", ["RBM", "VAE", "ReplicatedSoftmax"])
def test_a_partial_fit_that_diverges_keeps_the_previous_model(name, data):
    make, key, method = CASES[name]
    args = data[key]
    est = make(None)
    est.partial_fit(args[0])
    expected = _output(est, method, args)
    est.set_params(learning_rate=HUGE)
    before = _state(est)
    with pytest.raises(deepgm.DivergenceError):
        est.partial_fit(args[0])
    assert _state(est) == before
    np.testing.assert_array_equal(_output(est, method, args), expected)


class _FailingKernel:
    """A kernel that raises MemoryError on its ``k``-th call (a failure that is not divergence)."""

    def __init__(self, kernel, k):
        self.kernel, self.k, self.calls = kernel, k, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.k:
            raise MemoryError("simulated allocation failure")
        return self.kernel(*args, **kwargs)


class _KernelThenException:
    """A kernel whose ``k``-th call completes and then raises TimeoutError, as an exception from a
    signal handler does when it lands between the kernel's return and the training loop's next line."""

    def __init__(self, kernel, k):
        self.kernel, self.k, self.calls = kernel, k, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        result = self.kernel(*args, **kwargs)
        if self.calls == self.k:
            raise TimeoutError("simulated signal handler")
        return result


def test_an_exception_right_after_a_collaborative_step_propagates_unchanged(data, monkeypatch):
    """The review's case: the step's kernel had advanced the items' last-update counts past the
    loop's step count, so the catch-up in the loop's ``finally`` raised its own ValueError (naming a
    kernel) in place of the user's exception."""
    (R,) = data["ratings"]
    make, _, _ = CASES["CollaborativeRBM"]
    est = make(None).set_params(batch_size=10)
    kernel = _core.collab_cd_step
    monkeypatch.setattr(_core, "collab_cd_step", _KernelThenException(kernel, 45))  # in epoch 2
    with pytest.raises(TimeoutError, match="simulated"):
        est.fit(R)
    monkeypatch.undo()
    assert est.n_iter_ >= 1
    assert np.all(np.isfinite(est.predict(R, R).data))


# name: (kernel, minibatches per epoch of the case's fit)
KERNELS = {"RBM": ("rbm_cd_step", 30), "VAE": ("vae_train_step", 2)}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_any_failure_before_a_whole_epoch_restores_the_state_before_fit(name, data, monkeypatch):
    make, key, method = CASES[name]
    args = data[key]
    kernel, per_epoch = KERNELS[name]
    fresh = make(None)
    fitted = make(None).fit(*args)
    expected = _output(fitted, method, args)
    states = [_state(fresh), _state(fitted)]
    monkeypatch.setattr(_core, kernel, _FailingKernel(getattr(_core, kernel), per_epoch))  # the last minibatch of epoch 1
    with pytest.raises(MemoryError):
        fresh.fit(*args)
    monkeypatch.setattr(_core, kernel, _FailingKernel(getattr(_core, kernel).kernel, per_epoch))
    with pytest.raises(MemoryError):
        fitted.fit(*args)
    assert [_state(fresh), _state(fitted)] == states
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    np.testing.assert_array_equal(_output(fitted, method, args), expected)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_a_failure_after_whole_epochs_keeps_them(name, data, monkeypatch):
    """The model after the completed epochs is kept, equal to a fit of that many epochs."""
    make, key, method = CASES[name]
    args = data[key]
    kernel, per_epoch = KERNELS[name]
    monkeypatch.setattr(_core, kernel, _FailingKernel(getattr(_core, kernel), per_epoch + 1))  # the first of epoch 2
    est = make(None)
    with pytest.raises(MemoryError):
        est.fit(*args)
    monkeypatch.undo()
    check_is_fitted(est)
    assert len(est.history_["epoch" if name == "RBM" else "loss"]) == 1
    reference = make(None).set_params(n_iter=1).fit(*args)
    np.testing.assert_array_equal(_output(est, method, args), _output(reference, method, args))
