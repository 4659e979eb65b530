"""Restricted Boltzmann machines with Bernoulli or Gaussian visible units, trained by CD-k or persistent
CD-k: a faster drop-in for :class:`sklearn.neural_network.BernoulliRBM`, with sampling, free energy,
and exact or AIS estimates of the partition function and the log-likelihood."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state

from . import _core
from ._base import (
    DeepGMEstimator,
    as_output,
    batch_rows,
    check_bool,
    check_number,
    check_option,
    check_positive_int,
    deferred_interrupts,
    interruption_point,
    minibatch,
    seed_from,
)
from ._failed_fit import kept_if_trained
from ._schedule import RBM_BUDGET, check_batch_size, check_length, plan_epochs
from ._streams import rbm_epoch_generator, rbm_init_generator
from ._units import binary_visible, get_units, unit_names

__all__ = ["RBM", "LogPartition"]


def check_training_schedule(est, *, allow_auto_batch=False):
    """The CD training settings an RBM shares with a DBN (which passes them to its layers; a DBN
    resolves ``batch_size="auto"`` from the data before its RBMs see it)."""
    check_number(est.momentum, "momentum", low=0, high=1, high_open=True)
    check_number(est.final_momentum, "final_momentum", low=0, high=1, high_open=True)
    check_positive_int(est.initial_momentum_epochs, "initial_momentum_epochs", minimum=0)
    check_number(est.weight_decay, "weight_decay", low=0)
    check_batch_size(est.batch_size, allow_auto=allow_auto_batch)
    check_length(est.n_iter, "n_iter")


class LogPartition(float):
    """log Z of an RBM (the result of :meth:`RBM.log_partition`): a float that also carries its spread.

    It is the estimate itself (``float(result)``, ``result - other``, comparisons, ``pytest.approx``),
    and it unpacks as the pair ``(estimate, spread)``: ``log_z, std_error = rbm.log_partition("ais")``
    (also ``result[0]``, ``result[1]``). It has no ``len``: a sized object would be taken for a
    sequence by ``pytest.approx`` and NumPy, where it must be a number.

    Attributes
    ----------
    log_z : float
        The estimate (exact for ``method="exact"``).
    std_error : float
        Standard error of log_z by the delta method on the importance weights (0 for "exact").
    lower, upper : float
        log Z at the mean importance weight minus / plus three standard errors (Salakhutdinov &
        Murray's bounds; equal to log_z for "exact").
    method : {"ais", "exact"}
    """

    def __new__(cls, log_z, std_error, lower, upper, method):
        self = super().__new__(cls, log_z)
        self.std_error = float(std_error)
        self.lower = float(lower)
        self.upper = float(upper)
        self.method = str(method)
        return self

    @property
    def log_z(self) -> float:
        return float(self)

    def __iter__(self):
        return iter((float(self), self.std_error))

    def __getitem__(self, index):
        return (float(self), self.std_error)[index]

    def __reduce__(self):
        return (LogPartition, (float(self), self.std_error, self.lower, self.upper, self.method))

    def __repr__(self):
        return (
            f"LogPartition(log_z={float(self)!r}, std_error={self.std_error!r}, lower={self.lower!r}, "
            f"upper={self.upper!r}, method={self.method!r})"
        )


#: Rows used to monitor training after each epoch (reconstruction error, pseudo-likelihood).
_MONITOR_ROWS = 500

#: Hinton's (2010) standard deviation of the initial weights, set for MNIST's 784 pixels, and used
#: as is from that many visible units up (:func:`initial_weight_std`).
_INITIAL_WEIGHT_STD = 0.01
_INITIAL_WEIGHT_FEATURES = 784


def initial_weight_std(n_features):
    """Standard deviation of the initial weights for ``n_features`` visible units.

    0.01 from 784 visible units up; below, 0.01 * sqrt(784 / n_features), so that a hidden unit's
    initial input spreads as much over a few features as over MNIST's pixels. With 0.01 on a table
    of 13 features (wine) the input spread is a seventh of MNIST's, the hidden probabilities
    barely move from 0.5 within 10 epochs, and a classifier on the features sees mostly noise
    (see docs/own-data.md).
    """
    return _INITIAL_WEIGHT_STD * math.sqrt(max(1.0, _INITIAL_WEIGHT_FEATURES / n_features))


class RBM(ClassNamePrefixFeaturesOutMixin, TransformerMixin, DeepGMEstimator):
    """Restricted Boltzmann machine trained with contrastive divergence (CD-k) or persistent CD.

    A drop-in for :class:`sklearn.neural_network.BernoulliRBM`: the same parameter and attribute
    names, and the same defaults wherever the names are shared (``n_components=256``,
    ``batch_size=10``, ``n_iter=10``; ``learning_rate="auto"`` is BernoulliRBM's 0.1 for Bernoulli units), so that switching changes the speed
    and not the settings. The Gibbs sampling, gradient statistics and updates of each minibatch run
    in one parallel Rust call. What differs by design is listed in docs/own-data.md.

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units.
    visible : {"bernoulli", "gaussian"}, default="bernoulli"
        Visible units. Bernoulli units model data in [0, 1]; Gaussian units (unit variance) model
        real-valued data, which the RBM standardises internally (``mean_``, ``scale_``).
    hidden : {"bernoulli", "gaussian"}, default="bernoulli"
        Hidden units: binary, or linear with unit-variance Gaussian noise (the code layer of a deep
        autoencoder, Hinton & Salakhutdinov 2006; ``transform`` then returns ``c + W v``).
    k : int, default=1
        Gibbs steps in the negative phase (CD-k / PCD-k).
    persistent : bool, default=False
        Persistent CD (Tieleman 2008): the negative phase continues Markov chains kept in
        ``h_samples_`` across minibatches and ``partial_fit`` calls.
    learning_rate : float or "auto", default="auto"
        Step size of the weight updates. "auto" is 0.1 for Bernoulli units (BernoulliRBM's default, so
        a Bernoulli RBM trains as with ``learning_rate=0.1``), 0.003 with Gaussian visible units and
        0.001 with Gaussian hidden units: Gaussian units need far smaller rates (Hinton 2010), 0.1
        makes them diverge.
    momentum : float, default=0.5
        Momentum of the first ``initial_momentum_epochs`` epochs.
    final_momentum : float, default=0.5
        Momentum afterwards. Hinton's (2010) schedule, 0.5 then 0.9, suits minibatches of about 100;
        with BernoulliRBM's minibatches of 10 a momentum of 0.9 (a tenfold effective rate) made
        persistent CD collapse (test log-likelihood on MNIST -210 nats against -130 at 0.5) and CD-1
        fit the density poorly (-450 against -243); 0.5 throughout also gave the best features in
        scikit-learn's digits example.
    initial_momentum_epochs : int, default=5
        Epochs trained with ``momentum`` before switching to ``final_momentum``.
    weight_decay : float, default=2e-4
        L2 penalty on the weights.
    batch_size : int, default=10
        Samples per minibatch (BernoulliRBM's default). Larger batches (100) train faster per epoch.
    n_iter : int or "auto", default=10
        Epochs (passes over the training data) of ``fit``; "auto" picks them from the data size
        (at least 500 updates, 10 to 200 epochs: :mod:`deepgm._schedule`), as every layer of
        a :class:`deepgm.DBN` does by default.
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation, shuffling and sampling. The same value gives the same model for any
        ``n_jobs``.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the computation and of the fitted arrays.
    n_jobs : int or None, default=None
        Threads for the Rust kernels (None or -1: all cores; -2: all but one, as in joblib; more than
        the cores available are capped at their number). Results do not depend on it.
    verbose : int, default=0
        Progress bar and per-epoch metrics.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Weights. They start as N(0, s^2) draws, s = 0.01 * sqrt(max(1, 784 / n_features)): Hinton's
        0.01 for MNIST's pixels, larger for fewer features.
    intercept_hidden_ : ndarray of shape (n_components,)
        Hidden biases.
    intercept_visible_ : ndarray of shape (n_features,)
        Visible biases.
    h_samples_ : ndarray of shape (n_chains, n_components)
        Hidden states of the persistent chains (zeros for plain CD): ``batch_size`` chains, or as many
        as the training rows after a ``fit`` on fewer rows than ``batch_size``.
    visible_mean_ : ndarray of shape (n_features,)
        Mean of the (standardised) training data: the base-rate model of AIS.
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation of Gaussian visible units (zeros and ones for Bernoulli units).
    n_features_in_ : int
    history_ : dict of lists
        Per epoch: ``epoch``, ``updates`` (minibatch updates so far), ``reconstruction_error`` (mean
        squared error per sample on up to 500 training rows), ``pseudo_likelihood`` (Bernoulli
        units) and ``time`` (seconds).

    Examples
    --------
    >>> import numpy as np
    >>> from deepgm import RBM
    >>> X = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=np.float32)
    >>> rbm = RBM(n_components=2, n_iter=5, random_state=0).fit(X)
    >>> rbm.transform(X).shape
    (4, 2)
    """

    _param_names = (
        "components_",
        "intercept_hidden_",
        "intercept_visible_",
        "h_samples_",
        "visible_mean_",
        "mean_",
        "scale_",
    )
    _state_names = ("components_velocity_", "intercept_hidden_velocity_", "intercept_visible_velocity_", "_steps")
    _fitted_attribute = "components_"

    def __init__(
        self,
        n_components=256,
        *,
        visible="bernoulli",
        hidden="bernoulli",
        k=1,
        persistent=False,
        learning_rate="auto",
        momentum=0.5,
        final_momentum=0.5,
        initial_momentum_epochs=5,
        weight_decay=2e-4,
        batch_size=10,
        n_iter=10,
        random_state=None,
        dtype="float32",
        n_jobs=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.visible = visible
        self.hidden = hidden
        self.k = k
        self.persistent = persistent
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.final_momentum = final_momentum
        self.initial_momentum_epochs = initial_momentum_epochs
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.random_state = random_state
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose

    # -- validation ---------------------------------------------------------------------------------

    def _check_params(self):
        check_positive_int(self.n_components, "n_components")
        check_option(self.visible, "visible", unit_names())
        check_option(self.hidden, "hidden", unit_names())
        check_positive_int(self.k, "k")
        check_bool(self.persistent, "persistent")
        self._learning_rate()
        check_training_schedule(self)
        self._check_common_params()

    def _learning_rate(self) -> float:
        if isinstance(self.learning_rate, str):
            check_option(self.learning_rate, "learning_rate", ("auto",), or_else="a number > 0")
            hidden_rate = self._hidden_units.hidden_learning_rate
            return self._visible_units.visible_learning_rate if hidden_rate is None else hidden_rate
        return check_number(self.learning_rate, "learning_rate", low=0, low_open=True)

    def _check_X(self, X, *, reset=False, name="X", stream=False, unit_range=True):
        """X validated; with ``unit_range``, values outside [0, 1] are refused for Bernoulli visible
        units (by fit, the likelihood methods and the sampling methods, whose inputs are visible
        states; not by transform and reconstruct, since p(h | v) is defined for any real v)."""
        units = self._visible_units if unit_range else None
        return self._validate_X(X, reset=reset, units=units, name=name, stream=stream)

    @property
    def _visible_units(self):
        return get_units(self.visible)

    @property
    def _hidden_units(self):
        return get_units(self.hidden)

    # -- parameters ---------------------------------------------------------------------------------

    def _init_params(self, X, *, whole_data=True):
        """Parameters at their start, from the training data X (``whole_data``) or from the first
        batch of a ``partial_fit``."""
        dtype = self._dtype()
        n_features = X.shape[1]
        self._fit_seed = seed_from(self.random_state)
        self._sample_calls = 0
        rng = rbm_init_generator(self._fit_seed)
        mean, var = _column_moments(X)
        self.mean_, self.scale_, self.visible_mean_, self.intercept_visible_ = self._visible_units.initial_visible(mean, var, dtype)
        self.components_ = rng.normal(0.0, initial_weight_std(n_features), size=(self.n_components, n_features)).astype(dtype)
        self.intercept_hidden_ = np.zeros(self.n_components, dtype=dtype)
        # One persistent chain per row of a minibatch; a fit's minibatches never exceed the data, so a
        # batch_size larger than it (1e12, say) allocates chains for the rows there are. A
        # partial_fit's later batches may be larger than its first: it keeps batch_size chains.
        n_chains = min(self.batch_size, X.shape[0]) if whole_data else self.batch_size
        self.h_samples_ = np.zeros((n_chains, self.n_components), dtype=dtype)
        self.components_velocity_ = np.zeros_like(self.components_)
        self.intercept_hidden_velocity_ = np.zeros_like(self.intercept_hidden_)
        self.intercept_visible_velocity_ = np.zeros_like(self.intercept_visible_)
        self.history_ = {}
        self._steps = 0
        self._epochs_done = 0
        self._n_seen = X.shape[0]
        monitor = min(_MONITOR_ROWS, X.shape[0])
        self._monitor_rows = np.sort(rng.choice(X.shape[0], size=monitor, replace=False))

    def _model_space(self, X):
        """X in the space the RBM's parameters live in (standardised for Gaussian units)."""
        return self._visible_units.to_model_space(X, self.mean_, self.scale_, self._dtype())

    def _data_space(self, V):
        return self._visible_units.to_data_space(V, self.mean_, self.scale_, self._dtype())

    def _batch(self, X, rows):
        """(data, rows) arguments of one CD step on X[rows]: the kernel gathers the rows itself when
        the units use the data as they are."""
        if self._visible_units.standardised:
            return self._model_space(X[rows]), None
        return minibatch(X, rows, self._dtype())

    # -- training -----------------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Fits the RBM to X for ``n_iter`` epochs of shuffled minibatches.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (in [0, 1] for Bernoulli visible units). A float C-contiguous array of the
            model's dtype, including a memory map, is used without copying.
        y : ignored

        Returns
        -------
        self : RBM
        """
        self._check_params()
        with self._fit_transaction() as commit:
            X = self._check_X(X, reset=True, stream=True)
            self._init_params(X)
            with kept_if_trained(commit, lambda: self._epochs_done):
                self._train(X, n_epochs=plan_epochs(self.n_iter, X.shape[0], self.batch_size, RBM_BUDGET), shuffle=True)
        return self

    def partial_fit(self, X, y=None):
        """One pass over X in consecutive minibatches of ``batch_size`` (one update when X is no larger
        than a minibatch, as in scikit-learn). The first call initialises the model from X.

        Returns
        -------
        self : RBM
        """
        self._check_params()
        first = not hasattr(self, "components_")
        with self._fit_transaction() as commit:
            X = self._check_X(X, reset=first, stream=True)
            if first:
                self._init_params(X, whole_data=False)
            else:
                self._accumulate_visible_mean(X)
            with kept_if_trained(commit, lambda: self._epochs_done):
                self._train(X, n_epochs=1, shuffle=False)
        return self

    def _train(self, X, *, n_epochs, shuffle):
        """Epochs of CD updates. Ctrl-C stops between two minibatches (see ``deferred_interrupts``):
        the parameters are those after the last whole update, ``history_`` holds the completed epochs."""
        with deferred_interrupts():
            self._train_epochs(X, n_epochs=n_epochs, shuffle=shuffle)

    def _train_epochs(self, X, *, n_epochs, shuffle):
        rng = rbm_epoch_generator(self._fit_seed, self._epochs_done) if shuffle else None
        n_jobs = self._n_jobs()
        lr = self._learning_rate()
        for _ in range(n_epochs):
            start = self._timer()
            momentum = self.momentum if self._epochs_done < self.initial_momentum_epochs else self.final_momentum
            batches = batch_rows(X.shape[0], self.batch_size, rng)
            bar = self._progress(len(batches), f"RBM epoch {self._epochs_done + 1}")
            try:
                with self._epoch_guard(self._epochs_done):
                    for rows in batches:
                        interruption_point()
                        data, data_rows = self._batch(X, rows)
                        _core.rbm_cd_step(
                            data,
                            self.components_,
                            self.intercept_visible_,
                            self.intercept_hidden_,
                            self.components_velocity_,
                            self.intercept_visible_velocity_,
                            self.intercept_hidden_velocity_,
                            rows=data_rows,
                            h_samples=self.h_samples_ if self.persistent else None,
                            visible=self.visible,
                            hidden=self.hidden,
                            k=self.k,
                            learning_rate=lr,
                            momentum=momentum,
                            weight_decay=self.weight_decay,
                            seed=self._fit_seed,
                            step=self._steps,
                            n_jobs=n_jobs,
                        )
                        self._steps += 1
                        bar.update()
                    metrics = self._monitor(X)
                    bad = sorted(k for k, v in metrics.items() if not np.isfinite(v))
                    if bad:
                        # Parameters can stay finite while their products overflow (float32 weights
                        # near 1e37): a model whose own metrics are not finite has diverged too.
                        raise FloatingPointError(f"the monitored {', '.join(bad)} became non-finite")
            finally:
                bar.close()
            self._epochs_done += 1
            self._log_epoch(epoch=self._epochs_done, updates=self._steps, **metrics, time=self._timer() - start)
            interruption_point()

    def _accumulate_visible_mean(self, X):
        """partial_fit: visible_mean_ becomes the mean over all data seen so far."""
        mean, _ = _column_moments(X)  # chunked: X (possibly a memory map) is never copied whole
        if self._visible_units.standardised:  # the mean in the space the parameters live in
            mean = (mean - self.mean_.astype(np.float64)) / self.scale_.astype(np.float64)
        total = self._n_seen + X.shape[0]
        self.visible_mean_ = ((self.visible_mean_ * self._n_seen + mean * X.shape[0]) / total).astype(self._dtype())
        self._n_seen = total

    def _monitor(self, X):
        rows = self._monitor_rows[self._monitor_rows < X.shape[0]]
        if rows.size == 0:
            rows = np.arange(min(_MONITOR_ROWS, X.shape[0]))
        V = self._model_space(X[rows])
        recon = self._reconstruct_model_space(V)
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged model is reported by _train
            metrics = {"reconstruction_error": float(np.mean(np.sum((V - recon) ** 2, axis=1)))}
        if self._visible_units.binary and self._hidden_units.binary:
            pl = _core.rbm_pseudo_likelihood(
                V, self.components_, self.intercept_visible_, self.intercept_hidden_, seed=self._fit_seed, step=0, n_jobs=self._n_jobs()
            )
            metrics["pseudo_likelihood"] = float(pl.mean())
        return metrics

    # -- inference ----------------------------------------------------------------------------------

    @property
    def _n_features_out(self):
        """Width of ``transform``'s output, from the fitted parameters (``get_feature_names_out``)."""
        return self.components_.shape[0]

    def transform(self, X):
        """Hidden unit activation probabilities p(h = 1 | v = X).

        Returns
        -------
        H : ndarray of shape (n_samples, n_components)
            float32 for float32 X, float64 otherwise (scikit-learn's convention), whatever ``dtype``
            the model computes in. For Bernoulli visible units X may hold any finite values, not only
            values in [0, 1]: a scaler fitted on training data can map test data slightly outside.
        """
        self._check_fitted()
        V = self._model_space(self._check_X(X, unit_range=False))
        return as_output(_core.rbm_hidden(V, self.components_, self.intercept_hidden_, hidden=self.hidden, n_jobs=self._n_jobs()), X)

    def _reconstruct_model_space(self, V):
        H = _core.rbm_hidden(V, self.components_, self.intercept_hidden_, hidden=self.hidden, n_jobs=self._n_jobs())
        return _core.rbm_visible(H, self.components_, self.intercept_visible_, visible=self.visible, n_jobs=self._n_jobs())

    def reconstruct(self, X):
        """Mean-field reconstruction E[v | h = p(h | X)], in the data's space.

        Returns
        -------
        X_rec : ndarray of shape (n_samples, n_features)
            In the dtype of X as for :meth:`transform`; X may hold any finite values.
        """
        self._check_fitted()
        V = self._model_space(self._check_X(X, unit_range=False))
        return as_output(self._data_space(self._reconstruct_model_space(V)), X)

    def gibbs(self, v):
        """One step of Gibbs sampling v -> h -> v, as scikit-learn's ``BernoulliRBM.gibbs``.

        Parameters
        ----------
        v : array-like of shape (n_samples, n_features)

        Returns
        -------
        v_new : ndarray of shape (n_samples, n_features)
            A sample of the visible units (0/1 for Bernoulli units), in the dtype of v as for
            :meth:`transform`. v is a state of the visible units: in [0, 1] for Bernoulli units.
        """
        self._check_fitted()
        V = self._model_space(self._check_X(v, name="v"))
        sample, _ = _core.rbm_gibbs(
            V,
            self.components_,
            self.intercept_visible_,
            self.intercept_hidden_,
            n_steps=1,
            visible=self.visible,
            hidden=self.hidden,
            seed=self._next_seed(),
            n_jobs=self._n_jobs(),
        )
        return as_output(self._data_space(sample), v)

    def sample(self, n_samples=None, n_steps=1000, init=None, *, return_means=False):
        """Fantasies: runs ``n_steps`` of block Gibbs sampling from random or given visible states.

        Parameters
        ----------
        n_samples : int, default=None
            Number of chains: 16 by default, one per row of ``init`` when it is given (then
            ``n_samples``, if given too, must equal the number of rows: a ValueError otherwise).
        n_steps : int, default=1000
            Gibbs steps.
        init : array-like of shape (n_chains, n_features), default=None
            Starting visible states; by default uniform random binary states (Bernoulli) or standard
            normal draws (Gaussian).
        return_means : bool, default=False
            Return the mean of v | h at the last step (pixel probabilities: smoother to look at)
            instead of the sample.

        Returns
        -------
        V : ndarray of shape (n_chains, n_features)
            Samples of the visible units after ``n_steps`` steps (0/1 for Bernoulli units), or their
            means with ``return_means=True``. In the model's dtype, or with ``init`` in the dtype of
            ``init`` as for :meth:`gibbs` (float32 for float32, float64 otherwise).
        """
        self._check_fitted()
        check_positive_int(n_steps, "n_steps", minimum=0)
        check_bool(return_means, "return_means")
        if init is None:
            n_samples = check_positive_int(16 if n_samples is None else n_samples, "n_samples")
            return self._data_space(self._gibbs_chains(None, n_samples, n_steps, self._next_seed(), return_means))
        V = self._model_space(self._check_X(init, name="init"))
        check_chains_of_init(n_samples, V.shape[0])
        return as_output(self._data_space(self._gibbs_chains(V, n_samples, n_steps, self._next_seed(), return_means)), init)

    def _gibbs_chains(self, V, n_samples, n_steps, seed, return_means):
        """``n_steps`` of block Gibbs sampling from V (n_chains, n_features) in the model's space, or
        from ``n_samples`` random states (uniform binary for Bernoulli visible units, standard normal
        for Gaussian ones) when V is None. Returns the last mean of v | h (or the sample), in the
        model's space; with ``n_steps == 0``, the starting states."""
        dtype = self._dtype()
        if V is None:
            rng = np.random.default_rng(seed)
            V = self._visible_units.random_states(rng, (n_samples, self.n_features_in_), dtype)
        if n_steps == 0:
            return V
        sample, mean = _core.rbm_gibbs(
            np.ascontiguousarray(V, dtype=dtype),
            self.components_,
            self.intercept_visible_,
            self.intercept_hidden_,
            n_steps=n_steps,
            visible=self.visible,
            hidden=self.hidden,
            seed=seed,
            n_jobs=self._n_jobs(),
        )
        return mean if return_means else sample

    def free_energy(self, X):
        """Free energy F(v) = -log sum_h exp(-E(v, h)) of each sample (in the standardised space for
        Gaussian units).

        Returns
        -------
        F : ndarray of shape (n_samples,)
            Computed in float64; float32 for float32 X, float64 otherwise.
        """
        return as_output(self._free_energy(X), X)

    def _free_energy(self, X):
        """Free energy (n_samples,) of X, float64 (what log_likelihood averages)."""
        self._check_fitted()
        V = self._model_space(self._check_X(X))
        return _core.rbm_free_energy(
            V,
            self.components_,
            self.intercept_visible_,
            self.intercept_hidden_,
            visible=self.visible,
            hidden=self.hidden,
            n_jobs=self._n_jobs(),
        )

    def score_samples(self, X):
        """Pseudo-likelihood of each sample, as scikit-learn defines it: flip one randomly chosen
        visible unit per sample and return ``n_features * log sigmoid(F(v_flipped) - F(v))``.

        The flipped units are drawn as ``BernoulliRBM.score_samples`` draws them
        (``check_random_state(random_state).randint(0, n_features, n_samples)``), so with the same
        parameters and the same ``random_state`` both give the same scores. Reproducible: with an
        int ``random_state`` the same units are flipped at every call (a RandomState or Generator
        advances, None draws afresh). With Gaussian units, where flipping a unit means nothing, it
        returns the unnormalised log-density ``-F(v)`` instead (use :meth:`log_likelihood` for
        normalised values).

        Returns
        -------
        score : ndarray of shape (n_samples,)
            float32 for float32 X (as BernoulliRBM), float64 otherwise.
        """
        self._check_fitted()
        if not (self._visible_units.binary and self._hidden_units.binary):
            return as_output(-self._free_energy(X), X)
        V = self._model_space(self._check_X(X))
        n_samples, n_features = V.shape
        if isinstance(self.random_state, np.random.Generator):
            flip = self.random_state.integers(0, n_features, n_samples)
        else:
            flip = check_random_state(self.random_state).randint(0, n_features, n_samples)
        score = _core.rbm_pseudo_likelihood(
            V, self.components_, self.intercept_visible_, self.intercept_hidden_, flip=flip, n_jobs=self._n_jobs()
        )
        return as_output(score, X)

    # -- partition function and likelihood ----------------------------------------------------------

    def log_partition(self, method="ais", *, n_chains=100, n_betas=10000, betas=None, base_rate=None, random_state=None, max_units=20):
        """log Z of the model, exactly or by annealed importance sampling.

        Parameters
        ----------
        method : {"ais", "exact"}, default="ais"
            "exact" enumerates the 2^m states of the smaller layer (m <= ``max_units``; the hidden layer
            for Gaussian units). "ais" anneals from a base-rate model with the data's visible marginals
            and no weights (Salakhutdinov & Murray 2008).
        n_chains : int, default=100
            AIS runs (run in parallel).
        n_betas : int, default=10000
            Intermediate distributions (inverse temperatures); by default spaced as in Salakhutdinov &
            Murray: 3.5% of them on [0, 0.5], 27.5% on [0.5, 0.9], 69% on [0.9, 1].
        betas : array-like, default=None
            An explicit schedule from 0 to 1 (overrides n_betas).
        base_rate : array-like of shape (n_features,), default=None
            Visible means of the base-rate model (defaults to ``visible_mean_``).
        random_state : int, RandomState, Generator or None, default=None
            Seeds the AIS chains (defaults to the estimator's random_state).
        max_units : int, default=20
            The most units "exact" enumerates.

        Returns
        -------
        LogPartition
            A float, the estimate, that unpacks as ``(log_z, std_error)`` (the estimate and its
            spread) and also carries ``lower``, ``upper`` and ``method``.
        """
        self._check_fitted()
        check_option(method, "method", ("ais", "exact"))
        if not self._hidden_units.binary:  # the enumeration and AIS sum the hidden states out
            raise ValueError(f"log_partition is available for binary hidden units only; this RBM has hidden={self.hidden!r}")
        dtype = self._dtype()
        if method == "exact":
            max_units = check_positive_int(max_units, "max_units")
            try:
                log_z = _core.rbm_log_partition_exact(
                    self.components_,
                    self.intercept_visible_,
                    self.intercept_hidden_,
                    visible=self.visible,
                    max_units=max_units,
                    n_jobs=self._n_jobs(),
                )
            except ValueError as err:  # too many units: the kernel's message, without the kernel's name
                raise ValueError(str(err).removeprefix("rbm_log_partition_exact: ")) from None
            return LogPartition(log_z, 0.0, log_z, log_z, "exact")
        n_chains = check_positive_int(n_chains, "n_chains")
        if betas is None:
            betas = ais_schedule(check_positive_int(n_betas, "n_betas", minimum=2))
        else:
            betas = _float_array(betas, "betas")
            if (
                betas.ndim != 1
                or betas.size < 2
                or not np.all(np.isfinite(betas))
                or betas[0] != 0
                or betas[-1] != 1
                or np.any(np.diff(betas) < 0)
            ):
                raise ValueError(
                    "betas must be a non-decreasing 1-D schedule from 0 to 1 with at least 2 finite entries; "
                    f"got an array of shape {betas.shape}" + (f" from {betas.flat[0]} to {betas.flat[-1]}" if betas.size else "")
                )
        means = self.visible_mean_ if base_rate is None else _float_array(base_rate, "base_rate")
        if means.shape != (self.n_features_in_,):
            raise ValueError(f"base_rate must have shape ({self.n_features_in_},); got {means.shape}")
        if not np.all(np.isfinite(means)):
            raise ValueError("base_rate must hold finite numbers; got NaN or inf")
        base_bias = self._visible_units.base_biases(means, dtype)
        seed = seed_from(self.random_state if random_state is None else random_state)
        log_w, log_z_base = _core.rbm_ais(
            self.components_,
            self.intercept_visible_,
            self.intercept_hidden_,
            base_bias,
            betas,
            visible=self.visible,
            n_chains=n_chains,
            seed=seed,
            n_jobs=self._n_jobs(),
        )
        return _summarise_ais(log_w, log_z_base)

    def log_likelihood(self, X, *, log_z=None, method="ais", **log_partition_params):
        """Mean log-likelihood of X under the model, in nats: mean(-F(x)) - log Z.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        log_z : float or LogPartition, default=None
            A log Z computed earlier (saves recomputing it); by default ``log_partition(method, ...)``.
        method : {"ais", "exact"}, default="ais"
        **log_partition_params
            Passed to :meth:`log_partition`.

        Returns
        -------
        log_likelihood : float
        """
        self._check_fitted()
        free_energy = self._free_energy(X)
        if log_z is None:
            log_z = self.log_partition(method, **log_partition_params)
        log_z = check_number(log_z, "log_z")
        # Gaussian units live in standardised space: log p(x) = log p(z) - sum log scale.
        jacobian = float(np.sum(np.log(self.scale_.astype(np.float64)))) if self._visible_units.standardised else 0.0
        return float(np.mean(-free_energy) - float(log_z) - jacobian)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        # Bernoulli visible units refuse negative values (and values above 1).
        tags.input_tags.positive_only = binary_visible(self.visible)
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]  # see output_dtype
        tags.non_deterministic = self.random_state is None
        return tags


def _float_array(value, name):
    """value as a float64 array, with a TypeError naming ``name`` for non-numeric input."""
    if isinstance(value, str) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "f") in "USVOc"):
        raise TypeError(f"{name} must be an array of real numbers; got {value!r:.80}")
    try:
        return np.ascontiguousarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of real numbers; got {value!r:.80} ({err})") from None


