"""deepgm: the classic deep generative models, trained fast on the CPU.

Restricted Boltzmann machines, deep belief networks, RBM-pretrained deep autoencoders, variational
autoencoders and conditional VAEs, with a scikit-learn interface and a parallel Rust core.
"""

from . import datasets, plotting  # noqa: F401  deepgm.datasets.load_mnist(), deepgm.plotting.* (matplotlib is imported on first use)
from ._base import DivergenceError
from ._core import __version__  # the version of Cargo.toml, which the wheel carries too
from .autoencoder import DeepAutoencoder
from .collaborative import CollaborativeRBM
from .dbn import DBN, DBNClassifier, DBNRegressor
from .io import load, save
from .rbm import RBM, LogPartition
from .topics import ReplicatedSoftmax
from .vae import CVAE, VAE

__all__ = [
    "RBM",
    "DBN",
    "DBNClassifier",
    "DBNRegressor",
    "DeepAutoencoder",
    "VAE",
    "CVAE",
    "CollaborativeRBM",
    "ReplicatedSoftmax",
    "LogPartition",
    "DivergenceError",
    "load",
    "save",
    "__version__",
]


def __getattr__(name):
    """``deepgm.distributed`` (the optional Dask extra) and ``deepgm.bench`` are imported on first
    use, as scikit-learn imports its submodules: ``import deepgm`` alone stays light, and
    ``deepgm.distributed.fit_distributed`` works without a separate import."""
    if name in ("distributed", "bench"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
