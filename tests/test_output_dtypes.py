"""Every public method that returns an array computed from input data follows scikit-learn's dtype
convention whatever the model computes in: float32 input gives float32 output, float64 or integer input
gives float64 output (as MLPClassifier.predict_proba, MLPRegressor.predict and
BernoulliRBM.score_samples do). Values computed in float64 for precision (likelihoods, probabilities)
are only cast at the end: the float32 output equals the float64 one rounded. Scalar scores (score,
perplexity, log_likelihood of an RBM) stay Python floats.
"""

from __future__ import annotations

import numpy as np
import pytest
from _bundled import small_data
from sklearn.neural_network import BernoulliRBM, MLPClassifier, MLPRegressor

import deepgm

KW = dict(n_jobs=1, random_state=0)


@pytest.fixture(scope="module")
def data():
    return small_data()


@pytest.fixture(scope="module")
def models(data):
    X, y, D, dy = data["X"], data["y"], data["D"], data["dy"]
    return {
        "RBM": deepgm.RBM(8, n_iter=2, **KW).fit(D),
        "RBM-gaussian": deepgm.RBM(8, visible="gaussian", n_iter=2, **KW).fit(X),
        "DBN": deepgm.DBN((8,), n_iter=2, **KW).fit(D, dy),
        "DBNClassifier": deepgm.DBNClassifier((8,), pretrain_iter=1, finetune_iter=2, **KW).fit(X, y),
        "DBNRegressor": deepgm.DBNRegressor((8,), pretrain_iter=1, finetune_iter=2, **KW).fit(X[:, 1:], X[:, 0]),
        "DeepAutoencoder": deepgm.DeepAutoencoder((8,), 2, pretrain_iter=1, finetune_iter=2, **KW).fit(X),
        "VAE": deepgm.VAE(2, hidden_layer_sizes=(8,), likelihood="gaussian", n_iter=2, **KW).fit(X),
        "CVAE": deepgm.CVAE(2, hidden_layer_sizes=(8,), likelihood="gaussian", n_iter=2, **KW).fit(X, y),
        "ReplicatedSoftmax": deepgm.ReplicatedSoftmax(3, max_iter=2, **KW).fit(data["C"]),
        "CollaborativeRBM": deepgm.CollaborativeRBM(4, n_iter=2, **KW).fit(data["R"]),
    }