def ais_schedule(n_betas: int) -> np.ndarray:
    """Inverse temperatures from 0 to 1 spaced as in Salakhutdinov & Murray (2008): proportionally
    500 steps on [0, 0.5], 4000 on [0.5, 0.9] and 10000 on [0.9, 1]."""
    n1 = max(1, int(round(n_betas * 500 / 14500)))
    n2 = max(1, int(round(n_betas * 4000 / 14500)))
    n3 = max(1, n_betas - n1 - n2 - 1)
    return np.concatenate(
        [np.linspace(0.0, 0.5, n1, endpoint=False), np.linspace(0.5, 0.9, n2, endpoint=False), np.linspace(0.9, 1.0, n3 + 1)]
    )


def _summarise_ais(log_w: np.ndarray, log_z_base: float) -> LogPartition:
    m = log_w.size
    log_mean_w = float(logsumexp(log_w) - math.log(m))
    log_z = log_z_base + log_mean_w
    w = np.exp(log_w - log_w.max())
    mean_w = w.mean()
    std_w = w.std(ddof=1) if m > 1 else 0.0
    std_error = float(std_w / (mean_w * math.sqrt(m))) if mean_w > 0 else float("inf")
    rel = 3 * std_w / math.sqrt(m) / mean_w if mean_w > 0 else float("inf")
    lower = log_z + (math.log(1 - rel) if rel < 1 else -math.inf)
    upper = log_z + math.log(1 + rel)
    return LogPartition(float(log_z), std_error, float(lower), float(upper), "ais")


