"""The unit types of deepgm._units: a type registered in one place is what every estimator validates,
lists and uses (docs/architecture.md, "Adding a unit type"); the Python registry and the Rust
``Units`` enum agree on the names."""

from __future__ import annotations

import numpy as np
import pytest

from deepgm import DBN, RBM, DBNClassifier, DBNRegressor, _core
from deepgm._units import BERNOULLI, GAUSSIAN, UNITS, Units, get_units, register_units, unit_names


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