# (model, method): the call on input data cast by `as_` (the data set named first)
CALLS = {
    ("RBM", "transform"): ("D", lambda m, Z, d: m.transform(Z)),
    ("RBM", "score_samples"): ("D", lambda m, Z, d: m.score_samples(Z)),
    ("RBM", "free_energy"): ("D", lambda m, Z, d: m.free_energy(Z)),
    ("RBM", "reconstruct"): ("D", lambda m, Z, d: m.reconstruct(Z)),
    ("RBM", "gibbs"): ("D", lambda m, Z, d: m.gibbs(Z)),
    ("RBM", "sample(init)"): ("D", lambda m, Z, d: m.sample(n_steps=2, init=Z[:3])),
    ("RBM-gaussian", "score_samples"): ("X", lambda m, Z, d: m.score_samples(Z)),
    ("RBM-gaussian", "free_energy"): ("X", lambda m, Z, d: m.free_energy(Z)),
    ("DBN", "transform"): ("D", lambda m, Z, d: m.transform(Z)),
    ("DBN", "sample(init)"): ("D", lambda m, Z, d: m.sample(n_steps=2, init=Z[:3])),
    ("DBN", "sample(init, y)"): ("D", lambda m, Z, d: m.sample(n_steps=2, init=Z[:3], y=1)),
    ("DBN", "predict_proba"): ("D", lambda m, Z, d: m.predict_proba(Z)),
    ("DBN", "predict_log_proba"): ("D", lambda m, Z, d: m.predict_log_proba(Z)),
    ("DBNClassifier", "predict_proba"): ("X", lambda m, Z, d: m.predict_proba(Z)),
    ("DBNClassifier", "predict_log_proba"): ("X", lambda m, Z, d: m.predict_log_proba(Z)),
    ("DBNClassifier", "transform"): ("X", lambda m, Z, d: m.transform(Z)),
    ("DBNRegressor", "predict"): ("X1", lambda m, Z, d: m.predict(Z)),
    ("DBNRegressor", "transform"): ("X1", lambda m, Z, d: m.transform(Z)),
    ("DeepAutoencoder", "transform"): ("X", lambda m, Z, d: m.transform(Z)),
    ("DeepAutoencoder", "inverse_transform"): ("X2", lambda m, Z, d: m.inverse_transform(Z)),
    ("DeepAutoencoder", "reconstruct"): ("X", lambda m, Z, d: m.reconstruct(Z)),
    ("VAE", "transform"): ("X", lambda m, Z, d: m.transform(Z)),
    ("VAE", "encode"): ("X", lambda m, Z, d: np.hstack(m.encode(Z))),
    ("VAE", "decode"): ("X2", lambda m, Z, d: m.decode(Z)),
    ("VAE", "reconstruct"): ("X", lambda m, Z, d: m.reconstruct(Z)),
    ("VAE", "elbo"): ("X", lambda m, Z, d: m.elbo(Z)),
    ("VAE", "log_likelihood"): ("X", lambda m, Z, d: m.log_likelihood(Z, n_importance=5)),
    ("CVAE", "transform"): ("X", lambda m, Z, d: m.transform(Z, d["y"])),
    ("CVAE", "encode"): ("X", lambda m, Z, d: np.hstack(m.encode(Z, d["y"]))),
    ("CVAE", "decode"): ("X2", lambda m, Z, d: m.decode(Z, d["y"])),
    ("CVAE", "reconstruct"): ("X", lambda m, Z, d: m.reconstruct(Z, d["y"])),
    ("CVAE", "elbo"): ("X", lambda m, Z, d: m.elbo(Z, d["y"])),
    ("CVAE", "log_likelihood"): ("X", lambda m, Z, d: m.log_likelihood(Z, d["y"], n_importance=5)),
    ("ReplicatedSoftmax", "transform"): ("C", lambda m, Z, d: m.transform(Z)),
    ("ReplicatedSoftmax", "score_samples"): ("C", lambda m, Z, d: m.score_samples(Z[:20])),
    ("CollaborativeRBM", "transform"): ("R", lambda m, Z, d: m.transform(Z)),
    ("CollaborativeRBM", "predict"): ("R", lambda m, Z, d: m.predict(Z, Z).data),
}


def _input(data, key):
    if key == "X1":
        return data["X"][:, 1:]
    if key == "X2":  # latent codes
        return data["X"][:, :2]
    return data[key]


@pytest.mark.parametrize("model, method", sorted(CALLS), ids=lambda v: v)
def test_output_dtype_follows_the_input(model, method, models, data):
    key, call = CALLS[(model, method)]
    est, A = models[model], _input(data, key)
    out32 = call(est, A.astype(np.float32), data)
    out64 = call(est, A.astype(np.float64), data)
    assert out32.dtype == np.float32, f"{model}.{method}: float32 input gave {out32.dtype}"
    assert out64.dtype == np.float64, f"{model}.{method}: float64 input gave {out64.dtype}"
    if np.issubdtype(A.dtype, np.integer) or key in ("D", "C", "R"):  # integer (or integer-valued) input
        A_int = A.astype(np.int64) if key in ("C", "R") else (A > 0.5).astype(np.int64)
        assert call(est, A_int, data).dtype == np.float64, f"{model}.{method}: int64 input"
    if not method.startswith(("gibbs", "sample")):  # deterministic: float32 output is float64's rounded
        np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(out64).max())))


