"""Arrays that start at an odd byte.

NumPy arrays rebuilt from a pickle or a Dask message can be misaligned (their data pointer is not a
multiple of the item size). The Rust kernels refuse such arrays, so the estimators copy them once:
inputs in validation, learned arrays when an estimator is unpickled.
"""

import numpy as np
import pytest

from deepgm import CVAE, DBN, RBM, VAE, DBNClassifier, DBNRegressor, DeepAutoencoder


def misaligned(a):
    """A copy of ``a`` whose data starts one byte past an aligned address."""
    a = np.ascontiguousarray(a)
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = (rng.random((60, 12)) < 0.4).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0.5).astype(int)
    return X, y


ESTIMATORS = [
    (RBM(8, n_iter=2, random_state=0), "transform", False),
    (DBN((8, 4), n_iter=2, random_state=0), "transform", False),
    (DBNClassifier((8,), pretrain_iter=1, finetune_iter=2, random_state=0), "predict_proba", True),
    (DBNRegressor((8,), pretrain_iter=1, finetune_iter=2, random_state=0), "predict", True),
    (DeepAutoencoder((8,), n_components=3, pretrain_iter=1, finetune_iter=2, random_state=0), "transform", False),
    (VAE(3, hidden_layer_sizes=(8,), n_iter=2, random_state=0), "transform", False),
    (CVAE(3, hidden_layer_sizes=(8,), n_iter=2, random_state=0), "transform", True),
]


def _ids(case):
    return type(case[0]).__name__


@pytest.mark.parametrize("case", ESTIMATORS, ids=_ids)
def test_misaligned_input_gives_the_same_model_and_outputs(case, data):
    est, method, supervised = case
    X, y = data
    args = (X, y) if supervised else (X,)
    odd_args = (misaligned(X), y) if supervised else (misaligned(X),)
    reference = type(est)(**est.get_params()).fit(*args)
    odd = type(est)(**est.get_params()).fit(*odd_args)
    out_args = (X, y) if isinstance(est, CVAE) else (X,)
    odd_out_args = (misaligned(X), y) if isinstance(est, CVAE) else (misaligned(X),)
    np.testing.assert_array_equal(getattr(odd, method)(*odd_out_args), getattr(reference, method)(*out_args))


@pytest.mark.parametrize("case", ESTIMATORS, ids=_ids)
def test_unpickled_misaligned_learned_arrays_are_usable(case, data):
    """``__setstate__`` given misaligned learned arrays (as a Dask message can hold) still predicts."""
    est, method, supervised = case
    X, y = data
    fitted = type(est)(**est.get_params()).fit(*((X, y) if supervised else (X,)))
    state = fitted.__getstate__()
    odd_state = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray) and value.size:
            value = misaligned(value)
        elif isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
            value = [misaligned(v) for v in value]
        odd_state[key] = value
    restored = type(est).__new__(type(est))
    restored.__setstate__(odd_state)
    out_args = (X, y) if isinstance(est, CVAE) else (X,)
    np.testing.assert_array_equal(getattr(restored, method)(*out_args), getattr(fitted, method)(*out_args))
