"""deepgm.distributed on a real Dask cluster: a LocalCluster of 2 worker processes with 1 thread each,
started and shut down by the fixtures, so every task, parameter broadcast and result crosses a process
boundary (pickling included).

- Exactness: an autoencoder fine-tuned by SGD (with and without momentum), one local step per round and
  two equal shards of b rows gives the single-process fit with minibatches of 2b (float64, 1e-10).
- Quality: RBM CD-1 (exact log-likelihood) and VAE (ELBO) fitted on 2,000 MNIST images, with as many
  minibatch steps per replica as the single-machine fit, land within 5 nats of it on 1,000 test images
  (the single-machine fits themselves spread over about 4 nats with the seed).
- Worker loss: a worker killed in the middle of a round. With the scheduler's default retries the
  round is rerun on the other worker and the model is bit-identical to an undisturbed fit; with no
  retries allowed the fit raises and the estimator holds exactly the model of the rounds completed.
- Flat memory: data read from files, larger than each worker's memory_limit, trains without spilling
  and without a worker's memory going past what one block costs.
- The replicas' kernels use the worker's threads; pickling; the joblib Dask backend for searches.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import cloudpickle  # noqa: E402 - distributed's dependency
import dask  # noqa: E402
import joblib  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from deepgm import CVAE, DBN, RBM, VAE, DBNClassifier, DBNRegressor, DeepAutoencoder, DivergenceError  # noqa: E402
from deepgm.distributed import fit_distributed, threads_per_worker  # noqa: E402

# The worker processes cannot import this test module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

N_WORKERS = 2


def _cluster(**kwargs):
    return LocalCluster(n_workers=N_WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50, **kwargs)


@pytest.fixture(scope="module")
def client():
    with _cluster() as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(autouse=True)
def _all_workers(request):
    """Every test starts with both workers (a killed worker is restarted by its nanny)."""
    if "client" in request.fixturenames:
        request.getfixturevalue("client").wait_for_workers(N_WORKERS, timeout=120)


@pytest.fixture(scope="module")
def mnist_dask(mnist):
    """The first 2,000 MNIST images as a dask array of 4 persisted blocks, and their labels."""
    X, y = mnist
    return da.from_array(X[:2000], chunks=(500, 784)).persist(), da.from_array(y[:2000], chunks=500).persist()


@pytest.fixture
def npy_stack(tmp_path, mnist):
    """The first 2,000 MNIST images stored as a stack of .npy files (4 blocks), read back lazily."""
    X, _ = mnist
    da.to_npy_stack(tmp_path / "mnist", da.from_array(X[:2000], chunks=(500, 784)), axis=0)
    return da.from_npy_stack(tmp_path / "mnist")


def arrays_of(est, names):
    return {name: np.array(getattr(est, name)) for name in names}


def assert_same_arrays(a, b, names):
    for name in names:
        va, vb = getattr(a, name), getattr(b, name)
        if isinstance(va, list):
            assert len(va) == len(vb)
            for x, z in zip(va, vb):
                np.testing.assert_array_equal(x, z, err_msg=name)
        else:
            np.testing.assert_array_equal(va, vb, err_msg=name)


RBM_ARRAYS = ("components_", "intercept_hidden_", "intercept_visible_", "components_velocity_")


# -- exactness ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_one_local_sgd_step_on_equal_shards_is_the_large_batch_step(client, mnist, momentum):
    """theta_{r+1} = mean_s SGD_s(theta_r) with equal shards of b rows is one SGD step on all 2b rows
    (velocities are averaged too, so momentum keeps it exact)."""
    X = np.ascontiguousarray(mnist[0][:120], dtype=np.float64)
    b = 60
    common = dict(
        hidden_layer_sizes=(24,),
        n_components=4,
        pretrain=False,
        optimizer="sgd",
        momentum=momentum,
        learning_rate=0.5,
        finetune_iter=8,
        dtype="float64",
        random_state=3,
    )
    single = DeepAutoencoder(batch_size=N_WORKERS * b, **common).fit(X)
    dist = fit_distributed(
        DeepAutoencoder(batch_size=b, **common), da.from_array(X, chunks=(b, 784)), client=client, n_rounds=8, local_steps=1
    )
    assert dist.n_iter_ == 8 and len(dist.history_["round"]) == 8
    for ws, wd in zip(single.coefs_ + single.intercepts_, dist.coefs_ + dist.intercepts_):
        np.testing.assert_allclose(wd, ws, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dist.loss_curve_, single.loss_curve_, rtol=1e-10)
    # The check compares trained models, not the initialisation they share.
    initial = DeepAutoencoder(batch_size=b, **{**common, "finetune_iter": 0}).fit(X)
    assert np.abs(dist.coefs_[0] - initial.coefs_[0]).max() > 1e-3


def test_linear_path_autoencoder_on_equal_shards_is_the_large_batch_fit(client):
    """Real-valued data give the autoencoder its linear path (PCA of the sample, which is all of these
    rows): the replicas train the path model, and one local SGD step per round is still exactly the
    single-process step on all rows."""
    rng = np.random.default_rng(0)
    X = np.ascontiguousarray(rng.standard_normal((120, 6)) @ rng.standard_normal((6, 6)))
    b = 60
    common = dict(
        hidden_layer_sizes=(8,),
        n_components=3,
        optimizer="sgd",
        momentum=0.9,
        learning_rate=0.05,
        finetune_iter=8,
        dtype="float64",
        random_state=3,
    )
    single = DeepAutoencoder(batch_size=N_WORKERS * b, **common).fit(X)
    dist = fit_distributed(
        DeepAutoencoder(batch_size=b, **common), da.from_array(X, chunks=(b, 6)), client=client, n_rounds=8, local_steps=1
    )
    assert single.linear_path_ and dist.linear_path_
    np.testing.assert_allclose(dist.path_components_, single.path_components_, atol=1e-12)
    for ws, wd in zip(single.coefs_ + single.intercepts_, dist.coefs_ + dist.intercepts_):
        np.testing.assert_allclose(wd, ws, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dist.loss_curve_, single.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(dist.reconstruct(X), single.reconstruct(X), rtol=1e-10, atol=1e-12)
    assert dist.loss_curve_[-1] < dist.loss_curve_[0]  # it trained


# -- quality --------------------------------------------------------------------------------------------


def test_rbm_cd1_matches_the_single_machine_log_likelihood(client, mnist, mnist_dask):
    """Exact test log-likelihood (12 hidden units: log Z by enumeration). The distributed fit runs as
    many minibatch steps per replica as the single-machine fit (twice the epochs over 2 shards).
    Measured over seeds 0-3: single machine -194 to -199 nats, distributed -191 to -196."""
    X, _ = mnist
    test = X[8000:9000]
    single = RBM(12, n_iter=10, batch_size=100, random_state=0).fit(X[:2000])
    dist = fit_distributed(RBM(12, n_iter=20, batch_size=100, random_state=0), mnist_dask[0], client=client, local_steps=10)
    assert len(dist.history_["round"]) == 20  # 20 epochs of 2,000 rows / (2 shards x 10 steps x 100 rows)
    ll_single = single.log_likelihood(test, method="exact")
    ll_dist = dist.log_likelihood(test, method="exact")
    # The base-rate model (independent pixels with the training marginals, what W = 0 gives): -223 nats.
    p = np.clip(X[:2000].mean(axis=0, dtype=np.float64), 1e-3, 1 - 1e-3)
    base_rate = float(np.mean(test @ np.log(p) + (1 - test) @ np.log(1 - p)))
    assert ll_dist > base_rate + 20
    assert ll_dist > ll_single - 5.0, (ll_dist, ll_single)


def test_vae_matches_the_single_machine_elbo(client, mnist, mnist_dask):
    X, _ = mnist
    test = X[8000:9000]
    params = dict(n_components=8, hidden_layer_sizes=(64,), random_state=0)
    single = VAE(n_iter=10, **params).fit(X[:2000])
    dist = fit_distributed(VAE(n_iter=20, **params), mnist_dask[0], client=client, local_steps=10)
    elbo_single, elbo_dist = single.score(test), dist.score(test)
    assert elbo_dist > elbo_single - 5.0, (elbo_dist, elbo_single)
    assert dist.history_["elbo"][-1] > dist.history_["elbo"][0] + 20  # it learned


def test_vae_logs_the_same_weighted_objective_as_fit(client, mnist, mnist_dask):
    """With a KL weight w, history_["loss"] is the training objective, reconstruction + w * KL, on a
    Dask cluster as in fit; "elbo" stays -(reconstruction + KL)."""
    X, _ = mnist
    params = dict(n_components=4, hidden_layer_sizes=(32,), kl_weight=0.25, batch_size=100, random_state=0)
    single = VAE(n_iter=2, **params).fit(X[:400])
    dist = fit_distributed(VAE(n_iter=2, **params), mnist_dask[0], client=client, local_steps=2, n_rounds=2)
    for model in (single, dist):
        h = {key: np.array(model.history_[key]) for key in ("loss", "reconstruction", "kl", "elbo")}
        assert np.all(0.75 * h["kl"] > 1e-6 * h["reconstruction"])  # the weight makes a difference rtol sees
        np.testing.assert_allclose(h["loss"], h["reconstruction"] + 0.25 * h["kl"], rtol=1e-10)
        np.testing.assert_allclose(h["elbo"], -(h["reconstruction"] + h["kl"]), rtol=1e-10)


# -- determinism, layout, threads ----------------------------------------------------------------------


def test_same_layout_and_seed_give_the_same_model(client, mnist_dask, npy_stack):
    """Seeds follow the shard's rank, not the worker: the same blocks give the same model, whichever
    worker runs which shard; another random_state gives another model."""
    params = dict(client=client, local_steps=5)
    a = fit_distributed(RBM(32, n_iter=2, random_state=0), npy_stack, **params)
    b = fit_distributed(RBM(32, n_iter=2, random_state=0), npy_stack, **params)
    assert_same_arrays(a, b, RBM_ARRAYS)
    assert a.history_["reconstruction_error"] == b.history_["reconstruction_error"]
    c = fit_distributed(RBM(32, n_iter=2, random_state=0), npy_stack, random_state=1, **params)
    assert not np.array_equal(a.components_, c.components_)
    # Persisted blocks train where they live (a layout of their own): reproducible too.
    d = fit_distributed(RBM(32, n_iter=2, random_state=0), mnist_dask[0], **params)
    e = fit_distributed(RBM(32, n_iter=2, random_state=0), mnist_dask[0], **params)
    assert_same_arrays(d, e, RBM_ARRAYS)


def _deepgm_threads():
    names = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/comm") as f:
            names.add(f.read().strip())
    return sorted(n for n in names if n.startswith("deepgm-"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads thread names from /proc")
def test_replicas_use_the_threads_of_their_worker(client, mnist_dask):
    """deepgm's pools are named deepgm-<threads>-<i>: the workers (1 thread each) only ever start
    one-thread pools, although the estimator asks for all cores (n_jobs=None)."""
    fit_distributed(DBN((32, 16), n_iter=1, random_state=0), mnist_dask[0], client=client, local_steps=5)
    for worker, names in client.run(_deepgm_threads).items():
        assert names, f"no deepgm kernel ran on {worker}"
        assert all(name.startswith("deepgm-1-") for name in names), (worker, names)


# -- every estimator ------------------------------------------------------------------------------------


def test_dbn_trains_layer_by_layer(client, mnist, mnist_dask):
    dbn = fit_distributed(DBN((48, 16), n_iter=2, batch_size=100, random_state=0), mnist_dask[0], client=client, local_steps=5)
    assert [r.components_.shape for r in dbn.rbms_] == [(48, 784), (16, 48)]
    assert dbn.visible_ == dbn.rbms_[0].visible == "bernoulli"  # as fit records visible="auto"'s choice
    rounds_per_layer = 2 * 2000 // (N_WORKERS * 5 * 100)
    assert dbn.history_["layer"] == [1] * rounds_per_layer + [2] * rounds_per_layer
    assert dbn.history_["round"] == list(range(1, rounds_per_layer + 1)) * 2
    assert dbn.transform(mnist[0][:5]).shape == (5, 16)
    errors = dbn.rbms_[0].history_["reconstruction_error"]
    assert errors[-1] < errors[0]
    # Layer 2 started from the features of the trained layer 1 (its visible marginals): the workers
    # fed it their blocks transformed by layer 1. (The driver's sample is all 2,000 rows here.)
    features = dbn.rbms_[0].transform(mnist[0][:2000]).mean(axis=0)
    np.testing.assert_allclose(dbn.rbms_[1].visible_mean_, features, rtol=1e-4)


def test_dbn_classifier_matches_the_single_machine_fit(client, mnist, mnist_dask):
    """Pretraining then fine-tuning by SGD with momentum, as many steps per replica as the
    single-machine fit: measured 0.912 test accuracy for both (0.915 with one local step)."""
    X, y = mnist
    Xd, yd = mnist_dask
    single = DBNClassifier((64,), pretrain_iter=2, finetune_iter=10, batch_size=100, random_state=0).fit(X[:2000], y[:2000])
    clf = fit_distributed(
        DBNClassifier((64,), pretrain_iter=4, finetune_iter=20, batch_size=100, random_state=0), Xd, yd, client=client, local_steps=5
    )
    assert len(clf.rbms_) == 1 and [c.shape for c in clf.coefs_] == [(784, 64), (64, 10)]
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    assert clf.n_iter_ == len(clf.loss_curve_) == len(clf.history_["loss"]) == 40
    assert clf.score(X[8000:9000], y[8000:9000]) > single.score(X[8000:9000], y[8000:9000]) - 0.03


def test_dbn_regressor_and_string_labels(client, mnist, mnist_dask):
    X, y = mnist
    Xd, yd = mnist_dask
    targets = yd.astype(np.float64).rechunk(400)  # chunked unlike X: rechunked to X's blocks
    reg = fit_distributed(DBNRegressor((32,), pretrain_iter=1, finetune_iter=5, random_state=0), Xd, targets, client=client)
    np.testing.assert_allclose(reg.y_mean_, [y[:2000].mean()], rtol=1e-10)
    assert reg.predict(X[8000:8010]).shape == (10,)
    assert reg.score(X[8000:9000], y[8000:9000].astype(float)) > 0.3
    labels = np.array(["even", "odd"])[y[:2000] % 2]
    clf = fit_distributed(
        DBNClassifier((16,), pretrain=False, finetune_iter=3, random_state=0), Xd, da.from_array(labels, chunks=500), client=client
    )
    assert list(clf.classes_) == ["even", "odd"] and set(clf.predict(X[:20])) <= {"even", "odd"}


def test_deep_autoencoder_matches_the_single_machine_fit(client, mnist, mnist_dask):
    """Pretraining then fine-tuning, with as many steps per replica as the single-machine fit:
    measured 50.08 and 50.08 squared error per test image (the mean image: 58.9)."""
    X, _ = mnist
    single = DeepAutoencoder((64,), n_components=8, pretrain_iter=2, finetune_iter=10, batch_size=100, random_state=0).fit(X[:2000])
    ae = fit_distributed(
        DeepAutoencoder((64,), n_components=8, pretrain_iter=4, finetune_iter=20, batch_size=100, random_state=0),
        mnist_dask[0],
        client=client,
    )
    assert ae.loss_function_ == "cross_entropy" and len(ae.rbms_) == 2
    mean_image = float(np.mean(np.sum((X[8000:9000] - X[:2000].mean(axis=0)) ** 2, axis=1)))
    assert ae.reconstruction_error(X[8000:9000]) < 0.9 * mean_image
    assert ae.reconstruction_error(X[8000:9000]) < 1.05 * single.reconstruction_error(X[8000:9000])


def test_cvae_and_persistent_rbm(client, mnist, mnist_dask):
    X, y = mnist
    Xd, yd = mnist_dask
    cvae = fit_distributed(CVAE(4, hidden_layer_sizes=(32,), n_iter=4, random_state=0), Xd, yd, client=client)
    assert cvae.class_means_.shape == (10, 4) and cvae.sample(3, y=7).shape == (3, 784)
    assert np.isfinite(cvae.score(X[8000:8500], y[8000:8500]))
    pcd = fit_distributed(RBM(16, persistent=True, n_iter=2, batch_size=100, random_state=0), Xd, client=client, local_steps=5)
    assert pcd.h_samples_.shape == (100, 16) and set(np.unique(pcd.h_samples_)) <= {0.0, 1.0}
    assert pcd.h_samples_.any()  # the chains ran (they start at zero)


def test_one_progress_bar_over_the_rounds(client, mnist_dask, capsys):
    """verbose: one tqdm bar on the driver over every round of every phase (2 layers x 4 rounds)."""
    fit_distributed(DBN((16, 8), n_iter=2, batch_size=100, random_state=0, verbose=1), mnist_dask[0], client=client, local_steps=5)
    err = capsys.readouterr().err
    assert "8/8" in err and "round" in err
    assert "0/8" in err  # a single bar: its total covers both layers from the start


def test_dask_dataframe_input_keeps_feature_names(client, mnist):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, _ = mnist
    frame = pd.DataFrame(X[:400, :50], columns=[f"pixel{i}" for i in range(50)])
    rbm = fit_distributed(RBM(8, n_iter=2, random_state=0), dd.from_pandas(frame, npartitions=2), client=client)
    np.testing.assert_array_equal(rbm.feature_names_in_, frame.columns)
    assert rbm.transform(frame.iloc[:3]).shape == (3, 8)


# -- failures -------------------------------------------------------------------------------------------


def _round_of(key) -> int | None:
    key = str(key)
    if not key.startswith("deepgm-round-"):
        return None
    return int(key.split("-")[-2])


def _kill_during_round(client, round_number, killed, timeout=120):
    """Kills (SIGKILL) the worker process that runs a training task of round ``round_number`` or later,
    as soon as the scheduler shows one; records its address in ``killed``."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not killed:
        for worker, keys in client.processing().items():
            if any((_round_of(k) or -1) >= round_number for k in keys) and worker in pids:
                os.kill(pids[worker], signal.SIGKILL)
                killed.append(worker)
                return
        time.sleep(0.005)


