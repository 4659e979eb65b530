"""Deep belief networks: greedy layer-wise pretraining of stacked RBMs (Hinton, Osindero & Teh 2006),
generative sampling, and supervised fine-tuning by backpropagation into a classifier or a regressor."""

from __future__ import annotations

import types

import numpy as np
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.base import ClassifierMixin, ClassNamePrefixFeaturesOutMixin, RegressorMixin, TransformerMixin
from sklearn.metrics import r2_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import ClassifierTags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from . import _core, _label_units
from ._base import (
    DeepGMEstimator,
    _named_errors,
    as_output,
    check_bool,
    check_hidden_layer_sizes,
    check_int_or,
    check_number,
    check_option,
    check_positive_int,
    check_seen_labels,
    check_targets,
    seed_from,
)
from ._failed_fit import kept_if_trained
from ._mlp import FineTuner, init_layer, reset_finetune_state
from ._schedule import FINETUNE_BUDGET, auto_batch_size, plan_epochs, pretrains
from ._stack import (
    FineTunedStack,
    check_auto_or_positive,
    check_layer_params,
    pretrain_stack,
    random_layers,
    stack_params,
    standardisation,
    unrolled_layers,
)
from ._streams import Purpose, generator
from ._units import UNITS, binary_visible, get_units, resolve_visible, unit_names
from .rbm import RBM, check_chains_of_init, check_training_schedule

__all__ = ["DBN", "DBNClassifier", "DBNRegressor"]


def down_pass(rbms, H):
    """Mean-field generative pass from the top hidden layer's means H to the data space."""
    for rbm in reversed(rbms):
        V = _core.rbm_visible(
            np.ascontiguousarray(H, dtype=rbm._dtype()), rbm.components_, rbm.intercept_visible_, visible=rbm.visible, n_jobs=rbm._n_jobs()
        )
        H = rbm._data_space(V)
    return H


class _RBMStackParams:
    """Validation of the RBM settings DBN-style estimators share."""

    #: The strings ``k`` may be besides an int (DBN's "auto").
    _k_options = ()

    def _check_rbm_params(self):
        sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        check_option(self.visible, "visible", ("auto",) + unit_names())
        check_int_or(self.k, "k", also=self._k_options)
        check_bool(self.persistent, "persistent")
        check_auto_or_positive(self.learning_rate, "learning_rate")
        check_layer_params(self.layer_params, len(sizes))
        self._check_common_params()

    def _resolve_visible(self, X) -> str:
        """The bottom RBM's visible units for the training data X: ``visible``, or for "auto"
        Bernoulli when X is mostly binary (every value in [0, 1], at least half of them exactly 0 or
        1: :func:`deepgm._base.mostly_binary`) and Gaussian otherwise. Explicit units refuse X they
        do not accept (Bernoulli units: X outside [0, 1])."""
        return resolve_visible(self.visible, X)

    def _bernoulli_tags(self, tags):
        tags.input_tags.positive_only = binary_visible(self.visible)
        return tags


def _fitted_with_labels(dbn):
    """predict, predict_proba and score exist only on a DBN fitted with labels, fit(X, y)."""
    if not hasattr(dbn, "classes_"):
        raise AttributeError("predictions need a DBN fitted with labels: call fit(X, y)")
    return True


def _unfitted_or_fitted_with_labels(dbn):
    """score exists on an unfitted DBN (model selection asks for it before fitting) and on one
    fitted with labels."""
    return not dbn.__sklearn_is_fitted__() or _fitted_with_labels(dbn)


