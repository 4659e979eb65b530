"""Bad input at every public entry point (docs/architecture.md, "Bad input").

Every estimator method that takes data, and every hyperparameter, refuses bad values with a ValueError
or TypeError whose message names the argument, says what was expected and what it got, before the
estimator changes: a failed call leaves a fitted estimator exactly as it was (compared through its
pickle) and an unfitted one unfitted. The same for labels (CVAE, DBNClassifier) and regression targets,
for the extra arguments of sampling and likelihood methods, and for the RBM and VAE kernels of
``deepgm._core`` (the other kernels are covered by test_core_errors.py). A Rust panic never crosses into
Python: a sweep of degenerate (zero-sized) shapes through every kernel only ever raises ordinary
exceptions.
"""

from __future__ import annotations

import copy
import itertools
import pickle
import re
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from deepgm import CVAE, DBN, RBM, VAE, DBNClassifier, DBNRegressor, DeepAutoencoder, _core
from deepgm._base import check_bool, check_n_jobs, check_positive_int, check_verbose
from deepgm._schedule import check_batch_size, check_length

N, D = 40, 6
RNG = np.random.default_rng(0)
X01 = RNG.random((N, D)).astype(np.float32)  # data in [0, 1]: valid for every estimator
LABELS = np.arange(N) % 3
TARGETS = RNG.standard_normal(N)


def names(arg):
    """A regex matching ``arg`` as a word (not as part of another identifier or of ``X.reshape``)."""
    return rf"(?<![\w.]){re.escape(arg)}(?![\w(])"


def state(est) -> bytes:
    """Everything an estimator holds, for before/after comparisons."""
    return pickle.dumps(est.__dict__)


def raises_named(arg, call, match=None):
    """call() raises ValueError/TypeError naming ``arg`` (and matching ``match``); returns the message."""
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    msg = str(info.value)
    assert re.search(names(arg), msg), f"the message does not name {arg!r}: {msg}"
    if match is not None:
        assert re.search(match, msg), f"the message does not match {match!r}: {msg}"
    return msg


# --------------------------------------------------------------------------------------------------
# fitted estimators (tiny)

FACTORIES = {
    "RBM": lambda: RBM(4, n_iter=1, batch_size=10, random_state=0).fit(X01),
    "RBM-gaussian": lambda: RBM(4, visible="gaussian", n_iter=1, batch_size=10, random_state=0).fit(X01),
    "DBN": lambda: DBN((4, 3), visible="bernoulli", n_iter=1, batch_size=10, random_state=0).fit(X01),
    "DBNClassifier": lambda: DBNClassifier((4,), visible="bernoulli", pretrain_iter=1, finetune_iter=1, batch_size=10, random_state=0).fit(
        X01, LABELS
    ),
    "DBNRegressor": lambda: DBNRegressor((4,), pretrain_iter=1, finetune_iter=1, batch_size=10, random_state=0).fit(X01, TARGETS),
    "DeepAutoencoder": lambda: DeepAutoencoder((4,), 2, pretrain_iter=1, finetune_iter=1, batch_size=10, random_state=0).fit(X01),
    "VAE": lambda: VAE(2, hidden_layer_sizes=(4,), n_iter=1, batch_size=10, random_state=0).fit(X01),
    "VAE-gaussian": lambda: VAE(2, hidden_layer_sizes=(4,), likelihood="gaussian", n_iter=1, batch_size=10, random_state=0).fit(X01),
    "CVAE": lambda: CVAE(2, hidden_layer_sizes=(4,), n_iter=1, batch_size=10, random_state=0).fit(X01, LABELS),
}

BERNOULLI = {"RBM", "DBN", "DBNClassifier", "VAE", "CVAE"}

#: Methods of a fitted model that accept finite values outside [0, 1] even for Bernoulli units (p(h | v)
#: and the networks are defined for any real input; a scaler fitted on training data can map test data
#: slightly outside). fit and the likelihood methods (free_energy, score_samples, log_likelihood, elbo,
#: a VAE's score) and the visible states given to gibbs / sample still refuse them.
RANGE_FREE = {
    ("RBM", "transform"),
    ("RBM", "reconstruct"),
    ("DBN", "transform"),
    ("DBNClassifier", "predict"),
    ("DBNClassifier", "predict_proba"),
    ("DBNClassifier", "predict_log_proba"),
    ("DBNClassifier", "transform"),
    ("DBNClassifier", "score"),
    ("VAE", "transform"),
    ("VAE", "encode"),
    ("VAE", "reconstruct"),
    ("CVAE", "transform"),
    ("CVAE", "encode"),
    ("CVAE", "reconstruct"),
}


@pytest.fixture(scope="module")
def fitted():
    return {name: make() for name, make in FACTORIES.items()}


def _y_like(X, kind):
    n = X.shape[0] if getattr(X, "ndim", 0) >= 1 else N
    return (LABELS if kind == "labels" else TARGETS)[:n]


# (method, argument name, extra) for each estimator; extra: "labels"/"targets" = y after X, or a dict of kwargs
ENTRY_POINTS = {
    "RBM": [
        ("fit", "X", None),
        ("partial_fit", "X", None),
        ("fit_transform", "X", None),
        ("transform", "X", None),
        ("reconstruct", "X", None),
        ("free_energy", "X", None),
        ("score_samples", "X", None),
        ("log_likelihood", "X", {"log_z": 0.0}),
        ("gibbs", "v", None),
        ("sample", "init", "init"),
    ],
    "DBN": [("fit", "X", None), ("fit_transform", "X", None), ("transform", "X", None)],
    "DBNClassifier": [
        ("fit", "X", "labels"),
        ("fit_transform", "X", "labels"),
        ("predict", "X", None),
        ("predict_proba", "X", None),
        ("predict_log_proba", "X", None),
        ("transform", "X", None),
        ("score", "X", "labels"),
    ],
    "DBNRegressor": [("fit", "X", "targets"), ("predict", "X", None), ("transform", "X", None), ("score", "X", "targets")],
    "DeepAutoencoder": [
        ("fit", "X", None),
        ("fit_transform", "X", None),
        ("transform", "X", None),
        ("reconstruct", "X", None),
        ("score", "X", None),
        ("reconstruction_error", "X", None),
    ],
    "VAE": [
        ("fit", "X", None),
        ("partial_fit", "X", None),
        ("fit_transform", "X", None),
        ("transform", "X", None),
        ("encode", "X", None),
        ("reconstruct", "X", None),
        ("elbo", "X", None),
        ("score", "X", None),
        ("log_likelihood", "X", {"n_importance": 3}),
    ],
    "CVAE": [
        ("fit", "X", "labels"),
        ("partial_fit", "X", "labels"),
        ("fit_transform", "X", "labels"),
        ("transform", "X", "labels"),
        ("encode", "X", "labels"),
        ("reconstruct", "X", "labels"),
        ("elbo", "X", "labels"),
        ("score", "X", "labels"),
        ("log_likelihood", "X", "labels"),
    ],
}
ENTRY_POINTS["RBM-gaussian"] = ENTRY_POINTS["RBM"]
ENTRY_POINTS["VAE-gaussian"] = ENTRY_POINTS["VAE"]


def _call(est, method, X, extra):
    fn = getattr(est, method)
    if extra == "init":
        return est.sample(init=X, n_steps=1)
    if extra in ("labels", "targets"):
        kwargs = {"n_importance": 3} if method == "log_likelihood" else {}
        return fn(X, _y_like(X, extra), **kwargs)
    return fn(X, **(extra or {}))


def _object_with(value):
    a = X01[:5].astype(object)
    a[0, 0] = value
    return a


def bad_inputs(bernoulli: bool, fit: bool):
    """(case, bad X, regex the message must also match); ``bernoulli``: whether values outside [0, 1]
    are refused."""
    nan = X01.copy()
    nan[3, 2] = np.nan
    inf = X01.copy()
    inf[0, 0] = np.inf
    ninf = X01.copy()
    ninf[1, 1] = -np.inf
    cases = [
        ("NaN", nan, "NaN"),
        ("inf", inf, "infinity"),
        ("-inf", ninf, "infinity"),
        ("1-D", X01[0], "2-D|2D"),
        ("3-D", X01[None], "2-D"),
        ("0-D", np.float32(0.5), "2-D"),
        ("None", None, "2-D|None"),
        ("no samples", np.empty((0, D), np.float32), "0 sample"),
        ("no features", np.empty((N, 0), np.float32), "0 feature"),
        ("complex", X01.astype(np.complex64), "[Cc]omplex"),
        ("strings", X01.astype(str), "numbers|string"),
        ("object strings", _object_with("a"), "string|float"),
        ("object dicts", _object_with({"a": 1}), "number|dict"),
        ("ragged", [[0.1, 0.2], [0.3]], "2-D|shape|sequence|inhomogeneous"),
    ]
    if not fit:
        cases.append(("feature count", X01[:, : D - 1], "features"))
    if bernoulli:
        cases += [("above 1", X01 + 1, r"\[0, 1\]"), ("negative", X01 - 1, r"\[0, 1\]")]
    return cases


