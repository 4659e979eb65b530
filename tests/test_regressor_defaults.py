"""DBNRegressor at its defaults on standardised measurements: it must learn, for every seed.

A default DBNRegressor used to pretrain Gaussian inputs. On a few standardised features that start
was dead (the second RBM's units all off, the top layer constant across samples), fine-tuning began
on the plateau of the constant prediction, and whether Adam left it before ``finetune_iter="auto"``
declared convergence depended on the seed: on the data below, R^2 0 for ``random_state=0`` and on
two of three cross-validation folds. ``pretrain="auto"`` now starts such inputs at random.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepgm import DBNRegressor
from deepgm._schedule import pretrains


@pytest.fixture(scope="module")
def reported_data():
    """The data of the report: 300 rows, 10 features, noise 10 (a linear target, R^2 ~0.99 reachable)."""
    return make_regression(300, 10, noise=10, random_state=0)


def test_pretrain_auto_starts_measurements_at_random_and_pretrains_binary_data():
    """The rule behind pretrain="auto": RBM pretraining for Bernoulli visible units only; an explicit
    bool is obeyed whatever the units."""
    assert not pretrains("auto", "gaussian")
    assert pretrains("auto", "bernoulli")
    assert pretrains(True, "gaussian") and not pretrains(False, "bernoulli")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_regressor_learns_the_reported_data_for_every_seed(reported_data, seed):
    """Held-out R^2 above 0.9 (LinearRegression reaches ~0.99); seed 0 used to predict the mean."""
    X, y = reported_data
    scaler = StandardScaler().fit(X[100:])
    reg = DBNRegressor(random_state=seed).fit(scaler.transform(X[100:]), y[100:])
    assert reg.visible_ == "gaussian" and not reg.pretrained_
    predictions = reg.predict(scaler.transform(X[:100]))
    assert np.std(predictions) > 0.5 * np.std(y[:100]), "a constant prediction: fine-tuning did not leave the mean"
    assert reg.score(scaler.transform(X[:100]), y[:100]) > 0.9
    assert reg.loss_curve_[-1] < 0.1, "the training loss stayed near 0.5, the standardised targets' variance / 2"


def test_default_regressor_cross_validates_on_the_reported_data(reported_data):
    """The user's pipeline, 3-fold cross-validation: every fold learns (pretraining gave
    [-0.002, -0.004, 0.985])."""
    X, y = reported_data
    scores = cross_val_score(make_pipeline(StandardScaler(), DBNRegressor(random_state=0)), X, y, cv=3)
    assert scores.min() > 0.9, scores


def test_early_stopping_auto_holds_out_validation_rows_for_the_regressor_only(reported_data):
    """early_stopping="auto": the regressor holds out validation_fraction of 100 or more rows and
    keeps its best parameters; fewer rows, and the classifier, train on every row; a bool is obeyed."""
    from deepgm import DBNClassifier

    X, y = reported_data
    X = StandardScaler().fit_transform(X)
    small = dict(hidden_layer_sizes=(16,), finetune_iter=40, random_state=0)
    auto = DBNRegressor(**small).fit(X, y)
    assert auto.early_stopping == "auto" and len(auto.validation_scores_) == auto.n_iter_ > 0
    assert auto.best_validation_score_ == max(auto.validation_scores_)
    assert DBNRegressor(**small).fit(X[:99], y[:99]).validation_scores_ == []
    assert DBNRegressor(early_stopping=False, **small).fit(X, y).validation_scores_ == []
    assert len(DBNRegressor(early_stopping=True, **small).fit(X[:99], y[:99]).validation_scores_) > 0
    assert DBNClassifier(**small).fit(X, y > np.median(y)).validation_scores_ == []


def test_default_regressor_on_noisy_data_is_near_a_linear_model():
    """sklearn's diabetes (442 rows, noisy targets): the default network (1.3 M weights) fitted the
    noise for 200 epochs without early stopping (3-fold R^2 0.33, 5-fold 0.15, where LinearRegression
    gets 0.48); "auto" early stopping brings it to a linear model's level."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold

    X, y = load_diabetes(return_X_y=True)
    folds = KFold(3, shuffle=True, random_state=0)
    dbn = cross_val_score(make_pipeline(StandardScaler(), DBNRegressor(random_state=0)), X, y, cv=folds).mean()
    linear = cross_val_score(make_pipeline(StandardScaler(), LinearRegression()), X, y, cv=folds).mean()
    assert dbn > linear - 0.05, (dbn, linear)
