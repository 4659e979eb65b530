"""deepgm.DeepAutoencoder: backpropagation through the unrolled network against float64 finite
differences, RBM pretraining and unrolling (tied initial weights, a linear code layer), quality against
PCA with the same code size, transform / inverse_transform / reconstruct / score, real-valued data,
the scikit-learn contract (clone, Pipeline), early stopping, dropout, dtype, determinism and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import deepgm
from deepgm import RBM, DeepAutoencoder, _core
from deepgm._schedule import RBM_BUDGET, autoencoder_layer_sizes, autoencoder_pretrain_epochs, autoencoder_weight_decay


def f64(a):
    return np.asarray(a, dtype=np.float64)


def unrolled_activations(n_hidden_layers):
    """The unrolled network of the spec: sigmoid hidden layers, a linear code layer, mirrored sigmoid
    decoder layers and a linear output (the logits of the cross-entropy loss)."""
    return ["sigmoid"] * n_hidden_layers + ["identity"] + ["sigmoid"] * n_hidden_layers + ["identity"]


def forward64(X, weights, biases, activations):
    a = f64(X)
    fns = {"sigmoid": expit, "identity": lambda z: z}
    for W, b, act in zip(weights, biases, activations):
        a = fns[act](a @ f64(W) + f64(b))
    return a


def bce_loss64(X, Y, weights, biases, activations):
    """mean_i sum_j softplus(o_ij) - y_ij o_ij: the cross-entropy of sigmoid outputs, from the logits."""
    out = forward64(X, weights, biases, activations)
    return float(np.mean(np.sum(np.logaddexp(0, out) - f64(Y) * out, axis=1)))


@pytest.fixture(scope="module")
def ae(mnist_small):
    X, _ = mnist_small
    return DeepAutoencoder((64, 32), n_components=8, pretrain_iter=2, finetune_iter=3, random_state=0).fit(X)


@pytest.fixture(scope="module")
def small_data():
    r = np.random.default_rng(3)
    Z = r.random((200, 3))
    return expit(4 * (Z @ r.standard_normal((3, 12))) - 1).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# gradients of the unrolled network


def test_backprop_through_unrolled_network_matches_finite_differences(small_data):
    X = small_data
    # Trained long enough for O(1) weights, so that every layer's gradient is far from zero.
    model = DeepAutoencoder(
        (6,), n_components=3, loss="cross_entropy", pretrain_iter=30, finetune_iter=20, learning_rate=1e-2, batch_size=10, random_state=0
    ).fit(X)
    assert all(np.abs(w).max() > 0.5 for w in model.coefs_)
    acts = unrolled_activations(1)
    assert model.loss_function_ == "cross_entropy"
    assert len(model.coefs_) == len(acts) == 4
    # The activation list describes the estimator's network: sigmoid(logits) is its reconstruction.
    np.testing.assert_allclose(model.reconstruct(X), expit(forward64(X, model.coefs_, model.intercepts_, acts)), atol=1e-5)

    weights = [f64(w).copy() for w in model.coefs_]
    biases = [f64(b).copy() for b in model.intercepts_]
    x = f64(X[:8])
    value, gw, gb, gx = _core.mlp_loss_gradients(x, x, weights, biases, acts, "binary_cross_entropy")
    assert value == pytest.approx(bce_loss64(x, x, weights, biases, acts), rel=1e-12)

    h = 1e-5  # central differences: truncation ~h^2, rounding ~1e-16 * loss / h, both ~1e-10

    def fd(param):
        grad = np.zeros_like(param)
        flat, g = param.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + h
            up = bce_loss64(x_in, x, weights, biases, acts)
            flat[i] = orig - h
            down = bce_loss64(x_in, x, weights, biases, acts)
            flat[i] = orig
            g[i] = (up - down) / (2 * h)
        return grad

    x_in = x.copy()
    for i, (W, b) in enumerate(zip(weights, biases)):
        for got, param, what in ((gw[i], W, f"dW[{i}]"), (gb[i], b, f"db[{i}]")):
            want = fd(param)
            assert got.shape == param.shape
            err = np.linalg.norm(got - want)
            assert err <= 1e-6 * np.linalg.norm(want) + 1e-9, f"{what}: error {err:.2e}, norm {np.linalg.norm(want):.2e}"
    want_x = fd(x_in)  # the input only (the target stays x)
    assert np.linalg.norm(gx - want_x) <= 1e-6 * np.linalg.norm(want_x) + 1e-9


# --------------------------------------------------------------------------------------------------
# pretraining and unrolling


def test_pretraining_and_tied_unrolled_weights(mnist_tiny):
    X, _ = mnist_tiny
    model = DeepAutoencoder((32, 16), n_components=4, pretrain_iter=2, finetune_iter=0, random_state=0).fit(X)
    rbms = model.rbms_
    assert len(rbms) == 3 and all(type(r) is RBM for r in rbms)
    assert [r.components_.shape for r in rbms] == [(32, 784), (16, 32), (4, 16)]
    assert rbms[-1].hidden == "gaussian", "a linear code layer"
    # Layer 1 is the RBM an RBM with the same settings fits to X; each layer is fitted on the
    # previous layer's features.
    data = X
    for r in rbms:
        np.testing.assert_array_equal(RBM(**r.get_params()).fit(data).components_, r.components_)
        data = r.transform(data)
    # Unrolled, before fine-tuning: the encoder is the RBM stack, the decoder its transpose with the
    # visible biases.
    assert [w.shape for w in model.coefs_] == [(784, 32), (32, 16), (16, 4), (4, 16), (16, 32), (32, 784)]
    for i, r in enumerate(rbms):
        np.testing.assert_array_equal(model.coefs_[i], r.components_.T)
        np.testing.assert_array_equal(model.intercepts_[i], r.intercept_hidden_)
        np.testing.assert_array_equal(model.coefs_[5 - i], r.components_)
        np.testing.assert_array_equal(model.intercepts_[5 - i], r.intercept_visible_)
    np.testing.assert_allclose(model.transform(X[:30]), data[:30], rtol=1e-4, atol=1e-4)


def test_fine_tuning_improves_reconstruction(mnist_small):
    X, _ = mnist_small
    before = DeepAutoencoder((64,), n_components=8, pretrain_iter=2, finetune_iter=0, random_state=0).fit(X)
    after = DeepAutoencoder((64,), n_components=8, pretrain_iter=2, finetune_iter=5, random_state=0).fit(X)
    assert after.reconstruction_error(X) < before.reconstruction_error(X) and after.score(X) > before.score(X)
    assert after.n_iter_ == 5 and len(after.loss_curve_) == 5 and after.loss_curve_[-1] < after.loss_curve_[0]


def test_autoencoder_beats_pca_with_the_same_code_size(mnist_split):
    X_train, _, X_test, _ = mnist_split
    model = DeepAutoencoder((256,), n_components=10, pretrain_iter=2, finetune_iter=8, random_state=0).fit(X_train)
    pca = PCA(n_components=10, random_state=0).fit(X_train)
    pca_error = np.mean(np.sum((X_test - pca.inverse_transform(pca.transform(X_test))) ** 2, axis=1))
    ae_error = model.score(X_test)
    assert ae_error < 0.95 * pca_error, f"autoencoder {ae_error:.2f} vs PCA {pca_error:.2f} per image"


# --------------------------------------------------------------------------------------------------
# the transformer API


def test_transform_inverse_transform_reconstruct(ae, mnist):
    X, _ = mnist
    V = X[9000:9040]
    Z = ae.transform(V)
    assert Z.shape == (40, 8) and Z.dtype == np.float32
    R = ae.inverse_transform(Z)
    assert R.shape == (40, 784) and np.all((R >= 0) & (R <= 1))
    np.testing.assert_allclose(R, ae.reconstruct(V), atol=1e-6)
    # The encoder is the first len(hidden_layer_sizes) + 1 layers, linear at the code.
    np.testing.assert_allclose(Z, forward64(V, ae.coefs_[:3], ae.intercepts_[:3], ["sigmoid", "sigmoid", "identity"]), atol=1e-4)
    np.testing.assert_array_equal(ae.fit_transform(X[:2000])[:5], ae.transform(X[:5]))


def test_score_is_mean_squared_error_per_sample(ae, mnist):
    X, _ = mnist
    V = X[9000:9200]
    want = np.mean(np.sum((f64(V) - f64(ae.reconstruct(V))) ** 2, axis=1))
    assert ae.reconstruction_error(V) == pytest.approx(want, rel=1e-6)
    # score is higher-is-better (scikit-learn's convention, so that GridSearchCV picks the better model)
    assert ae.score(V) == -ae.reconstruction_error(V)


def test_real_valued_data_uses_squared_error(rng):
    Z = rng.standard_normal((600, 2))
    X = 10 + 4 * np.tanh(Z @ rng.standard_normal((2, 8))) + 0.1 * rng.standard_normal((600, 8))
    model = DeepAutoencoder(
        (16,), n_components=2, pretrain_iter=3, finetune_iter=100, learning_rate=1e-2, batch_size=20, random_state=0
    ).fit(X)
    assert model.loss_function_ == "squared_error"
    R = model.reconstruct(X)
    assert R.shape == X.shape and np.all(np.isfinite(R))
    assert model.reconstruction_error(X) < 0.5 * np.sum(X.var(axis=0)), "reconstructions beat predicting the mean"
    np.testing.assert_allclose(model.inverse_transform(model.transform(X)), R, rtol=1e-5, atol=1e-4)
    # Before fine-tuning, the unrolled encoder equals the RBM stack (whose first RBM standardises X).
    raw = DeepAutoencoder((16,), n_components=2, pretrain=True, pretrain_iter=3, finetune_iter=0, random_state=0).fit(X)
    np.testing.assert_allclose(raw.transform(X[:50]), raw.rbms_[1].transform(raw.rbms_[0].transform(X[:50])), rtol=1e-3, atol=1e-3)
    # pretrain="auto" does not pretrain for real-valued data (squared error), and does for mostly binary
    # data (cross-entropy); values in [0, 1] that are not mostly 0s and 1s are real-valued
    assert not model.pretrained_ and model.rbms_ == [] and raw.pretrained_
    binary = DeepAutoencoder((4,), 2, pretrain_iter=1, finetune_iter=1).fit((rng.random((50, 5)) < 0.3).astype(float))
    assert binary.loss_function_ == "cross_entropy" and binary.pretrained_
    unit = DeepAutoencoder((4,), 2, pretrain_iter=1, finetune_iter=1).fit(rng.random((50, 5)))
    assert unit.loss_function_ == "squared_error" and not unit.pretrained_
    # loss may be forced
    assert (
        DeepAutoencoder((4,), 2, loss="squared_error", pretrain_iter=1, finetune_iter=1).fit(rng.random((50, 5))).loss_function_
        == "squared_error"
    )


def test_clone_and_pipeline(mnist_small):
    X, y = mnist_small
    X, y = X[:1000], y[:1000]
    pipe = Pipeline(
        [
            ("scale", MinMaxScaler()),
            ("ae", DeepAutoencoder((64,), n_components=8, pretrain_iter=2, finetune_iter=5, random_state=0)),
            ("codes", StandardScaler()),
            ("clf", LogisticRegression(max_iter=200)),
        ]
    )
    pipe.fit(X, y)
    assert pipe.predict(X[:5]).shape == (5,) and pipe.score(X, y) > 0.3
    fresh = clone(pipe)
    assert fresh.get_params()["ae__n_components"] == 8 and not hasattr(fresh.named_steps["ae"], "coefs_")
    est = DeepAutoencoder((8,), n_components=2, pretrain_iter=1, finetune_iter=1)
    assert est.fit(X) is est


def test_early_stopping_records_validation_scores(mnist_small):
    X, _ = mnist_small
    model = DeepAutoencoder(
        (32,),
        n_components=4,
        pretrain_iter=1,
        finetune_iter=50,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=2,
        tol=0.5,
        random_state=0,
    ).fit(X[:1000])
    assert model.n_iter_ < 50
    assert len(model.validation_scores_) == model.n_iter_ >= 3
    assert model.best_validation_score_ == pytest.approx(max(model.validation_scores_))
    assert all(s < 0 for s in model.validation_scores_), "minus the mean squared error"


def test_dropout_runs(mnist_tiny):
    X, _ = mnist_tiny
    plain = DeepAutoencoder((32,), n_components=4, pretrain_iter=1, finetune_iter=2, random_state=0).fit(X)
    drop = DeepAutoencoder((32,), n_components=4, pretrain_iter=1, finetune_iter=2, dropout=0.2, random_state=0).fit(X)
    assert np.isfinite(drop.score(X)) and not np.array_equal(plain.coefs_[0], drop.coefs_[0])
    np.testing.assert_array_equal(drop.transform(X[:5]), drop.transform(X[:5]))


def test_without_pretraining(mnist_tiny):
    X, _ = mnist_tiny
    model = DeepAutoencoder((16,), n_components=4, pretrain=False, finetune_iter=3, random_state=0).fit(X)
    assert model.rbms_ == [] and model.transform(X[:3]).shape == (3, 4)


def test_determinism_threads_float64_and_pickle(mnist_tiny):
    X, _ = mnist_tiny
    a = DeepAutoencoder((16,), n_components=4, pretrain_iter=2, finetune_iter=2, random_state=2, n_jobs=1).fit(X)
    b = DeepAutoencoder((16,), n_components=4, pretrain_iter=2, finetune_iter=2, random_state=2, n_jobs=2).fit(X)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(wa, wb)
    m64 = DeepAutoencoder((16,), n_components=4, pretrain_iter=1, finetune_iter=1, dtype="float64", random_state=0).fit(X)
    assert all(w.dtype == np.float64 for w in m64.coefs_)
    assert m64.transform(X).dtype == X.dtype and m64.transform(X.astype(np.float64)).dtype == np.float64  # follows the input
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).transform(X), a.transform(X))


def test_spec_defaults():
    p = DeepAutoencoder().get_params()
    assert p["hidden_layer_sizes"] == "auto" and p["n_components"] == 30 and p["dtype"] == "float32"


def test_auto_layers_fit_the_shape_of_the_data(rng):
    """Hinton & Salakhutdinov's MNIST encoder for image-sized data, two narrower layers for the rest."""
    assert autoencoder_layer_sizes(8000, 784) == (1000, 500, 250)  # the MNIST split
    assert autoencoder_layer_sizes(4999, 784) == autoencoder_layer_sizes(8000, 255) == (128, 64)
    assert autoencoder_layer_sizes(398, 30) == (128, 64) and autoencoder_layer_sizes(105, 4) == (64, 32)
    assert autoencoder_layer_sizes(100, 5) == (80, 40)
    X = (rng.random((60, 5)) < 0.4).astype(float)  # mostly binary: pretrained, so rbms_ shows the layers
    ae = DeepAutoencoder(n_components=2, pretrain_iter=1, finetune_iter=1, random_state=0).fit(X)
    assert ae.hidden_layer_sizes_ == (80, 40) and ae.pretrained_
    assert [W.shape for W in ae.coefs_] == [(5, 80), (80, 40), (40, 2), (2, 40), (40, 80), (80, 5)]
    assert [r.n_components for r in ae.rbms_] == [80, 40, 2]
    assert ae.transform(X).shape == (60, 2) and ae.reconstruct(X).shape == X.shape
    # Explicit layers are used as given.
    assert DeepAutoencoder((7,), 2, pretrain_iter=1, finetune_iter=1).fit(X).hidden_layer_sizes_ == (7,)


