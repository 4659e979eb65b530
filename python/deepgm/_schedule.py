"""How long an estimator trains: the one rule behind every ``"auto"`` training length.

Every length parameter (``RBM.n_iter``, ``DBN.n_iter``, ``pretrain_iter``, ``finetune_iter``,
``VAE.n_iter``, ``CollaborativeRBM.n_iter``, ``ReplicatedSoftmax.max_iter``) takes either an int,
exactly that many epochs, or ``"auto"``. An ``"auto"`` length is a number of epochs chosen from the
size of the data:

    epochs = clip(ceil(updates / batches_per_epoch), min_epochs, max_epochs)

so that a small data set still gets at least ``updates`` minibatch updates (150 rows in
batches of 10 give 15 updates per epoch), while a large one stops after ``min_epochs`` passes
instead of repeating a fixed epoch count meant for small data. Each kind of training has its own
:class:`Budget` (below, with the reasons for its numbers).

Where training minimises a loss (fine-tuning by backpropagation, the VAE's negative ELBO), an
``"auto"`` length is also a ceiling: training stops once it has converged, as scikit-learn's
``MLPClassifier`` does, when the loss has not improved by more than ``tol`` for
``n_iter_no_change`` epochs in a row (:class:`Convergence`; with ``early_stopping``, the score on
held-out data instead of the training loss).

``batch_size="auto"`` (:func:`auto_batch_size`) aims at ``TARGET_BATCHES`` minibatches per epoch,
between ``MIN_BATCH`` and ``MAX_BATCH`` rows: small data get small batches, and so more updates
for the same computation.

What was decided is recorded in ``history_``: every epoch logs ``updates`` (the minibatch updates
made so far), and a converging fit logs ``epochs_without_improvement``.

The other defaults that adapt to the data live here too, so that one module says what every
``"auto"`` does: whether a fine-tuned stack is pretrained (:func:`pretrains`) and the layer sizes of
the deep autoencoder (:func:`autoencoder_layer_sizes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._base import check_int_or
from ._units import get_units

__all__ = [
    "Budget",
    "Convergence",
    "auto_batch_size",
    "check_batch_size",
    "autoencoder_layer_sizes",
    "autoencoder_pretrain_epochs",
    "autoencoder_weight_decay",
    "check_length",
    "image_sized",
    "plan_epochs",
    "pretrains",
]

#: batch_size="auto": the number of minibatches an epoch aims at...
TARGET_BATCHES = 50
#: ...with batches of at least this many rows (smaller ones cost more per row than they gain)...
MIN_BATCH = 10
#: ...and at most this many (the size the MNIST results were tuned with).
MAX_BATCH = 100


@dataclass(frozen=True)
class Budget:
    """The "auto" length of one kind of training: at least ``updates`` minibatch updates, within
    ``[min_epochs, max_epochs]`` epochs."""

    updates: int
    min_epochs: int
    max_epochs: int

    def epochs(self, n_batches: int) -> int:
        """Epochs of ``n_batches`` minibatches each."""
        wanted = math.ceil(self.updates / max(1, n_batches))
        return int(min(self.max_epochs, max(self.min_epochs, wanted)))


#: RBM training (``RBM(n_iter="auto")`` and every layer of a pretrained stack): at least 500
#: updates, and at least 10 passes over the data. 10 epochs is what the MNIST results were tuned with
#: (8,000 rows in batches of 100: 800 updates); 500 updates let 150 rows (batches of 10: 50 epochs)
#: leave the random start, where the old 10 epochs gave 100 updates and chance-level classifiers.
RBM_BUDGET = Budget(updates=500, min_epochs=10, max_epochs=200)

#: Fine-tuning by backpropagation: a ceiling of 200 epochs, scikit-learn's ``MLPClassifier(max_iter=200)``,
#: whatever the data size. No minimum number of updates is needed: training stops on convergence
#: (``tol``, ``n_iter_no_change``), which on small data comes after enough epochs of small batches
#: and on the MNIST split after a few dozen epochs.
FINETUNE_BUDGET = Budget(updates=0, min_epochs=200, max_epochs=200)

#: Fine-tuning of an autoencoder with the linear path (``DeepAutoencoder(linear_path=...)``): about
#: 3,000 updates, within 50 to 200 epochs, and no convergence stop before epoch 50. Its network starts
#: at PCA's solution with zero last layers, whose gradients alone are nonzero at first, so the loss
#: falls slowly for a few dozen epochs: a plateau the convergence rule (no gain of ``tol`` for
#: ``n_iter_no_change`` epochs) took for the end, stopping wine (5-d code) after 14 epochs at PCA's
#: error. From there, held-out error against PCA's (4 splits x 2 seeds, standardised data, batches
#: of 10) after about 1,500 / 3,000 updates / 200 epochs: breast cancer 0.886 / 0.909 / 1.017
#: (more updates overfit it), diabetes 0.958 / 0.900 / 0.867, wine 0.854 / - / 0.883.
LINEAR_PATH_FINETUNE_BUDGET = Budget(updates=3000, min_epochs=50, max_epochs=200)

#: CollaborativeRBM training: at least 4,000 updates, within 30 to 500 epochs. On MovieLens-size
#: data (8,658 items in batches of 20: 433 updates per epoch) that is the 30 epochs the defaults were
#: tuned with. On small tables 30 epochs were far too few: synthetic rank-2 ratings (30% observed,
#: 20% of those held out) of 120 x 40 and 1000 x 50 users x items gave a held-out RMSE of 1.23 and 1.21
#: after 30 epochs, worse than predicting the global mean (1.15, 1.18); with this budget (500 and 80
#: epochs) 0.82 and 0.85, and 50 x 400 (items orientation) 1.12 -> 0.65. On MovieLens subsets more
#: epochs changed little (536 users x the 300 most rated items: 0.861 after 30 epochs, 0.866 after
#: 100; 100 users x 1,000 items: 0.907 -> 0.902; the bias baseline 0.860 and 0.928).
COLLABORATIVE_BUDGET = Budget(updates=4000, min_epochs=30, max_epochs=500)

#: ReplicatedSoftmax training (``max_iter="auto"``): at least 3,500 updates, within 100 to 1,000
#: epochs. 20 Newsgroups in batches of 128 (its 4,404-document training split: 35 updates per epoch;
#: all 5,505 documents: 44) keeps the 100 epochs the defaults were tuned with. A small corpus was far
#: from converged after 100 epochs: 300 short synthetic documents of 4 topics gave a held-out
#: perplexity of 52.3 (LDA 51.6, unigrams 59.2), 31.2 after 300 epochs and 30.1 after 1,000 (the
#: budget's); 1,000 20 Newsgroups documents 984 after 100 epochs, 925 after 334 and 906 after 1,000
#: (the budget gives 438).
TOPIC_BUDGET = Budget(updates=3500, min_epochs=100, max_epochs=1000)

#: VAE training: at least 10,000 Adam updates (the MNIST split, 8,000 rows in batches of 128: 160
#: epochs, where the test ELBO has levelled off), within 20 to 500 epochs. Convergence usually stops
#: small data sooner: digits (1,797 rows) stops after 139 epochs with a test ELBO 0.7 nats from that
#: of a fit ten times longer.
VAE_BUDGET = Budget(updates=10000, min_epochs=20, max_epochs=500)


def check_length(value, name: str, *, minimum: int = 1):
    """A training length: "auto" or an int >= ``minimum`` (a clear error naming ``name`` otherwise)."""
    return check_int_or(value, name, minimum=minimum, also=("auto",))


def auto_batch_size(batch_size, n_samples: int) -> int:
    """The minibatch size: ``batch_size`` itself, or for "auto" ``n_samples / TARGET_BATCHES``
    rounded up, clipped to [MIN_BATCH, MAX_BATCH]."""
    if isinstance(batch_size, str):
        return int(min(MAX_BATCH, max(MIN_BATCH, math.ceil(n_samples / TARGET_BATCHES))))
    return int(batch_size)


def check_batch_size(value, name: str = "batch_size", *, allow_auto: bool = True):
    """A minibatch size: an int >= 1, or "auto" where the estimator allows it."""
    return check_int_or(value, name, also=("auto",) if allow_auto else ())


def plan_epochs(length, n_samples: int, batch_size: int, budget: Budget) -> int:
    """Epochs to train: ``length`` itself when it is an int, else the ``budget``'s epochs for
    ``n_samples`` rows in minibatches of ``batch_size``."""
    if not isinstance(length, str):
        return int(length)
    return budget.epochs(math.ceil(n_samples / batch_size))


class Convergence:
    """Stops training once a monitored value has not improved by more than ``tol`` for
    ``n_iter_no_change`` epochs in a row (scikit-learn's MLP rule).

    ``higher_is_better`` for a score (validation accuracy, R^2), lower for a loss. ``stale`` counts
    the epochs since the last improvement; ``best`` is the best value seen.
    """

    def __init__(self, tol: float, n_iter_no_change: int, *, higher_is_better: bool = False):
        self.tol = float(tol)
        self.n_iter_no_change = int(n_iter_no_change)
        self.sign = 1.0 if higher_is_better else -1.0
        self.best = -np.inf
        self.stale = 0

    def update(self, value: float) -> bool:
        """Records one epoch's value; returns whether it improved on the best by more than tol."""
        signed = self.sign * float(value)
        if signed > self.best + self.tol:
            self.best, self.stale = signed, 0
            return True
        self.best = max(self.best, signed)
        self.stale += 1
        return False

    @property
    def converged(self) -> bool:
        return self.stale >= self.n_iter_no_change

    @property
    def best_value(self) -> float:
        return self.sign * self.best


def pretrains(pretrain, visible: str) -> bool:
    """Whether a fine-tuned stack (DBNClassifier, DBNRegressor, DeepAutoencoder) is RBM-pretrained:
    ``pretrain`` itself, or for "auto" whether its bottom RBM has Bernoulli visible units.

    Pretraining is the MNIST recipe (Hinton & Salakhutdinov 2006): on pixels it lowers the
    DBNClassifier's test error and the autoencoder's reconstruction error. On real-valued data
    (Gaussian visible units: ``StandardScaler`` output) it gave a worse start than a random one: a
    Gaussian RBM on a few standardised features learns weak features, the RBMs above them turn off,
    and fine-tuning starts from nearly constant layers. Measured (3-fold cross-validation, the
    500-500-2000 stack): make_classification 300 x 20, 3 classes, 0.693 pretrained against 0.783
    not (MLPClassifier 0.743), and neither fewer (0.517) nor more (0.700) pretraining updates helped;
    the standardised breast cancer autoencoder ((128, 64), 5-d code) 10.5 pretrained against 4.6
    not (PCA 5.1). docs/own-data.md has the tables.

    The regressor pretrained Gaussian inputs until that start was found dead: on make_regression
    (300 x 10, standardised) the bottom RBM's features vary across samples by 0.004, the second
    RBM's units are all off (mean 1e-4) and the top ones constant to 1e-5, so fine-tuning starts at
    the constant prediction with vanishing gradients; Adam left that plateau by epoch 3 for some
    seeds and not in 10 epochs for others, when the convergence rule stopped it at R^2 0. Its edge on
    diabetes (0.451 against 0.332) was that slow start acting as early stopping.

    Those measurements predate the RBM's initial weights scaled to the feature count
    (:func:`deepgm.rbm.initial_weight_std`). With them, pretraining Gaussian inputs is on par with the
    random start (make_classification 0.787 pretrained against 0.763, wine 0.977 against 0.983),
    not better, so "auto" keeps the random start.
    """
    if isinstance(pretrain, str):  # "auto" (validated by the estimator)
        return get_units(visible).binary
    return bool(pretrain)


#: The deep autoencoder's "auto" settings follow Hinton & Salakhutdinov's (2006) MNIST recipe for
#: image-sized data, at least this many rows...
WIDE_MIN_SAMPLES = 5000
#: ...of at least this many features (the MNIST split is 8,000 x 784), and a smaller network otherwise.
WIDE_MIN_FEATURES = 256
#: The recipe's encoder...
WIDE_AUTOENCODER = (1000, 500, 250)
#: ...its fine-tuning weight decay...
WIDE_AUTOENCODER_DECAY = 1e-3
#: ...and its pretraining: at least 3,200 updates per RBM (40 epochs of the MNIST split).
WIDE_PRETRAIN_BUDGET = Budget(updates=3200, min_epochs=10, max_epochs=200)
#: Otherwise two layers of ``NARROW_UNITS_PER_FEATURE`` units per feature, within
#: [``NARROW_MIN_WIDTH``, ``NARROW_MAX_WIDTH``], then half as many.
NARROW_UNITS_PER_FEATURE = 16
NARROW_MIN_WIDTH = 64
NARROW_MAX_WIDTH = 128


def image_sized(n_samples: int, n_features: int) -> bool:
    """Whether data of this shape get the deep autoencoder's MNIST recipe (see the constants above)."""
    return n_samples >= WIDE_MIN_SAMPLES and n_features >= WIDE_MIN_FEATURES


def autoencoder_layer_sizes(n_samples: int, n_features: int) -> tuple:
    """The encoder's hidden layers of ``DeepAutoencoder(hidden_layer_sizes="auto")``.

    (1000, 500, 250) for image-sized data (:func:`image_sized`); else two layers, ``w`` and ``w / 2``
    with ``w = 16 * n_features`` within [64, 128]. The wide stack has 1.5 million weights per half: on
    398 rows of standardised breast cancer (30 features, 5-d code) it reached a held-out error of
    10.97 where PCA reaches 5.11, and no training length, batch size or weight decay tried brought it
    below 7.4; (128, 64) reaches 4.64, and on digits / 16 (1,257 rows, 10-d code) 1.16 against PCA's
    1.29. On four features (iris, 2-d code) (128, 64) overfits 105 rows (0.201 against PCA's 0.170);
    (64, 32) comes within 5% of PCA (0.171-0.178 over three seeds), where PCA is all but optimal.
    """
    if image_sized(n_samples, n_features):
        return WIDE_AUTOENCODER
    width = int(min(NARROW_MAX_WIDTH, max(NARROW_MIN_WIDTH, NARROW_UNITS_PER_FEATURE * n_features)))
    return (width, width // 2)


def autoencoder_pretrain_epochs(pretrain_iter, n_samples: int, n_features: int, batch_size: int) -> int:
    """RBM epochs per layer of a DeepAutoencoder's pretraining: ``pretrain_iter`` itself, or for
    "auto" ``WIDE_PRETRAIN_BUDGET``'s epochs for image-sized data and the RBM's own otherwise.

    On the MNIST split the RBMs' own 10 epochs (800 updates) leave the linear code layer, whose
    learning rate is 0.001, far from trained: after 80 fine-tuning epochs with a decay of 1e-3 the
    test error is 6.28 from 10 pretraining epochs and 5.19 from 40. On digits / 16 (1,257 rows) the
    longer pretraining gained nothing (1.216 and 1.102 over two seeds against 1.160).
    """
    budget = WIDE_PRETRAIN_BUDGET if image_sized(n_samples, n_features) else RBM_BUDGET
    return plan_epochs(pretrain_iter, n_samples, batch_size, budget)


def autoencoder_weight_decay(weight_decay, n_samples: int, n_features: int) -> float:
    """The fine-tuning weight decay of a DeepAutoencoder: ``weight_decay`` itself, or for "auto"
    ``WIDE_AUTOENCODER_DECAY`` for image-sized data and 0 otherwise.

    On the MNIST split (8,000 images, the wide stack, 30-d code, Adam at 1e-3) the fine-tuned network
    overfits without it: the test error is lowest, 7.74, after 55 epochs and rises to 9.45 by epoch
    200; with a decay of 1e-4 it levels off at 7.0, and with 1e-3 and 40 pretraining epochs it falls
    to 4.83 after 200 epochs (seed 0; 4.96-4.98 from epoch 120 to 145). On the small sets the narrow
    networks do not overfit that way and decay only costs accuracy (held-out error at 1e-3 against 0:
    digits / 16 1.386 against 1.160, wine 3.02 against 2.86, iris 0.182 against 0.171;
    docs/own-data.md).
    """
    if isinstance(weight_decay, str):  # "auto" (validated by the estimator)
        return WIDE_AUTOENCODER_DECAY if image_sized(n_samples, n_features) else 0.0
    return float(weight_decay)
