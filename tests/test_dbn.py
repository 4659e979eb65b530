"""deepgm.DBN, DBNClassifier and DBNRegressor: greedy pretraining through deepgm.RBM, sampling and
features, unrolling into the fine-tuned network, accuracy against logistic regression, regression
against a linear model, the scikit-learn classifier/regressor contract (clone, Pipeline,
cross_val_score, predict_proba, string labels), early stopping, dropout, dtype, determinism and bad
input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from deepgm import DBN, RBM, DBNClassifier, DBNRegressor

NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


def target_function(x):
    return np.sin(2 * x) + x**2 / 4


@pytest.fixture(scope="module")
def dbn(mnist_small):
    X, _ = mnist_small
    return DBN(hidden_layer_sizes=(64, 32), n_iter=2, random_state=0).fit(X)


@pytest.fixture(scope="module")
def clf(mnist_small):
    X, y = mnist_small
    return DBNClassifier((64,), pretrain_iter=2, finetune_iter=5, random_state=0).fit(X[:1000], y[:1000])


# --------------------------------------------------------------------------------------------------
# DBN: greedy layer-wise pretraining


def test_dbn_pretrains_each_layer_with_the_rbm_code_path(dbn, mnist_small):
    X, _ = mnist_small
    assert len(dbn.rbms_) == 2 and all(type(r) is RBM for r in dbn.rbms_)
    assert dbn.n_features_in_ == 784
    assert dbn.rbms_[0].components_.shape == (64, 784) and dbn.rbms_[1].components_.shape == (32, 64)
    for r in dbn.rbms_:
        # batch_size="auto" is resolved from the rows of X (n / 50 within [10, 100]) before the RBMs see it
        assert r.n_iter == 2 and r.learning_rate == dbn.learning_rate and r.batch_size == min(100, max(10, -(-X.shape[0] // 50)))
    # Layer 1 is an RBM fitted on X with its own settings; layer 2 one fitted on layer 1's features.
    data = X
    for layer in dbn.rbms_:
        again = RBM(**layer.get_params()).fit(data)
        np.testing.assert_array_equal(again.components_, layer.components_)
        np.testing.assert_array_equal(again.intercept_hidden_, layer.intercept_hidden_)
        np.testing.assert_array_equal(again.intercept_visible_, layer.intercept_visible_)
        data = layer.transform(data)
    # One entry per pretraining epoch of each layer, the layers' own metrics side by side.
    n_epochs = [len(r.history_["reconstruction_error"]) for r in dbn.rbms_]
    assert dbn.history_["layer"] == [1] * n_epochs[0] + [2] * n_epochs[1]
    assert (
        dbn.history_["reconstruction_error"]
        == dbn.rbms_[0].history_["reconstruction_error"] + dbn.rbms_[1].history_["reconstruction_error"]
    )
    assert dbn.history_["epoch"] == dbn.rbms_[0].history_["epoch"] + dbn.rbms_[1].history_["epoch"]


def test_dbn_transform_is_the_up_pass(dbn, mnist):
    X, _ = mnist
    V = X[9000:9050]
    H = dbn.transform(V)
    assert H.shape == (50, 32) and np.all((H >= 0) & (H <= 1))
    np.testing.assert_array_equal(H, dbn.rbms_[1].transform(dbn.rbms_[0].transform(V)))
    np.testing.assert_array_equal(dbn.fit_transform(X[:2000])[:5], dbn.transform(X[:5]))


def test_dbn_sample(dbn):
    S = dbn.sample(n_samples=6, n_steps=20)
    assert S.shape == (6, 784)
    assert np.all(np.isfinite(S)) and np.all((S >= 0) & (S <= 1))
    assert not np.array_equal(S, dbn.sample(n_samples=6, n_steps=20)), "successive calls draw fresh samples"


def test_dbn_layer_params_override_per_layer(mnist_tiny):
    X, _ = mnist_tiny
    dbn = DBN((16, 8), n_iter=1, layer_params=[{"learning_rate": 0.05}, {"n_iter": 3, "k": 2}], random_state=0).fit(X)
    assert dbn.rbms_[0].learning_rate == 0.05 and dbn.rbms_[0].n_iter == 1
    assert dbn.rbms_[1].n_iter == 3 and dbn.rbms_[1].k == 2
    with pytest.raises(ValueError, match="layer_params"):
        DBN((16, 8), layer_params=[{"learning_rate": 0.05}]).fit(X)
    with pytest.raises(ValueError, match="layer_params"):
        DBN((16,), layer_params=[{"not_a_parameter": 1}]).fit(X)


def test_dbn_gaussian_visible_real_valued_data(rng):
    X = 5 + 3 * rng.standard_normal((300, 10))
    dbn = DBN((8, 4), visible="gaussian", n_iter=3, random_state=0).fit(X)
    H = dbn.transform(X)
    assert H.shape == (300, 4) and np.all(np.isfinite(H))
    S = dbn.sample(3, n_steps=5)
    assert S.shape == (3, 10) and np.all(np.isfinite(S))


def test_one_layer_gaussian_dbn_samples_on_the_data_scale(rng):
    """With one layer the top RBM is also the bottom one: its samples are mapped back from the
    standardised space like the RBM's own, from random or given starting points."""
    X = 100 + 3 * rng.standard_normal((500, 5))
    dbn = DBN((4,), visible="gaussian", n_iter=5, random_state=0).fit(X)
    for S in (dbn.sample(400, n_steps=50), dbn.sample(n_steps=5, init=X[:400])):
        assert S.shape == (400, 5)
        np.testing.assert_allclose(S.mean(axis=0), X.mean(axis=0), atol=1.5)
    np.testing.assert_allclose(dbn.sample(init=X[:7], n_steps=0), dbn.rbms_[0].sample(init=X[:7], n_steps=0), rtol=1e-6)
    two = DBN((4, 3), visible="gaussian", n_iter=5, random_state=0).fit(X)
    np.testing.assert_allclose(two.sample(200, n_steps=20).mean(axis=0), X.mean(axis=0), atol=1.5)
    assert two.sample(init=X[:3], n_steps=0).shape == (3, 5), "n_steps=0 is the down pass of the starting states"


