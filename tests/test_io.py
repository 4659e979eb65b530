"""Saving and loading (safetensors + JSON) and pickling: identical outputs, atomic writes, clear errors."""

import json
import pickle
import struct

import numpy as np
import pytest

import deepgm
from deepgm import CVAE, DBN, RBM, VAE, DBNClassifier, DBNRegressor, DeepAutoencoder


@pytest.fixture(scope="module")
def data():
    X, y = deepgm.datasets.load_mnist()
    return X[:600], y[:600]


def fitted(name, data):
    X, y = data
    if name == "RBM":
        return RBM(16, n_iter=2, persistent=True, random_state=0).fit(X), X
    if name == "DBN":
        return DBN((16, 8), n_iter=1, random_state=0).fit(X), X
    if name == "DBNClassifier":
        return DBNClassifier((16, 8), pretrain_iter=1, finetune_iter=2, random_state=0).fit(X, y.astype(str)), X
    if name == "DBNRegressor":
        Xr = np.random.default_rng(0).random((200, 3))
        return DBNRegressor((8,), pretrain_iter=1, finetune_iter=2, random_state=0).fit(Xr, Xr.sum(1)), Xr
    if name == "DeepAutoencoder":
        return DeepAutoencoder((16,), n_components=4, pretrain_iter=1, finetune_iter=1, random_state=0).fit(X), X
    if name == "VAE":
        return VAE(3, hidden_layer_sizes=(16,), n_iter=1, random_state=0).fit(X), X
    if name == "CVAE":
        return CVAE(3, hidden_layer_sizes=(16,), n_iter=1, random_state=0).fit(X, y), X
    raise KeyError(name)


def outputs(est, X, y):
    """Everything an estimator computes, deterministic and random (with its own streams)."""
    name = type(est).__name__
    out = {}
    if name == "CVAE":
        out["transform"] = est.transform(X[:20], y[:20])
        out["elbo"] = est.elbo(X[:20], y[:20])
        out["sample"] = est.sample(5, y=2)
        return out
    if hasattr(est, "predict"):
        out["predict"] = est.predict(X[:20])
    if hasattr(est, "predict_proba"):
        out["proba"] = est.predict_proba(X[:20])
    if hasattr(est, "transform"):
        out["transform"] = est.transform(X[:20])
    if name in ("RBM", "DBN"):
        out["sample"] = est.sample(4, n_steps=5)
    if name == "RBM":
        out["score_samples"] = est.score_samples(X[:20])
        out["gibbs"] = est.gibbs(X[:5])
    if name == "VAE":
        out["sample"] = est.sample(4)
        out["elbo"] = est.elbo(X[:20])
        out["ll"] = est.log_likelihood(X[:5], n_importance=8)
    if name == "DeepAutoencoder":
        out["reconstruct"] = est.reconstruct(X[:20])
    return out


NAMES = ["RBM", "DBN", "DBNClassifier", "DBNRegressor", "DeepAutoencoder", "VAE", "CVAE"]


@pytest.mark.parametrize("name", NAMES)
def test_save_load_and_pickle_give_identical_outputs(name, data, tmp_path):
    est, X = fitted(name, data)
    y = data[1]
    path = tmp_path / "model.safetensors"
    assert est.save(path) == path
    loaded = deepgm.load(path)
    pickled = pickle.loads(pickle.dumps(est))
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    want = outputs(est, X, y)
    for other in (loaded, pickled):
        got = outputs(other, X, y)
        assert want.keys() == got.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name}.{key}")


def test_loaded_model_keeps_training_like_the_original(data, tmp_path):
    X, _ = data
    a = RBM(16, n_iter=1, random_state=0).fit(X)
    a.save(tmp_path / "a.safetensors")
    b = deepgm.load(tmp_path / "a.safetensors")
    a.partial_fit(X[:100])
    b.partial_fit(X[:100])
    np.testing.assert_array_equal(a.components_, b.components_)


@pytest.mark.parametrize(
    "make", [lambda: np.random.default_rng(7), lambda: np.random.RandomState(7), lambda: np.random.Generator(np.random.MT19937(7))]
)
def test_generator_random_state_is_saved_with_its_state(make, data, tmp_path):
    X, _ = data
    rbm = RBM(8, n_iter=1, random_state=make()).fit(X)
    twin = pickle.loads(pickle.dumps(rbm))  # the reference: the same object, same generator state
    rbm.save(tmp_path / "g.safetensors")
    loaded = deepgm.load(tmp_path / "g.safetensors")
    assert type(loaded.random_state) is type(rbm.random_state)
    # Methods that draw from random_state draw the same numbers as the original would.
    np.testing.assert_array_equal(loaded.score_samples(X[:30]), twin.score_samples(X[:30]))
    np.testing.assert_array_equal(loaded.score_samples(X[:30]), twin.score_samples(X[:30]))


def test_metadata_holds_hyperparameters_and_version(data, tmp_path):
    from safetensors import safe_open

    est, _ = fitted("VAE", data)
    est.save(tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), "np") as f:
        meta = json.loads(f.metadata()["deepgm"])
    assert meta["library_version"] == deepgm.__version__
    assert meta["format_version"] == deepgm.io.FORMAT_VERSION
    assert meta["estimator"]["class"] == "VAE"
    assert meta["estimator"]["params"]["n_components"] == {"value": 3}