def test_auto_pretraining_length_and_weight_decay_follow_the_mnist_recipe_for_image_sized_data():
    """Image-sized data (>= 5,000 rows of >= 256 features) get 3,200 pretraining updates per RBM and
    a fine-tuning weight decay of 1e-3; other data the RBM's own length and no decay."""
    assert autoencoder_pretrain_epochs("auto", 8000, 784, 100) == 40  # 80 minibatches per epoch
    assert autoencoder_pretrain_epochs("auto", 4999, 784, 100) == RBM_BUDGET.epochs(50) == 10
    assert autoencoder_pretrain_epochs("auto", 300, 30, 10) == RBM_BUDGET.epochs(30) == 17
    assert autoencoder_pretrain_epochs(3, 8000, 784, 100) == 3
    assert autoencoder_weight_decay("auto", 8000, 784) == 1e-3
    assert autoencoder_weight_decay("auto", 8000, 255) == autoencoder_weight_decay("auto", 4999, 784) == 0.0
    assert autoencoder_weight_decay(0.25, 8000, 784) == 0.25


def test_auto_settings_are_what_fit_uses(rng):
    """weight_decay="auto" and pretrain_iter="auto" train exactly as their resolved values given
    explicitly (on small data: no decay, the RBM's own length; on image-sized data: 1e-3, 40 epochs)."""
    small = rng.random((60, 5))
    auto = DeepAutoencoder((8,), n_components=2, finetune_iter=2, random_state=0).fit(small)
    assert auto.weight_decay_ == 0.0 and auto.pretrain_iter_ == RBM_BUDGET.epochs(6)
    explicit = DeepAutoencoder((8,), n_components=2, finetune_iter=2, weight_decay=0.0, pretrain_iter=auto.pretrain_iter_, random_state=0)
    for a, b in zip(auto.coefs_, explicit.fit(small).coefs_):
        np.testing.assert_array_equal(a, b)
    images = (rng.random((5000, 256)) < 0.3).astype(np.float32)
    auto = DeepAutoencoder((4,), n_components=2, finetune_iter=1, random_state=0).fit(images)
    assert auto.weight_decay_ == 1e-3 and auto.pretrain_iter_ == 64  # batches of 100: 50 per epoch
    assert [len(r.history_["epoch"]) for r in auto.rbms_] == [64, 64]
    explicit = DeepAutoencoder((4,), n_components=2, finetune_iter=1, weight_decay=1e-3, pretrain_iter=64, random_state=0)
    for a, b in zip(auto.coefs_, explicit.fit(images).coefs_):
        np.testing.assert_array_equal(a, b)
    undecayed = DeepAutoencoder((4,), n_components=2, finetune_iter=1, weight_decay=0.0, pretrain_iter=64, random_state=0).fit(images)
    assert not np.array_equal(auto.coefs_[0], undecayed.coefs_[0])  # the decay is applied
    with pytest.raises(ValueError, match="weight_decay"):
        DeepAutoencoder(weight_decay="sometimes").fit(small)


