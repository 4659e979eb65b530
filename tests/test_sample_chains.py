"""sample(n_samples, init=...): the chains start from the rows of init, so n_samples given too must agree
with them; a disagreement is a ValueError naming both, never a silent change of the number of samples."""

from __future__ import annotations

import pytest
from _bundled import small_data

import deepgm

KW = dict(n_jobs=1, random_state=0)


@pytest.fixture(scope="module")
def digits():
    d = small_data()
    return d["D"], d["dy"]


MODELS = {
    "RBM": lambda D, y: deepgm.RBM(8, n_iter=1, **KW).fit(D),
    "RBM-gaussian": lambda D, y: deepgm.RBM(8, visible="gaussian", n_iter=1, **KW).fit(D),
    "DBN": lambda D, y: deepgm.DBN((8, 4), n_iter=1, **KW).fit(D),
    "DBN-labels": lambda D, y: deepgm.DBN((8, 4), n_iter=1, **KW).fit(D, y),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_n_samples_and_init_must_agree(name, digits):
    D, y = digits
    model = MODELS[name](D, y)
    init = D[:2]
    assert model.sample(n_steps=2, init=init).shape == (2, D.shape[1])
    assert model.sample(2, n_steps=2, init=init).shape == (2, D.shape[1])
    with pytest.raises(ValueError, match=r"n_samples must be None or the number of rows of init.*n_samples=3.*2 rows"):
        model.sample(3, n_steps=2, init=init)
    assert model.sample(3, n_steps=2).shape == (3, D.shape[1])
    assert model.sample(n_steps=2).shape == (16, D.shape[1])


def test_n_samples_and_init_with_a_class_to_generate(digits):
    D, y = digits
    model = MODELS["DBN-labels"](D, y)
    assert model.sample(2, n_steps=2, init=D[:2], y=3).shape == (2, D.shape[1])
    with pytest.raises(ValueError, match=r"n_samples=5.*2 rows"):
        model.sample(5, n_steps=2, init=D[:2], y=3)
