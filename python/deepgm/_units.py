"""The types of units an RBM layer can have, and everything the Python side does differently by type.

A unit type is named once here and once in Rust (``rust/units.rs``, the ``Units`` enum, which holds
the maths: the conditional mean and draw, the free-energy term, the AIS base model's log partition
function). The Python side of a type is one :class:`Units` object in :data:`UNITS`: its ``name``
(the value of ``RBM(visible=..., hidden=...)``, and what the kernels are told: ``Units::parse``),
which data it accepts, how the data are mapped into the space the parameters live in, where the
visible biases start, the random starting states of Gibbs chains, the AIS base model's biases and
the ``learning_rate="auto"`` it needs.

- Bernoulli units (s in {0, 1}, ``p(s = 1 | x) = sigmoid(a + x)``) accept data in [0, 1], used as
  they are; the visible biases start at the log-odds of the data marginals (Hinton 2010), and the AIS
  base model has the same biases built from the base-rate means.
- Gaussian units (unit variance, ``s | x ~ N(a + x, I)``) accept any real data, which is
  standardised: ``z = (x - mean_) / scale_``, so that unit variance suits it; the biases start at 0,
  and the AIS base model's biases are the base-rate means themselves.

Estimators look a type up by name (:func:`get_units`) and list the valid names from the registry
(:func:`unit_names`), so adding a type is one subclass and one :func:`register_units` call here,
plus its arms in ``rust/units.rs`` (docs/architecture.md, "Adding a unit type").

A K-way softmax group (:data:`SOFTMAX`: the label units of a labelled DBN, a Replicated Softmax
document's words, a rated item of the collaborative RBM) is a unit of another kind: its state is one
of K categories, a one-hot vector, so its mean and its draw need the whole group at once. It lives
here too, as a :class:`SoftmaxGroup` outside :data:`UNITS` (no RBM takes it as ``visible=`` or
``hidden=``); its maths in Rust is ``rust/softmax.rs``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, logsumexp, softmax

from ._base import check_unit_interval, mostly_binary

__all__ = [
    "BERNOULLI",
    "GAUSSIAN",
    "SOFTMAX",
    "UNITS",
    "SoftmaxGroup",
    "Units",
    "auto_visible",
    "binary_visible",
    "get_units",
    "register_units",
    "resolve_visible",
    "unit_names",
    "units_for_loss",
]


class Units:
    """One unit type (not for direct use: see :data:`BERNOULLI`, :data:`GAUSSIAN`).

    Attributes
    ----------
    name : str
        The parameter value naming the type, and what the Rust kernels parse.
    title : str
        The name in messages ("Bernoulli").
    binary : bool
        Whether the states are 0 or 1: such visible units refuse data outside [0, 1], start Gibbs
        chains at uniform random binary states and have a pseudo-likelihood.
    standardised : bool
        Whether the data are standardised into the parameters' space (``mean_``, ``scale_``).
    visible_learning_rate, hidden_learning_rate : float or None
        ``learning_rate="auto"`` of an RBM with these visible / hidden units; a hidden rate (when not
        None) overrides the visible one: Gaussian units need far smaller rates (Hinton 2010).
    reconstruction_loss : str
        The deep autoencoder's ``loss`` whose output layer matches these units as its bottom RBM's
        visible units: the negative log-likelihood of the units' conditional (cross-entropy for
        Bernoulli units, squared error for unit-variance Gaussian ones).
    """

    name: str
    title: str
    binary: bool = False
    standardised: bool = False
    visible_learning_rate: float | None = None
    hidden_learning_rate: float | None = None
    reconstruction_loss: str = ""

    def __repr__(self):
        return f"<{self.title} units>"

    def check_data(self, X, name="X", *, what=None, hint=None):
        """Fails unless X suits these units as visible units: a ValueError naming ``name``, saying
        what needs the data's range (``what``, by default these visible units) and what to use
        instead (``hint``)."""

    def initial_visible(self, mean, var, dtype):
        """(mean_, scale_, visible_mean_, intercept_visible_), each of shape (n_features,), of a new
        RBM whose training data have column means ``mean`` and variances ``var`` (float64)."""
        raise NotImplementedError

    def to_model_space(self, X, mean, scale, dtype):
        """X (n_samples, n_features) in the space the parameters live in, C-contiguous in ``dtype``."""
        return np.ascontiguousarray(X, dtype=dtype)

    def to_data_space(self, V, mean, scale, dtype):
        """The inverse of :meth:`to_model_space`."""
        return V

    def random_states(self, rng, shape, dtype):
        """Random starting states of Gibbs chains, an array of ``shape``."""
        raise NotImplementedError

    def base_biases(self, means, dtype):
        """The visible biases of the AIS base model (no weights) whose visible means are ``means``
        (n_features,), validated: a ValueError names ``base_rate`` if they do not suit the units."""
        raise NotImplementedError


def _log_odds(p, dtype):
    """log(p / (1 - p)) of probabilities p, computed in float64 with p clipped to [1e-3, 1 - 1e-3]
    (so that always-0 or always-1 features get finite biases), in ``dtype``."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p)).astype(dtype)


