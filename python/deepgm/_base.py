"""What every deepgm estimator shares: input validation, random state, dtype, threads, progress,
per-epoch history, failure handling and saving.

Estimators follow scikit-learn's conventions: ``__init__`` only stores its arguments, ``fit``
validates them and the data, learned attributes end in ``_``. The Rust kernels (``deepgm._core``)
are stateless; the arrays they update live here, on the estimator.
"""

from __future__ import annotations

import numbers
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils import check_scalar
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
from tqdm.auto import tqdm

from . import _core

__all__ = ["DeepGMEstimator", "DivergenceError"]

#: The numpy dtypes an estimator can compute in.
_DTYPES = {"float32": np.float32, "float64": np.float64}


class DivergenceError(FloatingPointError, ValueError, RuntimeError):
    """Training produced non-finite parameters or losses, or a loss that exploded (usually: the
    learning rate is too large).

    The estimator is left with the parameters it had at the start of the failing epoch; when that
    epoch is the first of the call, with no model at all: as it was before the call (unfitted, or
    its previous model; see ``deepgm._failed_fit``).
    """


#: A training loss that stays finite can still explode: an epoch whose mean loss exceeds this
#: multiple of the first step's (positive) loss has diverged.
LOSS_EXPLOSION_FACTOR = 100.0


def check_loss_explosion(mean_loss: float, first_loss) -> None:
    """Raises FloatingPointError (turned into DivergenceError by ``_epoch_guard``) when an epoch's
    mean loss has grown past ``LOSS_EXPLOSION_FACTOR`` times the first step's loss."""
    if first_loss is not None and first_loss > 0 and mean_loss > LOSS_EXPLOSION_FACTOR * first_loss:
        raise FloatingPointError(f"the mean training loss grew from {first_loss:.4g} (first step) to {mean_loss:.4g}")


def check_dtype(dtype) -> type:
    """The numpy scalar type named by ``dtype`` ("float32" or "float64"). Written here: scikit-learn
    has no public check of a dtype name, and ``np.dtype`` alone would take None as float64."""
    if dtype is None:  # np.dtype(None) would silently mean float64
        raise ValueError("dtype must be 'float32' or 'float64'; got None")
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is not None and resolved.name in _DTYPES and not isinstance(dtype, (bool, numbers.Number)):
        return _DTYPES[resolved.name]
    raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")


def _with_dtype(value, old, new):
    """``value`` with its arrays of dtype ``old`` (in lists, tuples and dicts too) converted to
    ``new``, and fitted estimators within it switched to ``new`` by their ``set_params``."""
    if isinstance(value, np.ndarray):
        return value.astype(new) if value.dtype == old else value
    if isinstance(value, (list, tuple)):
        return type(value)(_with_dtype(v, old, new) for v in value)
    if isinstance(value, dict):
        return {k: _with_dtype(v, old, new) for k, v in value.items()}
    if isinstance(value, BaseEstimator) and getattr(value, "dtype", None) is not None:
        return value.set_params(dtype=np.dtype(new).name)
    return value


def _as_learned(value, current, dtype):
    """``value``, about to replace the learned ``current``, as C-contiguous and aligned floats of the
    estimator's ``dtype`` where ``current`` is an array of that dtype (lists element by element).
    Whatever already fits is kept as the same object, so in-place updates reach it; anything else
    (ints, scalars, arrays the model keeps in another dtype) is returned unchanged."""
    if isinstance(value, list) and isinstance(current, list) and len(value) == len(current):
        items = [_as_learned(v, c, dtype) for v, c in zip(value, current)]
        return value if all(new is old for new, old in zip(items, value)) else items
    if not (isinstance(value, np.ndarray) and isinstance(current, np.ndarray)):
        return value
    if value.ndim == 0 or value.dtype.kind != "f" or current.dtype.kind != "f":
        return value
    try:
        compute = check_dtype(dtype)
    except ValueError:  # a bad dtype is refused by the next fit or method
        return value
    target = compute if current.dtype == compute else value.dtype
    return np.require(value, dtype=target, requirements=["C_CONTIGUOUS", "ALIGNED"])


def output_dtype(X) -> type:
    """The dtype of what a method returns for input X, whatever the dtype the model computes in
    (scikit-learn's convention): float32 for float32 input, float64 for anything else (float64,
    integers, lists, object arrays of numbers)."""
    dtype = getattr(X, "dtype", None)
    if dtype is None and hasattr(X, "dtypes"):  # a data frame: float32 only if every column is
        kinds = {_column_dtype(d) for d in X.dtypes} if len(X.dtypes) else set()
        dtype = kinds.pop() if len(kinds) == 1 else None
    return np.float32 if dtype == np.float32 else np.float64


