"""ReplicatedSoftmax: conditionals (with the length-scaled hidden bias) and CD statistics against float64
oracles, exact log Z against a sum over word sequences, AIS against exact, sampling against the exact
distribution, determinism, dtypes, bad input, persistence and LatentDirichletAllocation's interface."""

from __future__ import annotations

import pickle

import _softmax_oracles as oracle
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

import deepgm
from deepgm import ReplicatedSoftmax, _core


def topic_documents(n_docs, rng, n_words=30, n_topics=3, mean_length=20):
    """Documents drawn from a mixture of word distributions concentrated on different words."""
    topics = np.full((n_topics, n_words), 0.2 / n_words)
    for t in range(n_topics):
        topics[t, t * (n_words // n_topics) : (t + 1) * (n_words // n_topics)] += 0.8 / (n_words // n_topics)
    topics /= topics.sum(1, keepdims=True)
    lengths = rng.poisson(mean_length, n_docs) + 1
    labels = rng.integers(0, n_topics, n_docs)
    counts = np.stack([rng.multinomial(d, topics[t]) for d, t in zip(lengths, labels)])
    return sp.csr_matrix(counts.astype(np.int64)), labels


def arrays(C, dtype=np.float64):
    C = sp.csr_matrix(C)
    return C.indptr.astype(np.int64), C.indices.astype(np.int64), C.data.astype(dtype)


def params(n_words, n_hidden, rng, dtype=np.float64, scale=0.5):
    W = rng.normal(0, scale, (n_hidden, n_words)).astype(dtype)
    b = rng.normal(0, scale, n_words).astype(dtype)
    a = rng.normal(0, 0.2 * scale, n_hidden).astype(dtype)
    return W, b, a


# --------------------------------------------------------------------------------------------------
# conditionals, gradient statistics, partition function, sampling


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conditionals_scale_the_hidden_bias_by_the_length(dtype, rng):
    counts = rng.poisson(0.7, (9, 12))
    counts[2] = 0  # an empty document
    counts[5] *= 10  # a long one
    W, b, a = params(12, 5, rng, dtype)
    H = _core.rs_hidden(*arrays(counts, dtype), W, a)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(H, oracle.rs_hidden(counts, W, a), rtol=tol, atol=tol)
    np.testing.assert_array_equal(H[2], 0.5)
    # The same words twice over: the hidden input doubles, bias included.
    np.testing.assert_allclose(
        _core.rs_hidden(*arrays(2 * counts[:1], dtype), W, a), oracle.rs_hidden(2 * counts[:1], W, a), rtol=tol, atol=tol
    )
    log_p_star = _core.rs_log_unnormalized(*arrays(counts, dtype), W, b, a)
    assert log_p_star.dtype == np.float64
    np.testing.assert_allclose(log_p_star, oracle.rs_log_p_star(counts, W, b, a), rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("k", [1, 3])
def test_cd_statistics_match_float64_oracle(k, rng):
    counts = rng.poisson(1.0, (10, 8))
    counts[4] = 0
    W, b, a = params(8, 4, rng)
    state = [W.copy(), b.copy(), a.copy(), np.zeros_like(W), np.zeros_like(b), np.zeros_like(a)]
    rows = np.array([3, 4, 9, 0, 6], dtype=np.int64)
    recon = _core.rs_cd_step(
        *arrays(counts),
        *state,
        rows=rows,
        k=k,
        learning_rate=1.0,
        momentum=0.0,
        weight_decay=0.0,
        seed=5,
        step=2,
        return_reconstruction=True,
    )
    assert recon.shape == (5, 8)
    np.testing.assert_array_equal(recon.sum(1), counts[rows].sum(1))  # D words are redrawn, D kept
    dW, db, da = oracle.rs_gradients(counts[rows], recon, W, a)
    np.testing.assert_allclose(state[0] - W, dW, atol=1e-12)
    np.testing.assert_allclose(state[1] - b, db, atol=1e-12)
    np.testing.assert_allclose(state[2] - a, da, atol=1e-12)


def test_exact_log_partition_matches_the_sum_over_word_sequences(rng):
    for n_words, n_hidden, length in [(3, 4, 3), (4, 2, 5), (2, 6, 1), (3, 3, 0)]:
        W, b, a = params(n_words, n_hidden, rng, scale=0.8)
        got = _core.rs_log_partition_exact(W, b, a, np.array([length, length + 2]))
        assert got[0] == pytest.approx(oracle.rs_log_partition(W, b, a, length), abs=1e-10)
        assert got[1] == pytest.approx(oracle.rs_log_partition(W, b, a, length + 2), abs=1e-10)
    with pytest.raises(ValueError, match="method='ais'"):
        _core.rs_log_partition_exact(*params(3, 25, rng), np.array([4]))


def test_ais_is_within_half_a_nat_of_exact_for_a_fitted_model():
    C, _ = topic_documents(300, np.random.default_rng(0))
    model = ReplicatedSoftmax(10, max_iter=15, learning_rate=0.01, random_state=0).fit(C)
    for length in (1, 12, 40, 150, 600):
        exact = model.log_partition(length, method="exact")
        ais = model.log_partition(length, n_chains=100, n_steps=50)
        assert abs(ais - exact) < 0.5, (length, float(ais), float(exact))
        assert ais.std_error < 0.5
    # score_samples uses one estimate per distinct length: with "exact", log p sums to <= 0 over the
    # count vectors of a tiny model (checked exactly in the test below).
    lp = model.score_samples(C[:20], method="exact")
    assert np.all(lp <= 0)


def test_exact_log_partition_beyond_max_units_names_the_method_not_the_kernel(rng):
    model = ReplicatedSoftmax(6, max_iter=1, random_state=0).fit(sp.csr_matrix(rng.poisson(1.0, (20, 8))))
    with pytest.raises(
        ValueError, match=r"^method='exact' must be at most 5 hidden units to enumerate; got 6 hidden units \(use method='ais'\)$"
    ):
        model.log_partition(3, method="exact", max_units=5)


def test_score_samples_are_normalised_log_probabilities(rng):
    """For a tiny vocabulary, exp(score_samples) summed over every document of length D (weighted by its
    number of word orders) is 1."""
    model = ReplicatedSoftmax(3, max_iter=2, random_state=0).fit(sp.csr_matrix(rng.poisson(1.0, (20, 4))))
    vectors = oracle.count_vectors(4, 5)
    lp = model.score_samples(vectors.astype(np.int64), method="exact")
    assert np.exp(oracle.log_sequences(vectors) + lp).sum() == pytest.approx(1.0, abs=1e-5)


def test_sampling_matches_the_exact_distribution(rng):
    """4 words, documents of 3 words: 20 count vectors; 5,000 independent chains against the exact
    p(v), chi-square."""
    W, b, a = params(4, 2, np.random.default_rng(7), scale=1.2)
    vectors, probs = oracle.rs_count_distribution(W, b, a, 3)
    samples = _core.rs_sample(W, b, a, n_samples=5000, doc_length=3, n_steps=20, seed=3)
    assert samples.shape == (5000, 4)
    index = {tuple(v): i for i, v in enumerate(vectors)}
    counts = np.zeros(len(vectors))
    for s in samples:
        counts[index[tuple(s)]] += 1
    # 19 degrees of freedom: P(chi2 > 43.82) = 0.001.
    assert oracle.chi_square(counts, probs) < 43.82
    # The test tells the model from independent words drawn from softmax(b) (no hidden units).
    base = np.exp(oracle.log_sequences(vectors) + vectors @ b - 3 * np.logaddexp.reduce(b))
    assert oracle.chi_square(counts, base) > 43.82
    np.testing.assert_array_equal(samples, _core.rs_sample(W, b, a, n_samples=5000, doc_length=3, n_steps=20, seed=3, n_jobs=1))


# --------------------------------------------------------------------------------------------------
# the estimator


@pytest.fixture(scope="module")
def corpus():
    return topic_documents(400, np.random.default_rng(1))


@pytest.fixture(scope="module")
def fitted(corpus):
    C, _ = corpus
    return ReplicatedSoftmax(8, max_iter=20, learning_rate=0.01, random_state=0, ais_chains=20, ais_steps=20).fit(C)


def test_learns_topics_better_than_the_unigram_model(fitted, corpus):
    C, labels = corpus
    test, _ = topic_documents(100, np.random.default_rng(2))
    freq = np.asarray(C.sum(0)).ravel() + 0.5
    freq /= freq.sum()
    unigram = np.exp(-(test.multiply(np.log(freq)).sum()) / test.sum())
    assert fitted.perplexity(test) < 0.9 * unigram
    # Each topic's words: some hidden unit's top words lie in one topic's block.
    blocks = [set(range(t * 10, (t + 1) * 10)) for t in range(3)]
    tops = fitted.top_words(n_words=5)
    assert any(set(t) <= block for t in tops for block in blocks)


def short_documents(n_docs, rng, n_topics=4, topic_words=14, common_words=13):
    """Short documents (5-24 words), each of one topic: every word is one of its topic's words with
    probability 0.6, else one of the common words every topic shares (as "the", "a", "of")."""
    n_words = n_topics * topic_words + common_words
    counts = np.zeros((n_docs, n_words), dtype=np.int64)
    for d in range(n_docs):
        topic = d % n_topics
        for _ in range(rng.integers(5, 25)):
            own = rng.random() < 0.6
            w = topic * topic_words + rng.integers(topic_words) if own else n_topics * topic_words + rng.integers(common_words)
            counts[d, w] += 1
    return sp.csr_matrix(counts)


def test_defaults_train_a_small_corpus_to_convergence():
    """max_iter="auto" gives 300 documents (3 minibatches of 128) 1,000 epochs: the held-out
    perplexity falls to about half the unigram model's, where a fixed 100 epochs stopped at 0.85-0.92 of it."""
    train, test = short_documents(300, np.random.default_rng(0)), short_documents(100, np.random.default_rng(1))
    freq = np.asarray(train.sum(0)).ravel() + 0.5
    unigram = np.exp(-(test.multiply(np.log(freq / freq.sum())).sum()) / test.sum())
    model = ReplicatedSoftmax(8, random_state=0).fit(train)
    assert model.n_iter_ == len(model.history_["epoch"]) == 1000
    assert model.perplexity(test) < 0.7 * unigram
    from deepgm._schedule import TOPIC_BUDGET, plan_epochs

    # 20 Newsgroups (all of it, and the 80% the documented results train on): the tuned length
    assert plan_epochs("auto", 5505, 128, TOPIC_BUDGET) == plan_epochs("auto", 4404, 128, TOPIC_BUDGET) == 100
    assert len(ReplicatedSoftmax(4, max_iter=3, random_state=0).fit(train).history_["epoch"]) == 3


def test_the_monitored_reconstruction_perplexity_matches_a_float64_oracle(fitted, corpus):
    """history_'s per-epoch figure: exp of the mean per-word cross-entropy of the documents under
    softmax(b + W^T p(h | v)), p(h | v) and the product in float64 against the model's own."""
    C, _ = corpus
    counts = C.toarray()
    H = oracle.rs_hidden(counts, fitted.components_, fitted.intercept_hidden_)
    logits = H @ oracle.f64(fitted.components_) + oracle.f64(fitted.intercept_visible_)
    log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    expected = np.exp(-(counts * log_probs).sum() / counts.sum())
    assert fitted._reconstruction_perplexity(C) == pytest.approx(expected, rel=1e-5)


def test_lda_interface(fitted, corpus):
    """Code written for LatentDirichletAllocation runs: the same constructor names and methods."""
    from sklearn.decomposition import LatentDirichletAllocation

    C, _ = corpus
    shared = ("n_components", "max_iter", "batch_size", "random_state", "n_jobs", "verbose")
    assert set(shared) <= set(LatentDirichletAllocation().get_params()) & set(fitted.get_params())
    for name in ("fit", "partial_fit", "transform", "fit_transform", "score", "perplexity", "get_feature_names_out"):
        assert callable(getattr(fitted, name))
    assert fitted.components_.shape == (8, 30)
    assert fitted.transform(C).shape == (400, 8)
    assert fitted.n_iter_ == 20 and fitted.n_batch_iter_ == 20 * 4
    scores = fitted.score_samples(C[:50])
    assert fitted.score(C[:50]) == pytest.approx(scores.sum())
    assert fitted.perplexity(C[:50]) == pytest.approx(np.exp(-scores.sum() / C[:50].sum()))


def test_partial_fit_accumulates_word_frequencies(corpus):
    C, _ = corpus
    model = ReplicatedSoftmax(4, random_state=0)
    model.partial_fit(C[:200]).partial_fit(C[200:])
    freq = (np.asarray(C.sum(0)).ravel() + 0.5) / (C.sum() + 0.5 * C.shape[1])
    np.testing.assert_allclose(model.word_frequencies_, freq)
    assert model.n_iter_ == 2 and model.n_batch_iter_ == 4


def test_a_pipeline_with_count_vectorizer():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    docs = ["apples and pears", "pears and plums", "stocks and bonds", "bonds and shares"] * 10
    y = [0, 0, 1, 1] * 10
    topics = ReplicatedSoftmax(2, batch_size=4, max_iter=50, learning_rate=0.05, random_state=0)
    pipe = make_pipeline(CountVectorizer(), topics, LogisticRegression())
    assert pipe.fit(docs, y).score(docs, y) == 1.0
    vec = pipe[0]
    words = pipe[1].top_words(vec.get_feature_names_out(), n_words=2)
    assert len(words) == 2 and all(isinstance(w, str) for row in words for w in row)


def test_sample_and_top_words(fitted):
    docs = fitted.sample(6, doc_length=25, n_steps=50)
    assert docs.shape == (6, 30) and docs.dtype == np.int64
    np.testing.assert_array_equal(docs.sum(1), 25)
    assert not np.array_equal(docs, fitted.sample(6, doc_length=25, n_steps=50)), "successive calls draw afresh"
    vocab = np.array([f"w{i}" for i in range(30)])
    words = fitted.top_words(vocab, n_words=3)
    order = np.argsort(-fitted.components_[0], kind="stable")[:3]
    assert words[0] == vocab[order].tolist()
    with pytest.raises(ValueError, match="vocabulary must hold one word per column"):
        fitted.top_words(vocab[:5])


def test_thread_count_independence(corpus):
    C, _ = corpus

    def fit(n_jobs):
        return ReplicatedSoftmax(6, max_iter=2, k=2, random_state=3, n_jobs=n_jobs).fit(C)

    one, two = fit(1), fit(2)
    np.testing.assert_array_equal(one.components_, two.components_)
    np.testing.assert_array_equal(one.intercept_visible_, two.intercept_visible_)
    np.testing.assert_array_equal(one.intercept_hidden_, two.intercept_hidden_)
    np.testing.assert_array_equal(one.log_partition(17, n_chains=8, n_steps=5), two.log_partition(17, n_chains=8, n_steps=5))


def test_log_partition_is_cached_per_length_and_call_order_free(fitted):
    model = pickle.loads(pickle.dumps(fitted))
    model._log_z = {}
    first = model.log_partition(33, n_chains=8, n_steps=10)
    assert model.log_partition(33, n_chains=8, n_steps=10) is not first  # a fresh object ...
    assert float(model.log_partition(33, n_chains=8, n_steps=10)) == float(first)  # ... from the cache
    other = pickle.loads(pickle.dumps(fitted))
    other._log_z = {}
    other._log_partitions([5, 33, 70], n_chains=8, n_steps=10)
    assert float(other.log_partition(33, n_chains=8, n_steps=10)) == float(first)


def test_output_dtypes_follow_the_input(corpus):
    C, _ = corpus
    for model_dtype in ("float32", "float64"):
        model = ReplicatedSoftmax(4, max_iter=1, random_state=0, dtype=model_dtype).fit(C)
        assert model.components_.dtype == model_dtype
        assert model.transform(C.astype(np.float32)).dtype == np.float32
        assert model.transform(C).dtype == np.float64  # int64 counts
        assert model.transform(C.astype(np.float64).toarray()).dtype == np.float64
        assert model.score_samples(C[:3]).dtype == np.float64


# --------------------------------------------------------------------------------------------------
# bad input


def test_refuses_bad_counts_with_clear_errors(fitted):
    model = ReplicatedSoftmax(4, max_iter=1)
    with pytest.raises(ValueError, match=r"X must hold word counts \(non-negative integers\); got -1"):
        model.fit(np.array([[1, -1], [2, 0]]))
    with pytest.raises(ValueError, match=r"X must hold word counts \(non-negative integers\); got 1.5"):
        model.fit(sp.csr_matrix(np.array([[1.5, 0], [2, 0]])))
    with pytest.raises(ValueError, match="X"):
        model.fit(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="X holds no words"):
        model.fit(sp.csr_matrix((3, 5)))
    with pytest.raises(ValueError, match="X has 3 features"):
        fitted.transform(np.ones((2, 3), dtype=int))
    with pytest.raises(ValueError, match="got -2"):
        fitted.score_samples(-2 * np.ones((1, 30), dtype=int))
    with pytest.raises(ValueError, match="method must be one of"):
        fitted.log_partition(3, method="guess")
    with pytest.raises(ValueError, match="doc_length"):
        fitted.log_partition(-1)
    with pytest.raises(ValueError, match="n_samples"):
        fitted.sample(0)


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("n_components", 0, "n_components"),
        ("k", 0, "k"),
        ("learning_rate", 0.0, "learning_rate"),
        ("max_iter", 0, "max_iter"),
        ("batch_size", 0, "batch_size"),
        ("ais_steps", 0, "ais_steps"),
        ("weight_decay", -1.0, "weight_decay"),
    ],
)
def test_refuses_bad_hyperparameters(param, value, match, corpus):
    C, _ = corpus
    model = ReplicatedSoftmax(4).set_params(**{param: value})
    with pytest.raises(ValueError, match=match):
        model.fit(C)
    assert not hasattr(model, "components_")


def test_kernels_refuse_malformed_documents():
    W, b, a = params(3, 2, np.random.default_rng(0))
    ptr, idx = np.array([0, 1], dtype=np.int64), np.array([0], dtype=np.int64)
    with pytest.raises(ValueError, match="x_data"):
        _core.rs_hidden(ptr, idx, np.array([-1.0]), W, a)
    with pytest.raises(ValueError, match="x_indices"):
        _core.rs_hidden(ptr, np.array([5], dtype=np.int64), np.array([1.0]), W, a)
    with pytest.raises(ValueError, match="rows"):
        _core.rs_cd_step(
            ptr,
            idx,
            np.array([1.0]),
            W.copy(),
            b.copy(),
            a.copy(),
            np.zeros_like(W),
            np.zeros_like(b),
            np.zeros_like(a),
            rows=np.array([2]),
            seed=0,
            step=0,
        )


# --------------------------------------------------------------------------------------------------
# persistence


def test_save_load_pickle_and_clone(corpus, tmp_path):
    C, _ = corpus
    model = ReplicatedSoftmax(5, max_iter=2, random_state=0, ais_chains=4, ais_steps=5).fit(C)
    want_scores = model.score_samples(C[:30])
    want_h = model.transform(C[:30])
    path = model.save(tmp_path / "rsm.safetensors")
    for other in (deepgm.load(path), pickle.loads(pickle.dumps(model))):
        assert type(other) is ReplicatedSoftmax
        np.testing.assert_array_equal(other.transform(C[:30]), want_h)
        np.testing.assert_array_equal(other.score_samples(C[:30]), want_scores)
        np.testing.assert_array_equal(other.sample(3, 10, n_steps=5), pickle.loads(pickle.dumps(model)).sample(3, 10, n_steps=5))
    twin = clone(model)
    assert not hasattr(twin, "components_")
    np.testing.assert_array_equal(twin.fit(C).components_, model.components_)


def test_a_pandas_sparse_dataframe_is_read_as_its_sparse_matrix():
    """As LatentDirichletAllocation reads it: the stored entries are the counts, the column names the
    feature names."""
    import pandas as pd

    C, _ = topic_documents(60, np.random.default_rng(0))
    C = sp.csr_matrix(C)
    frame = pd.DataFrame.sparse.from_spmatrix(C, columns=[f"word{i}" for i in range(C.shape[1])])
    from_frame = ReplicatedSoftmax(4, max_iter=2, random_state=0).fit(frame)
    from_matrix = ReplicatedSoftmax(4, max_iter=2, random_state=0).fit(C)
    np.testing.assert_array_equal(from_frame.components_, from_matrix.components_)
    np.testing.assert_array_equal(from_frame.transform(frame), from_matrix.transform(C))
    assert list(from_frame.feature_names_in_[:2]) == ["word0", "word1"]
