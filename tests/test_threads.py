"""Thread safety: the kernels release the GIL and keep no global state, and an estimator's state lives on
the estimator, so two Python threads fitting two estimators at the same time get exactly (bit for bit)
the models they get when fitting one after the other, for every pair of estimator kinds tried; many
threads running inference on one fitted estimator get the sequential results; and neither a fit nor a
Ctrl-C guard in a worker thread touches the process's signal handling.
"""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

from deepgm import CVAE, DBN, RBM, VAE, DBNClassifier, DBNRegressor, DeepAutoencoder


@pytest.fixture(scope="module")
def data(mnist):
    X, y = mnist
    return X[:1500], y[:1500]


def arrays(est, prefix=""):
    out = {}
    for key, value in vars(est).items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            out[prefix + key] = value
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, np.ndarray):
                    out[f"{prefix}{key}[{i}]"] = v
                elif isinstance(v, list):
                    out.update({f"{prefix}{key}[{i}][{j}]": w for j, w in enumerate(v)})
                elif isinstance(v, RBM):
                    out.update(arrays(v, f"{prefix}{key}[{i}]."))
    return out


def run(est, X, y):
    """Fits est and computes its outputs (including seeded random draws)."""
    if isinstance(est, CVAE):
        est.fit(X, y)
        return {"transform": est.transform(X[:100], y[:100]), "sample": est.sample(5, y=3)}
    est.fit(X, y) if isinstance(est, (DBNClassifier, DBNRegressor)) else est.fit(X)
    out = {"transform": est.transform(X[:100])}
    if hasattr(est, "sample"):
        out["sample"] = est.sample(5) if not isinstance(est, (RBM, DBN)) else est.sample(5, n_steps=10)
    if hasattr(est, "predict"):
        out["predict"] = est.predict(X[:100])
    return out


PAIRS = {
    "RBM+VAE": (
        lambda: RBM(64, n_iter=3, random_state=0, n_jobs=2),
        lambda: VAE(8, hidden_layer_sizes=(128,), n_iter=3, random_state=1, n_jobs=2),
    ),
    "RBM+RBM": (
        lambda: RBM(64, persistent=True, n_iter=3, random_state=0, n_jobs=2),
        lambda: RBM(64, k=2, n_iter=3, random_state=1, n_jobs=1),
    ),
    "DBNClassifier+DeepAutoencoder": (
        lambda: DBNClassifier((64,), pretrain_iter=2, finetune_iter=3, random_state=2, n_jobs=2),
        lambda: DeepAutoencoder((64,), 8, pretrain_iter=2, finetune_iter=3, random_state=3, n_jobs=2),
    ),
    "CVAE+DBN": (
        lambda: CVAE(4, hidden_layer_sizes=(64,), n_iter=3, random_state=4, n_jobs=None),
        lambda: DBN((64, 32), n_iter=2, random_state=5, n_jobs=None),
    ),
    "VAE+VAE": (
        lambda: VAE(4, hidden_layer_sizes=(64,), n_iter=3, random_state=6, dtype="float64", n_jobs=2),
        lambda: VAE(4, hidden_layer_sizes=(64,), n_iter=3, random_state=6, n_jobs=2),
    ),
}


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_two_threads_fitting_at_once_equal_fitting_one_after_the_other(pair, data):
    X, y = data
    makers = PAIRS[pair]
    sequential = []
    for make in makers:
        est = make()
        sequential.append((run(est, X, y), arrays(est)))

    barrier = threading.Barrier(len(makers))
    results, errors, spans = [None] * len(makers), [], [None] * len(makers)

    def work(i):
        try:
            est = makers[i]()
            barrier.wait()
            start = time.perf_counter()
            out = run(est, X, y)
            spans[i] = (start, time.perf_counter())
            results[i] = (out, arrays(est))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(makers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], "the fits did not overlap"
    for (out_c, arr_c), (out_s, arr_s) in zip(results, sequential):
        assert arr_c.keys() == arr_s.keys()
        for key in arr_s:
            assert np.array_equal(arr_c[key], arr_s[key]), f"{pair}: {key} differs when fitted concurrently"
        for key in out_s:
            assert np.array_equal(out_c[key], out_s[key]), f"{pair}: {key} output differs when fitted concurrently"


def test_many_threads_running_inference_on_one_model(data):
    X, y = data
    clf = DBNClassifier((64,), pretrain_iter=1, finetune_iter=2, random_state=0).fit(X, y)
    vae = VAE(4, hidden_layer_sizes=(64,), n_iter=2, random_state=0).fit(X)
    rbm = RBM(64, n_iter=2, random_state=0).fit(X)
    calls = [
        lambda: clf.predict_proba(X),
        lambda: vae.elbo(X),
        lambda: vae.transform(X),
        lambda: rbm.score_samples(X),
        lambda: rbm.free_energy(X),
        lambda: rbm.transform(X),
    ]
    expected = [c() for c in calls]
    got = [[None] * len(calls) for _ in range(4)]
    errors = []

    def work(t):
        try:
            for _ in range(3):
                for i, c in enumerate(calls):
                    got[t][i] = c()
        except BaseException as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for row in got:
        for g, e in zip(row, expected):
            assert np.array_equal(g, e)


def test_fitting_in_a_worker_thread_leaves_signal_handling_alone(data):
    X, _ = data
    handler = signal.getsignal(signal.SIGINT)
    seen = []

    def work():
        RBM(16, n_iter=1, random_state=0).fit(X[:300])
        seen.append(signal.getsignal(signal.SIGINT))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [handler] and signal.getsignal(signal.SIGINT) is handler