def test_truncated_and_corrupted_files_are_clear_errors(data, tmp_path):
    est, _ = fitted("RBM", data)
    good = tmp_path / "good.safetensors"
    est.save(good)
    raw = good.read_bytes()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "empty": b"",
        "garbage": b"\x00" * 64,
        "bad header": struct.pack("<Q", 10) + b"{not json}",
    }
    for label, blob in cases.items():
        bad = tmp_path / f"{label}.safetensors"
        bad.write_bytes(blob)
        with pytest.raises(ValueError, match="not a valid deepgm model file|corrupt|not a deepgm model"):
            deepgm.load(bad)
    with pytest.raises(FileNotFoundError):
        deepgm.load(tmp_path / "missing.safetensors")


def test_paths_folders_home_and_unknown_classes(data, tmp_path, monkeypatch):
    est, X = fitted("RBM", data)
    saved = est.save(str(tmp_path / "m.safetensors"))  # a str in, the Path written out
    assert saved == tmp_path / "m.safetensors" and saved == deepgm.save(est, str(saved))
    with pytest.raises(IsADirectoryError, match="cannot load .*: it is a folder; give the model file's name"):
        deepgm.load(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert est.save("~/home.safetensors") == tmp_path / "home.safetensors"
    np.testing.assert_array_equal(deepgm.load("~/home.safetensors").transform(X), est.transform(X))
    # A class this deepgm does not have (a file from a newer version): the error names the file.
    import deepgm._registry as registry

    monkeypatch.setattr(registry, "by_class_name", lambda name: None)
    with pytest.raises(ValueError, match=r"m\.safetensors holds a 'RBM' estimator, which this deepgm does not know"):
        deepgm.load(saved)


def test_big_endian_arrays_round_trip(tmp_path):
    """safetensors stores little-endian; a model holding big-endian arrays (here its classes) saves
    and loads with the same values, and its checksum matches."""
    X = np.random.default_rng(0).random((60, 8))
    y = np.array([0, 1, 2] * 20, dtype=">i8")
    est = CVAE(2, hidden_layer_sizes=(4,), n_iter=1, random_state=0).fit(X, y)
    est.save(tmp_path / "be.safetensors")
    loaded = deepgm.load(tmp_path / "be.safetensors")
    np.testing.assert_array_equal(loaded.classes_, est.classes_)
    np.testing.assert_array_equal(loaded.transform(X, y), est.transform(X, y))


@pytest.mark.parametrize("where", ["first weight", "last byte", "hyperparameter"])
def test_a_flipped_byte_is_detected_on_load(data, tmp_path, where):
    """A checksum over the description and every tensor: a model whose bytes changed after saving
    (disk or copy errors) is refused instead of loading with wrong weights."""
    est, _ = fitted("RBM", data)
    path = tmp_path / "model.safetensors"
    est.save(path)
    raw = bytearray(path.read_bytes())
    header_len = struct.unpack("<Q", raw[:8])[0]
    if where == "hyperparameter":  # same length, still valid JSON: n_iter 2 -> 3
        header = raw[8 : 8 + header_len].decode()
        assert '\\"n_iter\\": {\\"value\\": 2}' in header
        raw[8 : 8 + header_len] = header.replace('\\"n_iter\\": {\\"value\\": 2}', '\\"n_iter\\": {\\"value\\": 3}').encode()
    else:
        at = 8 + header_len if where == "first weight" else len(raw) - 1
        raw[at] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted: its contents do not match the checksum"):
        deepgm.load(path)


def test_newer_format_version_is_refused(data, tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "future.safetensors"
    save_file(
        {"x": np.zeros(1, np.float32)},
        str(path),
        metadata={"deepgm": json.dumps({"format_version": 99, "library_version": "9.0", "estimator": {}})},
    )
    with pytest.raises(ValueError, match="format version 99.*upgrade"):
        deepgm.load(path)


def test_save_is_atomic_and_leaves_no_temporary_files(data, tmp_path, monkeypatch):
    est, _ = fitted("RBM", data)
    path = tmp_path / "model.safetensors"
    est.save(path)
    before = path.read_bytes()

    import safetensors.numpy

    def crash(*args, **kwargs):
        # Write part of the file, then fail, as a crash mid-write would.
        with open(args[1], "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        est.save(path)
    assert path.read_bytes() == before, "the previous model is intact"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"], "no temporary file left behind"


def test_saved_file_gets_the_mode_open_would_give_it(data, tmp_path):
    """The temporary file behind the atomic write is private; the saved model is not (0666 - umask)."""
    import os

    est, _ = fitted("RBM", data)
    old = os.umask(0o022)
    try:
        est.save(tmp_path / "shared.safetensors")
        os.umask(0o077)
        est.save(tmp_path / "private.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.safetensors").stat().st_mode & 0o777 == 0o600


def test_saving_an_unfitted_estimator_fails(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        RBM().save(tmp_path / "x.safetensors")