def _slow_rbm():
    """An RBM whose rounds take a few hundred milliseconds on a worker thread."""
    return RBM(256, n_iter=1, random_state=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a worker process by pid")
def test_worker_killed_mid_round_is_rerun_and_changes_nothing(client, npy_stack):
    """The kill happens on a cluster of its own (the shared one stays whole); the undisturbed fit runs
    on the shared cluster: same blocks, same number of workers, so the same model is expected."""
    params = dict(n_rounds=8, local_steps=20)
    undisturbed = fit_distributed(_slow_rbm(), npy_stack, client=client, **params)
    with _cluster() as cluster, Client(cluster, set_as_default=False) as own:
        killed = []
        killer = threading.Thread(target=_kill_during_round, args=(own, 3, killed))
        killer.start()
        try:
            est = fit_distributed(_slow_rbm(), npy_stack, client=own, **params)
        finally:
            killer.join()
        assert killed, "no worker was killed: the fit ended before round 3 ran"
        assert killed[0] not in own.nthreads()  # that process is gone (its nanny starts a new one)
    assert est.history_["round"] == list(range(1, 9))
    assert_same_arrays(est, undisturbed, RBM_ARRAYS)
    assert est.history_["reconstruction_error"] == undisturbed.history_["reconstruction_error"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a worker process by pid")
def test_worker_killed_without_retries_raises_and_keeps_the_last_round(client, mnist, npy_stack):
    est = _slow_rbm()
    with _cluster() as cluster, Client(cluster, set_as_default=False) as own:
        cluster.scheduler.allowed_failures = 0  # the scheduler gives up on the first lost worker
        killed = []
        killer = threading.Thread(target=_kill_during_round, args=(own, 3, killed))
        killer.start()
        try:
            with pytest.raises(RuntimeError, match=r"(?s)round \d+ failed.*last completed round \(\d+\)"):
                fit_distributed(est, npy_stack, client=own, n_rounds=40, local_steps=20)
        finally:
            killer.join()
        assert killed
    completed = len(est.history_["round"])
    assert 3 <= completed < 40 and est.history_["round"] == list(range(1, completed + 1))
    # The estimator holds exactly the model of its completed rounds: nothing half-averaged.
    reference = fit_distributed(_slow_rbm(), npy_stack, client=client, n_rounds=completed, local_steps=20)
    assert_same_arrays(est, reference, RBM_ARRAYS)
    assert np.all(np.isfinite(est.transform(mnist[0][:5])))


def test_bad_block_found_by_a_worker_leaves_the_estimator_as_it_was(client, mnist):
    X, _ = mnist
    bad = np.array(X[:1000])
    bad[700, 3] = 2.0  # in the second block: only the worker reading it sees it (the driver's sample does not)
    bad = da.from_array(bad, chunks=(500, 784)).persist()
    fitted = RBM(8, n_iter=1, random_state=0).fit(X[:300])
    before = fitted.components_.copy()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_distributed(fitted, bad, client=client, local_steps=5)
    np.testing.assert_array_equal(fitted.components_, before)
    assert len(fitted.history_["epoch"]) == 1  # its own fit's history, untouched
    fresh = RBM(8, n_iter=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_distributed(fresh, bad, client=client, local_steps=5)
    assert not hasattr(fresh, "components_")


def test_divergence_keeps_the_last_finite_round(client, mnist_dask):
    est = DBNRegressor((32,), pretrain=False, optimizer="sgd", learning_rate=1e4, momentum=0.0, finetune_iter=20, random_state=0)
    with pytest.raises(DivergenceError, match="round"):
        fit_distributed(est, *mnist_dask, client=client, local_steps=2)
    if hasattr(est, "coefs_"):  # diverged after round 1: the last finite round is kept
        assert all(np.all(np.isfinite(c)) for c in est.coefs_ + est.intercepts_)
        assert len(est.loss_curve_) == len(est.history_["round"]) == est.n_iter_ >= 1
        assert np.all(np.isfinite(est.loss_curve_))
    else:  # diverged in round 1: nothing was committed
        assert not hasattr(est, "n_features_in_")


def test_bad_arguments_are_refused_with_their_names(client, mnist, mnist_dask):
    from sklearn.decomposition import PCA

    X, y = mnist
    Xd, yd = mnist_dask
    with pytest.raises(TypeError, match="X must be a dask array"):
        fit_distributed(RBM(), X[:100], client=client)
    with pytest.raises(TypeError, match="cannot train a PCA"):
        fit_distributed(PCA(), Xd, client=client)
    with pytest.raises(ValueError, match="local_steps"):
        fit_distributed(RBM(), Xd, client=client, local_steps=0)
    with pytest.raises(ValueError, match="n_rounds"):
        fit_distributed(RBM(), Xd, client=client, n_rounds=0)
    with pytest.raises(ValueError, match="y is required"):
        fit_distributed(DBNClassifier((8,)), Xd, client=client)
    with pytest.raises(ValueError, match="same number of samples"):
        fit_distributed(DBNClassifier((8,)), Xd, yd[:1000], client=client)
    with pytest.raises(ValueError, match="early_stopping"):
        fit_distributed(DBNClassifier((8,), early_stopping=True), Xd, yd, client=client)
    with pytest.raises(ValueError, match="2-D"):
        fit_distributed(RBM(), Xd[:, 0], client=client)
    # DBN.fit(X, y) would train label units, which averaging does not: y is refused, not ignored.
    dbn = DBN((8,))
    with pytest.raises(ValueError, match=r"^y is not supported for a DBN: fit_distributed trains a DBN without label units"):
        fit_distributed(dbn, Xd, yd, client=client)
    assert not hasattr(dbn, "rbms_")
    with pytest.raises(TypeError, match="client must be"):
        fit_distributed(RBM(), Xd, client="tcp://localhost:8786")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        closed = Client(cluster)
        closed.close()
    with pytest.raises(ValueError, match="client must be connected to a running cluster; got a client whose status is 'closed'"):
        fit_distributed(RBM(), Xd, client=closed)


# -- memory ---------------------------------------------------------------------------------------------


def _start_rss_sampler():
    """Samples the process's resident memory every 10 ms in a thread (the kernels release the GIL)."""
    import threading as _threading

    def read():
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:")):
                    out[line.split(":")[0]] = int(line.split()[1]) * 1024
        return out

    state = {"peak": read(), "start": read(), "running": True}

    def sample():
        while state["running"]:
            now = read()
            state["peak"] = {k: max(v, now[k]) for k, v in state["peak"].items()}
            time.sleep(0.01)

    thread = _threading.Thread(target=sample, daemon=True)
    thread.start()
    sys.modules["__deepgm_rss__"] = state  # reachable from the next client.run
    return state["start"]


def _stop_rss_sampler(dask_worker):
    state = sys.modules.pop("__deepgm_rss__")
    state["running"] = False
    spilled = dask_worker.data.spilled_total if hasattr(dask_worker.data, "spilled_total") else None
    return {
        "start": state["start"],
        "peak": state["peak"],
        "spilled_to_disk": len(getattr(dask_worker.data, "slow", ())),
        "spilled_total": getattr(spilled, "disk", 0),
        "pid": os.getpid(),
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads memory from /proc")
def test_file_backed_data_larger_than_worker_memory_trains_flat(tmp_path):
    """1.1 GB of float64 rows in .npy files (31 MB blocks) on 2 workers of memory_limit 500 MiB each:
    every worker's shard (560 MB) is larger than its memory limit. The fit reads every block; nothing is
    spilled, no worker is paused or restarted, and a worker's resident memory grows by less than
    three blocks over its memory after a warm-up fit (imports, thread pools)."""
    limit = 500 * 2**20
    n_rows, n_features, block_rows = 180_000, 784, 5_000  # 8 * 784 * 180,000 = 1.13 GB; blocks of 31 MB
    path = tmp_path / "big"
    try:
        with dask.config.set(scheduler="sync"):  # written one block at a time by this process
            data = da.random.default_rng(0).random((n_rows, n_features), chunks=(block_rows, n_features))
            da.to_npy_stack(path, data, axis=0)
        X = da.from_npy_stack(path)
        assert X.nbytes > 2 * limit and X.dtype == np.float64
        est = RBM(8, batch_size=500, n_iter=1, random_state=0)
        with _cluster(memory_limit=limit) as cluster, Client(cluster) as client:
            fit_distributed(clone(est), X[:20_000], client=client, local_steps=8)  # warm-up
            pids = client.run(os.getpid)
            client.run(_start_rss_sampler)
            # One pass over every block: the larger shard has 18 blocks of 10 minibatches, 3 rounds.
            fit_distributed(est, X, client=client, local_steps=64)
            report = client.run(_stop_rss_sampler)
            assert client.run(os.getpid) == pids  # no worker was restarted
        assert len(est.history_["round"]) == 3 and est.history_["epoch"][-1] >= 1.0
        block_bytes = block_rows * n_features * 8
        for worker, r in report.items():
            assert r["spilled_to_disk"] == 0 and r["spilled_total"] == 0, (worker, r)
            assert r["peak"]["VmRSS"] < 0.7 * limit, (worker, r)  # below the spill threshold
            assert r["peak"]["VmRSS"] - r["start"]["VmRSS"] < 3 * block_bytes, (worker, r)
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- pickling and searches --------------------------------------------------------------------------


def test_fitted_estimators_pickle(client, mnist, mnist_dask):
    X, _ = mnist
    vae = fit_distributed(VAE(4, hidden_layer_sizes=(32,), n_iter=2, random_state=0), mnist_dask[0], client=client)
    clone = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(clone.transform(X[:20]), vae.transform(X[:20]))
    assert clone.history_ == vae.history_
    assert clone.get_params() == vae.get_params()


def test_grid_search_on_the_joblib_dask_backend(client, mnist):
    """Trials run on the workers, each with its worker's threads although ``n_jobs`` is left at None
    ("all cores"), and find what a sequential search finds (the fits are deterministic)."""
    X, y = mnist
    X, y = X[:600], y[:600]
    assert threads_per_worker(client) == 1
    est = DBNClassifier((16,), pretrain_iter=1, finetune_iter=3, random_state=0)
    grid = {"learning_rate": [0.05, 0.3], "hidden_layer_sizes": [(16,), (32,)]}
    sequential = GridSearchCV(est, grid, cv=2).fit(X, y)
    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        on_dask = GridSearchCV(est, grid, cv=2).fit(X, y)
    np.testing.assert_array_equal(on_dask.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"])
    assert on_dask.best_params_ == sequential.best_params_
    workers = {task["worker"] for task in stream.data}
    assert len(workers) == N_WORKERS  # both workers ran trials
    if sys.platform.startswith("linux"):
        for worker, names in client.run(_deepgm_threads).items():
            assert all(name.startswith("deepgm-1-") for name in names), (worker, names)


def test_submodule_is_reachable_from_the_package_alone():
    # A fresh interpreter: in this one, the import above already bound deepgm.distributed.
    code = (
        "import deepgm, sys\n"
        "assert 'deepgm.distributed' not in sys.modules\n"
        "assert deepgm.distributed.fit_distributed.__name__ == 'fit_distributed'\n"
        "try:\n    deepgm.no_such_thing\nexcept AttributeError as e:\n    assert 'no_such_thing' in str(e)\n"
        "else:\n    raise SystemExit('no AttributeError')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
