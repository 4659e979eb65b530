"""The Replicated Softmax topic model (Salakhutdinov & Hinton, NIPS 2009), with the interface of
scikit-learn's :class:`~sklearn.decomposition.LatentDirichletAllocation`.

A document is its word counts v over a vocabulary, of length D = sum(v). Each of its D words is a softmax
unit over the vocabulary; all D share the weights W (``components_``, n_components x n_words) and the
visible biases b, and the hidden biases a are scaled by D:

    p(h_j = 1 | v) = sigmoid(D a_j + W_j . v)
    given h, the D words are independent draws from softmax(b + W^T h)
    log p*(v) = b . v + sum_j softplus(D a_j + W_j . v)

The normaliser of p* depends on D: ``Z_D = sum_h exp(D phi(h))`` over the word sequences of length D,
with ``phi(h) = a.h + log sum_k exp(b_k + (W^T h)_k)`` (the visible units summed out). ``log p(v) =
log p*(v) - log Z_D`` needs ``log Z_D`` once per distinct document length (cached): exactly, by enumerating
the 2^n_components hidden states of small models, or by annealed importance sampling. D acts as an
inverse temperature of the hidden units' model ``exp(D phi(h))``, so the AIS chains anneal h from D = 0
(uniform) and pass every length on the way: one run serves all lengths. Perplexity is LDA's:
``exp(- sum_n log p(v_n) / sum_n D_n)``.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import validate_data

from . import _core
from ._base import (
    DeepGMEstimator,
    _named_errors,
    as_output,
    batch_rows,
    check_number,
    check_option,
    check_positive_int,
    deferred_interrupts,
    interruption_point,
    matmul,
    seed_from,
)
from ._failed_fit import kept_if_trained
from ._schedule import TOPIC_BUDGET, check_length, plan_epochs
from ._sparse import as_csr, csr_arrays
from ._units import SOFTMAX
from .rbm import LogPartition, _summarise_ais

__all__ = ["ReplicatedSoftmax"]

#: Documents whose reconstruction is scored after each epoch.
_MONITOR_DOCS = 500


class ReplicatedSoftmax(ClassNamePrefixFeaturesOutMixin, TransformerMixin, DeepGMEstimator):
    """Replicated Softmax: an undirected topic model of word counts (Salakhutdinov & Hinton 2009).

    Its interface is that of :class:`sklearn.decomposition.LatentDirichletAllocation` (``fit``,
    ``partial_fit``, ``transform``, ``components_``, ``score``, ``perplexity``, ``max_iter``), so code
    written for LDA works with it; ``transform`` gives the hidden units' probabilities p(h | v), binary
    features rather than topic proportions. Beyond LDA: ``score_samples`` (log p(v) per document),
    ``log_partition``, ``sample`` and ``top_words``.

    Parameters
    ----------
    n_components : int, default=50
        Number of hidden units ("topics").
    k : int, default=1
        Gibbs steps of the negative phase (CD-k).
    learning_rate : float, default=0.005
        Step size. The gradients grow with the documents' lengths; long documents want small steps (the
        hidden biases' step is also divided by the minibatch's mean length).
    momentum : float, default=0.5
        Momentum of the first ``initial_momentum_epochs`` epochs.
    final_momentum : float, default=0.9
    initial_momentum_epochs : int, default=5
    weight_decay : float, default=0.01
        L2 penalty on ``components_``.
    batch_size : int, default=128
        Documents per minibatch.
    max_iter : int or "auto", default="auto"
        Epochs of ``fit`` (LDA's name for it). "auto": at least 3,500 minibatch updates within 100 to
        1,000 epochs: 100 epochs for 4,400 documents or more in batches of 128, more for a smaller
        corpus, which 100 epochs left far from converged.
    ais_chains : int, default=50
        AIS runs in ``score_samples``, ``score`` and ``perplexity`` (each serves every length).
    ais_steps : int, default=20
        AIS steps per word of length at the start of the annealing: the length interval [n, n + 1] gets
        ``round(ais_steps / (1 + n / 10))`` steps, at least one (fine steps while the hidden units'
        distribution is broad, one per word once it is peaked).
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation, shuffling and sampling (also AIS). The same value gives the same model
        for any ``n_jobs``.
    dtype : {"float32", "float64"}, default="float32"
    n_jobs : int or None, default=None
        Threads for the Rust kernels (None or -1: all cores; -2: all but one, as in joblib). Results
        do not depend on it.
    verbose : int, default=0

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_words)
        W.
    intercept_visible_ : ndarray of shape (n_words,)
        b, the word biases; starts at the log word frequencies.
    intercept_hidden_ : ndarray of shape (n_components,)
        a, scaled by each document's length.
    word_frequencies_ : ndarray of shape (n_words,)
        Smoothed word frequencies of the training data (the initial word biases; float64).
    n_iter_ : int
        Epochs trained.
    n_batch_iter_ : int
        Minibatch updates made.
    history_ : dict of lists
        Per epoch: ``epoch``, ``reconstruction_perplexity`` (of up to 500 training documents under
        softmax(b + W^T p(h | v)): a fast proxy, not the model's perplexity) and ``time`` (seconds).

    Examples
    --------
    >>> from sklearn.feature_extraction.text import CountVectorizer
    >>> from deepgm import ReplicatedSoftmax
    >>> docs = ["apples and pears", "pears and plums", "stocks and bonds", "bonds and shares"] * 10
    >>> vectorizer = CountVectorizer()
    >>> X = vectorizer.fit_transform(docs)
    >>> model = ReplicatedSoftmax(n_components=2, batch_size=4, max_iter=50, learning_rate=0.05, random_state=0).fit(X)
    >>> model.transform(X).shape
    (40, 2)
    """

    _param_names = ("components_", "intercept_visible_", "intercept_hidden_", "word_frequencies_")
    _state_names = ("components_velocity_", "intercept_visible_velocity_", "intercept_hidden_velocity_", "n_batch_iter_", "n_iter_")
    _fitted_attribute = "components_"

    def __init__(
        self,
        n_components=50,
        *,
        k=1,
        learning_rate=0.005,
        momentum=0.5,
        final_momentum=0.9,
        initial_momentum_epochs=5,
        weight_decay=0.01,
        batch_size=128,
        max_iter="auto",
        ais_chains=50,
        ais_steps=20,
        random_state=None,
        dtype="float32",
        n_jobs=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.k = k
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.final_momentum = final_momentum
        self.initial_momentum_epochs = initial_momentum_epochs
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.ais_chains = ais_chains
        self.ais_steps = ais_steps
        self.random_state = random_state
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose

    # -- validation ---------------------------------------------------------------------------------

    def _check_params(self):
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.k, "k")
        check_number(self.learning_rate, "learning_rate", low=0, low_open=True)
        check_number(self.momentum, "momentum", low=0, high=1, high_open=True)
        check_number(self.final_momentum, "final_momentum", low=0, high=1, high_open=True)
        check_positive_int(self.initial_momentum_epochs, "initial_momentum_epochs", minimum=0)
        check_number(self.weight_decay, "weight_decay", low=0)
        check_positive_int(self.batch_size, "batch_size")
        check_length(self.max_iter, "max_iter")
        check_positive_int(self.ais_chains, "ais_chains")
        check_positive_int(self.ais_steps, "ais_steps")
        self._check_common_params()

    def _counts(self, X, name="X", *, reset=False):
        """X as a canonical CSR matrix of word counts: non-negative integers (sparse or dense input; an
        entry stored twice counts twice)."""
        csr, out_dtype = as_csr(X, name, nan_is_missing=False, duplicates="sum")
        SOFTMAX.check_data(csr, name, replicated=True, what="word counts")
        if reset:
            with _named_errors(name):
                validate_data(self, X, reset=True, skip_check_array=True)
        else:
            self._check_features(X, name)
        return csr, out_dtype

    def _arrays(self, csr):
        """The kernels' (indptr, indices, data) of a count matrix, data in the model's dtype."""
        indptr, indices = csr_arrays(csr)
        return indptr, indices, np.ascontiguousarray(csr.data, dtype=self._dtype())

    # -- parameters ---------------------------------------------------------------------------------

    def _init_params(self, C):
        dtype = self._dtype()
        self._fit_seed = seed_from(self.random_state)
        self._sample_calls = 0
        rng = np.random.default_rng(self._fit_seed)
        self._word_counts = np.asarray(C.sum(axis=0), dtype=np.float64).ravel()
        self.word_frequencies_ = self._smoothed_frequencies()
        self.intercept_visible_ = SOFTMAX.initial_biases(self.word_frequencies_, dtype)
        self.components_ = rng.normal(0.0, 0.01, size=(self.n_components, C.shape[1])).astype(dtype)
        self.intercept_hidden_ = np.zeros(self.n_components, dtype=dtype)
        self.components_velocity_ = np.zeros_like(self.components_)
        self.intercept_visible_velocity_ = np.zeros_like(self.intercept_visible_)
        self.intercept_hidden_velocity_ = np.zeros_like(self.intercept_hidden_)
        self.history_ = {}
        self.n_iter_ = 0
        self.n_batch_iter_ = 0
        self._log_z = {}

    def _smoothed_frequencies(self):
        """Word frequencies with half a pseudo-count per word (a word never seen stays possible)."""
        counts = self._word_counts + 0.5
        return counts / counts.sum()

    # -- training -----------------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Fits the model to the documents X for ``max_iter`` epochs of shuffled minibatches (for
        "auto", as many as :data:`deepgm._schedule.TOPIC_BUDGET` gives X's number of documents).

        Parameters
        ----------
        X : {sparse matrix, array-like} of shape (n_documents, n_words)
            Word counts, as ``CountVectorizer`` gives them.
        y : ignored

        Returns
        -------
        self : ReplicatedSoftmax
        """
        self._check_params()
        with self._fit_transaction() as commit:
            C, _ = self._counts(X, reset=True)
            if C.nnz == 0:
                raise ValueError("X holds no words: every document is empty")
            self._init_params(C)
            with kept_if_trained(commit, lambda: self.n_iter_), deferred_interrupts():
                self._train_epochs(C, plan_epochs(self.max_iter, C.shape[0], self.batch_size, TOPIC_BUDGET), shuffle=True)
        return self

    def partial_fit(self, X, y=None):
        """One pass over the documents X in consecutive minibatches; the first call initialises the model
        from X. The word frequencies accumulate over calls.

        Returns
        -------
        self : ReplicatedSoftmax
        """
        self._check_params()
        first = not hasattr(self, "components_")
        with self._fit_transaction() as commit:
            C, _ = self._counts(X, reset=first)
            if first:
                if C.nnz == 0:
                    raise ValueError("X holds no words: every document is empty")
                self._init_params(C)
            else:
                self._word_counts = self._word_counts + np.asarray(C.sum(axis=0), dtype=np.float64).ravel()
                self.word_frequencies_ = self._smoothed_frequencies()
            with kept_if_trained(commit, lambda: self.n_iter_), deferred_interrupts():
                self._train_epochs(C, 1, shuffle=False)
        return self

    def _train_epochs(self, C, n_epochs, *, shuffle):
        """CD-k epochs over the documents of C. Ctrl-C stops between two minibatches."""
        indptr, indices, data = self._arrays(C)
        n_jobs = self._n_jobs()
        monitor = np.sort(np.random.default_rng(self._fit_seed).permutation(C.shape[0])[:_MONITOR_DOCS])
        for _ in range(n_epochs):
            start = self._timer()
            epoch = self.n_iter_
            rng = np.random.default_rng([self._fit_seed % 2**63, epoch]) if shuffle else None
            momentum = self.momentum if epoch < self.initial_momentum_epochs else self.final_momentum
            batches = batch_rows(C.shape[0], self.batch_size, rng)
            bar = self._progress(len(batches), f"ReplicatedSoftmax epoch {epoch + 1}")
            try:
                with self._epoch_guard(epoch):
                    self._log_z = {}  # the model changes: cached partition functions are stale
                    for rows in batches:
                        interruption_point()
                        _core.rs_cd_step(
                            indptr,
                            indices,
                            data,
                            self.components_,
                            self.intercept_visible_,
                            self.intercept_hidden_,
                            self.components_velocity_,
                            self.intercept_visible_velocity_,
                            self.intercept_hidden_velocity_,
                            rows=rows,
                            k=self.k,
                            learning_rate=float(self.learning_rate),
                            momentum=momentum,
                            weight_decay=float(self.weight_decay),
                            seed=self._fit_seed,
                            step=self.n_batch_iter_,
                            n_jobs=n_jobs,
                        )
                        self.n_batch_iter_ += 1
                        bar.update()
                    recon = self._reconstruction_perplexity(C[monitor])
                    if not np.isfinite(recon):
                        raise FloatingPointError("the monitored reconstruction perplexity became non-finite")
            finally:
                bar.close()
            self.n_iter_ += 1
            self._log_epoch(epoch=self.n_iter_, reconstruction_perplexity=recon, time=self._timer() - start)
            interruption_point()

    def _reconstruction_perplexity(self, C) -> float:
        """exp of the mean per-word cross-entropy of the documents C under softmax(b + W^T p(h | v))."""
        H = self._hidden(C).astype(np.float64)
        logits = matmul(H, self.components_, n_jobs=self._n_jobs()) + self.intercept_visible_
        log_probs = SOFTMAX.log_mean(logits)
        total = float(C.sum())
        if total == 0:
            return 1.0
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged model gives inf, which the caller reports
            return float(np.exp(-float(C.multiply(log_probs).sum()) / total))

    # -- inference ----------------------------------------------------------------------------------

    def _hidden(self, C):
        indptr, indices, data = self._arrays(C)
        return _core.rs_hidden(indptr, indices, data, self.components_, self.intercept_hidden_, n_jobs=self._n_jobs())

    def transform(self, X):
        """Hidden unit probabilities p(h = 1 | v) of each document.

        Parameters
        ----------
        X : {sparse matrix, array-like} of shape (n_documents, n_words)
            Word counts.

        Returns
        -------
        H : ndarray of shape (n_documents, n_components)
        """
        self._check_fitted()
        C, out_dtype = self._counts(X)
        return self._hidden(C).astype(out_dtype, copy=False)

    def log_partition(self, doc_length, method="ais", *, n_chains=None, n_steps=None, max_units=20):
        """log Z_D, the normaliser of documents of ``doc_length`` words (cached per length and method).

        Parameters
        ----------
        doc_length : int
            D, the number of words.
        method : {"ais", "exact"}, default="ais"
            "exact" enumerates the 2^n_components hidden states (n_components <= ``max_units``); "ais"
            anneals the hidden units from length 0 (see the module's documentation).
        n_chains, n_steps : int, default=None
            AIS runs and steps per word (default: ``ais_chains`` and ``ais_steps``).
        max_units : int, default=20

        Returns
        -------
        LogPartition
            A float, the estimate, that unpacks as ``(log_z, std_error)``.
        """
        self._check_fitted()
        doc_length = check_positive_int(doc_length, "doc_length", minimum=0)
        return self._log_partitions([doc_length], method, n_chains, n_steps, max_units)[doc_length]

    def _log_partitions(self, lengths, method="ais", n_chains=None, n_steps=None, max_units=20):
        """{D: LogPartition} for the distinct lengths given, computing only those not cached."""
        check_option(method, "method", ("ais", "exact"))
        n_chains = check_positive_int(self.ais_chains if n_chains is None else n_chains, "n_chains")
        n_steps = check_positive_int(self.ais_steps if n_steps is None else n_steps, "n_steps")
        max_units = check_positive_int(max_units, "max_units")
        key = (lambda d: f"exact:{d}") if method == "exact" else (lambda d: f"ais:{d}:{n_chains}:{n_steps}")
        cache = getattr(self, "_log_z", {})
        missing = sorted({int(d) for d in lengths if key(int(d)) not in cache})
        if method == "exact" and missing:
            try:
                log_z = _core.rs_log_partition_exact(
                    self.components_,
                    self.intercept_visible_,
                    self.intercept_hidden_,
                    np.asarray(missing, dtype=np.int64),
                    max_units=max_units,
                    n_jobs=self._n_jobs(),
                )
            except ValueError as err:  # too many units: the kernel's message, without the kernel's name
                raise ValueError(str(err).removeprefix("rs_log_partition_exact: ")) from None
            for d, value in zip(missing, log_z):
                cache[key(d)] = (float(value), 0.0, float(value), float(value), "exact")
        elif missing:
            # One seed per fitted model, and lengths on a fixed grid: the estimate for a length does not
            # depend on the call order or on the other lengths asked for.
            seed = int(np.random.SeedSequence([self._fit_seed % 2**63, 0xA15]).generate_state(1, np.uint64)[0])
            log_w = _core.rs_ais(
                self.components_,
                self.intercept_visible_,
                self.intercept_hidden_,
                np.asarray(missing, dtype=np.int64),
                steps_per_word=n_steps,
                n_chains=n_chains,
                seed=seed,
                n_jobs=self._n_jobs(),
            )
            log_z_uniform = self.n_components * math.log(2.0)  # Z_0: every hidden state has weight 1
            for d, w in zip(missing, log_w):
                summary = _summarise_ais(w, log_z_uniform)
                cache[key(d)] = (float(summary), summary.std_error, summary.lower, summary.upper, "ais")
        self._log_z = cache
        return {int(d): LogPartition(*cache[key(int(d))]) for d in lengths}

    def score_samples(self, X, *, method="ais"):
        """log p(v) of each document: ``log p*(v) - log Z_D``, with log Z_D per distinct length D (AIS by
        default, see :meth:`log_partition`).

        v is the document as a sequence of D words in a given order, as LDA's likelihood and its
        perplexity count it: the probability of the count vector is larger by its number of word
        orders, the multinomial coefficient ``D! / prod_w n_w!``.

        Returns
        -------
        log_prob : ndarray of shape (n_documents,)
            Computed in float64; float32 for float32 X, float64 otherwise (integer counts included).
        """
        return as_output(self._score_samples(X, method), X)

    def _score_samples(self, X, method="ais"):
        """log p(v) (n_documents,) of each document of X, float64 (what score and perplexity sum)."""
        self._check_fitted()
        C, _ = self._counts(X)
        indptr, indices, data = self._arrays(C)
        log_p_star = _core.rs_log_unnormalized(
            indptr, indices, data, self.components_, self.intercept_visible_, self.intercept_hidden_, n_jobs=self._n_jobs()
        )
        lengths = np.asarray(C.sum(axis=1), dtype=np.int64).ravel()
        log_z = self._log_partitions(np.unique(lengths), method)
        return log_p_star - np.array([float(log_z[int(d)]) for d in lengths])

    def score(self, X, y=None):
        """The log-likelihood of X, sum of :meth:`score_samples` (higher is better, as LDA's score)."""
        return float(np.sum(self._score_samples(X)))

    def perplexity(self, X):
        """Per-word perplexity, LDA's definition: ``exp(- sum_n log p(v_n) / sum_n D_n)``."""
        log_prob = self._score_samples(X)
        C, _ = self._counts(X)
        n_words = float(C.sum())
        if n_words == 0:
            raise ValueError("X holds no words: perplexity is undefined for empty documents")
        return float(np.exp(-np.sum(log_prob) / n_words))

    def sample(self, n_samples=10, doc_length=100, *, n_steps=1000):
        """Documents drawn by Gibbs sampling: D words from softmax(b), then ``n_steps`` steps h | v, v | h.

        Returns
        -------
        counts : ndarray of shape (n_samples, n_words), int64
        """
        self._check_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        doc_length = check_positive_int(doc_length, "doc_length", minimum=0)
        n_steps = check_positive_int(n_steps, "n_steps", minimum=0)
        counts = _core.rs_sample(
            self.components_,
            self.intercept_visible_,
            self.intercept_hidden_,
            n_samples=n_samples,
            doc_length=doc_length,
            n_steps=n_steps,
            seed=self._next_seed(),
            n_jobs=self._n_jobs(),
        )
        return counts.astype(np.int64)

    def top_words(self, vocabulary=None, n_words=10):
        """The words with the largest weights for each hidden unit.

        Parameters
        ----------
        vocabulary : sequence of str of length n_words, default=None
            The words, in column order (e.g. ``CountVectorizer().get_feature_names_out()``); by default
            ``feature_names_in_`` if fit saw a data frame, else column indices.
        n_words : int, default=10

        Returns
        -------
        list of lists
            One list per hidden unit, largest weight first.
        """
        self._check_fitted()
        n_words = check_positive_int(n_words, "n_words")
        if vocabulary is None:
            vocabulary = getattr(self, "feature_names_in_", None)
        if vocabulary is not None:
            vocabulary = np.asarray(vocabulary)
            if vocabulary.shape != (self.n_features_in_,):
                raise ValueError(f"vocabulary must hold one word per column ({self.n_features_in_}); got shape {vocabulary.shape}")
        order = np.argsort(-self.components_, axis=1, kind="stable")[:, :n_words]
        if vocabulary is None:
            return [row.tolist() for row in order]
        return [vocabulary[row].tolist() for row in order]

    @property
    def _n_features_out(self):
        """Width of ``transform``'s output, from the fitted parameters: absent before fit, so that
        ``get_feature_names_out`` raises NotFittedError there."""
        return self.intercept_hidden_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.non_deterministic = self.random_state is None
        return tags