def test_auto_layers_check_layer_params_once_the_layers_are_known(rng):
    """With "auto" layers the number of layers is known in fit: a layer_params of the wrong length
    is refused there, before anything is trained, and leaves the estimator unfitted."""
    ae = DeepAutoencoder(n_components=2, layer_params=[{}, {}], pretrain_iter=1, finetune_iter=1)
    X = (rng.random((60, 5)) < 0.4).astype(float)  # mostly binary: pretrained
    with pytest.raises(ValueError, match=r"layer_params must be None or a list of 3 dicts"):
        ae.fit(X)
    assert not hasattr(ae, "coefs_")
    ae.set_params(layer_params=[{}, {}, {"n_iter": 2}]).fit(X)
    assert ae.rbms_[2].n_iter == 2


# --------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "params, name",
    [
        ({"n_components": 0}, "n_components"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": "wide"}, "hidden_layer_sizes"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"pretrain_learning_rate": -1.0}, "pretrain_learning_rate"),
        ({"loss": "hinge"}, "loss"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"pretrain_iter": 0}, "pretrain_iter"),
        ({"batch_size": -3}, "batch_size"),
        ({"dropout": 1.5}, "dropout"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_invalid_hyperparameters(params, name, mnist_tiny):
    X, _ = mnist_tiny
    with pytest.raises((ValueError, TypeError), match=name):
        DeepAutoencoder(**params).fit(X[:50])


def test_bad_data(ae, mnist_tiny, rng):
    X, _ = mnist_tiny
    X_nan = X[:50].copy()
    X_nan[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DeepAutoencoder((8,), 2).fit(X_nan)
    with pytest.raises(ValueError, match="cross_entropy|\\[0, 1\\]"):
        DeepAutoencoder((8,), 2, loss="cross_entropy").fit(rng.standard_normal((50, 6)))
    for method in (ae.transform, ae.reconstruct, ae.score):
        with pytest.raises(ValueError, match="features"):
            method(X[:5, :100])
        with pytest.raises(ValueError, match="NaN"):
            method(X_nan[:5])
    # Fitted with cross-entropy (data in [0, 1]), it still encodes and scores data outside [0, 1]: the
    # network is defined for any real input, and a scaler fitted on training data maps test data there.
    assert ae.loss_function_ == "cross_entropy"
    for outside in (X[:5] * 1.2 - 0.1, X[:5] - 1):
        assert np.all(np.isfinite(ae.transform(outside))) and np.all(np.isfinite(ae.reconstruct(outside)))
        assert ae.score(outside) == -ae.reconstruction_error(outside) < 0
    with pytest.raises(ValueError, match="n_components"):
        ae.inverse_transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        ae.inverse_transform(np.full((3, 8), np.nan))
    with pytest.raises(NotFittedError):
        DeepAutoencoder().transform(X[:3])
    with pytest.raises(NotFittedError):
        DeepAutoencoder().inverse_transform(np.zeros((3, 30)))


# -- the linear path (networks that are not pretrained) ------------------------------------------------


def correlated_data(n=60, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)


def path_loss64(ae, x):
    """The linear path model's loss in float64 NumPy: z = E(x) + (x - m) P^T, x_hat = D(z) + z P + m,
    mean over rows of |x_hat - x|^2 / 2."""
    n_enc = len(ae.coefs_) // 2
    acts = unrolled_activations(n_enc - 1)
    P, m = f64(ae.path_components_), f64(ae.path_mean_)
    z = forward64(x, ae.coefs_[:n_enc], ae.intercepts_[:n_enc], acts[:n_enc]) + (x - m) @ P.T
    x_hat = forward64(z, ae.coefs_[n_enc:], ae.intercepts_[n_enc:], acts[n_enc:]) + z @ P + m
    return 0.5 * np.mean(np.sum((x_hat - x) ** 2, axis=1)), z, x_hat


def test_linear_path_gradients_match_finite_differences():
    X = correlated_data()
    ae = DeepAutoencoder((5, 4), n_components=3, finetune_iter=3, learning_rate=0.05, dtype="float64", random_state=0).fit(X)
    assert ae.linear_path_
    tuner = ae._tuner()
    x = np.ascontiguousarray(X[:9])
    loss, grads = tuner.loss_gradients(x)
    assert loss == pytest.approx(path_loss64(ae, x)[0], rel=1e-12)
    params = tuner.params()
    assert [g.shape for g in grads] == [p.shape for p in params]
    h = 1e-6
    for param, grad in zip(params, grads):
        flat, gflat = param.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            up = path_loss64(ae, x)[0]
            flat[i] = old - h
            down = path_loss64(ae, x)[0]
            flat[i] = old
            assert gflat[i] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8)


def test_linear_path_starts_as_pca_and_is_used_by_every_output():
    X = correlated_data(n=80)
    pca = PCA(n_components=3, svd_solver="full").fit(X)
    # One epoch at a vanishing learning rate: the network is still its starting point.
    ae = DeepAutoencoder((8,), n_components=3, finetune_iter=1, learning_rate=1e-12, dtype="float64", random_state=0).fit(X)
    np.testing.assert_allclose(ae.path_components_, pca.components_, atol=1e-12)
    np.testing.assert_allclose(ae.transform(X), pca.transform(X), atol=1e-9)
    np.testing.assert_allclose(ae.reconstruct(X), pca.inverse_transform(pca.transform(X)), atol=1e-9)
    np.testing.assert_allclose(ae.inverse_transform(pca.transform(X)), pca.inverse_transform(pca.transform(X)), atol=1e-9)
    # After training, every output goes through the path model of the float64 oracle.
    ae = DeepAutoencoder((8,), n_components=3, finetune_iter=20, dtype="float64", random_state=0).fit(X)
    loss, z, x_hat = path_loss64(ae, X)
    np.testing.assert_allclose(ae.transform(X), z, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ae.reconstruct(X), x_hat, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ae.inverse_transform(z), x_hat, rtol=1e-10, atol=1e-10)
    assert ae.reconstruction_error(X) == pytest.approx(2 * loss, rel=1e-10)
    assert ae.reconstruction_error(X) < np.mean(np.sum((X - pca.inverse_transform(pca.transform(X))) ** 2, axis=1))


def test_linear_path_auto_choice():
    X = correlated_data()
    assert DeepAutoencoder((8,), 2, finetune_iter=1, random_state=0).fit(X).linear_path_
    unit = MinMaxScaler().fit_transform(X)  # in [0, 1] but real-valued: squared error, the path
    assert DeepAutoencoder((8,), 2, finetune_iter=1, random_state=0).fit(unit).linear_path_
    binary = (unit > 0.5).astype(float)  # cross-entropy: pretrained by default, no path either way
    assert not DeepAutoencoder((8,), 2, pretrain_iter=1, finetune_iter=1, random_state=0).fit(binary).linear_path_
    assert not DeepAutoencoder((8,), 2, pretrain=False, finetune_iter=1, random_state=0).fit(binary).linear_path_
    assert not DeepAutoencoder((8,), 2, dropout=0.2, finetune_iter=1, random_state=0).fit(X).linear_path_
    assert not DeepAutoencoder((8,), 2, pretrain=True, pretrain_iter=1, finetune_iter=1, random_state=0).fit(X).linear_path_
    plain = DeepAutoencoder((8,), 2, linear_path=False, finetune_iter=1, random_state=0).fit(X)
    assert not plain.linear_path_ and not hasattr(plain, "path_components_")


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(pretrain=True, pretrain_iter=1), "linear_path=True needs pretrain=False"),
        (dict(pretrain=False, loss="cross_entropy"), "linear_path=True needs loss='squared_error'"),
        (dict(pretrain=False, loss="squared_error", dropout=0.1), "linear_path=True needs dropout=0"),
    ],
)
def test_linear_path_true_is_refused_where_it_is_undefined(params, match):
    X = MinMaxScaler().fit_transform(correlated_data())
    with pytest.raises(ValueError, match=match):
        DeepAutoencoder((8,), 2, linear_path=True, finetune_iter=1, random_state=0, **params).fit(X)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_linear_path_parameter_is_checked(value):
    with pytest.raises((ValueError, TypeError), match="linear_path"):
        DeepAutoencoder((8,), 2, linear_path=value).fit(correlated_data())