def _column_dtype(dtype):
    """A data frame column's NumPy dtype; pandas' nullable dtypes (``Float32``, ``Int64``,
    ``boolean``, from ``convert_dtypes``) by their ``numpy_dtype``, which ``np.dtype`` refuses."""
    return np.dtype(getattr(dtype, "numpy_dtype", dtype))


def as_output(values, X):
    """``values`` (an array computed from X) in :func:`output_dtype` of X, without a copy when it
    already has it."""
    return values.astype(output_dtype(X), copy=False)


def seed_from(random_state) -> int:
    """A 64-bit seed for the Rust random streams, from an int, None, a RandomState or a Generator.

    An int always gives the same seed; None gives fresh entropy; a RandomState or Generator is
    advanced by one draw (as scikit-learn estimators do). Not built on ``check_random_state``: the
    Rust streams take a 64-bit seed rather than a RandomState, an int is spread by ``SeedSequence``
    (so seeds 0 and 1 give unrelated streams), and numpy Generators are accepted.
    """
    if random_state is None:
        return int(np.random.default_rng().integers(0, 2**63))
    if isinstance(random_state, (numbers.Integral, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, None, a RandomState or a Generator; got {random_state}")
        # Spread small integers over the whole 64-bit range (SeedSequence is stable across numpy versions).
        return int(np.random.SeedSequence(int(random_state)).generate_state(1, np.uint64)[0])
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**62, dtype=np.int64))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63))
    raise ValueError(f"random_state must be None, a non-negative int, a numpy RandomState or a numpy Generator; got {random_state!r}")


