"""The random draws made in Python, each named by its purpose (the kernels' own are in rust/rng.rs).

The Rust kernels key their streams by (seed, step, purpose, chunk), so that a model does not depend
on the number of threads. The estimators draw a few things in Python too: initial weights, the
order of the minibatches in an epoch, a validation split, the seeds of a stack's layers. Each reads
the NumPy generator

    numpy.random.default_rng([seed % 2**63, purpose, *index])

where ``seed`` is the estimator's fit seed (``_base.seed_from(random_state)``), ``purpose`` one of
the :class:`Purpose` values below and ``index`` the epoch for the draws made once per epoch. The
values are the ones the estimators used before they were named here, so that a given random_state
keeps giving bit-identical models.

When two keys read the same stream
----------------------------------
numpy's ``SeedSequence`` hashes a key's 32-bit words into a pool of four, padding a shorter key with
zero words: under one seed, ``[seed, p]`` and ``[seed, p, 0]`` are the same key whenever the key fits
in four words. So two draws under one seed share a stream when their purposes are equal, or when one
is unindexed and the other is at index 0; distinct purposes never share one (tests/test_streams.py
checks this against numpy).

The RBM's per-epoch slot
------------------------
The minibatch orders of an RBM's fit or partial_fit call that starts at epoch ``e`` read ``[seed, e]``
(:func:`rbm_epoch_generator`): the epoch sits where a purpose goes, so a call starting at epoch 3
reads the stream of purpose 3 under the same seed. That is safe
only because an RBM's fit seed is used by no purpose: a stack's RBMs get seeds of their own
(:data:`Purpose.LAYER_SEEDS`), and a standalone RBM draws nothing else in Python but its initial
weights, from ``[seed]``. New draws take a new :class:`Purpose`, never this layout.

One collision remains inside the RBM, kept so that its results do not change: for a seed below
2**63, ``[seed]`` and ``[seed, 0]`` are the same key, so the initial weights and the order of the first
epoch read the same stream. Giving the RBM purposes of its own would end it, and change every RBM's
results.
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = ["Purpose", "key", "generator", "child_seeds", "rbm_init_generator", "rbm_epoch_generator"]


class Purpose(enum.IntEnum):
    """What a Python draw is for; the values are part of every saved random_state's results."""

    #: VAE and CVAE: the encoder's and decoder's initial weights.
    VAE_INIT = 3
    #: DBNClassifier and DBNRegressor: the initial weights of the layers not pretrained (the output
    #: layer; every layer with pretrain=False).
    DBN_INIT = 5
    #: DeepAutoencoder without pretraining: the encoder's initial weights.
    AUTOENCODER_INIT = 9
    #: VAE and CVAE, indexed by epoch: the order of the minibatches.
    VAE_EPOCH_ORDER = 11
    #: VAE and CVAE, indexed by training step: the noise eps of a KL warm-up step, whose gradients
    #: are computed in Python (the fused kernel draws its own noise in Rust).
    VAE_WARMUP_NOISE = 29
    #: DBNClassifier, DBNRegressor and DeepAutoencoder: the rows held out for early stopping.
    VALIDATION_SPLIT = 77
    #: DBN, DBNClassifier, DBNRegressor and DeepAutoencoder: the random_state of each layer's RBM.
    LAYER_SEEDS = 4242
    #: Fine-tuning (DBNClassifier, DBNRegressor, DeepAutoencoder), indexed by epoch: the minibatch order.
    FINETUNE_EPOCH_ORDER = 1_000_003


def key(seed: int, purpose: Purpose, *index: int) -> list[int]:
    """The ``SeedSequence`` entropy of draw ``purpose`` (at ``index``, e.g. the epoch) under ``seed``."""
    if not isinstance(purpose, Purpose):
        raise TypeError(f"purpose must be a deepgm._streams.Purpose; got {purpose!r}")
    return [int(seed) % 2**63, int(purpose), *(int(i) for i in index)]


def generator(seed: int, purpose: Purpose, *index: int) -> np.random.Generator:
    """The NumPy generator of draw ``purpose`` (at ``index``) under ``seed``."""
    return np.random.default_rng(key(seed, purpose, *index))


def child_seeds(seed: int, purpose: Purpose, n: int) -> list[int]:
    """``n`` 64-bit seeds derived from ``seed`` for ``purpose``: the random_state of each of ``n``
    sub-estimators (a stack's RBMs), unrelated to one another and to ``seed``'s own streams."""
    return [int(s) for s in np.random.SeedSequence(key(seed, purpose)).generate_state(n, np.uint64)]


def rbm_init_generator(seed: int) -> np.random.Generator:
    """An RBM's initial weights: the key ``[seed]``."""
    return np.random.default_rng(int(seed))


def rbm_epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """The minibatch orders of an RBM's fit or partial_fit call that starts at epoch ``epoch`` (one
    generator for all the call's epochs): the key ``[seed % 2**63, epoch]``, the older layout with the
    epoch in the purpose slot (see the module's notes)."""
    return np.random.default_rng([int(seed) % 2**63, int(epoch)])
