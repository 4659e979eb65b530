"""Shared fixtures of the estimator tests (test_rbm.py, test_dbn.py, test_autoencoder.py, test_vae.py).

The quality bars (benches/quality.py) use the embedded MNIST test set split into the first 8,000
images to train and the last 2,000 to test; the fixtures below expose that split and smaller subsets
that keep the suite fast.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

from deepgm.datasets import load_mnist

try:  # BLAS threads spinning beside deepgm's own thread pool make scikit-learn/numpy oracles crawl
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
    threadpool_limits = None


def pytest_configure(config):
    # scikit-learn's own BernoulliRBM tests (run against deepgm.RBM in test_sklearn_bernoulli_rbm.py)
    # carry this mark of scikit-learn's free-threading test setup.
    config.addinivalue_line("markers", "thread_unsafe: a test that must not run in several threads at once (scikit-learn's mark)")


@pytest.fixture(scope="session", autouse=True)
def _single_threaded_blas():
    """Limits numpy/scipy/scikit-learn BLAS to one thread (deepgm's kernels do not use BLAS).

    On a small shared machine, OpenBLAS worker threads busy-wait against deepgm's Rust threads and
    slow the reference computations (logistic regression, PCA) down by an order of magnitude.
    """
    if threadpool_limits is None:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session", autouse=True)
def _ctrl_c_raises():
    """Gives SIGINT Python's own handler for the session, whatever pytest was started from.

    A shell without job control starts background commands with SIGINT ignored, and Python then
    installs no handler of its own: the Ctrl-C tests' ``signal.raise_signal(SIGINT)`` would do nothing
    and they would fail for a reason outside deepgm (seen with ``nohup ... &``).
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def mnist():
    """(X, y): the embedded MNIST test set, 10,000 images in [0, 1] (float32) and their labels."""
    X, y = load_mnist()
    assert X.shape == (10000, 784) and y.shape == (10000,)
    return X, y


@pytest.fixture(scope="session")
def mnist_split(mnist):
    """(X_train, y_train, X_test, y_test): the split of the quality bars (8,000 / 2,000 images)."""
    X, y = mnist
    return X[:8000], y[:8000], X[8000:], y[8000:]


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """(X, y): the first 2,000 training images, for quick fits."""
    X, y = mnist
    return X[:2000], y[:2000]


@pytest.fixture(scope="session")
def mnist_tiny(mnist):
    """(X, y): the first 300 training images, for API and error tests."""
    X, y = mnist
    return X[:300], y[:300]


@pytest.fixture
def rng():
    """A fresh, seeded numpy Generator per test."""
    return np.random.default_rng(12345)