def test_linear_path_on_data_of_low_rank_trains_without_divergence():
    """PCA reconstructs data of rank <= n_components exactly: the first loss is ~0, which must not
    make the divergence check fire on the tiny losses that follow."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 2)) @ rng.standard_normal((2, 7))
    ae = DeepAutoencoder((6,), n_components=4, finetune_iter=5, random_state=0).fit(X)
    assert ae.linear_path_ and ae.n_iter_ == 5
    assert ae.reconstruction_error(X) < 1e-3 * np.mean(np.sum((X - X.mean(0)) ** 2, axis=1))
    # More code units than rows - 1 or features: the rows beyond are zero.
    small = DeepAutoencoder((6,), n_components=5, finetune_iter=2, random_state=0).fit(X[:4, :3])
    assert np.all(small.path_components_[3:] == 0)


def test_linear_path_model_round_trips_through_save_and_pickle(tmp_path):
    import deepgm

    X = correlated_data().astype(np.float32)
    ae = DeepAutoencoder((8,), 3, finetune_iter=3, random_state=0).fit(X)
    loaded = deepgm.load(ae.save(tmp_path / "ae.safetensors"))
    unpickled = pickle.loads(pickle.dumps(ae))
    for other in (loaded, unpickled):
        assert other.linear_path_
        np.testing.assert_array_equal(other.transform(X), ae.transform(X))
        np.testing.assert_array_equal(other.reconstruct(X), ae.reconstruct(X))


@pytest.mark.parametrize(
    "make, with_y",
    [
        (lambda sizes: DeepAutoencoder(sizes, 2, pretrain_iter=1, finetune_iter=2, n_jobs=1, random_state=0), False),
        (lambda sizes: deepgm.DBN(sizes, n_iter=2, n_jobs=1, random_state=0), False),
        (lambda sizes: deepgm.DBNClassifier(sizes, pretrain_iter=1, finetune_iter=2, n_jobs=1, random_state=0), True),
        (lambda sizes: deepgm.DBNRegressor(sizes, pretrain_iter=1, finetune_iter=2, n_jobs=1, random_state=0), True),
        (lambda sizes: deepgm.VAE(2, hidden_layer_sizes=sizes, n_iter=2, likelihood="gaussian", n_jobs=1, random_state=0), False),
        (lambda sizes: deepgm.CVAE(2, hidden_layer_sizes=sizes, n_iter=2, likelihood="gaussian", n_jobs=1, random_state=0), True),
    ],
    ids=["DeepAutoencoder", "DBN", "DBNClassifier", "DBNRegressor", "VAE", "CVAE"],
)
def test_an_int_hidden_layer_sizes_is_one_layer_as_in_mlp(make, with_y):
    """hidden_layer_sizes=5 means (5,), as MLPClassifier reads it: the same model, bit for bit."""
    X, y = load_iris(return_X_y=True)
    X = MinMaxScaler().fit_transform(X)
    args = (X, y) if with_y else (X,)
    from_int, from_tuple = make(5).fit(*args), make((5,)).fit(*args)
    out = (lambda m: m.transform(X, y)) if isinstance(from_int, deepgm.CVAE) else (lambda m: m.transform(X))
    np.testing.assert_array_equal(out(from_int), out(from_tuple))
    assert out(from_int).shape[1] in (2, 5)


def test_a_code_as_wide_as_the_data_is_warned_about(rng):
    """PCA refuses n_components >= n_features; the autoencoder may fit it (an overcomplete code), but
    such a code need not compress anything, so fit says so, and only then."""
    import warnings

    X = rng.normal(size=(60, 4))
    with pytest.warns(UserWarning, match="n_components=4 is not smaller than the 4 features"):
        DeepAutoencoder((8,), n_components=4, finetune_iter=1, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        DeepAutoencoder((8,), n_components=3, finetune_iter=1, random_state=0).fit(X)