def test_dbn_float64_and_threads(mnist_tiny):
    X, _ = mnist_tiny
    d64 = DBN((16, 8), n_iter=1, dtype="float64", random_state=0).fit(X)
    assert all(r.components_.dtype == np.float64 for r in d64.rbms_)
    assert d64.transform(X).dtype == np.float32, "outputs follow the input's dtype"
    assert d64.transform(X.astype(np.float64)).dtype == np.float64
    a = DBN((16, 8), n_iter=2, random_state=1, n_jobs=1).fit(X)
    b = DBN((16, 8), n_iter=2, random_state=1, n_jobs=2).fit(X)
    for ra, rb in zip(a.rbms_, b.rbms_):
        np.testing.assert_array_equal(ra.components_, rb.components_)


def test_dbn_pickle_and_clone(dbn, mnist_tiny):
    X, _ = mnist_tiny
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(dbn)).transform(X), dbn.transform(X))
    fresh = clone(dbn)
    assert fresh.get_params() == dbn.get_params() and not hasattr(fresh, "rbms_")


def test_spec_defaults():
    assert tuple(DBN().hidden_layer_sizes) == (500, 500, 2000)
    for Est in (DBNClassifier, DBNRegressor):
        p = Est().get_params()
        assert tuple(p["hidden_layer_sizes"]) == (500, 500, 2000) and "pretrain_iter" in p and "finetune_iter" in p
    assert set(RBM().get_params()) - {"n_components", "hidden"} <= set(DBN().get_params())