def validate_random_state(random_state):
    """Validates ``random_state`` (None, a non-negative int, a RandomState or a Generator) without
    drawing from it. Not scikit-learn's ``check_random_state``: ints of any size and numpy Generators
    are accepted (they seed the Rust streams through :func:`seed_from`), and nothing is built."""
    if random_state is None or isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    if isinstance(random_state, (numbers.Integral, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, None, a RandomState or a Generator; got {random_state}")
        return random_state
    raise ValueError(f"random_state must be None, a non-negative int, a numpy RandomState or a numpy Generator; got {random_state!r}")


# The checks of hyperparameters below are scikit-learn's ``check_scalar`` (type and bounds) with what
# it lacks: it lets bools through as ints, names only the type of a value of the wrong type, and knows
# no values besides a range (-1 for n_jobs, "auto" for lengths). scikit-learn's declarative
# constraints (``sklearn.utils._param_validation``) would express those, but they are private API.


def _checked_scalar(value, name: str, kind, expected: str, *, bools=False, **bounds):
    """``check_scalar(value, name, kind, **bounds)`` with the value named in a type error and, unless
    ``bools``, bools refused (``expected`` says what was expected instead)."""
    if not bools and isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be {expected}; got {value!r} (bool)")
    try:
        return check_scalar(value, name, kind, **bounds)
    except TypeError as err:
        raise TypeError(f"{err} Got {value!r}.") from None


def check_verbose(verbose):
    """verbose: a bool or an int >= 0 (``check_scalar``, with bools let through on purpose)."""
    return int(_checked_scalar(verbose, "verbose", (numbers.Integral, np.bool_), "a bool or an int >= 0", bools=True, min_val=0))


def check_bool(value, name: str) -> bool:
    """True or False (numpy bools too); not 0 or 1 (``check_scalar`` of a bool type, with the value
    named in the error)."""
    return bool(_checked_scalar(value, name, (bool, np.bool_), "True or False", bools=True))


def check_int_or(value, name: str, *, minimum: int = 1, also=()):
    """An int >= ``minimum`` (not a bool), or one of the values ``also`` (such as "auto", or -1 and
    None for n_jobs), returned as it is; a TypeError or ValueError naming ``name`` otherwise.
    ``check_scalar`` checks the int; the bools and the ``also`` values are what it lacks."""
    expected = ", ".join(repr(v) for v in also) + (" or " if also else "") + f"an int >= {minimum}"
    if (value is None or isinstance(value, str)) and value in also:
        return value
    if isinstance(value, str):
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    if not also:  # scikit-learn's own bounds and message
        return int(_checked_scalar(value, name, numbers.Integral, expected, min_val=minimum))
    value = int(_checked_scalar(value, name, numbers.Integral, expected))
    if value < minimum and value not in also:  # not check_scalar's bounds: they know no exceptions
        raise ValueError(f"{name} must be {expected}; got {value}")
    return value


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """An int >= ``minimum`` (not a bool), else a TypeError or ValueError naming ``name``
    (``check_scalar``'s bounds and message, with bools refused)."""
    return check_int_or(value, name, minimum=minimum)


def check_number(value, name: str, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """A finite real number (not a bool) within [low, high], open ends if asked, else a TypeError or
    ValueError naming ``name`` (``check_scalar``'s bounds and message, with bools and NaN refused,
    which it lets through)."""
    closed = (low is not None and not low_open, high is not None and not high_open)
    boundaries = {(True, True): "both", (True, False): "left", (False, True): "right", (False, False): "neither"}[closed]
    value = _checked_scalar(value, name, numbers.Real, "a real number", min_val=low, max_val=high, include_boundaries=boundaries)
    if not np.isfinite(value):  # check_scalar lets NaN (and inf without a bound) through
        raise ValueError(f"{name} must be a finite number; got {value}")
    return float(value)


def check_option(value, name: str, options, *, or_else: str | None = None) -> str:
    """One of the strings ``options``. ``or_else`` describes what else the parameter takes (such as
    "True or False" beside "auto"), for the message. Written here: scikit-learn's only option check
    is the private ``StrOptions`` constraint."""
    if not isinstance(value, str) or value not in options:
        choices = ", ".join(repr(o) for o in options)
        expected = f"one of {choices}" if or_else is None else f"{or_else}, or {choices}"
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    return value


_N_JOBS_EXPECTED = "None or -1 (all cores), an int >= 1, or -2, -3, ... (all cores but 1, 2, ...)"


def check_n_jobs(n_jobs):
    """``n_jobs`` as the Rust core takes it: None or -1 (all cores) or a positive int as given; the
    joblib convention for the other negatives (-2: all cores but one, ...) resolved here to
    ``cores + 1 + n_jobs`` threads, at least one."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, str):
        raise ValueError(f"n_jobs must be {_N_JOBS_EXPECTED}; got {n_jobs!r}")
    value = int(_checked_scalar(n_jobs, "n_jobs", numbers.Integral, _N_JOBS_EXPECTED))
    if value == 0:
        raise ValueError(f"n_jobs must be {_N_JOBS_EXPECTED}; got 0")
    if value < -1:
        return max(_core.effective_n_jobs(-1) + 1 + value, 1)
    return value


def aligned(value):
    """``value`` with every NumPy array in it aligned: an array (or a list, possibly nested, of
    arrays) rebuilt from a pickle or a network message can start at any byte, and the kernels refuse
    misaligned arrays. Misaligned arrays are copied; anything already aligned (or not an array) is
    returned as the same object, with no copy."""
    if isinstance(value, np.ndarray):
        return value if value.flags.aligned else np.array(value, copy=True)
    if isinstance(value, list):
        items = [aligned(v) for v in value]
        return value if all(new is old for new, old in zip(items, value)) else items
    return value


def _dask_worker_threads() -> int | None:
    """The number of threads of the Dask worker running the calling code, or None outside one.

    Only looked up if ``distributed`` is imported already: code that never uses Dask never imports it.
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return int(distributed.get_worker().state.nthreads)
    except (ValueError, AttributeError):  # ValueError: not in a worker
        return None


def check_hidden_layer_sizes(sizes, name: str = "hidden_layer_sizes") -> tuple:
    """A tuple of positive ints from an int or a non-empty sequence of them. Written here:
    ``check_scalar`` per entry would raise a TypeError, not this ValueError, for a non-int entry,
    and could not say which sequence held it."""
    if isinstance(sizes, (numbers.Integral, np.integer)) and not isinstance(sizes, bool):
        sizes = (sizes,)
    if isinstance(sizes, str):  # a sequence too, of characters: say what was given, not its letters
        raise ValueError(f"{name} must be a positive int or a sequence of them; got the string {sizes!r}")
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive ints; got {sizes!r}") from None
    if len(sizes) == 0:
        raise ValueError(f"{name} must hold at least one layer size; got {sizes!r}")
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (numbers.Integral, np.integer)) or s < 1:
            raise ValueError(f"{name} must hold positive ints; got {sizes!r}")
    return tuple(int(s) for s in sizes)


class DeepGMEstimator(BaseEstimator):
    """Base class of deepgm's estimators (not for direct use).

    Subclasses implement ``_fit_epochs`` style loops with the helpers below and list their learned
    parameter arrays in ``_param_names`` (used for snapshots, saving and loading).
    """

    #: Names of learned array attributes (or lists of arrays) that fully describe a fitted model.
    _param_names: tuple = ()

    # -- validation ---------------------------------------------------------------------------------

    #: The learned attribute whose presence means "fitted" (see ``__sklearn_is_fitted__``).
    _fitted_attribute: str | None = None

    def __setstate__(self, state):
        # Arrays unpickled from a network message (Dask, joblib) may start at an odd byte; the kernels
        # need aligned arrays, so such learned arrays are copied once here.
        super().__setstate__(state)
        for key, value in list(vars(self).items()):
            setattr(self, key, aligned(value))

    def __setattr__(self, name, value):
        # Learned arrays assigned by hand (weights copied from BernoulliRBM or MLPClassifier, say) are
        # brought to the layout and dtype the kernels take, as a fit would have left them.
        if name in self._param_names or name in self._state_names:
            value = _as_learned(value, self.__dict__.get(name), getattr(self, "dtype", None))
        super().__setattr__(name, value)

    def __sklearn_is_fitted__(self):
        if self._fitted_attribute is None:
            return any(k.endswith("_") and not k.startswith("__") for k in vars(self))
        return hasattr(self, self._fitted_attribute)

    def set_params(self, **params):
        """scikit-learn's ``set_params``. A new ``dtype`` on a fitted estimator also converts what it
        learned (parameters, optimiser state, persistent chains, fitted sub-estimators) to that
        dtype, so that it keeps predicting and ``partial_fit`` continues in it, as after a fit with
        it; the kernels refuse arrays of mixed dtypes."""
        old = self.dtype
        super().set_params(**params)
        if "dtype" in params and self.__sklearn_is_fitted__():
            try:
                old, new = check_dtype(old), check_dtype(self.dtype)
            except ValueError:  # a bad dtype is refused by the next fit or method, as in scikit-learn
                return self
            hyperparameters = self.get_params(deep=False)  # the user's settings stay as given
            if old != new:
                for name, value in list(vars(self).items()):
                    if name not in hyperparameters:
                        setattr(self, name, _with_dtype(value, old, new))
        return self

    def _dtype(self):
        return check_dtype(self.dtype)

    def _n_jobs(self):
        """Threads for the kernels: ``n_jobs``, except that "all cores" (None or -1) inside a Dask
        worker means the worker's threads, so trials of a search running side by side on one machine
        do not each take every core (Dask's nanny caps the BLAS thread variables, not deepgm's pool)."""
        n_jobs = check_n_jobs(self.n_jobs)
        if n_jobs is None or n_jobs == -1:
            return _dask_worker_threads() or n_jobs
        return n_jobs

    def _check_common_params(self):
        """dtype, n_jobs, random_state and verbose: the settings every estimator shares."""
        self._dtype()
        self._n_jobs()
        validate_random_state(self.random_state)
        check_verbose(self.verbose)

    def _validate_X(
        self,
        X,
        *,
        reset: bool,
        units=None,
        name: str = "X",
        stream: bool = False,
        unit_what: str | None = None,
        unit_hint: str | None = None,
    ):
        """Validated X as a 2-D C-contiguous array of the model's dtype.

        A float C-contiguous array of the model's dtype (including a numpy.memmap) is used as is, never
        copied. With ``stream`` (training), a memory-mapped array of another numeric dtype is kept on
        disk and converted one minibatch at a time. Sparse input is densified. Complex, object or
        string data, NaN/inf, 1-D or 3-D input, empty input, and data the visible ``units`` (a
        :class:`deepgm._units.Units`) do not accept are refused with a message naming ``name``
        (``unit_what`` and ``unit_hint`` override what the message says needs the range and suggests
        instead).

        Every check runs before the estimator is touched: only when X passed them all does ``reset``
        record ``n_features_in_`` (and ``feature_names_in_``); with ``reset=False`` the feature count
        (and names) must match those seen in fit.
        """
        dtype = self._dtype()
        original = X
        if X is None:
            raise ValueError(f"{name} must be a 2-D array of shape (n_samples, n_features); got None")
        if not hasattr(X, "shape"):
            try:
                X = np.asarray(X)
            except (ValueError, TypeError) as err:  # ragged nested sequences
                raise ValueError(f"{name} must be a 2-D array of shape (n_samples, n_features); could not convert it ({err})") from None
        _refuse_non_numeric(X, name)
        if not sp.issparse(X) and len(X.shape) != 2:
            hint = (
                ". Expected 2D array: Reshape your data either using X.reshape(-1, 1) if it has a single feature "
                "or X.reshape(1, -1) if it contains a single sample."
                if len(X.shape) == 1
                else "."
            )
            raise ValueError(
                f"{name} must be a 2-D array of shape (n_samples, n_features); got a {len(X.shape)}-D array of shape {tuple(X.shape)}{hint}"
            )
        with _named_errors(name):
            if stream and isinstance(X, np.memmap) and X.dtype != dtype and X.dtype.kind in "fiu":
                # A memory-mapped array of another numeric dtype stays on disk: it is validated here and
                # converted one minibatch at a time (see `minibatch`), never copied whole.
                X = check_array(X, dtype=None, ensure_min_samples=1, ensure_min_features=1, estimator=self, input_name=name)
            else:
                try:
                    if sp.issparse(X):
                        X = check_array(X, accept_sparse=["csr", "csc", "coo"], dtype=dtype, estimator=self, input_name=name)
                        X = np.ascontiguousarray(X.toarray(), dtype=dtype)
                    else:
                        X = check_array(
                            X, dtype=dtype, order="C", ensure_min_samples=1, ensure_min_features=1, estimator=self, input_name=name
                        )
                except ValueError:
                    self._refuse_values_beyond_dtype(X, name)
                    raise
        X = aligned(X)
        if units is not None:
            units.check_data(X, name, what=unit_what, hint=unit_hint)
        if not reset:
            self._check_features(original, name)
        else:
            with _named_errors(name):
                validate_data(self, original, reset=True, skip_check_array=True)
        return X

    def _refuse_values_beyond_dtype(self, X, name):
        """When converting X to the model's dtype failed: if X is finite and only too large for that
        dtype (1e39 for a float32 model), says so and how to proceed, where scikit-learn's message
        would claim that X holds infinity."""
        values = X.data if sp.issparse(X) else X
        try:
            values = np.asarray(values, dtype=np.float64)
        except (ValueError, TypeError):
            return
        dtype = np.dtype(self._dtype())
        limit = float(np.finfo(dtype).max)
        if values.size and np.isfinite(values).all():
            largest = float(np.abs(values).max())
            if largest > limit:
                raise ValueError(
                    f"{name} must hold values within the range of {dtype.name}, the dtype {type(self).__name__} computes in "
                    f"(magnitudes up to {limit:.3g}); got a finite value of magnitude {largest:.3g}. "
                    "Rescale the data (e.g. StandardScaler) or use dtype='float64'."
                )

    def _check_features(self, X, name="X"):
        """The feature count (and names, for data frames) of X must match those seen in fit."""
        with _named_errors(name):
            validate_data(self, X, reset=False, skip_check_array=True)

    def _validate_y(self, y, n_samples: int, *, classification: bool, multi_output: bool = False, name: str = "y"):
        """Validated targets: one per sample of X, finite, real (numeric for regression, discrete
        labels for classification)."""
        if y is None:
            raise ValueError(f"{name} is required: {type(self).__name__} requires y to be passed, but the target y is None")
        with _named_errors(name):
            if not hasattr(y, "shape") and not sp.issparse(y):
                y = np.asarray(y)
            if not classification:
                _refuse_non_numeric(y, name)
            elif np.iscomplexobj(y):  # scikit-learn's own message would print the whole array
                raise ValueError(f"Complex data not supported: {name} must hold class labels (numbers or strings); got dtype {y.dtype}")
            y = check_targets(y, multi_output=multi_output, numeric=not classification, estimator=self)
            if classification:
                check_classification_targets(y)
        if y.shape[0] != n_samples:
            raise ValueError(
                f"X and {name} must have the same number of samples (inconsistent numbers of samples); got {n_samples} and {y.shape[0]}"
            )
        return y

    def _validate_array(self, Z, name: str, n_columns: int, columns_name: str):
        """A 2-D finite float array of the model's dtype with ``n_columns`` columns (e.g. latent codes)."""
        if Z is None:
            raise ValueError(f"{name} must be a 2-D array of shape (n_samples, {n_columns}); got None")
        if not hasattr(Z, "shape"):
            with _named_errors(name):
                Z = np.asarray(Z)
        _refuse_non_numeric(Z, name)
        if sp.issparse(Z):
            Z = Z.toarray()
        if not sp.issparse(Z) and len(Z.shape) != 2:
            raise ValueError(
                f"{name} must be a 2-D array of shape (n_samples, {n_columns}); got a {len(Z.shape)}-D array of shape {tuple(Z.shape)}"
            )
        with _named_errors(name):
            Z = aligned(check_array(Z, dtype=self._dtype(), order="C", estimator=self, input_name=name))
        if Z.shape[1] != n_columns:
            raise ValueError(f"{name} must have {n_columns} columns ({columns_name}); got {Z.shape[1]}")
        return Z

    def _check_fitted(self):
        check_is_fitted(self)

    @contextmanager
    def _fit_transaction(self):
        """Makes the start of a fit atomic: if anything fails (a bad argument, an interrupt, ...) before
        ``commit()`` is called, every attribute is restored to what it was before the call, so a
        fitted estimator keeps its model and an unfitted one stays unfitted. Training runs inside the
        transaction, wrapped in :func:`deepgm._failed_fit.kept_if_trained`, which calls ``commit()``
        when what training leaves is a model: always after Ctrl-C, after any other failure only once
        a whole epoch has completed (the parameters are then those ``_epoch_guard`` restored)."""
        saved = dict(self.__dict__)
        state = {"committed": False}

        def commit():
            state["committed"] = True

        try:
            yield commit
        except BaseException:
            if not state["committed"]:
                self.__dict__.clear()
                self.__dict__.update(saved)
            raise

    # -- randomness ---------------------------------------------------------------------------------

    def _next_seed(self) -> int:
        """A seed for a random method call after fit (gibbs, sample, ...): the fit seed and a counter,
        so successive calls differ but an estimator rebuilt with the same random_state repeats them."""
        count = getattr(self, "_sample_calls", 0)
        self._sample_calls = count + 1
        base = getattr(self, "_fit_seed", None)
        if base is None:
            base = seed_from(self.random_state)
        return int(np.random.SeedSequence([base % 2**63, count + 1]).generate_state(1, np.uint64)[0])

    # -- progress and history -----------------------------------------------------------------------

    def _progress(self, total: int, desc: str):
        return tqdm(total=total, desc=desc, leave=False, unit="batch", disable=not self.verbose)

    def _log_epoch(self, **metrics):
        """Appends one epoch's metrics to ``history_`` (a dict of lists) and prints them if verbose."""
        # A new dict assigned in one statement: an interrupt (Ctrl-C) lands before or after it, so
        # history_ never holds a partly logged epoch.
        history = dict(self.history_)
        for key, value in metrics.items():
            if isinstance(value, np.generic):  # NumPy scalars as plain numbers, as every model logs them
                value = value.item()
            history[key] = list(history.get(key, [])) + [value]
        self.history_ = history
        if self.verbose:
            parts = ", ".join(f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}" for k, v in metrics.items())
            print(f"[{type(self).__name__}] {parts}", flush=True)

    # -- failure handling ---------------------------------------------------------------------------

    #: Optimiser state (velocities, Adam moments and step count) restored with the parameters.
    _state_names: tuple = ()

    def _snapshot(self) -> dict:
        """Copies of the learned arrays and the optimiser state, to restore if an epoch diverges."""
        snap = {}
        for name in self._snapshot_names():
            if hasattr(self, name):
                snap[name] = _copy_state(getattr(self, name))
        return snap

    def _snapshot_names(self):
        return tuple(self._param_names) + tuple(self._state_names)

    def _restore(self, snap: dict):
        """Puts the snapshot back: arrays are overwritten in place (whoever holds them sees the
        restored values), scalars reassigned."""
        for name, value in snap.items():
            current = getattr(self, name, None)
            if not _restore_in_place(current, value):
                setattr(self, name, value)

    @contextmanager
    def _epoch_guard(self, epoch: int):
        """Restores the parameters of the epoch start and raises DivergenceError if the epoch fails."""
        snap = self._snapshot()
        try:
            yield
            self._check_finite_params()
        except FloatingPointError as err:
            self._restore(snap)
            raise DivergenceError(
                f"{type(self).__name__}: training diverged in epoch {epoch + 1} ({err}). The parameters were "
                "restored to their values at the start of that epoch; try a smaller learning_rate."
            ) from None

    def _check_finite_params(self):
        """Raises FloatingPointError if a learned array holds NaN or infinity: an update can overflow
        while the loss stays finite (weights of inputs the loss never sees, such as all-zero columns,
        or the epoch's last step), and a fit must not end with a model that fails every later call."""
        for name in self._param_names:
            value = getattr(self, name, None)
            for array in value if isinstance(value, list) else [value]:
                if isinstance(array, np.ndarray) and array.dtype.kind == "f" and not np.isfinite(array).all():
                    raise FloatingPointError(f"{name} holds NaN or infinity after the epoch's updates")

    def _timer(self):
        return time.perf_counter()

    # -- saving -------------------------------------------------------------------------------------

    def save(self, path):
        """Saves the fitted estimator to ``path`` (safetensors weights + JSON hyperparameters).

        The write is atomic: a temporary file is written then renamed, so ``path`` never holds a
        half-written model. Load it back with :func:`deepgm.load`.

        Returns
        -------
        path : pathlib.Path
            Where the model was written, as :func:`deepgm.save` returns it.
        """
        from .io import save

        return save(self, path)


def _copy_state(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copy_state(v) for v in value]
    return value


def _restore_in_place(current, saved) -> bool:
    """Copies ``saved`` into the arrays of ``current`` (same structure); False if it cannot."""
    if isinstance(current, np.ndarray) and isinstance(saved, np.ndarray) and current.shape == saved.shape:
        current[...] = saved
        return True
    if isinstance(current, list) and isinstance(saved, list) and len(current) == len(saved):
        return all(_restore_in_place(c, s) for c, s in zip(current, saved))
    return False


def _refuse_non_numeric(X, name):
    """Clear errors for complex and string arrays before scikit-learn's conversion."""
    dtype = getattr(X, "dtype", None)
    if dtype is None or sp.issparse(X) or not isinstance(dtype, np.dtype):
        return
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} must hold real numbers; got dtype {dtype}")
    if dtype.kind in "USV":
        raise TypeError(f"{name} must hold numbers; got an array of strings (dtype {dtype})")
    # Object arrays go on to scikit-learn's check_array, which converts numbers (as every scikit-learn
    # estimator does) and refuses strings, dicts or complex values with an error naming the input.


@contextmanager
def _named_errors(name: str):
    """Re-raises scikit-learn's validation errors (ValueError, TypeError) with ``name`` in the
    message when it does not already name the argument."""
    try:
        yield
    except (ValueError, TypeError) as err:
        msg = str(err)
        if name != "X":
            msg = re.sub(r"^X has ", f"{name} has ", msg)
        if re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.(])", msg) is None:
            msg = f"Invalid {name}: {msg}"
        elif msg == str(err):
            raise
        raise (ValueError if isinstance(err, ValueError) else TypeError)(msg) from None