@pytest.mark.parametrize(
    "est_name, method, arg, extra",
    [(e, m, a, x) for e, points in ENTRY_POINTS.items() for (m, a, x) in points],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_X_at_every_entry_point(fitted, est_name, method, arg, extra):
    est = copy.deepcopy(fitted[est_name])
    before = state(est)
    fit = method in ("fit", "partial_fit", "fit_transform")
    refuses_range = est_name in BERNOULLI and (est_name, method) not in RANGE_FREE
    for case, bad, match in bad_inputs(refuses_range, fit and method != "partial_fit"):
        if case == "None" and extra == "init":
            continue  # sample(init=None) means "random initial states"
        with pytest.raises((ValueError, TypeError)) as info:
            _call(est, method, bad, extra)
        msg = str(info.value)
        assert re.search(names(arg), msg), f"{case}: the message does not name {arg!r}: {msg}"
        assert re.search(match, msg), f"{case}: the message does not say {match!r}: {msg}"
        assert state(est) == before, f"{case}: {est_name}.{method} changed the estimator before failing"
    if est.dtype == "float32":  # finite, but beyond the dtype the model computes in: not called infinity
        huge = X01.astype(np.float64)
        huge[0, 0] = 1e39
        with pytest.raises(ValueError, match=r"range of float32.*got a finite value of magnitude 1e\+39.*dtype='float64'") as info:
            _call(est, method, huge, extra)
        assert re.search(names(arg), str(info.value)), f"the message does not name {arg!r}: {info.value}"
        assert state(est) == before
    # ...and the estimator still works, also on numbers in an object array (converted as scikit-learn does)
    _call(est, method, X01[:10], extra if extra != "labels" else "labels")
    _call(est, method, X01[:10].astype(object), extra if extra != "labels" else "labels")
    if est_name in BERNOULLI and (est_name, method) in RANGE_FREE:
        out = _call(est, method, np.clip(X01[:10] * 1.5 - 0.25, -0.25, 1.25), extra)
        assert all(np.all(np.isfinite(o)) for o in (out if isinstance(out, tuple) else (out,)) if isinstance(o, np.ndarray))


@pytest.mark.parametrize("est_name", sorted(FACTORIES))
def test_unfitted_estimator_stays_unfitted_after_a_failed_fit(est_name):
    est = clone(FACTORIES[est_name]())
    before = state(est)
    needs_y = est_name in ("DBNClassifier", "DBNRegressor", "CVAE")
    bad = X01.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad, LABELS) if needs_y else est.fit(bad)
    assert state(est) == before
    with pytest.raises(NotFittedError):
        est.transform(X01, LABELS) if est_name == "CVAE" else est.transform(X01)
    # A failure after X passed (bad labels, or bad data in [0, 1] for Bernoulli units) leaves nothing behind
    if needs_y:
        with pytest.raises(ValueError, match=names("y")):
            est.fit(X01, LABELS[:-1])
        assert state(est) == before and not hasattr(est, "n_features_in_")


def test_refit_with_data_that_fails_late_keeps_the_previous_model(fitted):
    """The feature count of a refused X is not recorded (it used to be: n_features_in_ changed while the
    old weights stayed, breaking every later call)."""
    rbm = copy.deepcopy(fitted["RBM"])
    before = state(rbm)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rbm.fit(RNG.random((20, 3)) * 5)  # 3 features, outside [0, 1]: fails after check_array
    assert state(rbm) == before and rbm.n_features_in_ == D
    assert rbm.sample(2, n_steps=1).shape == (2, D)
    clf = copy.deepcopy(fitted["DBNClassifier"])
    before = state(clf)
    with pytest.raises(ValueError, match="continuous|Unknown label type"):
        clf.fit(RNG.random((20, 3)), RNG.random(20))
    assert state(clf) == before and clf.predict(X01).shape == (N,)


# --------------------------------------------------------------------------------------------------
# Z (latent codes) for decode / inverse_transform


@pytest.mark.parametrize("est_name, method", [("DeepAutoencoder", "inverse_transform"), ("VAE", "decode"), ("CVAE", "decode")])
def test_bad_latent_codes(fitted, est_name, method):
    est = copy.deepcopy(fitted[est_name])
    before = state(est)
    fn = getattr(est, method)
    Z = np.zeros((5, 2), np.float32)
    call = (lambda z: fn(z, LABELS[:5])) if est_name == "CVAE" else fn
    nan = Z.copy()
    nan[0, 0] = np.nan
    for bad, match in [
        (nan, "NaN"),
        (Z[0], "2-D"),
        (Z[None], "2-D"),
        (np.zeros((5, 3)), "n_components"),
        (np.zeros((0, 2)), "0 sample"),
        (Z.astype(complex), "[Cc]omplex"),
        (Z.astype(str), "numbers"),
        (None, "None"),
        ([[1.0, 2.0], [1.0]], "sequence|inhomogeneous"),
    ]:
        raises_named("Z", lambda: call(bad), match)
    assert state(est) == before
    assert call(Z).shape == (5, D)
    np.testing.assert_array_equal(call(sp.csr_matrix(Z)), call(Z)), "sparse codes are accepted, as sparse X is"


# --------------------------------------------------------------------------------------------------
# targets and labels


@pytest.mark.parametrize("est_name", ["DBNClassifier", "CVAE"])
def test_bad_labels(fitted, est_name):
    est = copy.deepcopy(fitted[est_name])
    before = state(est)
    methods = [est.fit] + ([est.partial_fit] if est_name == "CVAE" else [])
    y_nan = LABELS.astype(float)
    y_nan[0] = np.nan
    for method in methods:
        raises_named("y", lambda: method(X01, None), "required|None")
        raises_named("y", lambda: method(X01, LABELS[:-3]), str(N))  # X and y of different lengths
        raises_named("y", lambda: method(X01, np.stack([LABELS, LABELS], axis=1)), "1d|1-D|shape")
        raises_named("y", lambda: method(X01, y_nan), "NaN")
        raises_named("y", lambda: method(X01, LABELS + 0.5j), "[Cc]omplex.*got dtype complex128$")  # not the array
        raises_named("y", lambda: method(X01, RNG.random(N)), "continuous")
        assert state(est) == before
    if est_name == "DBNClassifier":
        raises_named("y", lambda: est.score(X01, LABELS[:5]), "same number of samples")
        raises_named("y", lambda: est.score(X01, None), "required")
        raises_named("y", lambda: est.score(X01, LABELS + 100), "unseen")  # not counted as errors
        raises_named("y", lambda: est.score(X01, LABELS.astype(str)), "unseen")  # "1" is not the class 1
    assert state(est) == before


def test_cvae_labels_unseen_or_outside_classes(fitted):
    cvae = copy.deepcopy(fitted["CVAE"])
    before = state(cvae)
    unseen = LABELS.copy()
    unseen[0] = 7
    for call in (
        lambda: cvae.partial_fit(X01, unseen),
        lambda: cvae.transform(X01, unseen),
        lambda: cvae.elbo(X01, unseen),
        lambda: cvae.log_likelihood(X01, unseen, n_importance=2),
        lambda: cvae.sample(3, y=[0, 1, 7]),
    ):
        raises_named("y", call, "unseen")
    raises_named("y", lambda: cvae.sample(3, y=[0, 1]), "one label per sample")
    raises_named("y", lambda: cvae.sample(3, y="1"), "unseen")  # the string "1" is not the class 1
    assert state(cvae) == before
    # The first partial_fit must see every label it is given in `classes`
    fresh = CVAE(2, hidden_layer_sizes=(4,), random_state=0)
    raises_named("y", lambda: fresh.partial_fit(X01, LABELS, classes=[0, 1]), "not in classes")
    raises_named("classes", lambda: fresh.partial_fit(X01, LABELS, classes=[]), "at least one")
    raises_named("classes", lambda: fresh.partial_fit(X01, LABELS, classes=[0.5, 1.5, 2.5]), "continuous")
    assert not hasattr(fresh, "classes_") and not hasattr(fresh, "n_features_in_")


