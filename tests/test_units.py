"""The unit types of deepgm._units: a type registered in one place is what every estimator validates,
lists and uses (docs/architecture.md, "Adding a unit type"); the Python registry and the Rust
``Units`` enum agree on the names. The K-way softmax group (``SOFTMAX``): its mean, log-mean and
free-energy term against float64 oracles (also for logits that overflow a naive exp), its draws
against the exact distribution, its data checks, and that no RBM offers it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from deepgm import DBN, RBM, DBNClassifier, DBNRegressor, _core
from deepgm._units import BERNOULLI, GAUSSIAN, SOFTMAX, UNITS, Units, binary_visible, get_units, register_units, unit_names


class _Clipped(Units):
    """A throwaway type: Gaussian-like units that accept data in [-5, 5] only and start their chains
    at zero. Its maths is the Gaussian's (it tells the kernels "gaussian"): what is under test is the
    Python path, which must pick every piece from the object."""

    name = "clipped"
    title = "Clipped"
    standardised = False
    visible_learning_rate = 0.0123

    def check_data(self, X, name="X", *, what=None, hint=None):
        if np.abs(X).max() > 5:
            raise ValueError(f"{name} must hold values in [-5, 5] for {what or 'clipped visible units'}; got {np.abs(X).max():g}")

    def initial_visible(self, mean, var, dtype):
        n = mean.shape[0]
        return np.zeros(n, dtype), np.ones(n, dtype), mean.astype(dtype), np.full(n, 0.25, dtype)

    def random_states(self, rng, shape, dtype):
        return np.zeros(shape, dtype)


@pytest.fixture
def clipped():
    """The throwaway type, registered for one test and removed afterwards."""
    units = register_units(_Clipped())
    try:
        yield units
    finally:
        del UNITS[units.name]


def test_registry_resolves_the_builtin_types():
    assert unit_names() == ("bernoulli", "gaussian")
    assert get_units("bernoulli") is BERNOULLI and get_units("gaussian") is GAUSSIAN
    assert BERNOULLI.binary and not BERNOULLI.standardised
    assert GAUSSIAN.standardised and not GAUSSIAN.binary


@pytest.mark.parametrize("name", unit_names())
def test_every_registered_name_is_a_rust_unit_type(name):
    """What the registry tells the kernels parses in rust/units.rs (and means the same type there)."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 4)).astype(np.float32)
    H = rng.random((5, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    mean = _core.rbm_visible(H, W, b, visible=name, n_jobs=1)
    expected = H.astype(np.float64) @ W + b
    if get_units(name).binary:
        expected = 1 / (1 + np.exp(-expected))
    np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-6)


def test_rust_refuses_a_name_the_registry_lacks():
    with pytest.raises(ValueError, match="visible"):
        _core.rbm_visible(np.zeros((1, 2), np.float32), np.zeros((2, 3), np.float32), np.zeros(3, np.float32), visible="softmax")


def test_a_registered_type_is_listed_by_every_estimator(clipped):
    assert unit_names() == ("bernoulli", "gaussian", "clipped")
    assert get_units("clipped") is clipped
    for est, param in [
        (RBM(visible="nope"), "visible"),
        (RBM(hidden="nope"), "hidden"),
        (DBN(visible="nope"), "visible"),
        (DBNClassifier(visible="nope"), "visible"),
        (DBNRegressor(visible="nope"), "visible"),
    ]:
        with pytest.raises(ValueError, match=rf"^{param} must be one of .*'gaussian', 'clipped'; got 'nope'") as info:
            est._check_params()
        assert "'bernoulli'" in str(info.value)
    # ...and accepted by their parameter validation.
    RBM(visible="clipped", hidden="clipped")._check_params()
    DBN(visible="clipped")._check_params()
    DBNClassifier(visible="clipped")._check_params()


def test_a_registered_type_is_gone_after_the_fixture():
    assert "clipped" not in unit_names()
    with pytest.raises(ValueError, match="visible must be one of 'bernoulli', 'gaussian'; got 'clipped'"):
        RBM(visible="clipped")._check_params()


def test_the_rbm_takes_every_piece_from_the_unit_object(clipped):
    rbm = RBM(3, visible="clipped", random_state=0)
    assert rbm._learning_rate() == clipped.visible_learning_rate
    X = np.random.default_rng(1).uniform(-2, 2, size=(20, 4)).astype(np.float32)
    rbm._init_params(rbm._check_X(X, reset=True))
    np.testing.assert_array_equal(rbm.intercept_visible_, np.full(4, 0.25, np.float32))
    np.testing.assert_allclose(rbm.visible_mean_, X.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rbm._gibbs_chains(None, 2, 0, seed=0, return_means=False), np.zeros((2, 4)))
    assert not rbm.__sklearn_tags__().input_tags.positive_only  # not binary
    with pytest.raises(ValueError, match=r"^X must hold values in \[-5, 5\] for clipped visible units"):
        rbm._check_X(X * 10)
    # The DBN's explicit visible units refuse data through the same object.
    with pytest.raises(ValueError, match=r"\[-5, 5\]"):
        DBN(visible="clipped")._resolve_visible(X * 10)
    assert DBN(visible="clipped")._resolve_visible(X) == "clipped"


@pytest.mark.parametrize(
    "hidden, expected",
    [("bernoulli", BERNOULLI.visible_learning_rate), ("gaussian", GAUSSIAN.hidden_learning_rate)],
)
def test_auto_learning_rate_comes_from_the_units(hidden, expected):
    assert RBM(visible="bernoulli", hidden=hidden)._learning_rate() == expected
    assert RBM(visible="gaussian", hidden="bernoulli")._learning_rate() == GAUSSIAN.visible_learning_rate == 0.003
    assert (BERNOULLI.visible_learning_rate, GAUSSIAN.hidden_learning_rate) == (0.1, 0.001)


@pytest.mark.parametrize("name, expected", [("bernoulli", True), ("gaussian", False), ("auto", False), ("nope", False)])
def test_binary_visible_decides_the_positive_only_tag(name, expected):
    assert binary_visible(name) is expected
    assert RBM(visible=name).__sklearn_tags__().input_tags.positive_only is expected
    assert DBN(visible=name).__sklearn_tags__().input_tags.positive_only is expected


@pytest.mark.parametrize(
    "estimator, parameter, extra",
    [
        (RBM, "visible", ()),
        (RBM, "hidden", ()),
        (DBN, "visible", ("auto",)),
        (DBNClassifier, "visible", ("auto",)),
        (DBNClassifier, "visible_", ()),
    ],
)
def test_docstrings_list_the_registered_unit_names(estimator, parameter, extra):
    """The numpydoc line ``visible : {...}`` names exactly the registered types (and "auto" where the
    estimator has it)."""
    listed = re.search(rf"^\s*{parameter} : {{([^}}]*)}}", estimator.__doc__, re.MULTILINE)
    assert listed is not None, f"{estimator.__name__}'s docstring documents no {parameter}"
    assert set(re.findall(r'"(\w+)"', listed.group(1))) == set(extra) | set(unit_names())


# -- the K-way softmax group -------------------------------------------------------------------------


def oracle_softmax(z):
    """softmax of float64 rows straight from the definition (for logits whose exp does not overflow)."""
    e = np.exp(np.asarray(z, dtype=np.float64))
    return e / e.sum(axis=1, keepdims=True)


def test_softmax_group_is_not_an_rbm_unit_type():
    assert SOFTMAX.name not in unit_names() and SOFTMAX.name not in UNITS
    with pytest.raises(ValueError) as info:
        RBM(visible="softmax")._check_params()
    assert str(info.value) == "visible must be one of 'bernoulli', 'gaussian'; got 'softmax'"
    with pytest.raises(ValueError, match="hidden must be one of 'bernoulli', 'gaussian'; got 'softmax'"):
        RBM(hidden="softmax")._check_params()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_mean_log_mean_and_free_energy_match_float64_oracle(rng, dtype):
    z = (3 * rng.normal(size=(20, 7))).astype(dtype)
    z64 = z.astype(np.float64)
    mean = SOFTMAX.mean(z)
    assert mean.dtype == np.float64 and mean.shape == z.shape
    np.testing.assert_allclose(mean, oracle_softmax(z64), rtol=1e-13, atol=0)
    np.testing.assert_allclose(SOFTMAX.log_mean(z), np.log(oracle_softmax(z64)), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(SOFTMAX.free_energy(z), -np.log(np.exp(z64).sum(axis=1)), rtol=1e-13, atol=1e-13)


def test_softmax_is_stable_for_logits_a_naive_exp_overflows(rng):
    """Softmax is shift-invariant and the free energy shifts by the shift: logits around +-1000 give the
    oracle's values for the logits around 0, with no overflow, NaN or inf."""
    z = 3 * rng.normal(size=(6, 5))
    for shift in (1000.0, -1000.0, 1e5):
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            mean, log_mean, free = SOFTMAX.mean(z + shift), SOFTMAX.log_mean(z + shift), SOFTMAX.free_energy(z + shift)
        np.testing.assert_allclose(mean, oracle_softmax(z), rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(log_mean, np.log(oracle_softmax(z)), rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(free + shift, -np.log(np.exp(z).sum(axis=1)), rtol=1e-7, atol=1e-8)
    # One logit far above the others: its category has probability 1, the others exactly 0 or tiny.
    np.testing.assert_array_equal(SOFTMAX.mean(np.array([[0.0, 800.0, -800.0]])), [[0.0, 1.0, 0.0]])


def test_softmax_draws_follow_the_exact_distribution():
    """Chi-square against p = softmax(z) per row, including a row whose last category is very unlikely
    and a row with logits that overflow a naive exp."""
    rows = np.array([[1.5, -0.5, 0.0, 2.0, -3.0], [0.0, 0.0, 0.0, 0.0, -9.0], [1000.5, 999.0, 1001.0, 1000.0, 998.0]])
    n = 30000
    codes = SOFTMAX.sample_categories(np.repeat(rows, n, axis=0), np.random.default_rng(7)).reshape(3, n)
    for r in range(3):
        counts = np.bincount(codes[r], minlength=5)
        expected = n * oracle_softmax(rows[r : r + 1] - rows[r].max())[0]
        keep = expected >= 5  # chi-square needs expected counts of at least 5: pool the rare tail
        observed = np.append(counts[keep], counts[~keep].sum())
        expected = np.append(expected[keep], expected[~keep].sum())
        if expected[-1] == 0:
            observed, expected = observed[:-1], expected[:-1]
        _, pvalue = stats.chisquare(observed, expected)
        assert pvalue > 1e-4, f"row {r}: counts {counts}, expected {n * oracle_softmax(rows[r : r + 1] - rows[r].max())[0]}"


def test_softmax_draw_is_one_inverse_cdf_uniform_per_row(rng):
    """The draw inverts the float64 cumulative distribution with one uniform of the Generator per row (the
    streams of the labelled DBN depend on it): the first category whose cumulative sum exceeds u."""
    z = rng.normal(size=(50, 6)).astype(np.float32)
    codes = SOFTMAX.sample_categories(z, np.random.default_rng(11))
    u = np.random.default_rng(11).random(50)
    cdf = np.cumsum(oracle_softmax(z), axis=1)
    expected = np.array([np.searchsorted(c, ui * c[-1], side="right") for c, ui in zip(cdf, u)])
    np.testing.assert_array_equal(codes, expected)
    states = SOFTMAX.sample(z, np.random.default_rng(11))
    assert states.dtype == np.float32
    np.testing.assert_array_equal(states, np.eye(6, dtype=np.float32)[expected])


def test_softmax_one_hot_and_initial_biases():
    np.testing.assert_array_equal(SOFTMAX.one_hot(np.array([2, 0, 2]), 3, np.float64), [[0, 0, 1], [1, 0, 0], [0, 0, 1]])
    biases = SOFTMAX.initial_biases(np.array([0.5, 0.3, 0.2, 0.0]), np.float32, floor=1e-3)
    assert biases.dtype == np.float32
    np.testing.assert_allclose(biases, np.log([0.5, 0.3, 0.2, 1e-3]), rtol=1e-6)
    # With these biases and no weights, the group's mean is the base rates (renormalised floor).
    np.testing.assert_allclose(SOFTMAX.mean(biases[None, :3])[0], [0.5, 0.3, 0.2], rtol=1e-6)


def test_softmax_data_checks_name_the_parameter():
    SOFTMAX.check_data(np.eye(4)[[0, 3, 1]], "Y")
    SOFTMAX.check_data(np.array([[0, 3], [1, 0]]), "X", replicated=True)
    SOFTMAX.check_data(sp.csr_matrix(np.array([[0, 3.0], [1, 0]])), "X", replicated=True)
    with pytest.raises(
        ValueError, match=r"^Y must hold one-hot rows \(one 1 per row, 0 elsewhere\) for a softmax group; got row 1 = \[1, 1, 0\]"
    ):
        SOFTMAX.check_data(np.array([[0, 0, 1], [1, 1, 0]]), "Y")
    with pytest.raises(ValueError, match=r"^labels must hold one-hot rows .*got row 0 = \[0.5, 0.5\]"):
        SOFTMAX.check_data(np.array([[0.5, 0.5]]), "labels")
    with pytest.raises(ValueError, match=r"^Y must hold one-hot rows .*got row 0 = \[0, 0\]"):
        SOFTMAX.check_data(np.zeros((1, 2), dtype=int), "Y")
    with pytest.raises(ValueError, match=r"^Y must be a 2-D array of one-hot rows for a softmax group; got shape \(3,\)"):
        SOFTMAX.check_data(np.array([0, 1, 0]), "Y")
    with pytest.raises(ValueError, match=r"^docs must hold counts \(non-negative integers\); got -2"):
        SOFTMAX.check_data(np.array([[1, -2]]), "docs", replicated=True)
    with pytest.raises(ValueError, match=r"^X must hold word counts \(non-negative integers\); got 0.5"):
        SOFTMAX.check_data(sp.csr_matrix(np.array([[0, 0.5]])), "X", replicated=True, what="word counts")