class _Bernoulli(Units):
    name = "bernoulli"
    title = "Bernoulli"
    binary = True
    visible_learning_rate = 0.1  # BernoulliRBM's default
    reconstruction_loss = "cross_entropy"

    def check_data(self, X, name="X", *, what=None, hint=None):
        check_unit_interval(X, name, what=what or f"{self.title} visible units", hint=hint or f"visible={GAUSSIAN.name!r}")

    def initial_visible(self, mean, var, dtype):
        n_features = mean.shape[0]
        # Hinton (2010): visible biases at the log-odds of the data marginals.
        return np.zeros(n_features, dtype=dtype), np.ones(n_features, dtype=dtype), mean.astype(dtype), _log_odds(mean, dtype)

    def random_states(self, rng, shape, dtype):
        return (rng.random(shape) < 0.5).astype(dtype)

    def base_biases(self, means, dtype):
        if means.min() < 0 or means.max() > 1:
            raise ValueError(
                f"base_rate must hold visible probabilities in [0, 1] for {self.title} visible units; "
                f"got values from {means.min():g} to {means.max():g}"
            )
        return _log_odds(means, dtype)


class _Gaussian(Units):
    name = "gaussian"
    title = "Gaussian"
    standardised = True
    visible_learning_rate = 0.003
    hidden_learning_rate = 0.001
    reconstruction_loss = "squared_error"

    def initial_visible(self, mean, var, dtype):
        n_features = mean.shape[0]
        scale = np.sqrt(var).astype(dtype)
        scale[scale < 1e-8] = 1.0  # constant columns
        return mean.astype(dtype), scale, np.zeros(n_features, dtype=dtype), np.zeros(n_features, dtype=dtype)

    def to_model_space(self, X, mean, scale, dtype):
        return ((np.asarray(X, dtype=dtype) - mean) / scale).astype(dtype, copy=False)

    def to_data_space(self, V, mean, scale, dtype):
        return (V * scale + mean).astype(dtype, copy=False)

    def random_states(self, rng, shape, dtype):
        return rng.standard_normal(shape).astype(dtype)

    def base_biases(self, means, dtype):
        return np.asarray(means, dtype=dtype)


#: The unit types by name, in the order messages list them.
UNITS: dict[str, Units] = {}


def register_units(units: Units) -> Units:
    """Adds a unit type to :data:`UNITS` (its name becomes valid for ``visible`` and ``hidden``)."""
    UNITS[units.name] = units
    return units


BERNOULLI = register_units(_Bernoulli())
GAUSSIAN = register_units(_Gaussian())


def unit_names() -> tuple:
    """The names of the registered unit types (the valid values of ``visible`` and ``hidden``)."""
    return tuple(UNITS)


def get_units(name) -> Units:
    """The unit type named ``name`` (validated beforehand by the estimator's ``check_option``)."""
    return UNITS[name]


def binary_visible(visible) -> bool:
    """Whether ``visible`` names a registered type of binary units (the estimators' scikit-learn tag
    ``positive_only``); False for "auto" or a name not registered (validated later, in fit)."""
    return visible in UNITS and get_units(visible).binary


def auto_visible(binary: bool) -> str:
    """``visible="auto"``: Bernoulli units for mostly binary data (see
    :func:`deepgm._base.mostly_binary`), Gaussian ones otherwise."""
    return BERNOULLI.name if binary else GAUSSIAN.name


def units_for_loss(loss) -> str:
    """The name of the visible units whose ``reconstruction_loss`` is ``loss`` (the deep autoencoder's
    bottom RBM for its resolved loss)."""
    return next(units.name for units in UNITS.values() if units.reconstruction_loss == loss)


def resolve_visible(visible, X) -> str:
    """The bottom RBM's visible units for the training data X: ``visible`` (whose units must accept
    X), or for "auto" :func:`auto_visible` of whether X is mostly binary."""
    if visible == "auto":
        return auto_visible(mostly_binary(X))
    get_units(visible).check_data(X)
    return visible