def test_bad_regression_targets(fitted):
    reg = copy.deepcopy(fitted["DBNRegressor"])
    before = state(reg)
    y_inf = TARGETS.copy()
    y_inf[2] = np.inf
    raises_named("y", lambda: reg.fit(X01, None), "required")
    raises_named("y", lambda: reg.fit(X01, TARGETS[:10]), "same number of samples")
    raises_named("y", lambda: reg.fit(X01, y_inf), "infinity")
    raises_named("y", lambda: reg.fit(X01, TARGETS.astype(str)), "numbers")
    raises_named("y", lambda: reg.fit(X01, TARGETS + 1j), "[Cc]omplex")
    raises_named("y", lambda: reg.fit(X01, TARGETS.reshape(N, 1, 1)), "dim")
    raises_named("y", lambda: reg.score(X01, TARGETS[:3]), "same number of samples")
    assert state(reg) == before


# --------------------------------------------------------------------------------------------------
# hyperparameters: out of range, wrong type, unknown options


COMMON = [
    ("dtype", "float16", None),
    ("dtype", int, None),
    ("dtype", None, None),
    ("n_jobs", 0, None),
    ("n_jobs", 1.5, None),
    ("n_jobs", "2", None),
    ("random_state", -1, None),
    ("random_state", "seed", None),
    ("random_state", 1.5, None),
    ("verbose", -1, None),
    ("verbose", "yes", None),
]
RBM_LIKE = [
    ("k", 0, None),
    ("k", 1.5, None),
    ("persistent", "yes", None),
    ("persistent", 1, None),
    ("learning_rate", 0.0, None),
    ("learning_rate", float("nan"), None),
    ("learning_rate", float("inf"), None),
    ("learning_rate", "fastest", None),
    ("batch_size", -1, None),
    ("batch_size", 2.5, None),
    ("batch_size", True, None),
    ("momentum", 1.0, None),
    ("momentum", float("nan"), None),
    ("final_momentum", 1.0, None),
    ("initial_momentum_epochs", -1, None),
    ("weight_decay", float("inf"), None),
    ("n_iter", -2, None),
    ("visible", None, None),
    ("visible", "Bernoulli", None),
]
STACK = [
    ("hidden_layer_sizes", (), None),
    ("hidden_layer_sizes", (4, 0), None),
    ("hidden_layer_sizes", (4, -1), None),
    ("hidden_layer_sizes", 2.5, None),
    ("hidden_layer_sizes", ("a", "b"), None),
    ("hidden_layer_sizes", "bogus", "string 'bogus'"),  # not its letters
    ("layer_params", [{}, {}, {}], None),
    ("layer_params", {"k": 2}, None),
]
FINETUNE = [
    ("optimizer", "lbfgs", None),
    ("learning_rate", -0.1, None),
    ("momentum", 1.0, None),
    ("weight_decay", -1.0, None),
    ("dropout", -0.5, None),
    ("dropout", 1.0, None),
    ("batch_size", 0, None),
    ("early_stopping", "yes", None),
    ("validation_fraction", 1.0, None),
    ("n_iter_no_change", 0, None),
    ("tol", -1.0, None),
    ("tol", float("nan"), None),
    ("finetune_iter", -1, None),
    ("pretrain", "no", None),
    ("pretrain_iter", 0, None),
    ("pretrain_learning_rate", "fast", None),
    ("pretrain_weight_decay", -1.0, None),
    ("k", 0, None),
    ("persistent", "yes", None),
]
HYPERPARAMETERS = {
    "RBM": COMMON
    + RBM_LIKE
    + [
        ("n_components", 0, None),
        ("n_components", -4, None),
        ("n_components", 2.0, None),
        ("n_components", None, None),
        ("hidden", "linear", None),
    ],
    "DBN": COMMON
    + [p for p in RBM_LIKE if p[0] != "hidden"]
    + STACK
    + [
        ("layer_params", [{"bogus": 1}, {}], "bogus"),
        ("layer_params", [{}, {"k": 0}], r"layer_params\[1\]"),
        # structure comes from the estimator: a layer may not change its size, units, dtype or seed
        ("layer_params", [{"n_components": 3}, {}], "n_components"),
        ("layer_params", [{}, {"dtype": "float64"}], "dtype"),
        ("layer_params", [{"hidden": "gaussian"}, {}], "hidden"),
        ("layer_params", [{"random_state": 1}, {}], "random_state"),
    ],
    "DBNClassifier": COMMON + STACK + FINETUNE + [("visible", "binary", None)],
    "DBNRegressor": COMMON + STACK + FINETUNE + [("visible", 3, None)],
    "DeepAutoencoder": COMMON
    + FINETUNE
    + [
        ("n_components", 0, None),
        ("loss", "hinge", None),
        ("loss", None, None),
        ("hidden_layer_sizes", (0,), None),
        ("layer_params", [{}], None),
    ],
    "VAE": COMMON
    + [
        ("n_components", 0, None),
        ("hidden_layer_sizes", (), None),
        ("likelihood", "poisson", None),
        ("decoder_variance", -1.0, None),
        ("decoder_variance", float("inf"), None),
        ("activation", "gelu", None),
        ("learning_rate", 0.0, None),
        ("beta_1", -0.1, None),
        ("beta_2", 1.0, None),
        ("epsilon", 0.0, None),
        ("weight_decay", -1e-3, None),
        ("batch_size", 0, None),
        ("n_iter", 0, None),
    ],
}
HYPERPARAMETERS["CVAE"] = HYPERPARAMETERS["VAE"] + [("conditioning", "film", None), ("conditioning", None, None)]


def _fit(est, est_name):
    if est_name in ("DBNClassifier", "CVAE"):
        return est.fit(X01, LABELS)
    if est_name == "DBNRegressor":
        return est.fit(X01, TARGETS)
    return est.fit(X01)


@pytest.mark.parametrize("est_name", sorted(HYPERPARAMETERS))
def test_bad_hyperparameters_name_the_parameter_and_change_nothing(fitted, est_name):
    base = fitted[est_name]
    for param, value, match in HYPERPARAMETERS[est_name]:
        # unfitted
        est = clone(base).set_params(**{param: value})
        before = state(est)
        raises_named(param.split("[")[0], lambda: _fit(est, est_name), match)
        assert state(est) == before, f"{param}={value!r}: the unfitted estimator changed"
        # fitted, then given a bad setting: fit and partial_fit refuse it and keep the model
        est = copy.deepcopy(base).set_params(**{param: value})
        before = state(est)
        raises_named(param.split("[")[0], lambda: _fit(est, est_name), match)
        if hasattr(est, "partial_fit"):
            y = (LABELS,) if est_name == "CVAE" else ()
            raises_named(param.split("[")[0], lambda: est.partial_fit(X01, *y), match)
        assert state(est) == before, f"{param}={value!r}: the fitted estimator changed"


@pytest.mark.parametrize(
    "check, value, error, message",
    [
        # what scikit-learn's check_scalar lacks: bools refused as ints, the value named, the
        # exceptional values (-1 and None for n_jobs, "auto" for lengths) said and accepted
        (
            lambda v: check_bool(v, "persistent"),
            1,
            TypeError,
            r"^persistent must be an instance of \{bool, numpy.bool\}, not int\. Got 1\.",
        ),
        (lambda v: check_positive_int(v, "k"), True, TypeError, r"^k must be an int >= 1; got True \(bool\)"),
        (lambda v: check_positive_int(v, "k"), 0, ValueError, r"^k == 0, must be >= 1\.$"),
        (lambda v: check_length(v, "n_iter"), 1.5, TypeError, r"^n_iter must be an instance of int, not float\. Got 1\.5\."),
        (lambda v: check_length(v, "n_iter"), "long", ValueError, r"^n_iter must be 'auto' or an int >= 1; got 'long'$"),
        (lambda v: check_length(v, "finetune_iter", minimum=0), -1, ValueError, r"^finetune_iter must be 'auto' or an int >= 0; got -1$"),
        (lambda v: check_batch_size(v, allow_auto=False), "auto", ValueError, r"^batch_size must be an int >= 1; got 'auto'$"),
        (
            check_n_jobs,
            0,
            ValueError,
            r"^n_jobs must be None or -1 \(all cores\), an int >= 1, or -2, -3, \.\.\. \(all cores but 1, 2, \.\.\.\); got 0$",
        ),
        (check_n_jobs, "2", ValueError, r"^n_jobs must be None or -1 \(all cores\), .*; got '2'$"),
        (check_verbose, -1, ValueError, r"^verbose == -1, must be >= 0\.$"),
        (check_verbose, "yes", TypeError, r"^verbose must be an instance of \{int, numpy.bool\}, not str\. Got 'yes'\."),
    ],
)
def test_scalar_checks_name_parameter_expectation_and_value(check, value, error, message):
    with pytest.raises(error, match=message):
        check(value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DBNClassifier(pretrain="yes"), r"^pretrain must be True or False, or 'auto'; got 'yes'$"),
        (lambda: DeepAutoencoder(linear_path="yes"), r"^linear_path must be True or False, or 'auto'; got 'yes'$"),
        (
            lambda: DeepAutoencoder(hidden_layer_sizes="big"),
            r"^hidden_layer_sizes must be a sequence of positive ints, or 'auto'; got 'big'$",
        ),
        (lambda: RBM(learning_rate="fast"), r"^learning_rate must be a number > 0, or 'auto'; got 'fast'$"),
        (lambda: DBNClassifier(pretrain_learning_rate="fast"), r"^pretrain_learning_rate must be a number > 0, or 'auto'; got 'fast'$"),
    ],
)
def test_a_bad_string_for_a_parameter_that_also_takes_numbers_says_both(make, message):
    """A parameter that takes a bool, a number or a tuple besides "auto": the message of a bad string
    lists them all, not only 'auto'."""
    with pytest.raises(ValueError, match=message):
        make().fit(X01[:20], LABELS[:20])


