"""The Python random-stream purposes: distinct, keyed as the estimators always keyed them, and apart
from the RBM's per-epoch slot."""

import numpy as np
import pytest

import deepgm
from deepgm._streams import Purpose, child_seeds, generator, key, rbm_epoch_generator, rbm_init_generator

# A seed of one 32-bit word, one of two words, and the largest fit seed (seed_from gives 64 bits).
SEEDS = [7, 2**40 + 3, 2**64 - 1]
INDEXED = {Purpose.VAE_EPOCH_ORDER, Purpose.VAE_WARMUP_NOISE, Purpose.FINETUNE_EPOCH_ORDER}


def _fingerprint(entropy):
    """What numpy seeds a generator with: equal fingerprints mean the same stream."""
    return tuple(np.random.SeedSequence(entropy).generate_state(4, np.uint64))


def test_purposes_are_distinct_and_not_zero():
    values = [int(p) for p in Purpose]
    assert len(set(values)) == len(values)
    assert 0 not in values  # a zero purpose would read the stream of the bare seed


@pytest.mark.parametrize("seed", SEEDS)
def test_distinct_purposes_never_share_a_stream(seed):
    owner = {}
    for purpose in Purpose:
        indices = [()] + ([(e,) for e in range(300)] if purpose in INDEXED else [])
        for index in indices:
            owner.setdefault(_fingerprint(key(seed, purpose, *index)), set()).add(purpose)
    shared = {fp: p for fp, p in owner.items() if len(p) > 1}
    assert not shared


def test_the_collision_rule_the_module_states_holds_in_numpy():
    """A short key is padded with zero words: an unindexed purpose and index 0 of the same purpose
    read one stream, which is why purposes must differ rather than their indices."""
    assert _fingerprint(key(7, Purpose.VAE_INIT)) == _fingerprint(key(7, Purpose.VAE_INIT, 0))
    assert _fingerprint(key(7, Purpose.VAE_INIT)) != _fingerprint(key(7, Purpose.VAE_INIT, 1))


@pytest.mark.parametrize("seed", SEEDS)
def test_generators_read_the_keys_the_estimators_have_always_used(seed):
    """The values are part of every random_state's results: a renumbering would change every model."""
    s = seed % 2**63
    literal = {
        Purpose.VAE_INIT: [s, 3],
        Purpose.DBN_INIT: [s, 5],
        Purpose.AUTOENCODER_INIT: [s, 9],
        Purpose.VALIDATION_SPLIT: [s, 77],
        Purpose.LAYER_SEEDS: [s, 4242],
    }
    for purpose, entropy in literal.items():
        np.testing.assert_array_equal(generator(seed, purpose).random(8), np.random.default_rng(entropy).random(8))
    for epoch in (0, 1, 12):
        np.testing.assert_array_equal(
            generator(seed, Purpose.VAE_EPOCH_ORDER, epoch).permutation(50), np.random.default_rng([s, 11, epoch]).permutation(50)
        )
        np.testing.assert_array_equal(
            generator(seed, Purpose.FINETUNE_EPOCH_ORDER, epoch).permutation(50),
            np.random.default_rng([s, 1_000_003, epoch]).permutation(50),
        )
        np.testing.assert_array_equal(
            generator(seed, Purpose.VAE_WARMUP_NOISE, epoch).standard_normal(8), np.random.default_rng([s, 29, epoch]).standard_normal(8)
        )
        np.testing.assert_array_equal(rbm_epoch_generator(seed, epoch).permutation(50), np.random.default_rng([s, epoch]).permutation(50))
    np.testing.assert_array_equal(rbm_init_generator(seed).random(8), np.random.default_rng(seed).random(8))
    expected = [int(v) for v in np.random.SeedSequence([s, 4242]).generate_state(3, np.uint64)]
    assert child_seeds(seed, Purpose.LAYER_SEEDS, 3) == expected


def test_a_bare_number_is_not_a_purpose():
    with pytest.raises(TypeError, match="Purpose"):
        key(7, 3)


@pytest.fixture(scope="module")
def data():
    X, y = deepgm.datasets.load_mnist()
    return X[:80], y[:80]


SMALL = dict(pretrain_iter=1, finetune_iter=1, random_state=3)
STACKS = {
    "DBN": lambda X, y: deepgm.DBN((8, 6, 4), n_iter=2, random_state=3).fit(X),
    "DBNClassifier": lambda X, y: deepgm.DBNClassifier((8, 6), early_stopping=True, **SMALL).fit(X, y),
    "DBNRegressor": lambda X, y: deepgm.DBNRegressor((8,), **SMALL).fit(X, y.astype(float)),
    "DeepAutoencoder": lambda X, y: deepgm.DeepAutoencoder((8,), n_components=4, **SMALL).fit(X),
}


@pytest.mark.parametrize("name", STACKS)
def test_the_rbm_epoch_slot_never_meets_a_purpose(name, data):
    """An RBM's epoch e reads [seed, e], the key of purpose e: safe only while no RBM inside a stack
    trains under the seed the stack's purposes use. Each layer's RBM has a seed of its own."""
    est = STACKS[name](*data)
    rbm_seeds = [rbm._fit_seed for rbm in est.rbms_]
    assert len(rbm_seeds) == len(est.rbms_) > 0
    assert len(set(rbm_seeds)) == len(rbm_seeds)
    assert est._fit_seed not in rbm_seeds
