"""deepgm: the classic deep generative models, trained fast on the CPU.

Restricted Boltzmann machines, deep belief networks, RBM-pretrained deep autoencoders, variational
autoencoders and conditional VAEs, with a scikit-learn interface and a parallel Rust core.
"""

from . import datasets, plotting  # deepgm.datasets.load_mnist(), deepgm.plotting.* (matplotlib is imported on first use)
from ._base import DivergenceError
from .autoencoder import DeepAutoencoder
from .collaborative import CollaborativeRBM
from .dbn import DBN, DBNClassifier, DBNRegressor
from .io import load, save
from .rbm import RBM, LogPartition
from .topics import ReplicatedSoftmax
from .vae import CVAE, VAE

__version__ = "0.1.0"

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