class SoftmaxGroup:
    """A K-way softmax group: K units of which exactly one is on, a category k in [0, K) held as a
    one-hot row. With logits z (the group's biases plus its input from the hidden units),

        p(k | z)       = softmax(z)_k = exp(z_k - m) / sum_l exp(z_l - m),  m = max_l z_l
        free energy    = -log sum_k exp(z_k)   (the group summed out: log-sum-exp, stably)

    and a replicated group (a document's D words, each a draw from the same softmax) is held as its
    counts, non-negative integers summing to D.

    Not a :class:`Units` subclass, and not in :data:`UNITS`: a :class:`Units` object describes one
    unit that RBM's kernels run elementwise (``visible=`` / ``hidden=``), with data statistics per
    feature (standardisation, log-odds biases, random binary or normal chain starts). A group's mean
    and draw need all K logits at once, and its models (the labelled DBN's top RBM, ReplicatedSoftmax,
    CollaborativeRBM) drive their own kernels (``rust/softmax.rs`` in Rust); registering it would
    offer RBM a choice it cannot run. What the Python side of those models does with a group is here:
    checking data, the mean, the draw, the free-energy term and where the biases start.
    """

    name = "softmax"
    title = "softmax"

    def __repr__(self):
        return f"<{self.title} group>"

    def check_data(self, X, name="X", *, replicated=False, what=None):
        """Fails unless X suits the group: one-hot rows (n, K), or with ``replicated`` non-negative
        integer counts (a dense array or the stored values of a sparse matrix). The ValueError names
        ``name``, what the data are for (``what``: "one-hot rows" or "counts" by default) and the
        first offending value or row."""
        if replicated:
            values = np.asarray(X.data if hasattr(X, "tocsr") else X)
            bad = values[(values < 0) | (values != np.floor(values))]
            if bad.size:
                raise ValueError(f"{name} must hold {what or 'counts'} (non-negative integers); got {bad.flat[0]:g}")
            return
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array of one-hot rows for a {self.title} group; got shape {X.shape}")
        bad = np.flatnonzero(np.any((X != 0) & (X != 1), axis=1) | (X.sum(axis=1) != 1))
        if bad.size:
            raise ValueError(
                f"{name} must hold {what or 'one-hot rows'} (one 1 per row, 0 elsewhere) for a {self.title} group; "
                f"got row {bad[0]} = {X[bad[0]].tolist()}"
            )

    def mean(self, logits):
        """p(k | z) of every row: logits (n, K) -> probabilities (n, K), float64, stable for any
        finite logits (the row maximum is subtracted before exponentiating)."""
        return softmax(np.asarray(logits, dtype=np.float64), axis=-1)

    def log_mean(self, logits):
        """log p(k | z): logits (n, K) -> (n, K) float64, stable (no log of an underflowed 0)."""
        return log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)

    def free_energy(self, logits):
        """The group's free-energy term once summed out, ``-log sum_k exp(z_k)``: logits (n, K) ->
        (n,) float64, stable."""
        return -logsumexp(np.asarray(logits, dtype=np.float64), axis=-1)

    def sample_categories(self, logits, rng: np.random.Generator):
        """One category per row drawn from softmax(logits): logits (n, K) -> codes (n,) in [0, K).

        Inverse-CDF sampling with one uniform of ``rng`` per row; the cumulative sums are float64 and
        the uniform is scaled by their total, so rows whose last probabilities are tiny are sampled
        exactly and no draw falls past the last category."""
        cdf = np.cumsum(self.mean(logits), axis=1)
        u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]
        return np.minimum((cdf <= u).sum(axis=1), logits.shape[1] - 1)

    def sample(self, logits, rng: np.random.Generator):
        """One draw per row, as the group's state: logits (n, K) -> one-hot (n, K) in logits' dtype
        (:meth:`sample_categories`)."""
        return self.one_hot(self.sample_categories(logits, rng), logits.shape[1], logits.dtype)

    def one_hot(self, codes, n_categories: int, dtype):
        """codes (n,) in [0, K) -> one-hot rows (n, K) in ``dtype``."""
        Y = np.zeros((len(codes), n_categories), dtype=dtype)
        Y[np.arange(len(codes)), codes] = 1
        return Y

    def initial_biases(self, frequencies, dtype, *, floor=0.0):
        """The group's biases at the log of the category frequencies (n_categories,), each at least
        ``floor``: the base rates, which a model without weights reproduces; in ``dtype``."""
        return np.log(np.maximum(np.asarray(frequencies, dtype=np.float64), floor)).astype(dtype)


#: The K-way softmax group (see :class:`SoftmaxGroup`).
SOFTMAX = SoftmaxGroup()
