"""The registry of estimators: every public estimator is in it, round-trips through save/load, and
one line there is all the command line and deepgm.load need to know about a new estimator."""

import inspect

import numpy as np
import pytest
from sklearn.base import BaseEstimator

import deepgm
from deepgm import _registry, cli

PUBLIC_ESTIMATORS = [
    getattr(deepgm, name)
    for name in deepgm.__all__
    if inspect.isclass(getattr(deepgm, name)) and issubclass(getattr(deepgm, name), BaseEstimator)
]


def test_every_public_estimator_is_registered_once():
    registered = [entry.cls for entry in _registry.ESTIMATORS]
    assert len(PUBLIC_ESTIMATORS) >= 7
    assert sorted(c.__name__ for c in PUBLIC_ESTIMATORS) == sorted(c.__name__ for c in registered)
    commands = [entry.command for entry in _registry.ESTIMATORS]
    assert len(set(commands)) == len(commands)
    assert len({c.__name__ for c in registered}) == len(registered)


def test_lookups_find_each_entry_and_refuse_unknown_names():
    for entry in _registry.ESTIMATORS:
        assert _registry.by_command(entry.command) is entry
        assert _registry.by_class_name(entry.cls.__name__) is entry
    assert _registry.by_class_name("LogPartition") is None
    with pytest.raises(KeyError):
        _registry.by_command("RBM")  # the command line name is lower case


def _nested_equal(a, b):
    """Exact equality of an estimator's state: arrays bit for bit, containers element by element."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_nested_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_nested_equal(a[k], b[k]) for k in a)
    if isinstance(a, BaseEstimator):
        return type(a) is type(b) and _nested_equal(vars(a), vars(b))
    if isinstance(a, np.random.Generator):
        return a.bit_generator.state == b.bit_generator.state
    if hasattr(a, "classes_"):  # a LabelEncoder
        return _nested_equal(a.classes_, b.classes_)
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return a == b


@pytest.mark.parametrize("entry", _registry.ESTIMATORS, ids=lambda e: e.command)
def test_each_registered_estimator_round_trips_through_save_and_load(entry, tmp_path):
    X, y = deepgm.datasets.load_mnist()
    X, y = X[:60], y[:60]
    if entry.cls in (deepgm.CollaborativeRBM, deepgm.ReplicatedSoftmax):
        X = np.round(X * 4)  # integers 0..4: the rating values or word counts these models read
    if entry.cls is deepgm.CollaborativeRBM:
        X = np.where(X == 0, np.nan, X)  # a dense ratings table marks unrated items with NaN
    # The smallest settings every estimator accepts; a parameter it lacks is left out.
    small = {"n_iter": 1, "pretrain_iter": 1, "finetune_iter": 1, "hidden_layer_sizes": (8,), "n_components": 4, "random_state": 0}
    params = {k: v for k, v in small.items() if k in entry.cls().get_params()}
    est = entry.cls(**params)
    est.fit(X, y) if entry.supervised else est.fit(X)
    loaded = deepgm.load(deepgm.save(est, tmp_path / "model.safetensors"))
    assert type(loaded) is entry.cls
    assert loaded.get_params() == est.get_params()
    assert vars(loaded).keys() == vars(est).keys()
    for key in vars(est):
        assert _nested_equal(vars(est)[key], vars(loaded)[key]), key
    if entry.sampler is not None:
        labels = np.asarray(est.classes_)[np.arange(3) % len(est.classes_)] if entry.sampler.conditional else None
        np.testing.assert_array_equal(entry.sampler.draw(est, 3, 2, labels), entry.sampler.draw(loaded, 3, 2, labels))


class ThrowawayRBM(deepgm.RBM):
    """A new estimator for the test below: an RBM under another name."""


def test_one_registry_line_makes_an_estimator_trainable_sampleable_and_loadable(tmp_path, monkeypatch, capsys):
    entry = _registry.Entry(ThrowawayRBM, "throwaway", sampler=_registry.GIBBS_MEANS)
    monkeypatch.setattr(_registry, "ESTIMATORS", _registry.ESTIMATORS + (entry,))
    model = tmp_path / "throwaway.safetensors"
    assert cli.main(["train", "throwaway", "--n-components", "4", "--n-iter", "1", "--random-state", "0", "--out", str(model)]) == 0
    assert "trained ThrowawayRBM" in capsys.readouterr().out
    assert type(deepgm.load(model)) is ThrowawayRBM
    samples = tmp_path / "samples.npy"
    assert cli.main(["sample", str(model), "-n", "3", "--steps", "2", "--out", str(samples)]) == 0
    assert np.load(samples).shape == (3, 784)


def test_an_unregistered_class_is_neither_saved_nor_loaded(tmp_path, monkeypatch):
    X = deepgm.datasets.load_mnist()[0][:40]
    est = ThrowawayRBM(4, n_iter=1, random_state=0).fit(X)
    with pytest.raises(TypeError, match="ThrowawayRBM"):
        deepgm.save(est, tmp_path / "m.safetensors")
    monkeypatch.setattr(_registry, "ESTIMATORS", _registry.ESTIMATORS + (_registry.Entry(ThrowawayRBM, "throwaway"),))
    path = deepgm.save(est, tmp_path / "m.safetensors")
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"m\.safetensors holds a 'ThrowawayRBM' estimator, which this deepgm does not know"):
        deepgm.load(path)