class DBN(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _RBMStackParams, DeepGMEstimator):
    """Deep belief network: a stack of RBMs trained greedily, layer by layer.

    Each RBM is a :class:`deepgm.RBM`, fitted to the hidden probabilities of the one below.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(500, 500, 2000)
        Hidden units of each RBM, bottom to top.
    visible : {"auto", "bernoulli", "gaussian"}, default="auto"
        Visible units of the bottom RBM: Bernoulli for data in [0, 1], Gaussian for real values;
        "auto" picks Bernoulli when the training data are mostly binary (all in [0, 1], at least half
        exactly 0 or 1: pixels, indicators), Gaussian otherwise (including ``MinMaxScaler`` output of
        continuous measurements, on which Bernoulli units learn nearly constant features).
    k : int or "auto", default="auto"
        Gibbs steps of CD-k in every RBM. "auto" is CD-1, except in the top RBM of a DBN fitted with
        labels, which trains by CD-10 (:func:`deepgm._label_units.label_cd_steps`): CD-1 leaves it a
        spurious mode that ``sample(y=...)``'s chains fall into whatever the label. An int is used
        in every layer; ``layer_params`` sets one layer's.
    persistent, learning_rate, momentum, final_momentum, initial_momentum_epochs, weight_decay
        Settings of every RBM (see :class:`deepgm.RBM`; by default Hinton's (2010) momentum schedule,
        0.5 then 0.9, and ``learning_rate="auto"``). With ``learning_rate="auto"`` the top RBM of a DBN
        fitted with labels trains its last 10 of 34 epochs at a tenth of the rate
        (:func:`deepgm._label_units.label_learning_rate`).
    batch_size : int or "auto", default="auto"
        Rows per minibatch; "auto": n_samples / 50, within [10, 100] (:mod:`deepgm._schedule`).
    n_iter : int or "auto", default="auto"
        Epochs per layer; "auto": at least 500 updates per layer, 10 to 200 epochs; for the top RBM of
        a DBN fitted with labels at least 2,720 updates, 34 to 200 epochs (its label weights and
        class modes learn slowly).
    layer_params : list of dict, default=None
        Per-layer overrides of RBM parameters, e.g. ``[{"learning_rate": 0.05}, {}, {"n_iter": 20}]``.
    use_labels : bool, default=True
        Whether ``fit(X, y)`` trains label units in the top RBM (Hinton, Osindero & Teh 2006). With
        False, ``y`` is ignored, as ``BernoulliRBM`` ignores it: for a DBN that is the feature step of
        a supervised ``Pipeline``, which passes ``y`` to every step.
    random_state, dtype, n_jobs, verbose
        As in :class:`deepgm.RBM`.

    Attributes
    ----------
    rbms_ : list of RBM
        The fitted layers, bottom to top.
    visible_ : {"bernoulli", "gaussian"}
        The bottom RBM's visible units (what ``visible="auto"`` chose).
    n_features_in_ : int
    history_ : dict of lists
        Per pretraining epoch of each layer (bottom layer first): ``layer`` (1-based), ``epoch`` (of
        that layer), ``updates``, ``reconstruction_error``, ``pseudo_likelihood`` (Bernoulli layers)
        and ``time``; after ``fit(X, y)`` the top layer logs ``label_error`` (of its generative
        classifier) instead of ``pseudo_likelihood``, and its ``k`` and ``learning_rate``.
    classes_ : ndarray of shape (n_classes,)
        Only after ``fit(X, y)``: the labels of the top RBM's softmax label group (Hinton, Osindero &
        Teh 2006). The DBN then also has ``predict``, ``predict_proba`` and ``score`` (the generative
        classifier: lowest free energy in the top RBM, no fine-tuning), and ``sample(y=...)``
        generates chosen classes.

    Examples
    --------
    >>> from deepgm import DBN
    >>> from deepgm.datasets import load_mnist
    >>> X, _ = load_mnist()
    >>> dbn = DBN(hidden_layer_sizes=(64, 32), n_iter=2, random_state=0).fit(X[:500])
    >>> dbn.transform(X[:3]).shape
    (3, 32)
    """

    _param_names = ()
    _fitted_attribute = "rbms_"
    _k_options = ("auto",)

    def __init__(
        self,
        hidden_layer_sizes=(500, 500, 2000),
        *,
        visible="auto",
        k="auto",
        persistent=False,
        learning_rate="auto",
        momentum=0.5,
        final_momentum=0.9,
        initial_momentum_epochs=5,
        weight_decay=2e-4,
        batch_size="auto",
        n_iter="auto",
        layer_params=None,
        use_labels=True,
        random_state=None,
        dtype="float32",
        n_jobs=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.visible = visible
        self.k = k
        self.persistent = persistent
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.final_momentum = final_momentum
        self.initial_momentum_epochs = initial_momentum_epochs
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.layer_params = layer_params
        self.use_labels = use_labels
        self.random_state = random_state
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _rbm_common(self):
        return dict(
            k=1 if self.k == "auto" else self.k,
            persistent=self.persistent,
            learning_rate=self.learning_rate,
            momentum=self.momentum,
            final_momentum=self.final_momentum,
            initial_momentum_epochs=self.initial_momentum_epochs,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            n_iter=self.n_iter,
            dtype=self.dtype,
            n_jobs=self.n_jobs,
        )

    def _check_params(self):
        self._check_rbm_params()
        check_training_schedule(self, allow_auto_batch=True)
        check_bool(self.use_labels, "use_labels")

    def fit(self, X, y=None):
        """Greedy layer-wise pretraining on X; with labels y (and ``use_labels``), the top RBM also
        learns a label group (see :meth:`_fit_with_labels`).

        Every setting (including each layer's ``layer_params``) and X are validated before anything
        is trained. If training stops early (Ctrl-C, or a ``DivergenceError`` in some layer), the DBN
        keeps the layers trained so far (the last one as it was when training stopped; a layer that
        failed, other than by Ctrl-C, before a whole epoch is no layer) and re-raises.

        Returns
        -------
        self : DBN
        """
        if y is not None and self.use_labels:
            return self._fit_with_labels(X, y)
        self._check_params()
        sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        layer_params = check_layer_params(self.layer_params, len(sizes))
        with self._fit_transaction() as commit:
            X = self._validate_X(X, reset=True, stream=True)
            visible = self.visible_ = self._resolve_visible(X)
            self.__dict__.pop("classes_", None)
            self._fit_seed = seed_from(self.random_state)
            self._sample_calls = 0
            rbms = []
            try:
                pretrain_stack(
                    X,
                    sizes,
                    seed=self._fit_seed,
                    layer_params=layer_params,
                    common=self._rbm_common(),
                    first_visible=visible,
                    verbose=self.verbose,
                    out=rbms,
                )
            finally:
                self._keep_fitted_layers(rbms, commit)
        return self

    def _keep_fitted_layers(self, rbms, commit):
        """The end of a fit, finished or interrupted: the DBN keeps the layers trained so far.
        Returns how many layers it kept."""
        fitted = [r for r in rbms if hasattr(r, "components_")]
        if fitted:
            commit()
            self.rbms_ = fitted
            self.history_ = _stack_history(fitted)
        return len(fitted)

    @classmethod
    def from_rbms(cls, rbms, *, random_state=None):
        """A fitted DBN made of already fitted RBMs (bottom to top), e.g. the pretrained layers
        ``rbms_`` of a DBNClassifier or DeepAutoencoder, for sampling or feature extraction."""
        rbms = list(rbms)
        if not rbms or not all(isinstance(r, RBM) and hasattr(r, "components_") for r in rbms):
            raise ValueError("rbms must be a non-empty list of fitted deepgm.RBM instances")
        for lower, upper in zip(rbms[:-1], rbms[1:]):
            if upper.n_features_in_ != lower.n_components:
                raise ValueError(f"RBM with {upper.n_features_in_} visible units cannot sit on one with {lower.n_components} hidden units")
        dbn = cls(
            hidden_layer_sizes=tuple(r.n_components for r in rbms),
            visible=rbms[0].visible,
            random_state=random_state,
            dtype=rbms[0].dtype,
            n_jobs=rbms[0].n_jobs,
        )
        dbn.rbms_ = rbms
        dbn.n_features_in_ = rbms[0].n_features_in_
        dbn._fit_seed = seed_from(random_state)
        dbn._sample_calls = 0
        dbn.history_ = _stack_history(rbms)
        return dbn

    @property
    def _n_features_out(self):
        """Width of ``transform``'s output, from the fitted parameters (``get_feature_names_out``)."""
        return self.rbms_[-1].components_.shape[0]

    def transform(self, X):
        """Top-layer features: the hidden probabilities of the top RBM after an up pass.

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_layer_sizes[-1])
            float32 for float32 X, float64 otherwise. X may hold any finite values (see
            :meth:`deepgm.RBM.transform`).
        """
        check_is_fitted(self)
        if self._has_labels():
            return self._transform_with_labels(X)
        H = self._validate_X(X, reset=False)
        for rbm in self.rbms_:
            H = rbm.transform(H)
        return as_output(H, X)

    def sample(self, n_samples=None, n_steps=1000, init=None, y=None, label_strength="auto"):
        """Generates data: Gibbs sampling in the top RBM (the DBN's undirected associative memory),
        then a mean-field down pass through the directed lower layers.

        Parameters
        ----------
        n_samples : int, default=None
            Number of chains: 16 by default, ``len(y)`` when y is an array, one per row of ``init`` when
            it is given (then ``n_samples``, if given too, must equal the number of rows).
        n_steps : int, default=1000
            Gibbs steps in the top RBM (0: the down pass of the starting states).
        init : array-like of shape (n_chains, n_features), default=None
            Data whose up pass starts the chains (e.g. training images); by default the top RBM's
            visible units start from uniform random binary states (standard normal draws when the
            top RBM is a Gaussian-visible bottom layer).
        y : label or array-like of shape (n_chains,), default=None
            For a DBN fitted with labels: the class to generate (one label for every chain, or one
            per chain), clamped in the top RBM's label group during Gibbs sampling. Without it, the
            label group is sampled with the rest of the top RBM.
            A top RBM trained by CD-1 (``k=1``) has a spurious mode that chains of every label fall
            into: fit with ``k="auto"``, which trains the top RBM by CD-10 (benches/NOTES.md,
            entries 28 and 33). The chains need many steps to leave the mode they start near: on
            MNIST, 300 steps gave ~82% of samples recognised as their class, 1,000 ~90% (entry 34).
        label_strength : float or "auto", default="auto"
            With y: the value the clamped label unit takes. 1 samples the model's own p(x | y); above
            1 the label weighs more in the top RBM's hidden units (as a guidance scale does in other
            conditional generators), for samples more recognisable and a little less varied than the
            model's. "auto" is 1.25 (``_label_units.LABEL_STRENGTH``): on MNIST it raised the share of
            samples recognised as their class from ~90% to ~96%, at a diversity of 0.73-0.74 against
            0.75 at strength 1 (benches/NOTES.md, entry 34). Pass 1.0 for the model's exact conditional.

        Returns
        -------
        X : ndarray of shape (n_chains, n_features)
            Visible means (pixel probabilities for Bernoulli visible units). In the model's dtype, or
            with ``init`` in the dtype of ``init`` (float32 for float32, float64 otherwise).
        """
        check_is_fitted(self)
        n_steps = check_positive_int(n_steps, "n_steps", minimum=0)
        if isinstance(label_strength, str):
            check_option(label_strength, "label_strength", ("auto",), or_else="a number >= 0")
            label_strength = _label_units.LABEL_STRENGTH
        else:
            label_strength = check_number(label_strength, "label_strength", low=0)
            if label_strength != 1.0 and y is None:
                raise ValueError(
                    f"label_strength is the value of the clamped label unit: it needs y; got label_strength={label_strength!r} without y"
                )
        if self._has_labels() or y is not None:
            samples = self._sample_with_labels(n_samples, n_steps, init, y, label_strength)
            return samples if init is None else as_output(samples, init)
        top = self.rbms_[-1]
        if init is None:
            n_samples = check_positive_int(16 if n_samples is None else n_samples, "n_samples")
            V = None
        else:
            V = self._validate_X(init, reset=False, units=self.rbms_[0]._visible_units, name="init")
            check_chains_of_init(n_samples, V.shape[0])
            for rbm in self.rbms_[:-1]:
                V = rbm.transform(V)
            V = top._model_space(V)  # standardised when the top RBM is also the (Gaussian) bottom one
        mean = top._gibbs_chains(V, n_samples, n_steps, self._next_seed(), return_means=True)
        samples = down_pass(self.rbms_[:-1], top._data_space(mean))
        return samples if init is None else as_output(samples, init)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]  # see output_dtype
        tags.classifier_tags = ClassifierTags(multi_class=True)  # predict / predict_proba after fit(X, y)
        if self.use_labels:
            # A classifier for model selection: cross_val_score and GridSearchCV then split labelled
            # data into stratified folds, so that no fold holds a class its training part lacks (the
            # label units refuse unseen labels). Without y it stays a transformer.
            tags.estimator_type = "classifier"
        return self._bernoulli_tags(tags)

    # -- label units (Hinton, Osindero & Teh 2006; the maths is in _label_units) --------------------

    def _has_labels(self):
        return hasattr(self, "classes_")

    def _fit_with_labels(self, X, y):
        """fit(X, y): greedy pretraining of the lower layers as without labels; the top RBM's visible
        layer is [penultimate features, one-hot label group], trained by label CD-k / PCD-k.

        Sets ``classes_`` (the sorted labels seen in y). The top RBM ``rbms_[-1]`` has
        ``hidden_layer_sizes[-2] + n_classes`` visible units (the labels last)."""
        self._check_params()
        sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        layer_params = check_layer_params(self.layer_params, len(sizes))
        if len(sizes) == 1 and self.visible in UNITS and not get_units(self.visible).binary:
            raise ValueError(
                "fit with labels y needs Bernoulli units beside the label group in the top RBM: use visible='bernoulli' "
                f"or at least two layers, or use_labels=False to ignore y (a DBN as a Pipeline's feature step); got "
                f"visible={self.visible!r} with hidden_layer_sizes={tuple(sizes)}"
            )
        with self._fit_transaction() as commit:
            X = self._validate_X(X, reset=True, stream=True)
            visible = self.visible_ = self._resolve_visible(X)
            if len(sizes) == 1 and not get_units(visible).binary:
                raise ValueError(
                    "fit with labels y needs Bernoulli units beside the label group in the top RBM: X is not mostly binary, "
                    f"so visible='auto' chose Gaussian units; use at least two layers (got hidden_layer_sizes={tuple(sizes)}), "
                    "or use_labels=False to ignore y (a DBN as a Pipeline's feature step)"
                )
            y = self._validate_y(y, X.shape[0], classification=True)
            self.__dict__.pop("classes_", None)  # until the top RBM with its label units is trained
            self._fit_seed = seed_from(self.random_state)
            self._sample_calls = 0
            classes, codes = np.unique(y, return_inverse=True)
            common = self._rbm_common()
            common["batch_size"] = auto_batch_size(common["batch_size"], X.shape[0])
            stack = stack_params(
                sizes,
                seed=self._fit_seed,
                layer_params=layer_params,
                common=common,
                first_visible=visible,
                verbose=self.verbose,
            )
            rbms = []
            try:
                _, features = pretrain_stack(
                    X,
                    sizes[:-1],
                    seed=self._fit_seed,
                    layer_params=layer_params[:-1],
                    common=self._rbm_common(),
                    first_visible=visible,
                    verbose=self.verbose,
                    out=rbms,
                    return_features=True,
                )
                features = self._dense_features(features)
                # k="auto" and learning_rate="auto" (unless the top layer sets its own): the label
                # RBM's k and learning-rate schedule
                auto_k = "k" not in layer_params[-1] and self.k == "auto"
                auto_rate = "learning_rate" not in layer_params[-1] and self.learning_rate == "auto"
                top = RBM(**dict(stack[-1], k=_label_units.LABEL_FINAL_K) if auto_k else stack[-1])
                rbms.append(top)
                # The label RBM's own transaction: if it fails before a whole epoch, it is left
                # unfitted and the DBN keeps only the lower layers (see deepgm._failed_fit).
                with top._fit_transaction() as commit_top:
                    V = _label_units.init_label_rbm(top, features, codes.ravel(), len(classes))
                    with kept_if_trained(commit_top, lambda: top._epochs_done):
                        _label_units.train_label_rbm(
                            top,
                            V,
                            features.shape[1],
                            cd_steps=_label_units.label_cd_steps if auto_k else None,
                            learning_rates=_label_units.label_learning_rate if auto_rate else None,
                        )
            finally:
                if self._keep_fitted_layers(rbms, commit) == len(sizes):
                    self.classes_ = classes
        return self

    def _penultimate_features(self, X, lower):
        """The up pass of X through the lower RBMs: the visible features of the top RBM (n, d), dense."""
        for rbm in lower:
            X = rbm.transform(X)
        return self._dense_features(X)

    def _dense_features(self, F):
        """Features as the top RBM takes them: dense, C-contiguous, in the compute dtype."""
        F = F.toarray() if sp.issparse(F) else F
        return np.ascontiguousarray(F, dtype=self._dtype())

    def _checked_penultimate(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self._penultimate_features(X, self.rbms_[:-1])

    def _label_codes(self, y, name="y"):
        """Labels -> their indices in ``classes_``, refusing labels unseen in fit."""
        y = np.asarray(y)
        check_seen_labels(y, self.classes_, name)
        return np.searchsorted(self.classes_, y)

    @available_if(_fitted_with_labels)
    def predict_log_proba(self, X):
        """log p(y | x) of a DBN fitted with labels (see :meth:`predict_proba`).

        Returns
        -------
        log_P : ndarray of shape (n_samples, n_classes)
            Computed in float64; float32 for float32 X, float64 otherwise.
        """
        return as_output(self._log_posterior(X), X)

    def _log_posterior(self, X):
        """log p(y | x) (n_samples, n_classes), float64."""
        features = self._checked_penultimate(X)
        return _label_units.label_log_posterior(self.rbms_[-1], features, features.shape[1], self._n_jobs())

    @available_if(_fitted_with_labels)
    def predict_proba(self, X):
        """p(y | x) of a DBN fitted with labels: a softmax over the classes of minus the top RBM's
        free energy F(h(x), y), with h(x) the up pass of x to the penultimate layer. Exact (the
        free energy has a closed form).

        Returns
        -------
        P : ndarray of shape (n_samples, n_classes)
            Computed in float64 whatever the model's dtype; float32 for float32 X, float64 otherwise.
        """
        return as_output(np.exp(self._log_posterior(X)), X)

    @available_if(_fitted_with_labels)
    def predict(self, X):
        """The class of lowest free energy in the top RBM (a DBN fitted with labels).

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        return self.classes_[np.argmax(self._log_posterior(X), axis=1)]

    @available_if(_unfitted_or_fitted_with_labels)
    def score(self, X, y, sample_weight=None):
        """Accuracy of :meth:`predict` on (X, y): the generative classifier of the label units, not
        a fine-tuned network (see :class:`DBNClassifier` for that). Labels unseen in fit are refused.

        Present on an unfitted DBN too, so that ``cross_val_score(DBN(...), X, y)`` and grid
        searches score the label units without a ``scoring=`` argument; gone once the DBN is fitted
        without labels."""
        from sklearn.metrics import accuracy_score

        check_is_fitted(self)
        predicted = self.predict(X)  # checks X
        y = self._validate_y(y, len(predicted), classification=True)
        self._label_codes(y)
        return float(accuracy_score(y, predicted, sample_weight=sample_weight))

    def _transform_with_labels(self, X):
        """transform of a DBN fitted with labels: the top hidden probabilities with the label group at
        its posterior p(y | x) (mean field), p(h | f, p(y | f)): no label is needed to transform."""
        features = self._checked_penultimate(X)
        top = self.rbms_[-1]
        posterior = np.exp(_label_units.label_log_posterior(top, features, features.shape[1], self._n_jobs()))
        V = np.concatenate([features, posterior.astype(features.dtype)], axis=1)
        H = _core.rbm_hidden(V, top.components_, top.intercept_hidden_, hidden="bernoulli", n_jobs=self._n_jobs())
        return as_output(H, X)

    def _sample_with_labels(self, n_samples, n_steps, init, y, label_strength=1.0):
        """sample() of a DBN fitted with labels: Gibbs in the top RBM with the label group clamped to y
        (or free without y), then the mean-field down pass."""
        if not self._has_labels():
            raise ValueError("y was given but this DBN was fitted without labels: fit(X, y) first to generate chosen classes")
        top, seed = self.rbms_[-1], self._next_seed()
        codes = None
        if y is not None:
            y = np.asarray(y)
            if y.ndim > 1:
                raise ValueError(f"y must be one label or a 1-D array of labels; got an array of shape {y.shape}")
            codes = self._label_codes(y.ravel())
            if y.ndim == 0:
                codes = np.repeat(codes, 16 if n_samples is None else check_positive_int(n_samples, "n_samples"))
            elif n_samples is not None and n_samples != len(codes):
                raise ValueError(f"n_samples must be None or len(y) when y is an array; got n_samples={n_samples} and {len(codes)} labels")
        if init is None:
            n = len(codes) if codes is not None else check_positive_int(16 if n_samples is None else n_samples, "n_samples")
            if n == 0:
                raise ValueError("y must hold at least one label; got an empty array")
            rng = np.random.default_rng(seed)
            F0 = (rng.random((n, self.rbms_[-2].n_components if len(self.rbms_) > 1 else self.n_features_in_)) < 0.5).astype(self._dtype())
        else:
            F0 = self._penultimate_features(self._validate_X(init, reset=False, name="init"), self.rbms_[:-1])
            check_chains_of_init(n_samples, F0.shape[0])
            if codes is not None and len(codes) != F0.shape[0]:
                codes = codes[:1].repeat(F0.shape[0]) if y.ndim == 0 else None
                if codes is None:
                    raise ValueError(f"y must have one label per row of init; got {len(y)} labels for {F0.shape[0]} rows")
        d = F0.shape[1]
        if n_steps == 0:
            means = F0
        elif codes is None:
            means = _label_units.free_label_chains(top, F0, len(self.classes_), d, n_steps, seed, self._n_jobs())
        else:
            means = _label_units.clamped_feature_chains(top, F0, codes, d, n_steps, seed, self._n_jobs(), label_strength)
        return down_pass(self.rbms_[:-1], means)


def _stack_history(rbms):
    """DBN history_: every pretraining epoch of every layer, bottom layer first, with its ``layer``
    (1-based) beside the layer's own metrics (``epoch``, ``reconstruction_error``, ...; NaN where a
    layer does not record a metric)."""
    keys = []
    for r in rbms:
        keys += [k for k in r.history_ if k not in keys and k != "layer"]
    history = {"layer": []}
    history.update({k: [] for k in keys})
    for number, r in enumerate(rbms, start=1):
        n_epochs = max((len(v) for v in r.history_.values()), default=0)
        history["layer"] += [number] * n_epochs
        for k in keys:
            values = list(r.history_.get(k, []))
            history[k] += values + [float("nan")] * (n_epochs - len(values))
    return history


def _init_named_for(cls, init):
    """A copy of `init` that calls itself ``cls.__init__``: Python names the function in the TypeError
    of a misspelt keyword (``DBNClassifier(n_iter=2)``), which would otherwise name the private base
    class. The signature is the same, so scikit-learn's ``get_params`` sees the same parameters."""
    qualname = f"{cls.__qualname__}.__init__"
    code = init.__code__
    if hasattr(code, "co_qualname"):  # Python 3.11 and later take the name from the code object
        code = code.replace(co_qualname=qualname)
    copy = types.FunctionType(code, init.__globals__, init.__name__, init.__defaults__, init.__closure__)
    copy.__kwdefaults__ = init.__kwdefaults__
    copy.__qualname__ = qualname
    copy.__module__ = cls.__module__
    copy.__doc__ = init.__doc__
    return copy