#: Bytes of float64 working memory per chunk when a pass over the data reads it in chunks.
_CHUNK_BYTES = 2 << 20


def check_chains_of_init(n_samples, init_rows: int) -> None:
    """sample(n_samples, init=...): the chains start from the rows of init, so n_samples, when given
    too, must be their number (rather than be silently ignored)."""
    if n_samples is not None and (isinstance(n_samples, bool) or n_samples != init_rows):
        raise ValueError(
            f"n_samples must be None or the number of rows of init when init is given (one chain per row); "
            f"got n_samples={n_samples!r} and an init of {init_rows} rows"
        )


def _column_moments(X, chunk_rows: int | None = None):
    """Column means and variances of X (float64), reading X in chunks of at most 2 MB of float64
    working memory (a memory-mapped X stays on disk; memory does not grow with the data)."""
    n = X.shape[0]
    if chunk_rows is None:
        chunk_rows = max(1, _CHUNK_BYTES // (8 * max(1, X.shape[1])))
    total = np.zeros(X.shape[1])
    for start in range(0, n, chunk_rows):
        total += np.asarray(X[start : start + chunk_rows], dtype=np.float64).sum(axis=0)
    mean = total / n
    sq = np.zeros(X.shape[1])
    for start in range(0, n, chunk_rows):
        block = np.array(X[start : start + chunk_rows], dtype=np.float64)  # a copy: centred and squared in place
        block -= mean
        block *= block
        sq += block.sum(axis=0)
    return mean, sq / n
