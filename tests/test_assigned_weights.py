"""Learned arrays assigned by hand: weights copied from scikit-learn's estimators work as fitted ones.

scikit-learn users move weights between models by assignment (``rbm.components_ = other.components_``).
Such arrays may be float64 or Fortran-ordered where the kernels take C-ordered arrays of the model's
dtype; the estimator converts them on assignment, as a fit would have left them, and keeps an array
that already fits as the very object given (so in-place updates reach it).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import BernoulliRBM, MLPClassifier

from deepgm import RBM, DBNClassifier


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


def test_rbm_takes_bernoulli_rbm_weights(digits):
    X, _ = digits
    theirs = BernoulliRBM(n_components=16, n_iter=2, random_state=0).fit(X)
    ours = RBM(n_components=16, n_iter=1, random_state=0, n_jobs=1).fit(X)
    ours.components_ = np.asfortranarray(theirs.components_)  # float64, Fortran-ordered
    ours.intercept_hidden_ = theirs.intercept_hidden_
    ours.intercept_visible_ = theirs.intercept_visible_
    assert ours.components_.dtype == np.float32 and ours.components_.flags.c_contiguous
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), atol=1e-5)
    before = ours.components_.copy()
    ours.partial_fit(X)  # training continues from the assigned weights
    assert not np.array_equal(ours.components_, before)
    assert np.abs(ours.components_ - before).max() < 0.5


def test_dbn_classifier_takes_mlp_weights(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((24,), activation="logistic", max_iter=30, random_state=0).fit(X, y)
    dbn = DBNClassifier((24,), pretrain_iter=1, finetune_iter=1, random_state=0, n_jobs=1).fit(X, y)
    dbn.coefs_ = mlp.coefs_
    dbn.intercepts_ = mlp.intercepts_
    assert all(w.dtype == np.float32 for w in dbn.coefs_ + dbn.intercepts_)
    np.testing.assert_allclose(dbn.predict_proba(X), mlp.predict_proba(X), atol=1e-5)


def test_an_array_that_fits_is_kept_as_given(digits):
    X, _ = digits
    rbm = RBM(n_components=8, n_iter=1, random_state=0, n_jobs=1).fit(X)
    weights = rbm.components_.copy()
    rbm.components_ = weights
    assert rbm.components_ is weights
    rbm.partial_fit(X)
    assert rbm.components_ is weights  # updated in place, as a fitted array is


def test_float64_model_keeps_float64_weights(digits):
    X, _ = digits
    rbm = RBM(n_components=8, n_iter=1, random_state=0, n_jobs=1, dtype="float64").fit(X)
    rbm.components_ = rbm.components_.astype(np.float32)
    assert rbm.components_.dtype == np.float64
    rbm.set_params(dtype="float32")  # converts what was learned; assignment does not undo it
    assert rbm.components_.dtype == np.float32
    assert rbm.transform(X.astype(np.float32)).dtype == np.float32