class _FineTunedDBN(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _RBMStackParams, FineTunedStack):
    """Pretraining of a stack of RBMs, then fine-tuning of the whole network plus an output layer."""

    _output_activation = "identity"
    _loss = None
    _auto_early_stopping = True  # "auto": see DBNRegressor; a classifier trains on all its rows

    def __init__(
        self,
        hidden_layer_sizes=(500, 500, 2000),
        *,
        pretrain="auto",
        pretrain_iter="auto",
        pretrain_learning_rate="auto",
        visible="auto",
        k=1,
        persistent=False,
        pretrain_weight_decay=2e-4,
        layer_params=None,
        finetune_iter="auto",
        optimizer="adam",
        learning_rate=1e-3,
        momentum=0.9,
        weight_decay=0.0,
        dropout=0.0,
        batch_size="auto",
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        random_state=None,
        dtype="float32",
        n_jobs=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.pretrain = pretrain
        self.pretrain_iter = pretrain_iter
        self.pretrain_learning_rate = pretrain_learning_rate
        self.visible = visible
        self.k = k
        self.persistent = persistent
        self.pretrain_weight_decay = pretrain_weight_decay
        self.layer_params = layer_params
        self.finetune_iter = finetune_iter
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in vars(cls):
            cls.__init__ = _init_named_for(cls, _FineTunedDBN.__init__)

    def _check_params(self):
        sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        check_option(self.visible, "visible", ("auto",) + unit_names())
        self._check_stack_params(len(sizes))

    def _hidden_activations(self):
        return ["sigmoid"] * len(self.coefs_[:-1]) + [self._output_activation]

    def _initialise(self, X, n_outputs):
        """Pretrains (or randomly initialises) the hidden layers and adds the output layer."""
        sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        self._fit_seed = seed_from(self.random_state)
        self._check_layer_settings(X.shape[0], sizes, first_visible=self.visible_)
        if self.pretrained_:
            self._unroll(self._pretrain(X, sizes, first_visible=self.visible_), n_outputs)
        else:
            self._random_network(X, n_outputs)
        reset_finetune_state(self)

    def _unroll(self, rbms, n_outputs):
        """The network of pretrained RBMs: their layers, then a new output layer."""
        self.rbms_ = rbms
        if get_units(self.visible_).standardised:
            # The bottom RBM saw standardised data: the network keeps seeing it so.
            self.input_mean_, self.input_scale_ = rbms[0].mean_.copy(), rbms[0].scale_.copy()
        rng = generator(self._fit_seed, Purpose.DBN_INIT)
        self._set_layers(unrolled_layers(rbms) + [init_layer(rng, rbms[-1].n_components, n_outputs, self._dtype(), scale=0.01)])

    def _random_network(self, X, n_outputs):
        """A network of random layers (no pretraining) for X, standardising Gaussian input.

        Weights N(0, 1/n_in); biases zero but the first hidden layer's, drawn from U(-1, 1); the output
        layer N(0, 0.01^2), as on a pretrained stack. With zero first-layer biases every hidden unit
        is an odd function of the standardised input around 1/2, so no weighted sum of them
        separates a class inside a ring from one around it, and with the small output weights the
        hidden layer learned too slowly to leave that start: on make_circles the convergence rule
        stopped some folds' training near chance (3 seeds, 5-fold: 0.817, worst seed 0.737, against
        MLPClassifier's 0.869). The layers above take sigmoid outputs, which are not symmetric, and
        biases there, or larger output weights, cost the 500-500-2000 stack accuracy on breast cancer
        (benches/NOTES.md, entry 63)."""
        sizes = check_hidden_layer_sizes(self.hidden_layer_sizes)
        rng = generator(self._fit_seed, Purpose.DBN_INIT)
        self.rbms_ = []
        dtype = self._dtype()
        hidden = random_layers(rng, (X.shape[1],) + sizes, dtype)
        hidden[0] = (hidden[0][0], rng.uniform(-1.0, 1.0, sizes[0]).astype(dtype))
        if get_units(self.visible_).standardised:
            self.input_mean_, self.input_scale_ = standardisation(X)
        self._set_layers(hidden + [init_layer(rng, sizes[-1], n_outputs, dtype, scale=0.01)])

    def _network_input(self, X):
        """What the network computes on for (a minibatch of) a validated X: X itself for Bernoulli
        visible units, the standardised X, (X - input_mean_) / input_scale_, for Gaussian ones
        (:class:`deepgm._mlp.FineTuner` applies it per minibatch, so X itself is never copied). Standardising inside
        the network rather than folding it into the first layer keeps Adam's per-weight steps in
        proportion whatever scaler came before (MinMaxScaler output has feature scales near 0.2: with
        the standardisation folded in, the first layer learned 5x too slowly and make_classification
        accuracy fell from 0.78 to 0.65)."""
        if getattr(self, "input_mean_", None) is None:
            return X
        if sp.issparse(X):
            X = X.toarray()
        return np.ascontiguousarray((np.asarray(X, dtype=np.float64) - self.input_mean_) / self.input_scale_, dtype=self._dtype())

    def _fit(self, X, Y, commit, stratify=None):
        """Pretraining on X, then fine-tuning on (X, Y) with Y (n, n_outputs) in the model's dtype.
        ``commit`` (of ``_fit_transaction``) is called as :func:`deepgm._failed_fit.kept_if_trained`
        decides: pretraining alone makes no model, fine-tuning epochs do."""
        train_X, train_Y, validation = self._validation_split(X, Y, stratify)
        self.input_mean_ = self.input_scale_ = None
        self.pretrained_ = pretrains(self.pretrain, self.visible_)
        self._initialise(train_X, Y.shape[1])
        tuner = FineTuner(self, self._hidden_activations(), self._loss)
        n_epochs = plan_epochs(self.finetune_iter, train_X.shape[0], auto_batch_size(self.batch_size, train_X.shape[0]), FINETUNE_BUDGET)
        with kept_if_trained(commit, lambda: self.n_iter_):
            tuner.run(
                train_X,
                train_Y,
                n_epochs=n_epochs,
                seed=self._fit_seed,
                validation=validation,
                score=self._validation_score,
                desc=type(self).__name__,
                converge=self.finetune_iter == "auto",
            )
        return self

    def _forward(self, X):
        """The network's outputs for X (any finite values: p(h | v) is defined for every real v, so
        Bernoulli visible units accept test data a scaler mapped slightly outside [0, 1])."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return FineTuner(self, self._hidden_activations(), self._loss).forward(X)

    @property
    def _n_features_out(self):
        """Width of ``transform``'s output, from the fitted parameters (``get_feature_names_out``)."""
        return self.coefs_[-1].shape[0]

    def transform(self, X):
        """Features learned by the network: the activations of the last hidden layer after fine-tuning.

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_layer_sizes[-1])
            float32 for float32 X, float64 otherwise; X may hold any finite values.
        """
        check_is_fitted(self)
        data = self._validate_X(X, reset=False)
        outs = FineTuner(self, self._hidden_activations(), self._loss).forward(data, all_layers=True)
        return as_output(outs[-2], X)

    def _score_targets(self, X, y):
        """Checks the (X, y) given to ``score``: X as for predict, one finite target per sample.
        Returns the validated y (X itself is validated again by predict)."""
        check_is_fitted(self)
        n_samples = self._validate_X(X, reset=False).shape[0]
        if y is None:
            raise ValueError(f"y is required: {type(self).__name__}.score compares predictions with the targets y; got None")
        with _named_errors("y"):
            y = check_targets(y, multi_output=self._loss == "squared_error", numeric=self._loss == "squared_error", estimator=self)
        if y.shape[0] != n_samples:
            raise ValueError(
                f"X and y must have the same number of samples (inconsistent numbers of samples); got {n_samples} and {y.shape[0]}"
            )
        return y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]  # see output_dtype
        return self._bernoulli_tags(tags)