def test_pretrain_auto_pretrains_pixels_not_measurements(mnist_tiny, rng):
    """pretrain="auto" (the default) pretrains pixels; standardised measurements start at random, in
    the classifier and in the regressor alike. pretrained_ records the choice, and an explicit
    pretrain overrides it."""
    X, y = mnist_tiny
    Z = rng.standard_normal((X.shape[0], 6))
    for Est, target in ((DBNClassifier, y), (DBNRegressor, y.astype(float))):
        pixels = Est((8,), pretrain_iter=1, finetune_iter=1, random_state=0).fit(X, target)
        assert pixels.visible_ == "bernoulli" and pixels.pretrained_ and len(pixels.rbms_) == 1
        # (early_stopping=False: the regressor's "auto" would standardise by the training rows alone)
        real = Est((8,), pretrain_iter=1, finetune_iter=1, early_stopping=False, random_state=0).fit(Z, target)
        assert real.visible_ == "gaussian" and not real.pretrained_ and real.rbms_ == []
        np.testing.assert_allclose(real.input_mean_, Z.mean(axis=0), atol=1e-8)  # the network standardises either way
        forced = Est((8,), pretrain=True, pretrain_iter=1, finetune_iter=1, random_state=0).fit(Z, target)
        assert forced.pretrained_ and len(forced.rbms_) == 1
        assert not Est((8,), pretrain=False, finetune_iter=1).fit(Z, target).pretrained_
        assert not Est((8,), pretrain=False, finetune_iter=1).fit(X, target).pretrained_


# --------------------------------------------------------------------------------------------------
# DBNClassifier


def test_classifier_unrolls_the_pretrained_rbms(mnist_tiny):
    X, y = mnist_tiny
    c = DBNClassifier((32, 16), pretrain_iter=2, finetune_iter=0, random_state=0).fit(X, y)
    assert len(c.rbms_) == 2 and all(type(r) is RBM for r in c.rbms_)
    assert [w.shape for w in c.coefs_] == [(784, 32), (32, 16), (16, 10)]
    assert [b.shape for b in c.intercepts_] == [(32,), (16,), (10,)]
    for W, b, r in zip(c.coefs_[:-1], c.intercepts_[:-1], c.rbms_):
        np.testing.assert_array_equal(W, r.components_.T)
        np.testing.assert_array_equal(b, r.intercept_hidden_)
    # The first RBM is the one an RBM with the same settings fits to X.
    np.testing.assert_array_equal(RBM(**c.rbms_[0].get_params()).fit(X).components_, c.rbms_[0].components_)
    assert c.rbms_[0].n_iter == 2
    # Without fine-tuning, the hidden features are those of the RBM stack.
    np.testing.assert_allclose(c.transform(X[:20]), c.rbms_[1].transform(c.rbms_[0].transform(X[:20])), atol=1e-5)


def test_classifier_beats_logistic_regression_on_held_out_digits(mnist):
    X, y = mnist
    X_train, y_train, X_test, y_test = X[:3000], y[:3000], X[8000:], y[8000:]
    dbn = DBNClassifier((256,), pretrain_iter=2, finetune_iter=20, random_state=0).fit(X_train, y_train)
    logistic = LogisticRegression(max_iter=300).fit(X_train, y_train)
    dbn_acc, lr_acc = dbn.score(X_test, y_test), logistic.score(X_test, y_test)
    assert dbn_acc > lr_acc + 0.01, f"DBN {dbn_acc:.4f} vs logistic regression {lr_acc:.4f}"
    assert dbn.n_iter_ == 20 and len(dbn.loss_curve_) == 20 and dbn.loss_curve_[-1] < dbn.loss_curve_[0]
    assert len(dbn.history_["loss"]) == 20