def check_targets(y, *, multi_output: bool, numeric: bool, estimator, name: str = "y"):
    """y validated as scikit-learn's ``check_X_y`` validates it, from public pieces (its own
    ``_check_y`` is private). With ``multi_output``: a finite 1-D or 2-D array (CSR accepted);
    otherwise a finite 1-D array (a column vector is raveled with a DataConversionWarning), not
    complex. Object arrays become float64 when ``numeric``. Same arrays, warnings and messages as
    ``_check_y`` (scikit-learn 1.9); the sample count is the caller's check."""
    if multi_output:
        y = check_array(y, accept_sparse="csr", ensure_all_finite=True, ensure_2d=False, dtype=None, input_name=name, estimator=estimator)
    else:
        # ensure_min_samples=0: an empty y is reported by the caller as a length mismatch with X.
        y = check_array(column_or_1d(y, warn=True), ensure_2d=False, dtype=None, ensure_min_samples=0, input_name=name, estimator=estimator)
    if numeric and y.dtype.kind == "O":
        y = y.astype(np.float64)
    return y


def check_seen_labels(y, classes, name="y"):
    """Fails unless every label in y is one of the classes seen in fit. Labels are compared like with
    like: a string "3" is not the class 3, nor the number 3 the class "3"."""
    y, classes = np.asarray(y), np.asarray(classes)
    same_kind = (y.dtype.kind in "iufb") == (classes.dtype.kind in "iufb")
    unseen = np.setdiff1d(np.unique(y), classes) if same_kind else np.unique(y)
    if unseen.size:
        raise ValueError(f"{name} holds labels unseen in fit: {unseen.tolist()[:10]}; known classes: {classes.tolist()}")


