"""The public estimators, listed once: what the ``deepgm`` command and :mod:`deepgm.io` need to know.

``deepgm train NAME`` finds its class here and learns whether it fits on ``X`` or on ``X, y``;
``deepgm sample`` learns whether and how a loaded model draws samples; :func:`deepgm.load` finds the
class a model file names. Adding an estimator is one line in :data:`ESTIMATORS` (see
docs/architecture.md, "Adding an estimator").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .autoencoder import DeepAutoencoder
from .collaborative import CollaborativeRBM
from .dbn import DBN, DBNClassifier, DBNRegressor
from .rbm import RBM
from .topics import ReplicatedSoftmax
from .vae import CVAE, VAE

__all__ = ["Sampler", "Entry", "ESTIMATORS", "by_command", "by_class_name"]


@dataclass(frozen=True)
class Sampler:
    """How ``deepgm sample`` draws from a fitted model.

    ``draw(estimator, n_samples, n_steps, y, doc_length=100)`` returns an array of shape (n_samples,
    n_features); ``n_steps`` is the number of Gibbs steps (ignored by samplers that do not run a
    chain), ``y`` the class of each sample, shape (n_samples,), given only to a ``conditional``
    sampler, and ``doc_length`` the number of words of each sampled document (``documents``
    samplers only: their samples are rows of counts, not pictures).
    """

    draw: Callable
    conditional: bool = False
    documents: bool = False
    #: Conditional only for a model fitted with labels (a DBN with label units has ``classes_``).
    conditional_if_labelled: bool = False


#: Block Gibbs sampling, returning the visible means: smoother pictures than binary states.
GIBBS_MEANS = Sampler(lambda est, n, n_steps, y, doc_length=100: est.sample(n, n_steps=n_steps, return_means=True))
#: Gibbs sampling in the top RBM (its label units clamped to y, for a DBN fitted with labels), then a
#: down pass.
GIBBS = Sampler(lambda est, n, n_steps, y, doc_length=100: est.sample(n, n_steps=n_steps, y=y), conditional_if_labelled=True)
#: One pass from the prior through the decoder.
ANCESTRAL = Sampler(lambda est, n, n_steps, y, doc_length=100: est.sample(n))
#: Ancestral sampling given each sample's class.
BY_CLASS = Sampler(lambda est, n, n_steps, y, doc_length=100: est.sample(n, y=y), conditional=True)
#: Word counts of documents of a given length, by Gibbs sampling.
DOCUMENTS = Sampler(lambda est, n, n_steps, y, doc_length=100: est.sample(n, doc_length, n_steps=n_steps), documents=True)


@dataclass(frozen=True)
class Entry:
    """One public estimator.

    Attributes
    ----------
    cls : type
        The estimator class; its ``__name__`` is what a model file records.
    command : str
        Its name on the command line: ``deepgm train COMMAND``.
    supervised : bool
        Whether it is fitted on ``X, y`` (otherwise on ``X`` alone).
    sampler : Sampler or None
        How ``deepgm sample`` draws from it; None for models that do not generate data.
    images : bool
        Whether 8-bit (uint8) data files are pixels that ``deepgm train`` scales to [0, 1]; False for
        the models of ratings and word counts, whose integers are read as they are.
    """

    cls: type
    command: str
    supervised: bool = False
    sampler: Sampler | None = None
    images: bool = True


ESTIMATORS = (
    Entry(RBM, "rbm", sampler=GIBBS_MEANS),
    Entry(DBN, "dbn", sampler=GIBBS),
    Entry(DBNClassifier, "dbn-classifier", supervised=True),
    Entry(DBNRegressor, "dbn-regressor", supervised=True),
    Entry(DeepAutoencoder, "autoencoder"),
    Entry(VAE, "vae", sampler=ANCESTRAL),
    Entry(CVAE, "cvae", supervised=True, sampler=BY_CLASS),
    Entry(CollaborativeRBM, "collaborative-rbm", images=False),
    Entry(ReplicatedSoftmax, "replicated-softmax", images=False, sampler=DOCUMENTS),
)


def by_command(command: str) -> Entry:
    """The entry named ``command`` on the command line (KeyError if none is)."""
    return {entry.command: entry for entry in ESTIMATORS}[command]


def by_class_name(name: str) -> Entry | None:
    """The entry whose class is called ``name`` (as a model file records it), or None."""
    return next((entry for entry in ESTIMATORS if entry.cls.__name__ == name), None)
