"""Collaborative filtering with a restricted Boltzmann machine (Salakhutdinov, Mnih & Hinton, ICML 2007).

The RBM below is written for its training cases being the users (``orientation="users"``, the paper's
model). With ``orientation="items"`` (what the default "auto" picks when there are at least as many items
as users, as on MovieLens) the same RBM is trained on the transposed matrix: each
item is a training case whose softmax groups are the users who rated it, and a user is predicted for by
folding them in (``_user_fold_in``): their own softmax weights over the items' hidden features, fitted
to their ratings by a penalised softmax regression. On MovieLens, where most of the 8,658 items have a
handful of ratings and each of the 536 users has ~150, the items orientation predicts held-out ratings
far better: its per-user weights learn from many ratings, the paper's per-item weights from few.

Every user is an RBM of their own. Its visible layer holds one K-way softmax group for each item the user
rated, over the K distinct rating values (``rating_values_``), and nothing for the items they did not
rate; all users share the weights ``W`` (n_items, K, n_components), the visible biases ``b``
(n_items, K) and the hidden biases ``c``:

    p(h_j = 1 | V) = sigmoid(c_j + sum over rated (i, k) of W_ikj  [+ sum over i in r of D_ij])
    p(v_i = k | h) = softmax over k of (b_ik + sum_j h_j W_ikj)

The conditional RBM (``conditional=True``) adds ``D`` (n_items, n_components): the set r of the items a
user rated, *including the items whose rating is asked for*, shifts the hidden units, so knowing that
someone watched a film says something even before their rating of it is known.

Shared weights (``shared_weights=True``, the default) tie the items together: item i's weights are
``W_i + S`` with ``S`` (K, n_components) common to all items, learnt from every rating. In the paper's
model an item's weights learn only from that item's ratings, so on a data set where most items have few
ratings the hidden units (what the model knows about a user) cannot reach those items; through S they do,
as a user bias reaches every item in a bias or matrix-factorisation model. ``shared_weights=False`` is
the paper's model exactly.

Training is CD-T (T raised over training with ``k="auto"``) with momentum and weight decay, over
minibatches of users. A step reads and updates only the parameters of the items its users rated: an
item's rows first catch up, in closed form, with the momentum and decay steps they missed, so the model is
exactly that of the dense algorithm (which moves every item at every step) at the cost of the ratings
alone.
Prediction is the paper's mean-field pass: ``p = p(h | observed ratings)``, then the expected rating
``E_uq = sum_k value_k * softmax_k(b_qk + p . W_qk)`` of each queried item q.

Offsets (users orientation: ``offsets="auto"``, the default, turns them on there) correct the RBM's systematic errors as a user+item bias model
corrects the global mean: after training, every training rating r_ui is predicted from the user's
*other* ratings (leave-one-out: ``p`` without item i's term), and the item offsets o_i and user offsets
o_u minimise

    sum over training ratings of (r_ui - E_ui^(-i) - o_u - o_i)^2 + offset_penalty (|o_u|^2 + |o_i|^2)

by alternating exact minimisation. The prediction is then ``E_uq + o_u + o_q``, where o_u is recomputed
from the user's observed ratings, ``o_u = sum_i (r_ui - E_ui^(-i) - o_i) / (offset_penalty + n_u)``.
(On MovieLens the RBM's own prediction tilts each item's rating distribution by what the hidden units
say about the user, which left it far behind a plain user+item bias model; the offsets close most of
that gap, not all of it: 0.000-0.005 behind the biases on five validation splits. The RBM's prediction
keeps the weight 1: a weight fitted with the offsets on the leave-one-out errors comes out near 2, as an
item's visible biases are set from, and trained on, ratings that include the left-out one, so those
errors are smaller than on unseen ratings, and such a blend predicted worse; see docs/softmax.md.)

A prediction depends on the user's observed ratings (and, for the conditional RBM, on the queried
items) and the fitted parameters only, so a user unseen in fit is folded in from their ratings with no
refit. In the items orientation too: every user, seen in fit or not, gets weights fitted to their own
observed ratings at prediction time (the weights trained for the fit users serve as the prior's centre).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import validate_data

from . import _core
from ._base import (
    DeepGMEstimator,
    _named_errors,
    batch_rows,
    check_bool,
    check_int_or,
    check_number,
    check_option,
    check_positive_int,
    deferred_interrupts,
    interruption_point,
    seed_from,
)
from ._failed_fit import kept_if_trained
from ._schedule import COLLABORATIVE_BUDGET, Convergence, plan_epochs
from ._sparse import ZEROS_READ_AS_RATINGS, as_csr, csr_arrays
from ._streams import Purpose, generator
from ._user_fold_in import folded_in_ratings, folded_in_tastes
from .rbm import check_training_schedule

__all__ = ["CollaborativeRBM"]

#: The most distinct rating values (K); more usually means real-valued "ratings" that need rounding.
MAX_RATING_VALUES = 100

#: Pseudo-ratings (distributed as all ratings are) added to each item's counts for its initial biases:
#: an item with few ratings starts near the overall distribution of ratings, as a regularised item bias
#: does (with 1 pseudo-rating, held-out RMSE on MovieLens was 0.006 worse).
PRIOR_RATINGS = 10.0

#: Users whose ratings are reconstructed after each epoch to report the training RMSE.
_MONITOR_USERS = 500

#: Users per call when recommending (each call holds all their unrated items' probabilities).
_RECOMMEND_CHUNK = 64

#: Ratings per call of the leave-one-out predictions (each holds a ratings x n_components array).
_LEAVE_ONE_OUT_CHUNK = 8192

#: Alternating sweeps over the item and user offsets.
_OFFSET_SWEEPS = 10


def auto_cd_steps(epoch: int, n_epochs: int) -> int:
    """The Gibbs steps T of epoch ``epoch`` (0-based) of ``n_epochs`` under ``k="auto"``: T = 1 for the
    first half of training, then 3, then 5 for the last fifth (the paper raises T from 1 as learning
    converges; longer chains give a less biased gradient once the model is near a mode)."""
    progress = epoch / max(n_epochs, 1)
    if progress < 0.5:
        return 1
    return 3 if progress < 0.8 else 5


def _denominator(penalty: float, n_ratings):
    """``penalty + n_ratings`` of a penalised mean, with 1 where there are no ratings (their sum is 0, so
    the offset is 0 rather than 0 / 0 when ``penalty`` is 0)."""
    return np.where(n_ratings > 0, penalty + n_ratings, 1.0)


#: What a dense query's zeros are taken for (``as_csr``'s ``zeros_warning``).
_ZEROS_IN_A_QUERY = (
    ": every entry that is not NaN is predicted, zeros too (a query's values are ignored). To pick pairs, pass a "
    "boolean mask (True: predict) or a sparse matrix (its stored entries)."
)


def _is_boolean(query) -> bool:
    """Whether dense ``query`` (an array, a list, a DataFrame) holds booleans: a mask of the pairs to
    predict, whatever container it comes in."""
    dtype = getattr(query, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(query).dtype
        except (ValueError, TypeError):  # as_csr names what it cannot read
            return False
    return getattr(dtype, "kind", None) == "b"


class CollaborativeRBM(ClassNamePrefixFeaturesOutMixin, TransformerMixin, DeepGMEstimator):
    """Restricted Boltzmann machine for collaborative filtering (Salakhutdinov, Mnih & Hinton 2007).

    Learns from a users x items matrix of ratings, predicts the ratings users would give to items they
    have not rated, and recommends items. Every stored rating is a K-way softmax unit over the rating
    values seen in fit; unrated pairs have no units at all, so training and prediction cost time
    proportional to the number of ratings, not to the number of users or items. With at least as many
    items as users (``orientation="auto"``) the RBM's training cases are the items (each with a softmax
    group per user who rated it) and each user is folded in from their own ratings when predicting;
    otherwise, as with ``orientation="users"``, the paper's layout. Below, "training cases" and "groups"
    are the items and the users in the items orientation, the other way round in the users one.

    Parameters
    ----------
    n_components : int, default=100
        Number of hidden units. (With ``orientation="users"``, 30 hidden units and
        ``weight_decay=0.05`` predicted MovieLens's held-out ratings better than 100 and 0.01: the items'
        weights learn from few ratings each, and a smaller, more strongly decayed model fits less of
        their noise.)
    orientation : {"auto", "items", "users"}, default="auto"
        What the RBM's training cases are. "users": the paper's model, one softmax group per rated item
        in each user's RBM. "items": the RBM is trained on the transposed matrix (each item a case, the
        users who rated it its softmax groups); ``item_features_`` = p(h | an item's ratings), and each
        user, seen in fit or not, is predicted for with their own softmax weights over those features,
        fitted to their observed ratings (penalty ``fold_in_penalty``, centred on the fit users' mean
        weights). "auto" (``orientation_`` says which was used): "items" when X has at least as many
        items as users, "users" otherwise (and with ``offsets=True``): the cases are the more numerous
        side, and each softmax group has more ratings to learn from. On synthetic low-rank ratings,
        1,000 users x 50 items gave a held-out RMSE of 0.49 with "users" and 1.14 with "items", 100
        users x 500 items 1.25 and 0.74. On five MovieLens validation splits "items" predicted held-out ratings with a mean
        RMSE of 0.866 (0.863 with ``conditional=True`` and ``fold_in_penalty=5``) against 0.886 for "users" (at its own best
        settings, 30 hidden units and ``weight_decay=0.05``), 0.883 for a user+item bias model and
        0.873 for matrix factorisation; see docs/softmax.md.
    conditional : bool, default=False
        The conditional RBM: which items a user rated (and which items are queried in ``predict``) also
        shift the hidden units, through ``conditional_weights_``. With ``orientation="items"``: which
        users rated an item shift its hidden units.
    shared_weights : bool, default=True
        Add weights shared by all groups (``shared_components_``) to each group's own: what a rating value
        says about the hidden units is learnt from every group, so groups with few ratings benefit too.
        False gives the paper's model exactly.
    offsets : bool or "auto", default="auto"
        Users orientation: add user and item offsets, fitted to the RBM's leave-one-out errors on the training ratings (see
        the module's description), to the expected ratings: ``item_offsets_`` is learnt in fit, a user's
        offset is computed from their observed ratings. False gives the RBM's expected rating alone.
        "auto": True with ``orientation="users"``, False with "items", where each user's folded-in
        biases play their part (True is refused there).
    offset_penalty : float, default=5.0
        L2 penalty of the offsets: a user's or item's offset counts as that many ratings of zero error.
    fold_in_penalty : float, default=3.0
        With ``orientation="items"``: the L2 penalty pulling a user's folded-in weights towards
        ``user_prior_components_`` (the regression's sum of log-likelihoods over the user's ratings
        against ``fold_in_penalty / 2`` times the squared distance). Larger trusts the prior more. It
        acts when predicting, so it can be changed after fit without a refit. (3
        was better than 5 on all five MovieLens validation splits, by 0.001; 10 was worse.)
    k : int or "auto", default="auto"
        Gibbs steps T of CD-T; "auto" raises T over training: 1 for the first half of the epochs, 3 until
        80%, then 5 (see ``history_["k"]``).
    learning_rate : float, default=0.003
        Step size of the groups' weights and biases and of the hidden biases (their statistics averaged
        over the minibatch's users).
    shared_learning_rate : float, default=0.05
        Step size of ``shared_components_`` (whose statistics sum over every rated item, averaged over
        the minibatch's ratings).
    momentum : float, default=0.5
        Momentum of the first ``initial_momentum_epochs`` epochs.
    final_momentum : float, default=0.9
        Momentum afterwards.
    initial_momentum_epochs : int, default=5
    weight_decay : float, default=0.01
        L2 penalty on ``components_``, ``conditional_weights_`` and ``shared_components_``.
    decay_per : {"step", "rating"}, default="step"
        How the groups' weights (``components_``, ``conditional_weights_``) decay (described here for the
        users orientation, whose groups are the items). "step": every item's
        by ``weight_decay`` at every minibatch step, rated in it or not. "rating": the penalty counts
        once per rating, as the likelihood does, so an item decays by ``weight_decay`` times its ratings
        in the minibatch over the minibatch's users, and not at all in steps nobody rated it (matrix
        factorisation's weighted-lambda penalty): an item with few ratings is then not held at its
        initial weights by a decay far stronger than its gradient. ``shared_components_`` decays by
        ``weight_decay`` per step either way. (On five MovieLens validation splits, "rating" with
        ``weight_decay`` 2-20 gave 0.8833-0.8838 with the offsets, the default 0.8857 and a user+item
        bias model 0.8827; letting the items' weights grow more, by a smaller decay or a larger
        learning rate, predicted worse. So "step" stays the default; see docs/softmax.md.)
    batch_size : int, default=20
        Training cases (items, or users with ``orientation="users"``) per minibatch.
    n_iter : int or "auto", default="auto"
        Epochs (passes over the training cases); the most with ``early_stopping``. "auto": at least
        4,000 minibatch updates within 30 to 500 epochs, i.e. 30 epochs on MovieLens-size data (8,658
        items in batches of 20) and more on small tables, which 30 epochs left near the global mean.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of each user's ratings, predict them after every epoch from the
        user's other ratings, stop once their RMSE has not improved by ``tol`` for ``n_iter_no_change``
        epochs, and keep the parameters of the best epoch: picks the length of training for the data.
        Off by default: on MovieLens (536 users) the held-out RMSE plateaus rather than rises after
        10-20 epochs, so stopping there gained nothing and the held-out 10% of the ratings cost a little.
        With ``orientation="items"`` the ratings held out are a fraction of each item's, predicted by the
        RBM's own conditional with the fit users' trained weights.
    validation_fraction : float, default=0.1
        Fraction of each training case's ratings (a user's, or with ``orientation="items"`` an item's)
        held out for ``early_stopping`` (at least one rating of every case with two or more); they are
        not trained on.
    n_iter_no_change : int, default=5
        Epochs without improvement of the validation RMSE before ``early_stopping`` stops.
    tol : float, default=1e-4
        Smallest decrease of the validation RMSE that counts as an improvement.
    random_state : int, RandomState, Generator or None, default=None
        Seeds initialisation, shuffling and sampling. The same value gives the same model for any
        ``n_jobs``.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the computation and of the fitted arrays.
    n_jobs : int or None, default=None
        Threads for the Rust kernels (None or -1: all cores; -2: all but one, as in joblib). Results
        do not depend on it.
    verbose : int, default=0
        Progress bar and per-epoch metrics.

    Attributes
    ----------
    rating_values_ : ndarray of shape (n_rating_values,)
        The distinct rating values seen in fit, ascending (float64).
    components_ : ndarray of shape (n_groups, n_rating_values, n_components)
        W: the weights between each softmax group's rating value and the hidden units. The groups are
        the items (``orientation="users"``) or the users seen in fit (``orientation="items"``).
    intercept_visible_ : ndarray of shape (n_groups, n_rating_values)
        b. Starts at the log of each group's rating frequencies.
    intercept_hidden_ : ndarray of shape (n_components,)
        c.
    conditional_weights_ : ndarray of shape (n_groups, n_components)
        D (conditional RBM only).
    shared_components_ : ndarray of shape (n_rating_values, n_components)
        S, added to every item's weights (``shared_weights=True`` only).
    item_offsets_ : ndarray of shape (n_items,)
        o_i, added to the expected rating of item i (with offsets only; float64).
    item_features_ : ndarray of shape (n_items, n_components)
        ``orientation="items"`` only: p(h | the item's training ratings), the features each user's
        folded-in softmax weights read.
    user_prior_components_ : ndarray of shape (n_rating_values, n_components)
        ``orientation="items"`` only: the mean trained weights of the fit users (with the shared
        weights), the centre of a folded-in user's penalty (float64).
    orientation_ : {"items", "users"}
        The orientation fit used (``orientation`` with "auto" resolved).
    rating_frequencies_ : ndarray of shape (n_rating_values,)
        The overall frequencies of the rating values in X (float64): how the pseudo-ratings that smooth
        the initial visible biases, and (items orientation) a folded-in user's biases' prior, are spread.
    n_features_in_ : int
        Number of items.
    history_ : dict of lists
        Per epoch: ``epoch``, ``k`` (Gibbs steps), ``train_rmse`` (RMSE of the mean-field reconstruction
        of up to 500 users' training ratings), with ``early_stopping`` ``validation_rmse`` (RMSE of the
        held-out ratings predicted from each user's other ratings by the expected rating, without the
        offsets, which are fitted after training), and ``time`` (seconds).
    n_iter_ : int
        Epochs trained, as ``len(history_["epoch"])`` (with early stopping: those run).
    best_epoch_ : int
        With ``early_stopping``: the epoch (1-based, as ``history_["epoch"]``) whose parameters the model
        holds, that of the lowest validation RMSE.

    Examples
    --------
    >>> import numpy as np
    >>> from deepgm import CollaborativeRBM
    >>> R = np.array([[5, 4, np.nan, 1], [4, np.nan, 5, 1], [1, 1, np.nan, 5], [np.nan, 2, 1, 4]])
    >>> model = CollaborativeRBM(n_components=4, n_iter=20, random_state=0).fit(R)
    >>> model.rating_values_
    array([1., 2., 4., 5.])
    >>> model.predict(R, np.isnan(R)).shape
    (4, 4)
    """

    _param_names = (
        "components_",
        "intercept_visible_",
        "intercept_hidden_",
        "conditional_weights_",
        "shared_components_",
        "rating_values_",
        "item_offsets_",
    )
    _state_names = (
        "components_velocity_",
        "intercept_visible_velocity_",
        "intercept_hidden_velocity_",
        "conditional_weights_velocity_",
        "shared_components_velocity_",
        "_steps",
        "_last_update",
    )
    _fitted_attribute = "components_"

    def __init__(
        self,
        n_components=100,
        *,
        orientation="auto",
        conditional=False,
        shared_weights=True,
        offsets="auto",
        offset_penalty=5.0,
        fold_in_penalty=3.0,
        k="auto",
        learning_rate=0.003,
        shared_learning_rate=0.05,
        momentum=0.5,
        final_momentum=0.9,
        initial_momentum_epochs=5,
        weight_decay=0.01,
        decay_per="step",
        batch_size=20,
        n_iter="auto",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        random_state=None,
        dtype="float32",
        n_jobs=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.orientation = orientation
        self.conditional = conditional
        self.shared_weights = shared_weights
        self.offsets = offsets
        self.offset_penalty = offset_penalty
        self.fold_in_penalty = fold_in_penalty
        self.k = k
        self.learning_rate = learning_rate
        self.shared_learning_rate = shared_learning_rate
        self.momentum = momentum
        self.final_momentum = final_momentum
        self.initial_momentum_epochs = initial_momentum_epochs
        self.weight_decay = weight_decay
        self.decay_per = decay_per
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose

    # -- validation ---------------------------------------------------------------------------------

    def _check_params(self):
        check_positive_int(self.n_components, "n_components")
        check_option(self.orientation, "orientation", ("auto", "items", "users"))
        check_bool(self.conditional, "conditional")
        check_bool(self.shared_weights, "shared_weights")
        if not (isinstance(self.offsets, str) and self.offsets == "auto") and not isinstance(self.offsets, (bool, np.bool_)):
            raise TypeError(f"offsets must be 'auto', True or False; got {self.offsets!r}")
        if not isinstance(self.offsets, str) and self.offsets and self.orientation == "items":
            raise ValueError(
                "offsets=True needs orientation='users': with orientation='items' each user's own biases, "
                "folded in from their ratings, play the offsets' part; got offsets=True, orientation='items'"
            )
        check_number(self.offset_penalty, "offset_penalty", low=0)
        check_number(self.fold_in_penalty, "fold_in_penalty", low=0, low_open=True)
        check_int_or(self.k, "k", also=("auto",))
        check_number(self.learning_rate, "learning_rate", low=0, low_open=True)
        check_number(self.shared_learning_rate, "shared_learning_rate", low=0)
        check_training_schedule(self)
        check_option(self.decay_per, "decay_per", ("step", "rating"))
        check_bool(self.early_stopping, "early_stopping")
        check_number(self.validation_fraction, "validation_fraction", low=0, high=1, low_open=True, high_open=True)
        check_positive_int(self.n_iter_no_change, "n_iter_no_change")
        check_number(self.tol, "tol", low=0)
        self._check_common_params()

    def _ratings(self, X, name="X", *, reset=False):
        """X as a canonical CSR matrix of ratings (float64) and the output dtype it asks for. Sparse X:
        its stored entries are the ratings; dense X: its entries that are not NaN."""
        csr, out_dtype = as_csr(X, name, nan_is_missing=True, duplicates="refuse", zeros_warning=ZEROS_READ_AS_RATINGS)
        if reset:
            with _named_errors(name):
                validate_data(self, X, reset=True, skip_check_array=True)
        else:
            self._check_features(X, name)
        return csr, out_dtype

    def _codes(self, csr, name="X"):
        """The index in ``rating_values_`` of every stored rating (int64); values unseen in fit are refused."""
        values = self.rating_values_
        pos = np.clip(np.searchsorted(values, csr.data), 1, values.size - 1) if values.size > 1 else np.zeros(csr.nnz, dtype=np.int64)
        if values.size > 1:
            # The nearer of the two neighbours, so that 3.5 in float32 and in float64 are the same rating.
            pos = np.where(np.abs(csr.data - values[pos - 1]) <= np.abs(csr.data - values[pos]), pos - 1, pos)
        matched = np.abs(csr.data - values[pos]) <= 1e-6 * np.maximum(1.0, np.abs(values[pos]))
        if not np.all(matched):
            unseen = np.unique(csr.data[~matched])
            raise ValueError(
                f"{name} holds rating values unseen in fit: {unseen[:10].tolist()}"
                f"{' ...' if unseen.size > 10 else ''}; the model knows {self.rating_values_.tolist()}"
            )
        return np.ascontiguousarray(pos, dtype=np.int64)

    # -- parameters ---------------------------------------------------------------------------------

    def _init_params(self, R):
        dtype = self._dtype()
        values = np.unique(R.data)
        if values.size > MAX_RATING_VALUES:
            raise ValueError(
                f"X holds {values.size} distinct rating values; CollaborativeRBM models at most {MAX_RATING_VALUES} "
                "(round real-valued ratings to a scale, e.g. np.round(X * 2) / 2)"
            )
        self.rating_values_ = values
        codes = self._codes(R)
        # The values' overall frequencies over all of X, before any early-stopping split: a value seen
        # only in the held-out ratings then still has a positive frequency (a log-frequency of -inf
        # would make the initial biases, and the fold-in's prior, non-finite).
        self.rating_frequencies_ = np.bincount(codes, minlength=values.size) / codes.size
        n_items, n_values, n_hidden = R.shape[1], values.size, self.n_components
        self._fit_seed = seed_from(self.random_state)
        self._sample_calls = 0
        rng = np.random.default_rng(self._fit_seed)
        validation = None
        if self.early_stopping:
            R, codes, validation = self._split_validation(R, codes)
        # Visible biases at the log of each item's rating frequencies, smoothed by PRIOR_RATINGS
        # pseudo-ratings spread as the ratings of all items are (an item rated once or never stays finite).
        counts = np.zeros((n_items, n_values))
        np.add.at(counts, (R.indices, codes), 1.0)
        freq = (counts + PRIOR_RATINGS * self.rating_frequencies_) / (counts.sum(axis=1, keepdims=True) + PRIOR_RATINGS)
        self.intercept_visible_ = np.log(freq).astype(dtype)
        self.components_ = rng.normal(0.0, 0.01, size=(n_items, n_values, n_hidden)).astype(dtype)
        self.intercept_hidden_ = np.zeros(n_hidden, dtype=dtype)
        self.components_velocity_ = np.zeros_like(self.components_)
        self.intercept_visible_velocity_ = np.zeros_like(self.intercept_visible_)
        self.intercept_hidden_velocity_ = np.zeros_like(self.intercept_hidden_)
        if self.conditional:
            self.conditional_weights_ = np.zeros((n_items, n_hidden), dtype=dtype)
            self.conditional_weights_velocity_ = np.zeros_like(self.conditional_weights_)
        if self.shared_weights:
            self.shared_components_ = np.zeros((n_values, n_hidden), dtype=dtype)
            self.shared_components_velocity_ = np.zeros_like(self.shared_components_)
        self.history_ = {}
        self.__dict__.pop("best_epoch_", None)  # a refit without early stopping has no best epoch
        for name in ("item_offsets_", "item_features_", "user_prior_components_"):
            self.__dict__.pop(name, None)  # fitted after training, from the trained parameters
        self._steps = 0
        self._last_update = np.zeros(n_items, dtype=np.int64)  # steps each item's rows have seen
        self._epochs_done = 0
        rated = np.flatnonzero(np.diff(R.indptr) > 0)
        self._monitor_users = np.sort(rng.choice(rated, size=min(_MONITOR_USERS, rated.size), replace=False))
        return R, codes, validation

    # -- training -----------------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Fits the model to the ratings X for ``n_iter`` epochs of shuffled minibatches of training cases
        (items, or users with ``orientation="users"``).

        Parameters
        ----------
        X : {sparse matrix, array-like} of shape (n_users, n_items)
            Ratings. Sparse: the stored entries are the ratings (an unrated item is simply not stored;
            a stored 0 is a rating of 0). Dense: NaN marks an unrated item.
        y : ignored

        Returns
        -------
        self : CollaborativeRBM
        """
        self._check_params()
        with self._fit_transaction() as commit:
            R, _ = self._ratings(X, reset=True)
            if R.nnz == 0:
                raise ValueError("X holds no ratings: a ratings matrix needs at least one rating (stored entry, or non-NaN value)")
            # The RBM's training cases: the users (rows of X) or, in the items orientation, the items.
            self.orientation_ = self._resolve_orientation(*R.shape)
            cases = R if self.orientation_ == "users" else sp.csr_matrix(R.T, copy=True)
            cases.sort_indices()
            cases, codes, validation = self._init_params(cases)
            indptr, indices = csr_arrays(cases)
            # A kept model (trained, interrupted, or diverged after whole epochs) gets what prediction needs.
            with (
                deferred_interrupts(),
                kept_if_trained(commit, lambda: self._epochs_done, lambda: self._fit_predictor(indptr, indices, codes)),
            ):
                self._train_epochs(indptr, indices, codes, validation)
        return self

    def _resolve_orientation(self, n_users: int, n_items: int) -> str:
        """``orientation``, with "auto" resolved: the users orientation if ``offsets=True`` asks for its
        offsets, otherwise the items orientation when there are at least as many items as users (the
        cases are then the more numerous side, and each softmax group has more ratings to learn from)."""
        if self.orientation != "auto":
            return self.orientation
        if not isinstance(self.offsets, str) and self.offsets:
            return "users"
        return "items" if n_items >= n_users else "users"

    def _fit_predictor(self, indptr, indices, codes):
        """What prediction needs beyond the trained RBM: the item offsets (users orientation, with
        offsets) or the items' hidden features and the users' prior (items orientation)."""
        if self.orientation_ == "items":
            self._fit_fold_in_prior(indptr, indices, codes)
        elif self._offsets_requested(self.orientation_):
            self.item_offsets_ = self._fit_item_offsets(indptr, indices, codes)

    @property
    def _n_groups(self) -> int:
        """Softmax groups of the RBM: the items, or with orientation="items" the users seen in fit."""
        return self.components_.shape[0]

    @property
    def _folds_in_users(self) -> bool:
        """Whether the fitted model is of the items orientation (``orientation_``, what fit used, not
        ``orientation``, which a ``set_params`` after fit may have changed for the next fit)."""
        return self.orientation_ == "items"

    def _offsets_requested(self, orientation: str) -> bool:
        """``offsets`` for a model of ``orientation``: "auto" means the users orientation."""
        if isinstance(self.offsets, str):
            return orientation == "users"
        return bool(self.offsets)

    @property
    def _with_offsets(self) -> bool:
        """Whether predictions of the fitted users-orientation model add the offsets (``offsets`` may be
        switched off after fit; switching them on needs the item offsets only a fit makes)."""
        if not self._offsets_requested("users"):
            return False
        if not hasattr(self, "item_offsets_"):
            raise ValueError(
                f"offsets={self.offsets!r} needs the item offsets, and this model was fitted without them: fit it again with these settings"
            )
        return True

    def _fit_fold_in_prior(self, indptr, indices, codes):
        """The items orientation's predictor (see ``_user_fold_in``): ``item_features_`` (n_items,
        n_components) = p(h | each item's training ratings); ``user_prior_components_`` (K,
        n_components), the mean trained weights (shared ones included) of the fit users who rated
        something (``rating_frequencies_`` is set with the initial parameters)."""
        self.item_features_ = self._hidden(indptr, indices, codes)
        raters = np.unique(indices)
        weights = self.components_[raters].astype(np.float64).mean(axis=0)
        if self.shared_weights:
            weights += self.shared_components_
        self.user_prior_components_ = weights

    def _fit_item_offsets(self, indptr, indices, codes):
        """Item offsets o (n_items,) minimising the squared leave-one-out errors of the training ratings
        minus user and item offsets, plus ``offset_penalty`` times their squares: alternately each
        item's and each user's offset exactly, given the others."""
        residual = self.rating_values_[codes] - self._leave_one_out_ratings(indptr, indices, codes)
        per_user = np.diff(indptr)
        user_of = np.repeat(np.arange(per_user.size), per_user)
        n_items = self._n_groups
        per_item = np.bincount(indices, minlength=n_items)
        user_offsets, item_offsets = np.zeros(per_user.size), np.zeros(n_items)
        for _ in range(_OFFSET_SWEEPS):
            item_offsets = np.bincount(indices, residual - user_offsets[user_of], n_items) / _denominator(self.offset_penalty, per_item)
            user_offsets = self._user_offsets(indptr, indices, residual, item_offsets)
        return item_offsets

    def _split_validation(self, R, codes):
        """(training ratings, their codes, validation): ``validation_fraction`` of each user's ratings (at
        least one of every user with two or more) moved out of R. ``validation`` holds the held-out
        pattern (indptr, indices) and their true rating values, to be predicted from the rest."""
        rng = generator(self._fit_seed, Purpose.VALIDATION_SPLIT)
        per_user = np.diff(R.indptr)
        n_held = np.where(per_user >= 2, np.maximum(1, np.rint(self.validation_fraction * per_user)), 0).astype(np.int64)
        user_of = np.repeat(np.arange(R.shape[0]), per_user)
        # A random rank of every rating within its user's row; the n_held lowest ranks are held out.
        order = np.lexsort((rng.random(R.nnz), user_of))
        rank = np.empty(R.nnz, dtype=np.int64)
        rank[order] = np.arange(R.nnz) - np.repeat(R.indptr[:-1], per_user)
        held = rank < n_held[user_of]
        train = sp.csr_matrix((codes[~held].astype(np.float64), R.indices[~held], np.r_[0, np.cumsum(per_user - n_held)]), shape=R.shape)
        valid = sp.csr_matrix((R.data[held], R.indices[held], np.r_[0, np.cumsum(n_held)]), shape=R.shape)
        if valid.nnz == 0:
            case = "a user" if self.orientation_ == "users" else "an item"
            raise ValueError(
                f"early_stopping needs {case} with at least two ratings (one to hold out, one to predict it "
                f"from); X has none (orientation {self.orientation_!r}): set early_stopping=False"
            )
        v_indptr, v_indices = csr_arrays(valid)
        return train, np.ascontiguousarray(codes[~held]), (v_indptr, v_indices, valid.data)

    def _k(self, epoch: int, n_epochs: int) -> int:
        return auto_cd_steps(epoch, n_epochs) if self.k == "auto" else int(self.k)

    def _train_epochs(self, indptr, indices, codes, validation=None):
        """Epochs of CD-T updates; with ``validation`` (of :meth:`_split_validation`), early stopping
        that ends with the parameters of the best epoch. Ctrl-C stops between two minibatches: the
        parameters are those after the last whole update, ``history_`` holds the completed epochs."""
        convergence = Convergence(self.tol, self.n_iter_no_change) if validation is not None else None
        best = None
        n_jobs = self._n_jobs()
        # Users without ratings have no visible units: they contribute nothing to the gradient.
        users = np.flatnonzero(np.diff(indptr) > 0)
        n_epochs = plan_epochs(self.n_iter, users.size, self.batch_size, COLLABORATIVE_BUDGET)
        optional = {}
        if self.conditional:
            optional.update(conditional_weights=self.conditional_weights_, conditional_weights_velocity=self.conditional_weights_velocity_)
        if self.shared_weights:
            optional.update(shared_components=self.shared_components_, shared_components_velocity=self.shared_components_velocity_)
        while self._epochs_done < n_epochs:
            start = self._timer()
            epoch = self._epochs_done
            rng = np.random.default_rng([self._fit_seed % 2**63, epoch])
            momentum = self.momentum if epoch < self.initial_momentum_epochs else self.final_momentum
            k = self._k(epoch, n_epochs)
            batches = batch_rows(users.size, self.batch_size, rng)
            bar = self._progress(len(batches), f"CollaborativeRBM epoch {epoch + 1}")
            settings = dict(
                learning_rate=float(self.learning_rate), momentum=momentum, weight_decay=float(self.weight_decay), decay_per=self.decay_per
            )
            shared_rate = dict(shared_learning_rate=float(self.shared_learning_rate)) if self.shared_weights else {}
            try:
                with self._epoch_guard(epoch):
                    diverged = False
                    try:
                        for rows in batches:
                            interruption_point()
                            _core.collab_cd_step(
                                indptr,
                                indices,
                                codes,
                                *self._arrays(),
                                users=users[rows],
                                last_update=self._last_update,
                                k=k,
                                seed=self._fit_seed,
                                step=self._steps,
                                n_jobs=n_jobs,
                                **settings,
                                **shared_rate,
                                **optional,
                            )
                            self._steps += 1
                            bar.update()
                    except FloatingPointError:
                        # _epoch_guard puts back the epoch start (last_update included): nothing to
                        # catch up, and the failed step's last_update is ahead of the step count.
                        diverged = True
                        raise
                    finally:
                        # Every item to the current step (also when interrupted): the parameters are
                        # then those of the dense algorithm after the last whole update.
                        if not diverged:
                            # An exception raised by a signal handler can land between a step's kernel
                            # call (which always completes: handlers run once it returns) and the count
                            # below it; the items it touched then already record the step after it.
                            self._steps = max(self._steps, int(self._last_update.max(initial=0)))
                            _core.collab_catch_up(
                                *self._arrays(), last_update=self._last_update, step=self._steps, n_jobs=n_jobs, **settings, **optional
                            )
                    rmse = self._monitor(indptr, indices, codes)
                    if not np.isfinite(rmse):
                        raise FloatingPointError("the monitored training RMSE became non-finite")
            finally:
                bar.close()
            self._epochs_done += 1
            if convergence is None:
                self._log_epoch(epoch=self._epochs_done, k=k, train_rmse=rmse, time=self._timer() - start)
                interruption_point()
                continue
            validation_rmse = self._validation_rmse(indptr, indices, codes, validation)
            if convergence.update(validation_rmse):
                best = (self._epochs_done, {name: getattr(self, name).copy() for name in self._trained_names()})
            self._log_epoch(epoch=self._epochs_done, k=k, train_rmse=rmse, validation_rmse=validation_rmse, time=self._timer() - start)
            interruption_point()
            if convergence.converged:
                break
        if best is not None:
            self._restore_best(*best)

    def _trained_names(self):
        """The names of the arrays training changes (the parameters, not ``rating_values_``)."""
        return [name for name in self._param_names if name != "rating_values_" and hasattr(self, name)]

    def _restore_best(self, epoch, params):
        """Puts back the parameters of epoch ``epoch``; the velocities restart from zero (the momentum
        of the epochs after the best one would carry the model away from it if training continued)."""
        for name, value in params.items():
            setattr(self, name, value)
            velocity = getattr(self, f"{name}velocity_", None)
            if velocity is not None:
                velocity[...] = 0
        self.best_epoch_ = epoch

    def _validation_rmse(self, indptr, indices, codes, validation) -> float:
        """RMSE of the held-out ratings predicted from each user's training ratings."""
        v_indptr, v_indices, truth = validation
        expected = self._expected_ratings(indptr, indices, codes, v_indptr, v_indices)
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sqrt(np.mean((expected - truth) ** 2)))

    def _arrays(self):
        """Parameters and velocities, in the kernels' order."""
        return (
            self.components_,
            self.intercept_visible_,
            self.intercept_hidden_,
            self.components_velocity_,
            self.intercept_visible_velocity_,
            self.intercept_hidden_velocity_,
        )

    def _monitor(self, indptr, indices, codes) -> float:
        """RMSE of the mean-field reconstruction of the monitored users' training ratings."""
        R = sp.csr_matrix((codes.astype(np.float64), indices, indptr), shape=(indptr.size - 1, self._n_groups))
        sub = R[self._monitor_users]
        sub_ptr, sub_idx = csr_arrays(sub)
        sub_codes = np.ascontiguousarray(sub.data, dtype=np.int64)
        expected = self._expected_ratings(sub_ptr, sub_idx, sub_codes, sub_ptr, sub_idx)
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sqrt(np.mean((expected - self.rating_values_[sub_codes]) ** 2)))

    # -- inference ----------------------------------------------------------------------------------

    def _hidden(self, indptr, indices, codes, r_indptr=None, r_indices=None):
        """p(h | observed ratings) in the model's dtype; the conditional RBM's item sets r default to the
        rated items."""
        extra = self._shared()
        if self.conditional:
            extra["conditional_weights"] = self.conditional_weights_
            if r_indptr is not None:
                extra.update(r_indptr=r_indptr, r_indices=r_indices)
        return _core.collab_hidden(indptr, indices, codes, self.components_, self.intercept_hidden_, n_jobs=self._n_jobs(), **extra)

    def _shared(self) -> dict:
        """The kernels' shared_components argument, if the model has shared weights."""
        return {"shared_components": self.shared_components_} if self.shared_weights else {}

    def _expected_ratings(self, indptr, indices, codes, q_indptr, q_indices):
        """The expected rating (float64) of every queried (user, item) pair from the users' observed
        ratings: the conditional RBM's item sets are the observed items and the queried ones."""
        r_ptr = r_idx = None
        if self.conditional:
            n_users = indptr.size - 1
            observed = sp.csr_matrix((np.ones(indices.size), indices, indptr), shape=(n_users, self._n_groups))
            queried = sp.csr_matrix((np.ones(q_indices.size), q_indices, q_indptr), shape=(n_users, self._n_groups))
            union = (observed + queried).tocsr()
            union.sort_indices()
            r_ptr, r_idx = csr_arrays(union)
        H = self._hidden(indptr, indices, codes, r_ptr, r_idx)
        probs = _core.collab_visible(
            H, q_indptr, q_indices, self.components_, self.intercept_visible_, n_jobs=self._n_jobs(), **self._shared()
        )
        return probs.astype(np.float64) @ self.rating_values_

    def _leave_one_out_ratings(self, indptr, indices, codes):
        """The expected rating (float64, one per stored rating) of each observed rating r_ui from the
        user's other ratings: p(h | V without i) has pre-activations those of all the user's ratings minus
        item i's term ``W_i,r_ui (+ S_r_ui)``, then the mean-field expectation of item i. The conditional
        RBM's item set r keeps i, as when i is queried."""
        n_users, n_items, n_values = indptr.size - 1, self._n_groups, self.rating_values_.size
        dtype = self.components_.dtype
        per_user = np.diff(indptr)
        user_of = np.repeat(np.arange(n_users), per_user)
        weights = self.components_.reshape(n_items * n_values, -1)
        one_hot = sp.csr_matrix((np.ones(codes.size, dtype=dtype), indices * n_values + codes, indptr), shape=(n_users, n_items * n_values))
        inputs = one_hot @ weights + self.intercept_hidden_
        if self.shared_weights:
            value_counts = np.zeros((n_users, n_values), dtype=dtype)
            np.add.at(value_counts, (user_of, codes), 1)
            inputs += value_counts @ self.shared_components_
        if self.conditional:
            rated = sp.csr_matrix((np.ones(indices.size, dtype=dtype), indices, indptr), shape=(n_users, n_items))
            inputs += rated @ self.conditional_weights_
        expected = np.empty(codes.size)
        for lo in range(0, codes.size, _LEAVE_ONE_OUT_CHUNK):
            part = slice(lo, min(codes.size, lo + _LEAVE_ONE_OUT_CHUNK))
            own = self.components_[indices[part], codes[part]]
            if self.shared_weights:
                own = own + self.shared_components_[codes[part]]
            hidden = expit(inputs[user_of[part]] - own)
            # One row of hidden probabilities per rating, each querying its own item.
            n = hidden.shape[0]
            probs = _core.collab_visible(
                np.ascontiguousarray(hidden, dtype=dtype),
                np.arange(n + 1, dtype=np.int64),
                np.ascontiguousarray(indices[part]),
                self.components_,
                self.intercept_visible_,
                n_jobs=self._n_jobs(),
                **self._shared(),
            )
            expected[part] = probs.astype(np.float64) @ self.rating_values_
        return expected

    def _fold_in_model(self) -> dict:
        """The fitted arrays a user's fold-in reads, and ``fold_in_penalty``, checked here: it acts at
        prediction time, so a ``set_params`` after fit changes it."""
        return dict(
            features=self.item_features_.astype(np.float64),
            values=self.rating_values_,
            prior=self.user_prior_components_,
            frequencies=self.rating_frequencies_,
            penalty=float(check_number(self.fold_in_penalty, "fold_in_penalty", low=0, low_open=True)),
        )

    def _user_offsets(self, indptr, indices, residual, item_offsets):
        """Each user's offset given the item offsets: ``sum_i (residual_ui - o_i) / (offset_penalty +
        n_u)`` over their ratings, ``residual`` the leave-one-out errors (one per stored rating)."""
        per_user = np.diff(indptr)
        user_of = np.repeat(np.arange(per_user.size), per_user)
        return np.bincount(user_of, residual - item_offsets[indices], per_user.size) / _denominator(self.offset_penalty, per_user)

    def _predicted_ratings(self, indptr, indices, codes, q_indptr, q_indices):
        """The prediction (float64) of every queried pair: the expected rating plus, with ``offsets``,
        the user's offset (from their observed ratings) and the item's, within the rating scale."""
        if self._folds_in_users:
            return folded_in_ratings(indptr, indices, codes, q_indptr, q_indices, **self._fold_in_model())
        expected = self._expected_ratings(indptr, indices, codes, q_indptr, q_indices)
        if not self._with_offsets:
            return expected
        residual = self.rating_values_[codes] - self._leave_one_out_ratings(indptr, indices, codes)
        user_offsets = self._user_offsets(indptr, indices, residual, self.item_offsets_)
        predicted = expected + np.repeat(user_offsets, np.diff(q_indptr)) + self.item_offsets_[q_indices]
        # The offsets can carry a prediction past the scale (a user who rates everything 5, a
        # well-liked item): no rating lies there, so the nearest end of the scale is closer to any.
        return np.clip(predicted, self.rating_values_.min(), self.rating_values_.max())

    def _observed(self, X, name="X"):
        """(indptr, indices, codes, shape, output dtype) of the observed ratings X of a fitted model."""
        self._check_fitted()
        R, out_dtype = self._ratings(X, name)
        indptr, indices = csr_arrays(R)
        return indptr, indices, self._codes(R, name), R.shape, out_dtype

    def _query(self, query, shape, name="query"):
        """The pattern of ``query`` (sparse: its stored entries; boolean: its True entries; other dense
        input: its non-NaN entries), which must have the shape of X."""
        if query is None:
            raise ValueError(f"{name} must be a sparse matrix (or array) of shape {shape} marking the ratings to predict; got None")
        mask = not sp.issparse(query) and _is_boolean(query)
        if mask:
            query = np.where(np.asarray(query), 0.0, np.nan)  # a boolean mask: True marks a pair to predict
        # A query's values are ignored (only its pattern counts); y's are the ratings to score.
        zeros_warning = None if mask else _ZEROS_IN_A_QUERY if name == "query" else ZEROS_READ_AS_RATINGS
        Q, _ = as_csr(query, name, nan_is_missing=True, duplicates="sum", zeros_warning=zeros_warning)
        if Q.shape != tuple(shape):
            raise ValueError(f"{name} must have the shape of X {tuple(shape)}; got {Q.shape}")
        return Q

    def transform(self, X):
        """Each user's features: with ``orientation="users"`` the hidden unit probabilities
        p(h = 1 | observed ratings); with "items" the user's taste vector ``sum_k (value_k - mean
        value) w_k`` of their folded-in softmax weights w (K, n_components), the direction of item
        features (``item_features_``) that raises their expected rating.

        Parameters
        ----------
        X : {sparse matrix, array-like} of shape (n_users, n_items)
            Ratings (as in :meth:`fit`); users need not have been seen in fit.

        Returns
        -------
        H : ndarray of shape (n_users, n_components)
        """
        indptr, indices, codes, _, out_dtype = self._observed(X)
        if self._folds_in_users:
            return folded_in_tastes(indptr, indices, codes, **self._fold_in_model()).astype(out_dtype, copy=False)
        return self._hidden(indptr, indices, codes).astype(out_dtype, copy=False)

    def predict(self, X, query):
        """Expected ratings of the (user, item) pairs marked by ``query``, from the ratings in X.

        Parameters
        ----------
        X : {sparse matrix, array-like} of shape (n_users, n_items)
            Each user's observed ratings. A user unseen in fit is folded in from these ratings (no refit):
            a user's predictions depend on their own row of X and of query only.
        query : {sparse matrix, array-like} of shape (n_users, n_items)
            The pairs to predict: a sparse matrix's stored entries (their values are ignored), a boolean
            array's True entries, or a float array's non-NaN entries.

        Returns
        -------
        ratings : scipy.sparse.csr_matrix of shape (n_users, n_items)
            query's pattern holding the expected ratings ``sum_k value_k p(v = k | observed)``, plus the
            user's and the item's offsets in the users orientation with offsets; always within the
            range of ``rating_values_`` (offsets that would carry a prediction past it are clipped).
        """
        indptr, indices, codes, shape, out_dtype = self._observed(X)
        Q = self._query(query, shape)
        q_indptr, q_indices = csr_arrays(Q)
        expected = self._predicted_ratings(indptr, indices, codes, q_indptr, q_indices)
        return sp.csr_matrix((expected.astype(out_dtype), Q.indices.copy(), Q.indptr.copy()), shape=shape)

    def score(self, X, y):
        """Minus the root mean squared error of the predicted ratings of y's stored entries (higher is
        better, as scikit-learn expects of a score).

        Parameters
        ----------
        X : {sparse matrix, array-like} of shape (n_users, n_items)
            Observed ratings.
        y : {sparse matrix, array-like} of shape (n_users, n_items)
            The true ratings to predict (sparse: stored entries; dense: non-NaN entries).

        Returns
        -------
        score : float
        """
        indptr, indices, codes, shape, _ = self._observed(X)
        Y = self._query(y, shape, name="y")
        if Y.nnz == 0:
            raise ValueError("y holds no ratings to score: it needs at least one rating")
        q_indptr, q_indices = csr_arrays(Y)
        expected = self._predicted_ratings(indptr, indices, codes, q_indptr, q_indices)
        return -float(np.sqrt(np.mean((expected - Y.data) ** 2)))

    def recommend(self, X, n=10):
        """The ``n`` items each user has not rated with the highest predicted ratings.

        Parameters
        ----------
        X : {sparse matrix, array-like} of shape (n_users, n_items)
            Observed ratings.
        n : int, default=10
            How many items to recommend per user: at most the number of items.

        Returns
        -------
        items : ndarray of shape (n_users, n), int64
            Item (column) indices, best first. A user with fewer than n unrated items gets them all,
            and the rest of the row is padding: -1, which is not an item. Mask it before mapping the
            indices to ids: ``item_ids[items]`` would turn -1 into the last item, so use
            ``[item_ids[row[row >= 0]] for row in items]``.

        Raises
        ------
        ValueError
            If n is larger than the number of items (no user could fill such a row).
        """
        indptr, indices, codes, shape, _ = self._observed(X)
        n = check_positive_int(n, "n")
        if n > shape[1]:
            raise ValueError(f"n must be at most the number of items ({shape[1]}): recommend gives n unrated items per user; got n={n}")
        out = np.full((shape[0], n), -1, dtype=np.int64)
        for lo in range(0, shape[0], _RECOMMEND_CHUNK):
            hi = min(shape[0], lo + _RECOMMEND_CHUNK)
            sub_ptr = np.ascontiguousarray(indptr[lo : hi + 1] - indptr[lo])
            sub_idx = indices[indptr[lo] : indptr[hi]]
            sub_codes = codes[indptr[lo] : indptr[hi]]
            unrated = np.ones((hi - lo, shape[1]), dtype=bool)
            unrated[np.repeat(np.arange(hi - lo), np.diff(sub_ptr)), sub_idx] = False
            Q = sp.csr_matrix(unrated)
            q_ptr, q_idx = csr_arrays(Q)
            scores = np.full((hi - lo, shape[1]), -np.inf)
            scores[unrated] = self._predicted_ratings(sub_ptr, sub_idx, sub_codes, q_ptr, q_idx)
            top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
            top_scores = np.take_along_axis(scores, top, axis=1)
            out[lo:hi, : top.shape[1]] = np.where(np.isfinite(top_scores), top, -1)
        return out

    @property
    def n_iter_(self) -> int:
        """Epochs trained (``history_["epoch"][-1]``): with early stopping, those run, not
        ``best_epoch_``. Absent before fit."""
        return self._epochs_done

    @property
    def _n_features_out(self):
        """Width of ``transform``'s output, from the fitted parameters: absent before fit, so that
        ``get_feature_names_out`` raises NotFittedError there."""
        return self.intercept_hidden_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True
        # Outputs follow the input: float32 ratings give float32 features, anything else float64.
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.non_deterministic = self.random_state is None
        return tags