def test_predict_proba_predict_and_score(clf, mnist):
    X, y = mnist
    V, t = X[9000:9300], y[9000:9300]
    P = clf.predict_proba(V)
    assert P.shape == (300, 10) and np.all(P >= 0) and P.dtype == V.dtype == np.float32  # as MLPClassifier
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)  # float64 rows cast to float32
    P64 = clf.predict_proba(V.astype(np.float64))
    assert P64.dtype == np.float64
    np.testing.assert_allclose(P64.sum(axis=1), 1.0)  # float64 rows: the default rtol of 1e-7 holds
    pred = clf.predict(V)
    assert pred.shape == (300,)
    np.testing.assert_array_equal(pred, clf.classes_[np.argmax(P, axis=1)])
    assert clf.score(V, t) == pytest.approx(accuracy_score(t, pred))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(V.astype(np.float64))), P64, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    assert clf.transform(V).shape == (300, 64)
    assert is_classifier(clf)


def test_string_labels(mnist_tiny):
    X, y = mnist_tiny
    labels = NAMES[y]
    c = DBNClassifier((32,), pretrain_iter=1, finetune_iter=3, random_state=0).fit(X, labels)
    np.testing.assert_array_equal(c.classes_, np.sort(np.unique(labels)))
    pred = c.predict(X[:50])
    assert pred.dtype.kind in "UO" and set(pred) <= set(NAMES)
    assert 0 <= c.score(X, labels) <= 1
    two = DBNClassifier((8,), pretrain_iter=1, finetune_iter=2, random_state=0).fit(X, np.where(y < 5, "low", "high"))
    assert list(two.classes_) == ["high", "low"] and two.predict_proba(X[:4]).shape == (4, 2)


def test_clone_pipeline_and_cross_val_score(mnist_small):
    X, y = mnist_small
    X, y = X[:600], y[:600]
    pipe = Pipeline([("scale", MinMaxScaler()), ("dbn", DBNClassifier((32,), pretrain_iter=2, finetune_iter=10, random_state=0))])
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.5
    fresh = clone(pipe)
    assert fresh.get_params()["dbn__pretrain_iter"] == 2 and not hasattr(fresh.named_steps["dbn"], "coefs_")
    scores = cross_val_score(DBNClassifier((32,), pretrain_iter=2, finetune_iter=10, random_state=0), X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.3)
    # Real-valued inputs through a StandardScaler and Gaussian visible units.
    gauss = Pipeline(
        [("scale", StandardScaler()), ("dbn", DBNClassifier((32,), visible="gaussian", pretrain_iter=2, finetune_iter=10, random_state=0))]
    )
    assert gauss.fit(X, y).score(X, y) > 0.3


def test_early_stopping_stops_and_records_validation_scores(mnist_small):
    X, y = mnist_small
    c = DBNClassifier(
        (32,),
        pretrain_iter=2,
        finetune_iter=80,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=3,
        tol=0.01,
        random_state=0,
    ).fit(X[:1500], y[:1500])
    assert c.n_iter_ < 80, "training stopped early"
    assert len(c.validation_scores_) == c.n_iter_ == len(c.loss_curve_)
    assert c.n_iter_ >= 4
    assert c.best_validation_score_ == pytest.approx(max(c.validation_scores_))
    # MLPClassifier's rule: each of the last n_iter_no_change epochs failed to beat the best score so far by tol
    scores = c.validation_scores_
    for epoch in range(len(scores) - 3, len(scores)):
        assert scores[epoch] <= max(scores[:epoch]) + 0.01, "stopped only after n_iter_no_change stale epochs"
    assert len(c.history_["validation_score"]) == c.n_iter_
    assert all(0 <= s <= 1 for s in c.validation_scores_)