def test_scalar_checks_accept_numpy_scalars_and_their_exceptional_values():
    assert check_n_jobs(np.int64(-1)) == -1 and check_n_jobs(None) is None and type(check_n_jobs(np.int32(2))) is int
    assert check_verbose(np.True_) == 1 and check_verbose(False) == 0
    assert check_bool(np.False_, "persistent") is False
    assert check_length("auto", "n_iter") == "auto" and type(check_length(np.uint8(3), "n_iter")) is int
    assert check_batch_size("auto") == "auto" and check_batch_size(np.int16(7), allow_auto=False) == 7


def test_negative_n_jobs_below_minus_one_leave_cores_free_as_in_joblib():
    # joblib's convention, which scikit-learn users pass: -2 is every core but one, never below one.
    cores = _core.effective_n_jobs(-1)
    assert check_n_jobs(-2) == max(cores - 1, 1)
    assert check_n_jobs(np.int64(-(cores + 5))) == 1
    rbm = RBM(4, n_iter=1, random_state=0, n_jobs=-2).fit(X01[:20])
    reference = RBM(4, n_iter=1, random_state=0, n_jobs=1).fit(X01[:20])
    np.testing.assert_array_equal(rbm.components_, reference.components_)


def test_bad_layer_settings_are_refused_before_any_layer_is_trained(monkeypatch):
    trained = []
    original = RBM.fit

    def spy(self, X, y=None):
        trained.append(self.n_components)
        return original(self, X, y)

    monkeypatch.setattr(RBM, "fit", spy)
    for est in (
        DBN((4, 3, 2), n_iter=1, layer_params=[{}, {}, {"learning_rate": -1.0}]),
        DBNClassifier((4, 3), pretrain=True, pretrain_iter=1, layer_params=[{}, {"batch_size": 0}]),
        DeepAutoencoder((4,), 2, pretrain_iter=1, layer_params=[{}, {"visible": "x"}]),
    ):
        with pytest.raises((ValueError, TypeError), match=r"layer_params\[\d\]"):
            _fit(est, {DBN: "DBN", DBNClassifier: "DBNClassifier", DeepAutoencoder: "DeepAutoencoder"}[type(est)])
        assert trained == [], f"{type(est).__name__} trained layers {trained} before refusing"
        assert not hasattr(est, "n_features_in_")


# --------------------------------------------------------------------------------------------------
# the other arguments of sampling and likelihood methods


def test_bad_method_arguments(fitted):
    rbm = copy.deepcopy(fitted["RBM"])
    before = state(rbm)
    raises_named("n_steps", lambda: rbm.sample(2, n_steps=-1))
    raises_named("n_steps", lambda: rbm.sample(2, n_steps=1.5))
    raises_named("n_samples", lambda: rbm.sample("3", n_steps=1))
    raises_named("return_means", lambda: rbm.sample(2, n_steps=1, return_means="yes"))
    raises_named("init", lambda: rbm.sample(init=np.full((2, D), 2.0), n_steps=1), r"\[0, 1\]")
    raises_named("n_chains", lambda: rbm.log_partition(n_chains=0))
    raises_named("n_betas", lambda: rbm.log_partition(n_betas=1))
    raises_named("betas", lambda: rbm.log_partition(betas=[0.0, np.nan, 1.0]))
    raises_named("betas", lambda: rbm.log_partition(betas=[0.0, 0.7, 0.5, 1.0]))
    raises_named("betas", lambda: rbm.log_partition(betas=[0.2, 1.0]))
    raises_named("betas", lambda: rbm.log_partition(betas="0 to 1"))
    raises_named("base_rate", lambda: rbm.log_partition(base_rate=np.full(D - 1, 0.5), n_betas=10))
    raises_named("base_rate", lambda: rbm.log_partition(base_rate=np.full(D, np.nan), n_betas=10))
    raises_named("base_rate", lambda: rbm.log_partition(base_rate=["a"] * D, n_betas=10))
    raises_named("base_rate", lambda: rbm.log_partition(base_rate=np.full(D, 1.5), n_betas=10), r"\[0, 1\]")
    raises_named("random_state", lambda: rbm.log_partition(random_state=-5, n_betas=10))
    raises_named("max_units", lambda: rbm.log_partition("exact", max_units=0))
    with pytest.raises(ValueError, match=r"^method='exact' must be a layer of at most 1 units"):  # no kernel name
        rbm.log_partition("exact", max_units=1)
    raises_named("method", lambda: rbm.log_partition("annealed"))
    raises_named("log_z", lambda: rbm.log_likelihood(X01, log_z=float("nan")))
    raises_named("log_z", lambda: rbm.log_likelihood(X01, log_z="12.5"))
    assert state(rbm) == before, "a refused call changed the RBM (e.g. advanced its sampling counter)"

    dbn = copy.deepcopy(fitted["DBN"])
    before = state(dbn)
    raises_named("n_samples", lambda: dbn.sample(-1))
    raises_named("n_steps", lambda: dbn.sample(2, n_steps=-1))
    raises_named("rbms", lambda: DBN.from_rbms([]))
    raises_named("rbms", lambda: DBN.from_rbms([RBM(3)]))
    with pytest.raises(ValueError, match="visible units"):
        DBN.from_rbms([dbn.rbms_[1], dbn.rbms_[0]])
    assert state(dbn) == before

    vae = copy.deepcopy(fitted["VAE"])
    before = state(vae)
    raises_named("n_samples", lambda: vae.sample(0))
    raises_named("n_samples", lambda: vae.sample(2.5))
    raises_named("n_importance", lambda: vae.log_likelihood(X01, n_importance=-1))
    raises_named("method", lambda: vae.log_likelihood(X01, method="exact"))
    raises_named("grid_size", lambda: vae.log_likelihood(X01, method="grid", grid_size=1))
    raises_named("grid_range", lambda: vae.log_likelihood(X01, method="grid", grid_range=0.0))
    raises_named("grid_range", lambda: vae.log_likelihood(X01, method="grid", grid_range=float("inf")))
    assert state(vae) == before

    cvae = copy.deepcopy(fitted["CVAE"])
    before = state(cvae)
    raises_named("n_samples", lambda: cvae.sample(-3))  # y=None draws the classes: n_samples is checked first
    raises_named("n_samples", lambda: cvae.sample(-3, y=0))
    raises_named("y", lambda: cvae.sample(3, y=[0, 1]))
    assert state(cvae) == before


def test_unfitted_methods_raise_not_fitted_error():
    for est, calls in [
        (RBM(), ["transform", "reconstruct", "free_energy", "score_samples", "gibbs", "log_likelihood"]),
        (VAE(), ["transform", "encode", "reconstruct", "elbo", "score", "log_likelihood", "decode"]),
        (DeepAutoencoder(), ["transform", "reconstruct", "score", "inverse_transform"]),
        (DBNRegressor(), ["predict", "transform", "score"]),
    ]:
        for name in calls:
            args = (X01, TARGETS) if (name == "score" and isinstance(est, DBNRegressor)) else (X01,)
            with pytest.raises(NotFittedError):
                getattr(est, name)(*args)
    for call in (lambda e: e.sample(2), lambda e: e.log_partition()):
        with pytest.raises(NotFittedError):
            call(RBM())
    with pytest.raises(NotFittedError):
        CVAE().transform(X01, LABELS)


# --------------------------------------------------------------------------------------------------
# deepgm._core: the RBM and VAE kernels