def value_range(X, chunk_rows: int | None = None):
    """(min, max) of X, read in chunks so that a memory-mapped X is not loaded at once."""
    if chunk_rows is None:
        chunk_rows = max(1, (4 << 20) // (X.dtype.itemsize * max(1, X.shape[1])))
    lo, hi = np.inf, -np.inf
    for start in range(0, X.shape[0], chunk_rows):
        block = X[start : start + chunk_rows]
        lo, hi = min(lo, block.min()), max(hi, block.max())
    return lo, hi


def in_unit_interval(X) -> bool:
    """Whether every value of X lies in [0, 1] (what "auto" losses choose cross-entropy for)."""
    lo, hi = value_range(X)
    return bool(lo >= 0 and hi <= 1)


#: visible="auto" picks Bernoulli units for data in [0, 1] of which at least this fraction is exactly
#: 0 or 1 (see :func:`mostly_binary`).
BINARY_FRACTION = 0.5


def binary_fraction(X, chunk_rows: int | None = None) -> float:
    """The fraction of the entries of X (dense or sparse) that are exactly 0 or 1, read in chunks."""
    n_rows, n_cols = X.shape
    if chunk_rows is None:
        chunk_rows = max(1, (4 << 20) // (8 * max(1, n_cols)))
    count = 0
    for start in range(0, n_rows, chunk_rows):
        block = X[start : start + chunk_rows]
        if sp.issparse(block):
            stored = block.data
            count += block.shape[0] * n_cols - stored.size + np.count_nonzero((stored == 0) | (stored == 1))
        else:
            count += np.count_nonzero((block == 0) | (block == 1))
    return count / max(1, n_rows * n_cols)


def mostly_binary(X) -> bool:
    """Whether X suits Bernoulli visible units: every value in [0, 1] and at least BINARY_FRACTION of
    them exactly 0 or 1 (pixel intensities, indicators, bag-of-words presence). MinMaxScaler output of
    continuous measurements lies in [0, 1] too but has almost no exact 0s and 1s: on it Bernoulli units
    learned nearly constant features (wine: 0.92 test accuracy against 0.97 with Gaussian units)."""
    return in_unit_interval(X) and binary_fraction(X) >= BINARY_FRACTION


def check_unit_interval(X, name="X", chunk_rows: int | None = None, *, what="Bernoulli visible units", hint="visible='gaussian'"):
    """Fails unless every value of X lies in [0, 1] (Bernoulli units)."""
    lo, hi = value_range(X, chunk_rows)
    if lo < 0 or hi > 1:
        negative = " (Negative values in data are not allowed.)" if lo < 0 else ""
        raise ValueError(
            f"{name} must hold values in [0, 1] for {what}; got values in [{lo:g}, {hi:g}].{negative} "
            "Scale the data to [0, 1] (held-out rows scaled by a MinMaxScaler fitted on other rows can fall "
            f"outside it: MinMaxScaler(clip=True) keeps them in), or use {hint} for real-valued data."
        )


class _InterruptState:
    """Ctrl-C received while training code runs with deferred interrupts (main thread only)."""

    depth = 0
    pending = False


def _defer_sigint(signum, frame):
    _InterruptState.pending = True


@contextmanager
def deferred_interrupts():
    """Defers Ctrl-C (SIGINT) during training to the next :func:`interruption_point`.

    Training loops call ``interruption_point()`` between minibatches and after each epoch's
    bookkeeping, so a KeyboardInterrupt always leaves the estimator between two whole minibatch
    updates, with its step counters, ``history_`` and ``n_iter_`` consistent with its parameters.
    Only the main thread receives signals; elsewhere, or when the program has installed its own
    SIGINT handler, this does nothing (Python then raises at the next bytecode after the running
    kernel call returns). A Ctrl-C still pending on exit is raised there.
    """
    main = threading.current_thread() is threading.main_thread()
    install = False
    previous = None
    if main and _InterruptState.depth == 0:
        try:
            install = signal.getsignal(signal.SIGINT) is signal.default_int_handler
            if install:
                previous = signal.signal(signal.SIGINT, _defer_sigint)
                _InterruptState.pending = False
        except (ValueError, OSError):  # not the main interpreter
            install = False
    if main:
        _InterruptState.depth += 1
    try:
        yield
    finally:
        if main:
            _InterruptState.depth -= 1
        if install:
            signal.signal(signal.SIGINT, previous)
            if _InterruptState.pending:
                _InterruptState.pending = False
                raise KeyboardInterrupt


def interruption_point():
    """Raises the KeyboardInterrupt of a Ctrl-C deferred by :func:`deferred_interrupts`."""
    if _InterruptState.pending and threading.current_thread() is threading.main_thread():
        _InterruptState.pending = False
        raise KeyboardInterrupt


def batch_rows(n_samples: int, batch_size: int, rng: np.random.Generator | None):
    """Minibatch row indices (int64 arrays) of one epoch: a fresh permutation if ``rng`` is given,
    consecutive rows otherwise. The last batch may be smaller."""
    order = rng.permutation(n_samples) if rng is not None else np.arange(n_samples)
    return [order[i : i + batch_size] for i in range(0, n_samples, batch_size)]


def minibatch(X, rows, dtype):
    """The arguments that hand the minibatch ``X[rows]`` to a kernel: ``(X, rows)`` when X already has
    the kernel's dtype and layout (the kernel gathers the rows itself: no copy), else a converted copy
    of just those rows and ``None``."""
    if X.dtype == dtype and X.flags.c_contiguous:
        return X, np.ascontiguousarray(rows, dtype=np.int64)
    return np.ascontiguousarray(X[rows], dtype=dtype), None


def matmul(a, b, *, trans_b: bool = False, n_jobs=None):
    """``a @ b`` (``a @ b.T`` with ``trans_b``) in ``a``'s dtype, computed by deepgm's kernel on its
    own threads. For the products that estimators make in Python between kernel calls: NumPy's BLAS
    would start its own thread pool for them, whose threads then spin-wait beside the next kernels
    (benches/NOTES.md entry 52: 36% of the CPU of a DeepAutoencoder fit with the linear path)."""
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b, dtype=a.dtype)
    out = np.empty((a.shape[0], b.shape[0] if trans_b else b.shape[1]), dtype=a.dtype)
    _core.gemm(a, b, out, trans_b=trans_b, n_jobs=n_jobs)
    return out