@pytest.mark.parametrize("model", ["RBM", "DBNClassifier", "DeepAutoencoder", "VAE"])
def test_pandas_nullable_columns_follow_the_same_rule(model, models, data):
    """Frames from ``convert_dtypes()`` (pandas' nullable Float32 / Float64 / Int64 / boolean columns)
    take the rule of their NumPy dtypes: float32 out only when every column is Float32. They used to
    fail in the dtype rule itself (np.dtype refuses pandas' extension dtypes)."""
    pd = pytest.importorskip("pandas")
    est, X = models[model], data["D" if model == "RBM" else "X"].astype(np.float64)
    method = est.predict_proba if model == "DBNClassifier" else est.transform
    expected = method(X)
    frames = {
        np.float32: pd.DataFrame(X.astype(np.float32)).astype("Float32"),
        np.float64: pd.DataFrame(X).astype("Float64"),
    }
    for dtype, frame in frames.items():
        out = method(frame)
        assert out.dtype == dtype, f"{model}: {frame.dtypes.iloc[0]} columns gave {out.dtype}"
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    binary = pd.DataFrame(X > 0.5).astype("boolean")
    assert method(binary).dtype == np.float64
    assert method(pd.DataFrame((X > 0.5).astype(np.int64)).astype("Int64")).dtype == np.float64


@pytest.mark.parametrize("model, method", sorted(CALLS), ids=lambda v: v)
def test_a_new_dtype_on_a_fitted_model_converts_it(model, method, models, data):
    """set_params(dtype=...) after fit: the fitted state follows, so every method keeps working in
    the new dtype (it used to fail in the kernels on mixed dtypes), with the same values, and back
    in float32 again."""
    import copy

    key, call = CALLS[(model, method)]
    est, A = copy.deepcopy(models[model]), _input(data, key)
    A32 = A.astype(np.float32)
    expected = call(models[model], A32, data)
    est.set_params(dtype="float64")
    assert est.get_params()["dtype"] == "float64"
    out = call(est, A32, data)
    assert out.dtype == np.float32  # the output rule follows the input, whatever the model computes in
    if not method.startswith(("gibbs", "sample")):
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
    est.set_params(dtype="float32")  # back: float64 statistics (input_mean_, ...) are float32 now
    if not method.startswith(("gibbs", "sample")):
        np.testing.assert_allclose(call(est, A32, data), expected, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expected).max())))


@pytest.mark.parametrize("model, key", [("RBM", "D"), ("VAE", "X"), ("ReplicatedSoftmax", "C")])
def test_partial_fit_continues_in_a_new_dtype(model, key, models, data):
    import copy

    est = copy.deepcopy(models[model]).set_params(dtype="float64")
    est.partial_fit(data[key])
    params = [getattr(est, name) for name in est._param_names]
    arrays = [a for p in params for a in (p if isinstance(p, list) else [p]) if np.issubdtype(a.dtype, np.floating)]
    assert arrays and all(a.dtype == np.float64 for a in arrays)


def test_scalar_scores_stay_python_floats(models, data):
    X, y, D, C = data["X"], data["y"], data["D"], data["C"]
    X32 = X.astype(np.float32)
    assert type(models["RBM"].log_likelihood(D.astype(np.float32), method="exact")) is float
    assert type(models["DBNClassifier"].score(X32, y)) is float
    assert type(models["VAE"].score(X32)) is float
    assert type(models["ReplicatedSoftmax"].score(C.astype(np.float32))) is float
    assert type(models["ReplicatedSoftmax"].perplexity(C.astype(np.float32))) is float


def test_the_same_dtypes_as_scikit_learns_estimators(models, data):
    """The peers the review compared against, on the same float32 input."""
    X, y, D = data["X"].astype(np.float32), data["y"], data["D"].astype(np.float32)
    peers = [
        (
            MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y).predict_proba(X),
            models["DBNClassifier"].predict_proba(X),
        ),
        (
            MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X[:, 1:], X[:, 0]).predict(X[:, 1:]),
            models["DBNRegressor"].predict(X[:, 1:]),
        ),
        (BernoulliRBM(8, n_iter=1, random_state=0).fit(D).score_samples(D), models["RBM"].score_samples(D)),
    ]
    for theirs, ours in peers:
        assert ours.dtype == theirs.dtype == np.float32