F = np.float64
NV, NH, NB = 5, 3, 4


def rbm_arrays(dtype=F, seed=0):
    r = np.random.default_rng(seed)
    return {
        "v": (r.random((NB, NV)) < 0.5).astype(dtype),
        "W": (r.standard_normal((NH, NV)) * 0.1).astype(dtype),
        "b": np.zeros(NV, dtype),
        "c": np.zeros(NH, dtype),
    }


def cd_step(**overrides):
    a = rbm_arrays()
    args = dict(
        x=a["v"],
        components=a["W"],
        intercept_visible=a["b"],
        intercept_hidden=a["c"],
        components_velocity=np.zeros_like(a["W"]),
        intercept_visible_velocity=np.zeros(NV),
        intercept_hidden_velocity=np.zeros(NH),
    )
    positional = [overrides.pop(k, v) for k, v in args.items()]
    kwargs = dict(seed=0, step=0)
    kwargs.update(overrides)
    return positional, kwargs


def run_cd(**overrides):
    positional, kwargs = cd_step(**overrides)
    return _core.rbm_cd_step(*positional, **kwargs)


def rbm_core_cases():
    a = rbm_arrays()
    v, W, b, c = a["v"], a["W"], a["b"], a["c"]
    betas = np.linspace(0.0, 1.0, 5)
    return [
        # dtypes and containers
        ("rbm_hidden v float32", lambda: _core.rbm_hidden(v.astype(np.float32), W, c), TypeError, "v"),
        ("rbm_hidden v int", lambda: _core.rbm_hidden(v.astype(np.int64), W, c), TypeError, "v"),
        ("rbm_hidden v complex", lambda: _core.rbm_hidden(v.astype(complex), W, c), TypeError, "v"),
        ("rbm_hidden v list", lambda: _core.rbm_hidden(v.tolist(), W, c), TypeError, "v"),
        ("rbm_visible h object", lambda: _core.rbm_visible(np.zeros((NB, NH), object), W, b), TypeError, "h"),
        (
            "rbm_free_energy W float32",
            lambda: _core.rbm_free_energy(v, W.astype(np.float32), b, c),
            TypeError,
            "components|intercept_visible|v",
        ),
        ("rbm_ais betas float32", lambda: _core.rbm_ais(W, b, c, b, betas.astype(np.float32), seed=0), TypeError, "betas"),
        # dimensions, shapes, layout
        ("rbm_hidden v 1-D", lambda: _core.rbm_hidden(v[0], W, c), ValueError, "v"),
        ("rbm_hidden v 3-D", lambda: _core.rbm_hidden(v[None], W, c), ValueError, "v"),
        ("rbm_hidden v columns", lambda: _core.rbm_hidden(v[:, :3].copy(), W, c), ValueError, "v"),
        ("rbm_hidden v Fortran", lambda: _core.rbm_hidden(np.asfortranarray(v), W, c), ValueError, "v"),
        ("rbm_hidden bias shape", lambda: _core.rbm_hidden(v, W, np.zeros(NH + 1)), ValueError, "intercept_hidden"),
        ("rbm_visible h columns", lambda: _core.rbm_visible(np.zeros((NB, NH + 1)), W, b), ValueError, "h"),
        ("rbm_visible bias 2-D", lambda: _core.rbm_visible(np.zeros((NB, NH)), W, b[None]), ValueError, "intercept_visible"),
        ("rbm_free_energy bias shape", lambda: _core.rbm_free_energy(v, W, np.zeros(NV - 1), c), ValueError, "intercept_visible"),
        ("rbm_pseudo_likelihood bias", lambda: _core.rbm_pseudo_likelihood(v, W, b, np.zeros(2), seed=0), ValueError, "intercept_hidden"),
        ("rbm_gibbs components 1-D", lambda: _core.rbm_gibbs(v, W.ravel(), b, c, seed=0), ValueError, "components"),
        ("rbm_log_partition_exact bias", lambda: _core.rbm_log_partition_exact(W, b, np.zeros(1)), ValueError, "intercept_hidden"),
        ("rbm_ais base_bias shape", lambda: _core.rbm_ais(W, b, c, np.zeros(2), betas, seed=0), ValueError, "base_bias"),
        # options and hyperparameters
        ("rbm_hidden unknown units", lambda: _core.rbm_hidden(v, W, c, hidden="poisson"), ValueError, "hidden"),
        ("rbm_visible unknown units", lambda: _core.rbm_visible(np.zeros((NB, NH)), W, b, visible="binary"), ValueError, "visible"),
        ("rbm_free_energy unknown units", lambda: _core.rbm_free_energy(v, W, b, c, hidden=""), ValueError, "hidden"),
        ("rbm_cd_step unknown units", lambda: run_cd(visible="x"), ValueError, "visible"),
        ("rbm_cd_step k=0", lambda: run_cd(k=0), ValueError, "k"),
        ("rbm_cd_step learning_rate=0", lambda: run_cd(learning_rate=0.0), ValueError, "learning_rate"),
        ("rbm_cd_step learning_rate=nan", lambda: run_cd(learning_rate=float("nan")), ValueError, "learning_rate"),
        ("rbm_cd_step learning_rate=-inf", lambda: run_cd(learning_rate=-float("inf")), ValueError, "learning_rate"),
        ("rbm_cd_step momentum=1", lambda: run_cd(momentum=1.0), ValueError, "momentum"),
        ("rbm_cd_step weight_decay<0", lambda: run_cd(weight_decay=-1e-3), ValueError, "weight_decay"),
        ("rbm_cd_step n_jobs=0", lambda: run_cd(n_jobs=0), ValueError, "n_jobs"),
        ("rbm_hidden n_jobs=-7", lambda: _core.rbm_hidden(v, W, c, n_jobs=-7), ValueError, "n_jobs"),
        ("rbm_ais n_chains=0", lambda: _core.rbm_ais(W, b, c, b, betas, n_chains=0, seed=0), ValueError, "n_chains"),
        ("rbm_ais betas too short", lambda: _core.rbm_ais(W, b, c, b, np.array([0.0]), seed=0), ValueError, "betas"),
        ("rbm_ais betas not from 0", lambda: _core.rbm_ais(W, b, c, b, np.array([0.1, 1.0]), seed=0), ValueError, "betas"),
        ("rbm_ais betas decreasing", lambda: _core.rbm_ais(W, b, c, b, np.array([0.0, 0.6, 0.4, 1.0]), seed=0), ValueError, "betas"),
        ("rbm_ais betas NaN", lambda: _core.rbm_ais(W, b, c, b, np.array([0.0, np.nan, 1.0]), seed=0), ValueError, "betas"),
        (
            "rbm_log_partition_exact too many units",
            lambda: _core.rbm_log_partition_exact(np.zeros((25, 25)), np.zeros(25), np.zeros(25)),
            ValueError,
            "method|units",
        ),
        ("rbm_pseudo_likelihood no seed", lambda: _core.rbm_pseudo_likelihood(v, W, b, c), ValueError, "seed"),
        (
            "rbm_pseudo_likelihood flip too large",
            lambda: _core.rbm_pseudo_likelihood(v, W, b, c, flip=np.full(len(v), W.shape[1])),
            ValueError,
            "flip",
        ),
        (
            "rbm_pseudo_likelihood flip negative",
            lambda: _core.rbm_pseudo_likelihood(v, W, b, c, flip=np.full(len(v), -1)),
            ValueError,
            "flip",
        ),
        (
            "rbm_pseudo_likelihood flip length",
            lambda: _core.rbm_pseudo_likelihood(v, W, b, c, flip=np.zeros(len(v) + 1, dtype=int)),
            ValueError,
            "flip",
        ),
        ("rbm_pseudo_likelihood flip floats", lambda: _core.rbm_pseudo_likelihood(v, W, b, c, flip=np.zeros(len(v))), TypeError, "flip"),
        ("rbm_cd_step no step", lambda: _core.rbm_cd_step(*cd_step()[0], seed=0), TypeError, "step"),
        # minibatch rows and persistent chains
        ("rbm_cd_step rows out of range", lambda: run_cd(rows=np.array([0, NB])), ValueError, "rows"),
        ("rbm_cd_step rows negative", lambda: run_cd(rows=np.array([-1, 0])), ValueError, "rows"),
        ("rbm_cd_step rows float", lambda: run_cd(rows=np.array([0.0, 1.0])), TypeError, "rows"),
        ("rbm_cd_step rows 2-D", lambda: run_cd(rows=np.array([[0, 1]])), ValueError, "rows"),
        ("rbm_cd_step rows empty", lambda: run_cd(rows=np.array([], np.int64)), ValueError, "batch|rows"),
        ("rbm_cd_step h_samples columns", lambda: run_cd(h_samples=np.zeros((NB, NH + 1))), ValueError, "h_samples"),
        ("rbm_cd_step h_samples dtype", lambda: run_cd(h_samples=np.zeros((NB, NH), np.float32)), TypeError, "h_samples"),
        ("rbm_cd_step velocity shape", lambda: run_cd(components_velocity=np.zeros((NV, NH))), ValueError, "components_velocity"),
        ("rbm_cd_step x columns", lambda: run_cd(x=np.zeros((NB, NV + 2))), ValueError, "x|X"),
        # in-place arguments: read-only or aliased
        ("rbm_cd_step read-only weights", lambda: run_cd(components=_read_only(W)), ValueError, "components"),
        (
            "rbm_cd_step weights as their velocity",
            lambda: (lambda w: run_cd(components=w, components_velocity=w))(W.copy()),
            ValueError,
            "components_velocity",
        ),
        (
            "rbm_cd_step h_samples aliasing a bias",
            lambda: (lambda h: run_cd(intercept_hidden=h[0], h_samples=h))(np.zeros((1, NH))),
            ValueError,
            "twice|cannot be read|h_samples|intercept_hidden",
        ),
    ]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("case", rbm_core_cases(), ids=lambda c: c[0])