def test_dropout_runs_and_changes_training(mnist_small):
    X, y = mnist_small
    X, y = X[:800], y[:800]
    plain = DBNClassifier((32,), pretrain_iter=1, finetune_iter=3, random_state=0).fit(X, y)
    drop = DBNClassifier((32,), pretrain_iter=1, finetune_iter=3, dropout=0.3, random_state=0).fit(X, y)
    assert all(np.all(np.isfinite(w)) for w in drop.coefs_)
    assert not np.array_equal(plain.coefs_[0], drop.coefs_[0])
    P = drop.predict_proba(X[:10])
    np.testing.assert_allclose(P.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(P, drop.predict_proba(X[:10]))  # no dropout at prediction time


def test_classifier_without_pretraining_and_adam(mnist_tiny):
    X, y = mnist_tiny
    c = DBNClassifier((32,), pretrain=False, finetune_iter=5, optimizer="adam", learning_rate=1e-3, random_state=0).fit(X, y)
    assert c.rbms_ == [] and c.predict(X[:5]).shape == (5,)


def test_classifier_determinism_threads_and_float64(mnist_tiny):
    X, y = mnist_tiny
    a = DBNClassifier((16,), pretrain_iter=2, finetune_iter=3, random_state=4, n_jobs=1).fit(X, y)
    b = DBNClassifier((16,), pretrain_iter=2, finetune_iter=3, random_state=4, n_jobs=2).fit(X, y)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(wa, wb)
    c64 = DBNClassifier((16,), pretrain_iter=1, finetune_iter=1, dtype="float64", random_state=0).fit(X, y)
    assert all(w.dtype == np.float64 for w in c64.coefs_) and c64.predict_proba(X[:3].astype(np.float64)).dtype == np.float64
    assert np.array_equal(pickle.loads(pickle.dumps(a)).predict_proba(X), a.predict_proba(X))


# --------------------------------------------------------------------------------------------------
# DBNRegressor


def test_regressor_with_default_layers_trains_on_an_ordinary_regression_problem():
    """The defaults ((500, 500, 2000), Adam at 3e-3) learn Friedman's
    benchmark function; with SGD at 0.1 the same stack diverges (see the next test)."""
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(1000, random_state=0)
    reg = DBNRegressor(random_state=0).fit(X[:800], y[:800])
    assert np.all(np.isfinite(reg.loss_curve_)) and reg.loss_curve_[-1] < reg.loss_curve_[0]
    assert reg.score(X[800:], y[800:]) > 0.6


def test_a_finite_but_exploding_fine_tuning_loss_is_a_divergence_error(rng):
    """SGD at lr 0.1 on a squared error over 500 non-centred sigmoid units overshoots (the output moves
    by lr * ||h||^2 ~ 10x the error per step): the loss grows ~10^4-fold but stays finite. It must end
    in a DivergenceError naming the cure, not in a silently constant predictor."""
    from deepgm import DivergenceError

    X = rng.uniform(-3, 3, (1000, 1))
    y = np.sin(X[:, 0])
    with pytest.raises(DivergenceError, match="grew from .* smaller learning_rate"):
        DBNRegressor(
            (500,), pretrain_iter=1, finetune_iter=3, optimizer="sgd", learning_rate=0.1, dropout=0.0, batch_size=100, random_state=0
        ).fit(X, y)
    # A learning rate inside the stable range trains normally.
    reg = DBNRegressor((500,), pretrain_iter=1, finetune_iter=3, learning_rate=0.005, random_state=0).fit(X, y)
    assert len(reg.loss_curve_) == 3 and np.all(np.isfinite(reg.loss_curve_))


def test_regressor_fits_a_smooth_nonlinear_function_better_than_linear_regression(rng):
    X_train = rng.uniform(-3, 3, (1000, 1))
    y_train = target_function(X_train[:, 0]) + 0.05 * rng.standard_normal(1000)
    X_test = np.linspace(-3, 3, 400)[:, None]
    y_test = target_function(X_test[:, 0])
    # No dropout: it regularises noisy tabular data (the default 0.2) but blurs a noiseless smooth function.
    reg = DBNRegressor((32,), pretrain_iter=5, finetune_iter=100, dropout=0.0, learning_rate=3e-3, random_state=0).fit(X_train, y_train)
    linear = LinearRegression().fit(X_train, y_train)
    mse = np.mean((reg.predict(X_test) - y_test) ** 2)
    mse_linear = np.mean((linear.predict(X_test) - y_test) ** 2)
    assert mse < 0.25 * mse_linear, f"DBNRegressor {mse:.4f} vs LinearRegression {mse_linear:.4f}"
    assert reg.predict(X_test).shape == (400,)
    assert reg.score(X_test, y_test) == pytest.approx(r2_score(y_test, reg.predict(X_test)))
    assert is_regressor(reg) and reg.visible_ == "gaussian", "visible='auto' picks Gaussian units for real values"


def test_regressor_multi_output_and_pipeline(rng):
    X = rng.uniform(-2, 2, (400, 3))
    Y = np.column_stack([X[:, 0] * X[:, 1], np.cos(X[:, 2])])
    reg = DBNRegressor((16,), pretrain_iter=2, finetune_iter=20, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (400, 2) and reg.n_outputs_ == 2
    pipe = Pipeline([("scale", StandardScaler()), ("dbn", DBNRegressor((16,), pretrain_iter=2, finetune_iter=5, random_state=0))])
    assert np.isfinite(pipe.fit(X, Y[:, 1]).score(X, Y[:, 1]))
    assert cross_val_score(clone(pipe), X, Y[:, 1], cv=2).shape == (2,)


# --------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("Est", [DBNClassifier, DBNRegressor])
@pytest.mark.parametrize(
    "params, name",
    [
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": ()}, "hidden_layer_sizes"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"pretrain_learning_rate": -1.0}, "pretrain_learning_rate"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"visible": "binary"}, "visible"),
        ({"pretrain_iter": 0}, "pretrain_iter"),
        ({"batch_size": 0}, "batch_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"validation_fraction": 0.0}, "validation_fraction"),
        ({"momentum": -0.5}, "momentum"),
        ({"dtype": "int32"}, "dtype"),
    ],
)
def test_invalid_hyperparameters(Est, params, name, mnist_tiny):
    X, y = mnist_tiny
    with pytest.raises((ValueError, TypeError), match=name):
        Est(**params).fit(X[:50], y[:50])


@pytest.mark.parametrize(
    "params, name",
    [
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"visible": "x"}, "visible"),
        ({"n_iter": 0}, "n_iter"),
    ],
)
def test_dbn_invalid_hyperparameters(params, name, mnist_tiny):
    X, _ = mnist_tiny
    with pytest.raises((ValueError, TypeError), match=name):
        DBN(**params).fit(X[:50])


def test_bad_data(clf, dbn, mnist_tiny):
    X, y = mnist_tiny
    X_nan = X[:50].copy()
    X_nan[1, 1] = np.nan
    for est in (DBNClassifier((8,), pretrain_iter=1, finetune_iter=1), DBNRegressor((8,), pretrain_iter=1, finetune_iter=1)):
        with pytest.raises(ValueError, match="NaN"):
            est.fit(X_nan, y[:50])
        with pytest.raises(ValueError, match="inconsistent|samples"):
            est.fit(X[:50], y[:40])
    with pytest.raises(ValueError, match="NaN"):
        DBN((8,)).fit(X_nan)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DBNClassifier((8,), visible="bernoulli").fit(X[:50] * 3, y[:50])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        DBN((8,), visible="bernoulli").fit(X[:50] - 1)
    # visible="auto" picks Gaussian units for data outside [0, 1] instead of refusing it
    assert DBN((8,), n_iter=1).fit(X[:50] - 1).rbms_[0].visible == "gaussian"
    with pytest.raises(ValueError, match="NaN|inf"):
        DBNRegressor((8,)).fit(X[:50], np.full(50, np.nan))
    for method in (clf.predict, clf.predict_proba, clf.transform, dbn.transform):
        with pytest.raises(ValueError, match="features"):
            method(X[:5, :100])
        with pytest.raises(ValueError, match="NaN"):
            method(X_nan[:5])
    # A fitted Bernoulli model predicts for any finite values (a scaler can map test data outside [0, 1])
    assert clf.visible_ == "bernoulli"
    np.testing.assert_array_equal(clf.predict(X[:5] + 2), clf.classes_[clf.predict_proba(X[:5] + 2).argmax(axis=1)])
    with pytest.raises(ValueError):
        DBNClassifier((8,)).fit(X[:50], np.linspace(0, 1, 50))  # continuous targets
    with pytest.raises((ValueError, TypeError), match="n_samples"):
        dbn.sample(n_samples=0)


def test_unfitted_estimators_raise_not_fitted_error(mnist_tiny):
    """scikit-learn convention: every method of an unfitted estimator raises NotFittedError."""
    X, _ = mnist_tiny
    for method in ("predict", "predict_proba", "predict_log_proba", "transform", "score"):
        with pytest.raises(NotFittedError):
            args = (X[:5], np.zeros(5)) if method == "score" else (X[:5],)
            getattr(DBNClassifier(), method)(*args)
    for method in ("predict", "transform"):
        with pytest.raises(NotFittedError):
            getattr(DBNRegressor(), method)(X[:5])
    with pytest.raises(NotFittedError):
        DBN().transform(X[:5])
    with pytest.raises(NotFittedError):
        DBN().sample(2)


def test_auto_visible_units_are_bernoulli_only_for_mostly_binary_data(mnist_tiny, rng):
    """visible="auto": pixels (mostly exact 0s and 1s) get Bernoulli units; MinMaxScaler output of
    continuous measurements (in [0, 1], hardly any exact 0 or 1) and real values get Gaussian ones."""
    from sklearn.preprocessing import MinMaxScaler

    X, y = mnist_tiny
    assert DBN((4,), n_iter=1, random_state=0).fit(X).rbms_[0].visible == "bernoulli"
    continuous = np.clip(MinMaxScaler().fit_transform(rng.standard_normal((60, 5))), 0, 1)  # (rounding can give 1 + 2e-16)
    assert continuous.min() == 0 and continuous.max() == 1
    unsupervised = DBN((4,), n_iter=1, random_state=0).fit(continuous)
    assert unsupervised.visible_ == unsupervised.rbms_[0].visible == "gaussian"  # visible_ records it, as the classifier's
    assert DBN((4, 3), n_iter=1, random_state=0).fit(X, y).visible_ == "bernoulli"  # also with label units
    clf = DBNClassifier((4,), pretrain=True, pretrain_iter=1, finetune_iter=1, random_state=0).fit(continuous, np.arange(60) % 2)
    assert clf.visible_ == "gaussian" and clf.rbms_[0].visible == "gaussian"
    # the rule's threshold: half the entries exactly 0 or 1
    half = np.where(np.arange(60 * 4).reshape(60, 4) % 2 == 0, 0.0, 0.5)
    assert DBN((4,), n_iter=1, random_state=0).fit(half).rbms_[0].visible == "bernoulli"
    half[0, 0] = 0.25  # one fewer exact 0: below half
    assert DBN((4,), n_iter=1, random_state=0).fit(half).rbms_[0].visible == "gaussian"


@pytest.mark.parametrize(
    "make",
    [
        lambda bs: DBN((8, 6), n_iter=2, batch_size=bs, random_state=0),
        lambda bs: DBNClassifier((8,), pretrain=True, pretrain_iter=2, finetune_iter=2, batch_size=bs, random_state=0),
    ],
    ids=["DBN-labels", "DBNClassifier"],
)
def test_a_batch_size_beyond_the_data_trains_as_one_batch_of_it(mnist_tiny, make):
    """batch_size=1e12 asked every pretraining RBM for 1e12 persistent chains (a MemoryError); the
    stacks now train as with one minibatch of all the rows."""
    X, y = mnist_tiny
    X, y = X[:40], y[:40]
    huge, exact = make(10**12).fit(X, y), make(40).fit(X, y)
    for a, b in zip(huge.rbms_, exact.rbms_, strict=True):
        np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(huge.predict_proba(X), exact.predict_proba(X))