class DBNClassifier(ClassifierMixin, _FineTunedDBN):
    """Deep belief network classifier: RBM pretraining, then backpropagation through the whole stack
    and a softmax output layer (Hinton & Salakhutdinov 2006).

    The defaults work on scikit-learn's small tabular data sets (iris, wine, breast cancer, digits;
    at least ``MLPClassifier``'s cross-validated accuracy minus 0.02 with the same scaler) as well as
    on MNIST (2.0% test error training on 8,000 images): docs/quality_results.md has the figures and
    docs/own-data.md the advice. What they are and why:

    - ``hidden_layer_sizes=(500, 500, 2000)`` (Hinton, Osindero & Teh 2006). On MNIST (500, 500)
      reached only 2.6-2.8% test error with the fine-tuning below; on a few hundred rows of tabular
      data the large stack costs seconds, not accuracy. A smaller stack (e.g. ``(256, 256)``) trains
      several times faster on small data.
    - ``pretrain="auto"``: RBM pretraining for Bernoulli visible units (pixels: the MNIST recipe), a
      random start for Gaussian ones (:func:`deepgm._schedule.pretrains`). Pretraining on a few
      standardised features gives nearly constant layers and a worse start than a random one
      (make_classification, 300 rows: 0.693 pretrained, 0.783 not, MLPClassifier 0.743).
    - ``visible="auto"``: Bernoulli visible units when the training data are mostly binary (in
      [0, 1], at least half the values exactly 0 or 1: pixel intensities, indicators), Gaussian units
      otherwise (``StandardScaler`` output, ``MinMaxScaler`` output of continuous measurements: on
      wine, Bernoulli units learned nearly constant features and lost 5 points of accuracy).
    - ``pretrain_iter="auto"``, ``finetune_iter="auto"``, ``batch_size="auto"``: the training length
      fits the data (:mod:`deepgm._schedule`): each RBM gets at least 500 updates and 10 epochs
      (150 rows in batches of 10: 50 epochs; 8,000 rows in batches of 100: 10 epochs), and fine-tuning stops once
      the training loss has converged, as ``MLPClassifier`` does, after at most 200 epochs.
    - ``optimizer="adam", learning_rate=1e-3``: on low-dimensional tabular data the pretrained
      layers come out nearly constant across samples (an RBM on a handful of standardised features
      learns weak features, and the RBMs above them turn off), a flat start from which SGD at the
      classic 0.1 never moved (chance accuracy on iris and wine); Adam's per-weight steps leave it.
    - ``dropout=0.0``: dropout makes the training loss noisy, so ``finetune_iter="auto"`` stopped
      before convergence (make_classification, 300 rows: 0.69 accuracy with dropout 0.2 against 0.78
      without, MLPClassifier 0.74). With a fixed ``finetune_iter`` on MNIST, ``dropout=0.2`` lowers
      the test error (2.35% -> 2.0%).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(500, 500, 2000)
        Hidden layers (each pretrained as an RBM).
    pretrain : bool or "auto", default="auto"
        Initialise the hidden layers by greedy RBM pretraining (else: random initialisation); "auto"
        pretrains Bernoulli visible units only (see above; ``pretrained_`` holds the choice).
    pretrain_iter : int or "auto", default="auto"
        RBM epochs per layer; "auto": see :mod:`deepgm._schedule` (at least 500 updates, 10 to 200
        epochs).
    pretrain_learning_rate : float or "auto", default="auto"
        RBM learning rate (see :class:`deepgm.RBM`; "auto": 0.1 for Bernoulli visible units, 0.003
        for Gaussian ones).
    visible : {"auto", "bernoulli", "gaussian"}, default="auto"
        Visible units of the bottom RBM: Bernoulli for data in [0, 1], Gaussian (the RBM standardises
        the data) for real values; "auto" picks Bernoulli when the training data are mostly binary
        (see above; ``visible_`` holds the choice). Explicit Bernoulli units refuse training data outside
        [0, 1]; prediction accepts any finite values.
    k, persistent : CD-k / PCD settings of the RBMs.
    pretrain_weight_decay : float, default=2e-4
    layer_params : list of dict, default=None
        Per-layer overrides of RBM parameters.
    finetune_iter : int or "auto", default="auto"
        Epochs of backpropagation: exactly this many (unless ``early_stopping``), or "auto": until the
        training loss has not improved by ``tol`` for ``n_iter_no_change`` epochs, at most 200.
    optimizer : {"sgd", "adam"}, default="adam"
    learning_rate : float, default=1e-3
        Fine-tuning step size.
    momentum : float, default=0.9
        SGD momentum.
    weight_decay : float, default=0.0
        L2 penalty on the weights during fine-tuning.
    dropout : float, default=0.0
        Dropout rate of the hidden layers during fine-tuning.
    batch_size : int or "auto", default="auto"
        Rows per minibatch of pretraining and fine-tuning; "auto": n_samples / 50, within [10, 100].
    early_stopping : bool or "auto", default="auto"
        Hold out ``validation_fraction`` of the training data (stratified) and stop when its accuracy
        has not improved by ``tol`` for ``n_iter_no_change`` epochs; keeps the best parameters.
        "auto": off for the classifier, as in ``MLPClassifier`` (on for :class:`DBNRegressor`).
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
    random_state, dtype, n_jobs, verbose
        As in :class:`deepgm.RBM`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    rbms_ : list of RBM
        The pretrained RBMs (before fine-tuning; empty without pretraining).
    coefs_ : list of ndarray
        Fine-tuned weights, ``coefs_[i]`` of shape (n_in, n_out) (scikit-learn's MLP layout).
    intercepts_ : list of ndarray
    n_iter_ : int
        Fine-tuning epochs run.
    loss_, loss_curve_ : float, list of float
        Mean training loss (cross-entropy) of the last epoch / of every epoch.
    validation_scores_, best_validation_score_
        Validation accuracies with early stopping.
    visible_ : {"bernoulli", "gaussian"}
        The bottom RBM's visible units (what ``visible="auto"`` chose).
    pretrained_ : bool
        Whether the hidden layers were pretrained (what ``pretrain="auto"`` chose).
    input_mean_, input_scale_ : ndarray of shape (n_features,) or None
        With Gaussian visible units, the standardisation the network applies to its input (that of
        the bottom RBM, or of the training data without pretraining); None for Bernoulli units.
    history_ : dict of lists
        Per fine-tuning epoch: ``epoch``, ``loss``, ``updates`` (minibatch updates so far),
        ``validation_score`` (with early stopping), ``epochs_without_improvement`` (when a stopping
        rule is active) and ``time``. The pretraining epochs are in each ``rbms_[i].history_``.

    Examples
    --------
    >>> from deepgm import DBNClassifier
    >>> from deepgm.datasets import load_mnist
    >>> X, y = load_mnist()
    >>> clf = DBNClassifier((64,), pretrain_iter=2, finetune_iter=3, random_state=0).fit(X[:1000], y[:1000])
    >>> clf.predict(X[:2]).shape
    (2,)
    """

    _loss = "softmax_cross_entropy"

    def fit(self, X, y):
        """Pretrains on X, then fine-tunes on (X, y).

        Returns
        -------
        self : DBNClassifier
        """
        self._check_params()
        with self._fit_transaction() as commit:
            X = self._validate_X(X, reset=True, stream=True)
            y = self._validate_y(y, X.shape[0], classification=True)
            self.visible_ = self._resolve_visible(X)
            self._label_encoder = LabelEncoder().fit(y)
            self.classes_ = self._label_encoder.classes_
            codes = self._label_encoder.transform(y)
            Y = np.zeros((len(codes), len(self.classes_)), dtype=self._dtype())
            Y[np.arange(len(codes)), codes] = 1
            return self._fit(X, Y, commit, stratify=codes if len(self.classes_) > 1 else None)

    def _validation_score(self, X_val, Y_val):
        proba = softmax(FineTuner(self, self._hidden_activations(), self._loss).forward(X_val), axis=1)
        return float(np.mean(np.argmax(proba, axis=1) == np.argmax(Y_val, axis=1)))

    def predict_proba(self, X):
        """Class probabilities.

        Returns
        -------
        P : ndarray of shape (n_samples, n_classes)
            The softmax of the network's outputs, computed in float64 whatever the model's dtype (as
            ``predict_log_proba``), then given scikit-learn's output dtype: float32 for float32 X
            (as MLPClassifier), float64 otherwise.
        """
        return as_output(softmax(self._forward(X).astype(np.float64), axis=1), X)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed in float64 by log-softmax (no log of 0); float32 for
        float32 X, float64 otherwise.

        Returns
        -------
        log_P : ndarray of shape (n_samples, n_classes)
        """
        from scipy.special import log_softmax

        return as_output(log_softmax(self._forward(X).astype(np.float64), axis=1), X)

    def predict(self, X):
        """Most probable class of each sample.

        Returns
        -------
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self._forward(X), axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on (X, y). Labels that were not seen in fit are refused (a ValueError), not
        counted as errors: they usually mean mismatched label encodings."""
        y = self._score_targets(X, y)
        check_seen_labels(y, self.classes_)
        return super().score(X, y, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags

    def fit_transform(self, X, y, **fit_params):
        return self.fit(X, y).transform(X)


class DBNRegressor(RegressorMixin, _FineTunedDBN):
    """Deep belief network regressor: RBM pretraining, then backpropagation through the stack and a
    linear output layer with squared error. Targets are standardised internally.

    Parameters and defaults are those of :class:`DBNClassifier` (``finetune_iter="auto"`` converges on
    the squared error of the standardised targets; ``early_stopping`` scores R^2), ``pretrain="auto"``
    included: real-valued measurements (Gaussian visible units) start at random, as in the classifier.
    Pretrained on a few standardised features the stack is all but dead (the second RBM's units all
    off), so fine-tuning starts on the plateau of the constant prediction, and whether Adam leaves it
    before ``finetune_iter="auto"`` declares convergence depended on the seed: ``make_regression``
    300 x 10, R^2 0.0 on two folds of three (benches/NOTES.md, entry 46). They reach at least
    ``MLPRegressor``'s cross-validated R^2 minus 0.02 on diabetes and on ``make_regression`` /
    ``make_friedman1`` data (docs/quality_results.md). Adam matters more here than for classification:
    a squared error on top of wide, non-centred sigmoid layers makes SGD at 0.1 diverge (the output
    moves by about ``learning_rate * ||h||^2`` per unit of error: 50x for 1000 units); Adam's steps
    do not grow with the layer width.

    ``early_stopping="auto"`` (the default) holds out ``validation_fraction`` of the rows when fit
    has 100 rows or more, stops after ``max(n_iter_no_change, 30)`` epochs without a better
    validation R^2 and keeps the best parameters. Without it the default network (1.3 M weights)
    fits the noise of small data for up to 200 epochs: 3-fold R^2 on standardised diabetes 0.332
    without, 0.485 with it (LinearRegression: 0.48), make_friedman1 300 x 10 0.874 / 0.958, and the
    fits end sooner (benches/NOTES.md, entry 53). Below 100 rows the validation set would be too
    small to choose by.

    Attributes
    ----------
    rbms_, coefs_, intercepts_, n_iter_, loss_, loss_curve_, history_
        As in :class:`DBNClassifier` (``validation_score`` is R^2).
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        Standardisation of the targets.
    n_outputs_ : int
    visible_, pretrained_
        As in :class:`DBNClassifier`.

    Examples
    --------
    >>> import numpy as np
    >>> from deepgm import DBNRegressor
    >>> X = np.linspace(-3, 3, 200)[:, None]
    >>> reg = DBNRegressor((16,), pretrain_iter=2, finetune_iter=5, random_state=0).fit(X, np.sin(X[:, 0]))
    >>> reg.predict(X[:2]).shape
    (2,)
    """

    _loss = "squared_error"
    _auto_early_stopping_rows = 100

    def fit(self, X, y):
        """Pretrains on X, then fine-tunes on (X, y); y of shape (n_samples,) or (n_samples, n_outputs).

        Returns
        -------
        self : DBNRegressor
        """
        self._check_params()
        with self._fit_transaction() as commit:
            X = self._validate_X(X, reset=True, stream=True)
            y = self._validate_y(y, X.shape[0], classification=False, multi_output=True)
            if sp.issparse(y):
                y = y.toarray()
            Y = np.asarray(y, dtype=np.float64)
            if Y.ndim > 2:
                raise ValueError(f"y must be 1-D or 2-D (n_samples, n_outputs); got a {Y.ndim}-D array of shape {Y.shape}")
            self.visible_ = self._resolve_visible(X)
            self._y_1d = Y.ndim == 1
            Y = Y.reshape(len(Y), -1)
            self.n_outputs_ = Y.shape[1]
            self.y_mean_ = Y.mean(axis=0)
            scale = Y.std(axis=0)
            self.y_scale_ = np.where(scale > 1e-12, scale, 1.0)
            Y = np.ascontiguousarray((Y - self.y_mean_) / self.y_scale_, dtype=self._dtype())
            return self._fit(X, Y, commit)

    def _validation_score(self, X_val, Y_val):
        pred = FineTuner(self, self._hidden_activations(), self._loss).forward(X_val).astype(np.float64)
        if len(Y_val) < 2:  # R^2 is undefined for one row (r2_score gives NaN): score it 0
            return 0.0
        # Pooled over the outputs: 1 - sum of squared errors / sum of squares, what "variance_weighted" is.
        return float(r2_score(np.asarray(Y_val, dtype=np.float64), pred, multioutput="variance_weighted"))

    def predict(self, X):
        """Predicted targets.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Un-standardised in float64; float32 for float32 X (as MLPRegressor), float64 otherwise.
        """
        pred = as_output(self._forward(X).astype(np.float64) * self.y_scale_ + self.y_mean_, X)
        return pred[:, 0] if self._y_1d else pred

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R^2 on (X, y)."""
        return super().score(X, self._score_targets(X, y), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