def test_rbm_kernels_refuse_bad_arguments(case):
    label, call, exc, arg = case
    with pytest.raises(exc) as info:
        call()
    assert re.search(rf"(?<![\w.])({arg})(?![\w(])", str(info.value)), f"{label}: {info.value}"


def _non_finite_core_calls():
    """(name, the argument holding the bad value, call) for every _core function that reads data."""
    W, b, c = np.zeros((3, 4), np.float32), np.zeros(4, np.float32), np.zeros(3, np.float32)
    enc = ([np.zeros((4, 2), np.float32)], [np.zeros(2, np.float32)], ["identity"])
    dec = ([np.zeros((1, 4), np.float32)], [np.zeros(4, np.float32)], ["identity"])
    for bad in (np.nan, np.inf, -np.inf):
        v = np.full((2, 4), 0.5, np.float32)
        v[1, 2] = bad
        h = np.full((2, 3), 0.5, np.float32)
        h[0, 1] = bad
        yield "rbm_hidden", "v", lambda v=v: _core.rbm_hidden(v, W, c)
        yield "rbm_visible", "h", lambda h=h: _core.rbm_visible(h, W, b)
        yield "rbm_free_energy", "v", lambda v=v: _core.rbm_free_energy(v, W, b, c)
        yield "rbm_pseudo_likelihood", "v", lambda v=v: _core.rbm_pseudo_likelihood(v, W, b, c, seed=0, step=0)
        yield "rbm_gibbs", "v", lambda v=v: _core.rbm_gibbs(v, W, b, c, seed=0)
        yield (
            "rbm_hidden components",
            "components",
            lambda h=h: _core.rbm_hidden(np.zeros((2, 4), np.float32), np.pad(h, ((0, 1), (0, 1))), c),
        )
        yield "mlp_forward", "x", lambda v=v: _core.mlp_forward(v, [W.T.copy()], [c], ["relu"])
        yield (
            "mlp_loss_gradients",
            "y",
            lambda h=h: _core.mlp_loss_gradients(np.zeros((2, 4), np.float32), h, [W.T.copy()], [c], ["identity"], "squared_error"),
        )
        yield "activation", "x", lambda v=v: _core.activation(v, "sigmoid")
        yield "gaussian_kl", "log_var", lambda h=h: _core.gaussian_kl(np.zeros((2, 3), np.float32), h)
        yield "vae_decode", "z", lambda v=v: _core.vae_decode(v[:, 2:3].copy(), *enc, *dec, n_latent=1)
        yield "gemm alpha", "alpha", lambda bad=bad: _core.gemm(W, W.T.copy(), np.zeros((3, 3), np.float32), alpha=bad)


@pytest.mark.parametrize("name, arg, call", list(_non_finite_core_calls()), ids=lambda v: v if isinstance(v, str) else "")
def test_core_functions_refuse_non_finite_input(name, arg, call):
    with pytest.raises(ValueError, match=rf"^{re.escape(arg)}\b.*(finite|NaN|inf)"):
        call()


def test_core_gibbs_refuses_values_outside_0_1_for_bernoulli_units():
    W, b, c = np.zeros((3, 4), np.float32), np.zeros(4, np.float32), np.zeros(3, np.float32)
    for bad in (2.0, -0.5):
        with pytest.raises(ValueError, match=r"^v: expected values in \[0, 1\]"):
            _core.rbm_gibbs(np.full((2, 4), bad, np.float32), W, b, c, seed=0)
    # Gaussian visible units take any real value.
    _core.rbm_gibbs(np.full((2, 4), 2.0, np.float32), W, b, c, visible="gaussian", seed=0)


def test_refused_cd_step_writes_nothing():
    for overrides in (
        dict(k=0),
        dict(learning_rate=-1.0),
        dict(rows=np.array([0, 99])),
        dict(h_samples=np.zeros((NB, NH + 1))),
        dict(intercept_hidden_velocity=np.zeros(NH + 1)),
    ):
        positional, kwargs = cd_step(**overrides)
        snapshot = [np.array(p, copy=True) for p in positional[1:]]
        with pytest.raises((ValueError, TypeError)):
            _core.rbm_cd_step(*positional, **kwargs)
        for p, s in zip(positional[1:], snapshot):
            np.testing.assert_array_equal(p, s)


D_VAE, H_VAE, K_VAE, C_VAE = 6, 5, 2, 3


def vae_net(dtype=F, seed=0, n_extra=0):
    r = np.random.default_rng(seed)

    def layers(widths):
        return (
            [(r.standard_normal((a, b)) * 0.3).astype(dtype) for a, b in zip(widths[:-1], widths[1:])],
            [np.zeros(b, dtype) for b in widths[1:]],
        )

    ew, eb = layers([D_VAE + n_extra, H_VAE, 2 * K_VAE])
    dw, db = layers([K_VAE + n_extra, H_VAE, D_VAE])
    return [ew, eb, ["relu", "identity"], dw, db, ["relu", "identity"]]


def vae_slots(net, n=2, class_means=None):
    ew, eb, _, dw, db, _ = net
    params = [p for ws, bs in ((ew, eb), (dw, db)) for pair in zip(ws, bs) for p in pair]
    if class_means is not None:
        params.append(class_means)
    return [[np.zeros_like(p) for _ in range(n)] for p in params]


