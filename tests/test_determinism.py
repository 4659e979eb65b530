"""Determinism: every random draw comes from a stream keyed by (random_state,
step, fixed chunk), so the same random_state gives bit-identical fitted parameters, optimiser state and
outputs (transform, predictions, samples, scores) for n_jobs = 1, 2 and 4 and across repeated runs,
for every estimator; different seeds give different models; a seeded Generator or RandomState behaves
like its seed; and partial_fit sequences repeat exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepgm import CVAE, DBN, RBM, VAE, DBNClassifier, DBNRegressor, DeepAutoencoder


@pytest.fixture(scope="module")
def data(mnist):
    X, y = mnist
    X, y = X[:1200], y[:1200]
    rng = np.random.default_rng(7)
    Xr = (rng.standard_normal((600, 40)) * 2 + 1).astype(np.float32)
    yr = np.sin(Xr[:, 0]) + Xr[:, 1] ** 2 / 4
    return {"digits": (X, y), "real": (Xr, yr)}


def state_arrays(est, prefix=""):
    """Every numeric array and number the fitted estimator holds (parameters, optimiser state,
    persistent chains, counters, the layers of a stack), by name; not the timing history."""
    out = {}
    for key, value in vars(est).items():
        if key == "history_":
            continue
        name = prefix + key
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            out[name] = value
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                if isinstance(v, np.ndarray):
                    out[f"{name}[{i}]"] = v
                elif isinstance(v, list):
                    for j, w in enumerate(v):
                        out[f"{name}[{i}][{j}]"] = w
                elif isinstance(v, RBM):
                    out.update(state_arrays(v, f"{name}[{i}]."))
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and key != "n_jobs":
            out[name] = value
    return out


def outputs(est, X, y):
    """Everything a fitted estimator computes, random methods included (called in a fixed order)."""
    X = X[:50]
    out = {}
    if isinstance(est, CVAE):
        out["transform"] = est.transform(X, y[:50])
        out["elbo"] = est.elbo(X, y[:50])
        out["log_likelihood"] = est.log_likelihood(X, y[:50], n_importance=20)
        out["sample"] = est.sample(8, y=y[0])
        out["sample2"] = est.sample(8, y=y[:8])
        return out
    out["transform"] = est.transform(X)
    if isinstance(est, RBM):
        out["score_samples"] = est.score_samples(X)
        out["gibbs"] = est.gibbs(est.reconstruct(X[:10]) if est.visible == "gaussian" else X[:10])
        out["sample"] = est.sample(6, n_steps=20)
        out["sample2"] = est.sample(6, n_steps=5, return_means=False)
        if est.visible == "bernoulli" and est.hidden == "bernoulli":
            lp = est.log_partition(n_chains=16, n_betas=200)
            out["ais"] = np.array([lp.log_z, lp.std_error, lp.lower, lp.upper])
    if isinstance(est, DBN):
        out["sample"] = est.sample(5, n_steps=10)
    if isinstance(est, DBNClassifier):
        out["predict_proba"] = est.predict_proba(X)
        out["predict"] = est.predict(X)
    if isinstance(est, DBNRegressor):
        out["predict"] = est.predict(X)
    if isinstance(est, DeepAutoencoder):
        out["reconstruct"] = est.reconstruct(X)
        out["score"] = np.array(est.score(X))
    if isinstance(est, VAE):
        out["elbo"] = est.elbo(X)
        out["log_likelihood"] = est.log_likelihood(X, n_importance=20)
        out["sample"] = est.sample(8)
        out["sample2"] = est.sample(8)
    return out


CASES = {
    "RBM": (lambda **kw: RBM(48, n_iter=2, batch_size=50, **kw), "digits", False),
    "RBM-PCD-k3": (lambda **kw: RBM(48, persistent=True, k=3, n_iter=2, batch_size=50, **kw), "digits", False),
    "RBM-gaussian": (lambda **kw: RBM(24, visible="gaussian", n_iter=2, batch_size=50, **kw), "real", False),
    "RBM-gaussian-hidden": (lambda **kw: RBM(8, hidden="gaussian", n_iter=2, batch_size=50, **kw), "digits", False),
    "DBN": (lambda **kw: DBN((48, 16), n_iter=2, batch_size=50, **kw), "digits", False),
    "DBNClassifier": (
        lambda **kw: DBNClassifier((48,), pretrain_iter=1, finetune_iter=2, dropout=0.2, batch_size=50, **kw),
        "digits",
        True,
    ),
    "DBNClassifier-adam-early-stopping": (
        lambda **kw: DBNClassifier(
            (32,), pretrain_iter=1, finetune_iter=3, optimizer="adam", learning_rate=1e-3, early_stopping=True, batch_size=50, **kw
        ),
        "digits",
        True,
    ),
    "DBNRegressor": (lambda **kw: DBNRegressor((24,), pretrain_iter=1, finetune_iter=2, batch_size=50, **kw), "real", True),
    "DeepAutoencoder": (lambda **kw: DeepAutoencoder((48,), 8, pretrain_iter=1, finetune_iter=2, batch_size=50, **kw), "digits", False),
    "DeepAutoencoder-real": (lambda **kw: DeepAutoencoder((24,), 4, pretrain_iter=1, finetune_iter=2, batch_size=50, **kw), "real", False),
    "VAE": (lambda **kw: VAE(4, hidden_layer_sizes=(64,), n_iter=2, batch_size=50, **kw), "digits", False),
    "VAE-gaussian-tanh": (
        lambda **kw: VAE(3, hidden_layer_sizes=(32, 16), likelihood="gaussian", activation="tanh", n_iter=2, batch_size=50, **kw),
        "real",
        False,
    ),
    "CVAE": (lambda **kw: CVAE(4, hidden_layer_sizes=(64,), n_iter=2, batch_size=50, **kw), "digits", True),
    "CVAE-concat": (lambda **kw: CVAE(4, conditioning="concat", hidden_layer_sizes=(32,), n_iter=2, batch_size=50, **kw), "digits", True),
}


def fit(name, data, **params):
    make, kind, needs_y = CASES[name]
    X, y = data[kind]
    est = make(**params)
    return est.fit(X, y) if needs_y else est.fit(X)


def assert_same(a: dict, b: dict, what: str):
    assert a.keys() == b.keys(), what
    for key in a:
        assert np.array_equal(a[key], b[key]), f"{what}: {key} differs"


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_seed_same_bits_for_any_n_jobs_and_repeated_runs(name, data):
    _, kind, _ = CASES[name]
    X, y = data[kind]
    y_labels = data["digits"][1]
    runs = [fit(name, data, random_state=11, n_jobs=n_jobs) for n_jobs in (1, 2, 4, 2)]
    reference = state_arrays(runs[0])
    assert len(reference) > 3
    ref_out = outputs(runs[0], X, y_labels)
    for est, label in zip(runs[1:], ("n_jobs=2", "n_jobs=4", "a repeated run")):
        assert_same(state_arrays(est), reference, f"{name}, {label}: fitted state")
        assert_same(outputs(est, X, y_labels), ref_out, f"{name}, {label}: outputs")
        for key in runs[0].history_:
            if key != "time":
                assert np.array_equal(est.history_[key], runs[0].history_[key]), f"{name}, {label}: history_[{key!r}]"


@pytest.mark.parametrize("name", sorted(CASES))
def test_different_seeds_give_different_models(name, data):
    a = state_arrays(fit(name, data, random_state=1, n_jobs=2))
    b = state_arrays(fit(name, data, random_state=2, n_jobs=2))
    learned = [k for k in a if k.endswith("_") or "_[" in k or "coefs_" in k or "components_" in k]
    assert learned
    assert any(not np.array_equal(a[k], b[k]) for k in learned if isinstance(a[k], np.ndarray))


def test_generator_and_random_state_seeds(data):
    X, _ = data["digits"]
    for seed_like in (lambda: np.random.default_rng(5), lambda: np.random.RandomState(5)):
        a = RBM(16, n_iter=1, random_state=seed_like()).fit(X)
        b = RBM(16, n_iter=1, random_state=seed_like(), n_jobs=1).fit(X)
        assert_same(state_arrays(a), state_arrays(b), "a freshly seeded Generator/RandomState")
    # One Generator shared by two fits is advanced: the two models differ (as in scikit-learn)
    gen = np.random.default_rng(5)
    a = VAE(2, hidden_layer_sizes=(8,), n_iter=1, random_state=gen).fit(X)
    b = VAE(2, hidden_layer_sizes=(8,), n_iter=1, random_state=gen).fit(X)
    assert not np.array_equal(a.encoder_coefs_[0], b.encoder_coefs_[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_partial_fit_sequences_repeat_exactly(data, dtype):
    X, y = data["digits"]
    models = []
    for n_jobs in (1, 4):
        rbm = RBM(32, persistent=True, batch_size=40, random_state=3, dtype=dtype, n_jobs=n_jobs)
        vae = VAE(3, hidden_layer_sizes=(32,), batch_size=40, random_state=3, dtype=dtype, n_jobs=n_jobs)
        cvae = CVAE(3, hidden_layer_sizes=(32,), batch_size=40, random_state=3, dtype=dtype, n_jobs=n_jobs)
        for start in range(0, 600, 200):
            rbm.partial_fit(X[start : start + 200])
            vae.partial_fit(X[start : start + 200])
            cvae.partial_fit(X[start : start + 200], y[start : start + 200], classes=np.arange(10))
        models.append((rbm, vae, cvae))
    for a, b in zip(*models):
        assert_same(state_arrays(a), state_arrays(b), f"{type(a).__name__} partial_fit, {dtype}")
        assert a.components_.dtype == np.dtype(dtype) if isinstance(a, RBM) else a.encoder_coefs_[0].dtype == np.dtype(dtype)


def test_float64_models_are_deterministic_too(data):
    X, y = data["digits"]
    a = DBNClassifier((32,), pretrain_iter=1, finetune_iter=2, dtype="float64", random_state=4, n_jobs=1).fit(X, y)
    b = DBNClassifier((32,), pretrain_iter=1, finetune_iter=2, dtype="float64", random_state=4, n_jobs=4).fit(X, y)
    assert_same(state_arrays(a), state_arrays(b), "float64 DBNClassifier")
    assert a.coefs_[0].dtype == np.float64
    np.testing.assert_array_equal(a.predict_proba(X[:20]), b.predict_proba(X[:20]))


def test_refitting_the_same_estimator_gives_the_same_model(data):
    """fit starts from scratch: a second fit of the same instance repeats the first exactly (and a
    sampling call in between does not leak into it)."""
    X, y = data["digits"]
    for est, args in (
        (RBM(16, n_iter=2, random_state=0), (X,)),
        (VAE(2, hidden_layer_sizes=(16,), n_iter=2, random_state=0), (X,)),
        (DBNClassifier((16,), pretrain_iter=1, finetune_iter=2, random_state=0), (X, y)),
    ):
        first = {k: np.copy(v) for k, v in state_arrays(est.fit(*args)).items()}
        if hasattr(est, "sample"):
            est.sample(3)
        second = state_arrays(est.fit(*args))
        assert_same(second, first, f"{type(est).__name__} refit")