def vae_core_cases():
    r = np.random.default_rng(1)
    x = r.random((NB, D_VAE))
    y = np.array([0, 1, 2, 0])
    cm = r.standard_normal((C_VAE, K_VAE))
    net = vae_net()
    kw = dict(n_latent=K_VAE)
    ckw = dict(n_latent=K_VAE, conditioning="prior_mean", n_classes=C_VAE)

    def train(**overrides):
        n = vae_net()
        slots = overrides.pop("slots", None) or vae_slots(n)
        args = dict(optimizer="adam", n_latent=K_VAE)
        args.update(overrides)
        xx = args.pop("x", x)
        return _core.vae_train_step(xx, *n, args.pop("class_means", None), slots, **args)

    def swap(i, value):
        n = list(vae_net())
        n[i] = value
        return n

    return [
        # dtypes and containers
        ("vae_encode x float32", lambda: _core.vae_encode(x.astype(np.float32), *net, **kw), TypeError, "x"),
        ("vae_encode x int", lambda: _core.vae_encode(x.astype(np.int32), *net, **kw), TypeError, "x"),
        ("vae_encode x list", lambda: _core.vae_encode(x.tolist(), *net, **kw), TypeError, "x"),
        ("vae_decode z complex", lambda: _core.vae_decode(np.zeros((NB, K_VAE), complex), *net, **kw), TypeError, "z"),
        ("vae_losses eps float32", lambda: _core.vae_losses(x, *net, eps=np.zeros((NB, K_VAE), np.float32), **kw), TypeError, "eps"),
        ("vae_encode weights not a list", lambda: _core.vae_encode(x, *swap(0, net[0][0]), **kw), TypeError, "encoder_weights|weights"),
        (
            "vae_encode activations not a list",
            lambda: _core.vae_encode(x, *swap(2, "relu"), **kw),
            TypeError,
            "encoder_activations|activations",
        ),
        ("vae_encode y float", lambda: _core.vae_encode(x, *net, cm, y=y.astype(float), **ckw), TypeError, "y"),
        ("gaussian_kl log_var float32", lambda: _core.gaussian_kl(np.zeros((2, 2)), np.zeros((2, 2), np.float32)), TypeError, "log_var"),
        # dimensions and shapes
        ("vae_encode x 1-D", lambda: _core.vae_encode(x[0], *net, **kw), ValueError, "x"),
        ("vae_encode x columns", lambda: _core.vae_encode(x[:, :4].copy(), *net, **kw), ValueError, "x"),
        ("vae_decode z columns", lambda: _core.vae_decode(np.zeros((NB, K_VAE + 1)), *net, **kw), ValueError, "z"),
        (
            "vae_encode encoder output width",
            lambda: _core.vae_encode(x, [net[0][0], np.zeros((H_VAE, 3))], [net[1][0], np.zeros(3)], *net[2:], **kw),
            ValueError,
            "encoder",
        ),
        ("vae_encode one activation too few", lambda: _core.vae_encode(x, *swap(2, ["relu"]), **kw), ValueError, "encoder_activations"),
        (
            "vae_encode unknown activation",
            lambda: _core.vae_encode(x, *swap(5, ["gelu", "identity"]), **kw),
            ValueError,
            "decoder_activations",
        ),
        ("vae_losses eps shape", lambda: _core.vae_losses(x, *net, eps=np.zeros((NB, K_VAE + 1)), **kw), ValueError, "eps"),
        ("vae_gradients eps rows", lambda: _core.vae_gradients(x, np.zeros((NB + 1, K_VAE)), *net, **kw), ValueError, "eps"),
        ("gaussian_kl shapes", lambda: _core.gaussian_kl(np.zeros((3, 2)), np.zeros((3, 3))), ValueError, "log_var"),
        (
            "gaussian_kl prior shape",
            lambda: _core.gaussian_kl(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((2, 2))),
            ValueError,
            "prior_mean",
        ),
        # options and settings
        ("vae_encode n_latent=0", lambda: _core.vae_encode(x, *net, n_latent=0), ValueError, "n_latent"),
        ("vae_encode likelihood", lambda: _core.vae_encode(x, *net, n_latent=K_VAE, likelihood="poisson"), ValueError, "likelihood"),
        ("vae_encode conditioning", lambda: _core.vae_encode(x, *net, n_latent=K_VAE, conditioning="film"), ValueError, "conditioning"),
        (
            "vae_losses decoder_variance=0",
            lambda: _core.vae_losses(x, *net, n_latent=K_VAE, likelihood="gaussian", decoder_variance=0.0),
            ValueError,
            "decoder_variance",
        ),
        (
            "vae_losses decoder_variance=nan",
            lambda: _core.vae_losses(x, *net, n_latent=K_VAE, likelihood="gaussian", decoder_variance=float("nan")),
            ValueError,
            "decoder_variance",
        ),
        ("vae_log_likelihood n_importance=0", lambda: _core.vae_log_likelihood(x, *net, n_importance=0, **kw), ValueError, "n_importance"),
        ("vae_decode n_jobs=0", lambda: _core.vae_decode(np.zeros((NB, K_VAE)), *net, n_jobs=0, **kw), ValueError, "n_jobs"),
        # labels of conditional models
        ("vae_encode labels missing", lambda: _core.vae_encode(x, *net, cm, **ckw), ValueError, "y"),
        ("vae_encode label too large", lambda: _core.vae_encode(x, *net, cm, y=np.array([0, 1, C_VAE, 0]), **ckw), ValueError, "y"),
        ("vae_encode label negative", lambda: _core.vae_encode(x, *net, cm, y=np.array([0, -1, 2, 0]), **ckw), ValueError, "y"),
        ("vae_encode labels length", lambda: _core.vae_encode(x, *net, cm, y=y[:2].copy(), **ckw), ValueError, "y"),
        ("vae_encode labels 2-D", lambda: _core.vae_encode(x, *net, cm, y=y[:, None].copy(), **ckw), ValueError, "y"),
        ("vae_encode labels without classes", lambda: _core.vae_encode(x, *net, y=y, **kw), ValueError, "y"),
        (
            "vae_encode n_classes=0",
            lambda: _core.vae_encode(x, *net, cm, y=y, n_latent=K_VAE, conditioning="prior_mean", n_classes=0),
            ValueError,
            "n_classes",
        ),
        ("vae_encode class_means missing", lambda: _core.vae_encode(x, *net, None, y=y, **ckw), ValueError, "class_means"),
        (
            "vae_encode class_means shape",
            lambda: _core.vae_encode(x, *net, np.zeros((C_VAE, K_VAE + 1)), y=y, **ckw),
            ValueError,
            "class_means",
        ),
        (
            "vae_train_step label out of range",
            lambda: train(
                class_means=cm.copy(),
                slots=vae_slots(vae_net(), 2, cm),
                y=np.array([0, 1, 5, 0]),
                conditioning="prior_mean",
                n_classes=C_VAE,
            ),
            ValueError,
            "y",
        ),
        # training settings
        ("vae_train_step learning_rate=0", lambda: train(learning_rate=0.0), ValueError, "learning_rate"),
        ("vae_train_step t=0", lambda: train(t=0), ValueError, "t"),
        ("vae_train_step beta1=1", lambda: train(beta1=1.0), ValueError, "beta1"),
        ("vae_train_step beta2<0", lambda: train(beta2=-0.5), ValueError, "beta2"),
        ("vae_train_step epsilon=0", lambda: train(epsilon=0.0), ValueError, "epsilon"),
        ("vae_train_step weight_decay<0", lambda: train(weight_decay=-1.0), ValueError, "weight_decay"),
        ("vae_train_step optimizer", lambda: train(optimizer="rmsprop"), ValueError, "optimizer"),
        ("vae_train_step slots count", lambda: train(slots=vae_slots(vae_net())[:-1]), ValueError, "slots"),
        ("vae_train_step slots per optimizer", lambda: train(optimizer="sgd"), ValueError, "slots"),
        ("vae_train_step rows out of range", lambda: train(rows=np.array([0, NB + 3])), ValueError, "rows"),
        ("vae_train_step rows float", lambda: train(rows=np.array([0.0])), TypeError, "rows"),
        (
            "vae_train_step read-only weights",
            lambda: (lambda n: _core.vae_train_step(x, [_read_only(n[0][0]), n[0][1]], *n[1:], None, vae_slots(n), n_latent=K_VAE))(
                vae_net()
            ),
            ValueError,
            r"encoder_weights\[0\]",
        ),
        (
            "vae_train_step a weight as its own slot",
            lambda: (lambda n: _core.vae_train_step(x, *n, None, [[n[0][0], np.zeros_like(n[0][0])]] + vae_slots(n)[1:], n_latent=K_VAE))(
                vae_net()
            ),
            ValueError,
            r"slots\[0\]\[0\]",
        ),
    ]


@pytest.mark.parametrize("case", vae_core_cases(), ids=lambda c: c[0])
def test_vae_kernels_refuse_bad_arguments(case):
    label, call, exc, arg = case
    with pytest.raises(exc) as info:
        call()
    assert re.search(rf"(?<![\w.])({arg})(?![\w(])", str(info.value)), f"{label}: {info.value}"


def test_refused_vae_train_step_writes_nothing():
    x = np.random.default_rng(0).random((NB, D_VAE))
    for overrides in (dict(learning_rate=-1.0), dict(rows=np.array([0, 99])), dict(t=0), dict(beta2=1.0)):
        net = vae_net()
        slots = vae_slots(net)
        snapshot = [a.copy() for a in net[0] + net[1] + net[3] + net[4]] + [s.copy() for pair in slots for s in pair]
        with pytest.raises(ValueError):
            _core.vae_train_step(x, *net, None, slots, n_latent=K_VAE, **overrides)
        after = net[0] + net[1] + net[3] + net[4] + [s for pair in slots for s in pair]
        assert all(np.array_equal(a, b) for a, b in zip(after, snapshot))


# Integer arguments of the kernels (deepgm's estimators validate them first, but the kernels must
# refuse them on their own, naming the argument).
NEGATIVE_INTS = [
    ("rbm_hidden seed", lambda: _core.rbm_hidden(rbm_arrays()["v"], rbm_arrays()["W"], rbm_arrays()["c"], seed=-1), "seed"),
    ("rbm_gibbs n_steps", lambda: _core.rbm_gibbs(*rbm_arrays().values(), n_steps=-1, seed=0), "n_steps"),
    ("rbm_cd_step k", lambda: run_cd(k=-1), "k"),
    ("rbm_cd_step step", lambda: run_cd(step=-1), "step"),
    (
        "vae_log_likelihood n_importance",
        lambda: _core.vae_log_likelihood(np.zeros((2, D_VAE)), *vae_net(), n_importance=-1, n_latent=K_VAE),
        "n_importance",
    ),
    ("vae_losses seed", lambda: _core.vae_losses(np.zeros((2, D_VAE)), *vae_net(), seed=-1, n_latent=K_VAE), "seed"),
]


@pytest.mark.parametrize("case", NEGATIVE_INTS, ids=lambda c: c[0])
def test_negative_integer_arguments_are_value_errors(case):
    label, call, arg = case
    with pytest.raises(ValueError, match=arg):
        call()


# --------------------------------------------------------------------------------------------------
# a Rust panic never crosses into Python


def _degenerate_calls():
    """Every kernel on zero-sized and minimal shapes: (label, call)."""
    calls = []
    for n, nv, nh in itertools.product([0, 2], [0, 1, 3], [0, 1, 2]):
        V, W, b, c = np.zeros((n, nv)), np.zeros((nh, nv)), np.zeros(nv), np.zeros(nh)
        key = f"n={n},nv={nv},nh={nh}"
        for unit in ("bernoulli", "gaussian"):
            calls += [
                (f"rbm_hidden {key} {unit}", lambda V=V, W=W, c=c, u=unit: _core.rbm_hidden(V, W, c, hidden=u, seed=1)),
                (
                    f"rbm_visible {key} {unit}",
                    lambda n=n, nh=nh, W=W, b=b, u=unit: _core.rbm_visible(np.zeros((n, nh)), W, b, visible=u, seed=1),
                ),
                (f"rbm_free_energy {key} {unit}", lambda V=V, W=W, b=b, c=c, u=unit: _core.rbm_free_energy(V, W, b, c, visible=u)),
                (f"rbm_gibbs {key} {unit}", lambda V=V, W=W, b=b, c=c, u=unit: _core.rbm_gibbs(V, W, b, c, visible=u, seed=0, n_steps=2)),
                (
                    f"rbm_cd_step {key} {unit}",
                    lambda V=V, W=W, b=b, c=c, u=unit: _core.rbm_cd_step(
                        V, W.copy(), b.copy(), c.copy(), W.copy(), b.copy(), c.copy(), visible=u, seed=0, step=0
                    ),
                ),
                (f"rbm_log_partition_exact {key} {unit}", lambda W=W, b=b, c=c, u=unit: _core.rbm_log_partition_exact(W, b, c, visible=u)),
                (
                    f"rbm_ais {key} {unit}",
                    lambda W=W, b=b, c=c, u=unit: _core.rbm_ais(W, b, c, b, np.array([0.0, 1.0]), visible=u, seed=0, n_chains=2),
                ),
            ]
        calls.append((f"rbm_pseudo_likelihood {key}", lambda V=V, W=W, b=b, c=c: _core.rbm_pseudo_likelihood(V, W, b, c, seed=0)))
    for d, h, k, n in itertools.product([0, 1, 3], [0, 2], [0, 1, 2], [0, 2]):
        ew, eb = [np.zeros((d, h)), np.zeros((h, 2 * k))], [np.zeros(h), np.zeros(2 * k)]
        dw, db = [np.zeros((k, h)), np.zeros((h, d))], [np.zeros(h), np.zeros(d)]
        net = (ew, eb, ["relu", "identity"], dw, db, ["relu", "identity"])
        X = np.zeros((n, d))
        key = f"d={d},h={h},k={k},n={n}"
        slots = [[np.zeros_like(p), np.zeros_like(p)] for ws, bs in ((ew, eb), (dw, db)) for pair in zip(ws, bs) for p in pair]
        calls += [
            (f"vae_encode {key}", lambda X=X, net=net, k=k: _core.vae_encode(X, *net, n_latent=k)),
            (f"vae_decode {key}", lambda n=n, net=net, k=k: _core.vae_decode(np.zeros((n, k)), *net, n_latent=k)),
            (f"vae_losses {key}", lambda X=X, net=net, k=k: _core.vae_losses(X, *net, n_latent=k)),
            (f"vae_log_likelihood {key}", lambda X=X, net=net, k=k: _core.vae_log_likelihood(X, *net, n_latent=k, n_importance=3)),
            (f"vae_gradients {key}", lambda X=X, n=n, net=net, k=k: _core.vae_gradients(X, np.zeros((n, k)), *net, n_latent=k)),
            (f"vae_train_step {key}", lambda X=X, net=net, k=k, slots=slots: _core.vae_train_step(X, *net, None, slots, n_latent=k)),
            (
                f"vae_encode prior_mean {key}",
                lambda X=X, n=n, net=net, k=k: _core.vae_encode(
                    X, *net, np.zeros((2, k)), y=np.zeros(n, np.int64), n_latent=k, conditioning="prior_mean", n_classes=2
                ),
            ),
            (f"gaussian_kl {key}", lambda n=n, k=k: _core.gaussian_kl(np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k)))),
        ]
    return calls


@pytest.mark.parametrize("case", _degenerate_calls(), ids=lambda c: c[0])
def test_degenerate_shapes_never_panic_across_the_boundary(case):
    """Returns a result or raises an ordinary Exception: a PanicException (a BaseException, which
    `except Exception` does not catch) must never reach Python."""
    label, call = case
    try:
        call()
    except Exception:  # noqa: BLE001 - any ordinary exception is acceptable here
        pass


def test_data_frames_feature_names_are_checked_and_kept_only_on_success():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X01, columns=[f"f{i}" for i in range(D)])
    rbm = RBM(3, n_iter=1, random_state=0).fit(frame)
    np.testing.assert_array_equal(rbm.feature_names_in_, frame.columns)
    before = state(rbm)
    renamed = frame.rename(columns={"f0": "g0"})
    raises_named("X", lambda: rbm.transform(renamed), "feature names")
    raises_named("v", lambda: rbm.gibbs(renamed), "feature names")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rbm.fit(renamed + 1)  # refused: neither its names nor its feature count are kept
    assert state(rbm) == before
    unfitted = RBM(3)
    with pytest.raises(ValueError):
        unfitted.fit(renamed - 1)
    assert not hasattr(unfitted, "feature_names_in_") and not hasattr(unfitted, "n_features_in_")


# --------------------------------------------------------------------------------------------------
# memory


_TOO_BIG = """
import deepgm, numpy as np
X = np.random.default_rng(0).random((200, 784)).astype(np.float32)
vae = deepgm.VAE(2, hidden_layer_sizes=(16,), n_iter=1, random_state=0).fit(X)
rbm = deepgm.RBM(64, n_iter=1, random_state=0).fit(X)
codes = np.zeros((20_000_000, 2), np.float32)  # 160 MB of codes decode to 63 GB
V = np.zeros((1_000_000, 784), np.float32)  # 3.1 GB, whose Gibbs chains need twice that again
for name, call in [("decode", lambda: vae.decode(codes)), ("gibbs", lambda: rbm.gibbs(V))]:
    try:
        call()
        print(name, "ran")
    except MemoryError as err:
        print(name, "MemoryError", err)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the address-space limit (RLIMIT_AS) is Linux's")
def test_a_call_too_large_for_memory_is_a_memory_error_not_an_abort():
    """Rust aborts the process when an allocation fails; kernels sized by their input reserve their
    buffers first, so a request beyond the memory limit is a MemoryError like NumPy's."""
    import resource
    import subprocess

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    proc = subprocess.run([sys.executable, "-c", _TOO_BIG], capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all("MemoryError" in line for line in lines), proc.stdout
    assert "vae_decode: cannot allocate" in lines[0] and "rbm_gibbs: cannot allocate" in lines[1]


def test_a_range_error_points_held_out_data_to_a_clipping_scaler():
    """The usual way to meet the [0, 1] rule after fit: a test fold scaled by a MinMaxScaler fitted on
    the training folds. The message names the remedy."""
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X = np.random.default_rng(0).normal(size=(60, 5))
    vae = VAE(2, hidden_layer_sizes=(4,), n_iter=2, random_state=0, n_jobs=1)
    with pytest.raises(
        ValueError,
        match=r"got values in \[[-\d.e]+, [\d.e]+\]\.( \(Negative values in data are not allowed\.\))? Scale .*MinMaxScaler\(clip=True\)",
    ):
        cross_val_score(make_pipeline(MinMaxScaler(), vae), X, cv=3, error_score="raise")
    scores = cross_val_score(make_pipeline(MinMaxScaler(clip=True), vae), X, cv=3, error_score="raise")
    assert np.all(np.isfinite(scores))
