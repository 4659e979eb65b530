"""What fit_distributed does for each estimator: validate, initialise on the driver from a sample of X
(as the estimator's fit would from X), then train phase after phase by parameter averaging.

One function per model family, registered for its class with :func:`register`; an estimator whose
class (or a base class) is registered can be fitted. A new model family (e.g. the softmax-unit
models) registers a function of its own, built from a :class:`~deepgm.distributed._phases.Phase`
subclass that says how its replicas take one minibatch step.

The initialisations below call the estimators' own private initialisers; where an estimator's fit
pretrains inside its initialiser (the fine-tuned stacks), the unrolling of the distributed-pretrained
RBMs is written out here, as the estimators do it, until the stack module exposes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np

from .._base import BINARY_FRACTION, binary_fraction, check_hidden_layer_sizes, check_unit_interval, seed_from
from .._mlp import reset_finetune_state
from .._schedule import FINETUNE_BUDGET, LINEAR_PATH_FINETUNE_BUDGET, RBM_BUDGET, VAE_BUDGET, auto_batch_size, plan_epochs, pretrains
from .._stack import check_layer_params, stack_params
from .._units import BERNOULLI, GAUSSIAN, auto_visible, get_units, resolve_visible, units_for_loss
from ..autoencoder import DeepAutoencoder
from ..dbn import DBN, DBNClassifier, DBNRegressor, _stack_history
from ..rbm import RBM
from ..vae import CVAE, VAE
from ._phases import FineTunePhase, RBMPhase, VAEPhase


@dataclass(frozen=True)
class Fitter:
    """How fit_distributed trains one family: ``fit(estimator, run)``, and what y it takes (None: y
    is ignored; "classes": class labels; "values": regression targets)."""

    fit: object
    targets: str | None = None
    #: For a family whose own ``fit(X, y)`` uses y although fit_distributed cannot: why y is refused
    #: (rather than ignored, as scikit-learn's unsupervised estimators ignore it).
    refuses_y: str | None = None


_FITTERS: dict = {}


def register(cls, *, targets=None, refuses_y=None):
    """Registers ``fit(estimator, run)`` for estimators of ``cls`` and its subclasses (a decorator).

    ``targets`` says what y the family takes (None, "classes" or "values"); ``refuses_y``, for a
    family whose own fit would use a y that fit_distributed does not, the reason y is refused (a
    y given to any other family without targets is ignored). ``fit`` does what the
    estimator's own fit does, with ``run`` (a :class:`~deepgm.distributed._rounds.Run`) in place of
    X: validate the settings; inside ``estimator._fit_transaction()``, validate and initialise from
    ``run.sample()`` (a few thousand rows, dense or sparse like X's blocks; ``run.compute`` for
    reductions over all of X or ``run.y``); then ``run.train(phase, estimator, epochs=...,
    on_commit=commit)`` with a Phase that says what is averaged and what one minibatch step is.
    """

    def decorate(fit):
        _FITTERS[cls] = Fitter(fit, targets, refuses_y)
        return fit

    return decorate


def fitter_for(estimator) -> Fitter:
    for cls in type(estimator).__mro__:
        if cls in _FITTERS:
            return _FITTERS[cls]
    names = ", ".join(sorted(c.__name__ for c in _FITTERS if not c.__name__.startswith("_")))
    raise TypeError(f"fit_distributed cannot train a {type(estimator).__name__}; it trains {names}")


# -- RBMs and stacks of them ------------------------------------------------------------------------


def _start_rbm(rbm, sample, n_rows):
    """Validates the sample and initialises the RBM from it, as RBM.fit does from X; returns the
    validated sample (the RBM's monitoring rows come from it)."""
    sample = rbm._check_X(sample, reset=True, stream=True)
    rbm._init_params(sample)
    rbm._n_seen = n_rows  # visible_mean_ stands for all the rows (partial_fit continues from it)
    return sample


def _rbm_epochs(n_iter, batch_size, run):
    """Epochs of an RBM (or a stack's layer) over all of X: ``n_iter``, "auto" resolved from the
    number of rows as the RBM's fit would (:mod:`deepgm._schedule`)."""
    return plan_epochs(n_iter, run.n_rows, batch_size, RBM_BUDGET)


def _with_batch_size(common, run):
    """A stack's common RBM settings with ``batch_size="auto"`` resolved from all of X's rows, as
    :func:`deepgm._stack.pretrain_stack` resolves it from X."""
    return dict(common, batch_size=auto_batch_size(common.get("batch_size", "auto"), run.n_rows))


def _resolve_visible(est, run, sample):
    """The bottom RBM's visible units, as the estimator's ``_resolve_visible`` decides them (the
    range from all of X, the fraction of exact 0s and 1s from the sample)."""
    if est.visible != "auto":
        return resolve_visible(est.visible, sample)
    low, high = run.compute(run.X.min(), run.X.max())
    return auto_visible(low >= 0 and high <= 1 and binary_fraction(sample) >= BINARY_FRACTION)  # the fraction from the sample


def _pretrain(run, stack, sample, out):
    """Greedy layer-wise pretraining, one layer after the other by parameter averaging: each worker
    transforms its own blocks through the layers below. Layers are appended to ``out`` as they start,
    so that a caller can keep those trained so far."""
    for number, params in enumerate(stack, start=1):
        rbm = RBM(**params)
        layer_sample = _start_rbm(rbm, sample, run.n_rows)
        out.append(rbm)
        phase = RBMPhase(rbm, lower=out[:-1], name=f"layer {number}")
        run.train(phase, rbm, epochs=_rbm_epochs(rbm.n_iter, rbm.batch_size, run), monitor=lambda r=rbm, s=layer_sample: r._monitor(s))
        sample = rbm.transform(layer_sample)


def _stack_rounds(stack, run):
    return [(_rbm_epochs(params["n_iter"], params["batch_size"], run), params["batch_size"]) for params in stack]


@register(RBM)
def fit_rbm(rbm, run):
    rbm._check_params()
    epochs = _rbm_epochs(rbm.n_iter, rbm.batch_size, run)
    run.start_progress([(epochs, rbm.batch_size)])
    with rbm._fit_transaction() as commit:
        sample = _start_rbm(rbm, run.sample(), run.n_rows)
        run.train(RBMPhase(rbm), rbm, epochs=epochs, monitor=lambda: rbm._monitor(sample), on_commit=commit)


@register(
    DBN,
    refuses_y="fit_distributed trains a DBN without label units; DBN.fit(X, y) trains them on one machine, "
    "or pass y=None to train the DBN unsupervised",
)
def fit_dbn(dbn, run):
    dbn._check_params()
    sizes = check_hidden_layer_sizes(dbn.hidden_layer_sizes)
    layer_params = check_layer_params(dbn.layer_params, len(sizes))
    with dbn._fit_transaction() as commit:
        sample = dbn._validate_X(run.sample(), reset=True, stream=True)
        visible = dbn.visible_ = _resolve_visible(dbn, run, sample)
        dbn._fit_seed = seed_from(dbn.random_state)
        dbn._sample_calls = 0
        stack = stack_params(
            sizes,
            seed=dbn._fit_seed,
            layer_params=layer_params,
            common=_with_batch_size(dbn._rbm_common(), run),
            first_visible=visible,
            verbose=dbn.verbose,
        )
        run.start_progress(_stack_rounds(stack, run))
        rbms = []
        try:
            _pretrain(run, stack, sample, rbms)
        finally:
            # As DBN.fit: a stop keeps the layers trained so far, the last at its last completed round.
            fitted = [r for r in rbms if r.history_]
            if fitted:
                commit()
                dbn.rbms_ = fitted
                dbn.history_ = _stack_history(fitted)


# -- fine-tuned stacks ------------------------------------------------------------------------------


def _refuse_early_stopping(est):
    """early_stopping=True is refused; "auto" (DBNRegressor's default) means no early stopping here."""
    if not isinstance(est.early_stopping, str) and est.early_stopping:
        raise ValueError(
            "early_stopping=True is not supported by fit_distributed (it would hold out part of every shard); "
            "fit with early_stopping=False and score a held-out set yourself"
        )


def _set_targets(est, run, targets):
    """classes_ (classification) or the target standardisation (regression), from all of y."""
    if targets == "classes":
        y = run.y if run.y.ndim == 1 else run.y[:, 0]
        (labels,) = run.compute(da.unique(y))
        labels = est._validate_y(labels, len(labels), classification=True)
        from sklearn.preprocessing import LabelEncoder

        est._label_encoder = LabelEncoder().fit(labels)
        est.classes_ = est._label_encoder.classes_
        return len(est.classes_)
    y = run.y.astype(np.float64)
    mean, std = run.compute(y.mean(axis=0), y.std(axis=0))
    est._y_1d = run.y.ndim == 1
    est.y_mean_ = np.atleast_1d(mean)
    est.y_scale_ = np.where(np.atleast_1d(std) > 1e-12, np.atleast_1d(std), 1.0)
    est.n_outputs_ = est.y_mean_.shape[0]
    return est.n_outputs_


def _require_y(est, run):
    if run.y is None:
        raise ValueError(f"y is required: {type(est).__name__} requires y to be passed, but the target y is None")


def _fit_classifier_stack(est, run, targets):
    est._check_params()
    _refuse_early_stopping(est)
    _require_y(est, run)
    with est._fit_transaction() as commit:
        sample = est._validate_X(run.sample(), reset=True, stream=True)
        est.visible_ = _resolve_visible(est, run, sample)
        est.pretrained_ = pretrains(est.pretrain, est.visible_)
        est.input_mean_ = est.input_scale_ = None
        n_outputs = _set_targets(est, run, targets)
        est._fit_seed = seed_from(est.random_state)
        _pretrain_unroll_fine_tune(
            run,
            est,
            commit,
            sample,
            sizes=check_hidden_layer_sizes(est.hidden_layer_sizes),
            first_visible=est.visible_,
            last_hidden=BERNOULLI.name,
            unroll=lambda rbms: est._unroll(rbms, n_outputs),
            initialise=lambda: est._random_network(sample, n_outputs),
            pretrain=est.pretrained_,
            phase=lambda: FineTunePhase(
                est,
                activations=est._hidden_activations(),
                loss=est._loss,
                targets=targets,
                unit_check=(get_units(est.visible_), None, None),
            ),
        )


def _pretrain_unroll_fine_tune(
    run, est, commit, sample, *, sizes, first_visible, last_hidden, unroll, initialise, phase, pretrain, budget=FINETUNE_BUDGET
):
    """What a fine-tuned stack's fit does, by parameter averaging: pretrain the RBMs layer by layer
    (``pretrain``, the estimator's resolved setting) and ``unroll(rbms)`` into the network, or ``initialise()`` it at random with
    the estimator's own initialiser; then fine-tune (``phase()``: the FineTunePhase of the network).
    The fit is committed once the first fine-tuning round is complete (or at once without any)."""
    stack = []
    batch_size = auto_batch_size(est.batch_size, run.n_rows)
    if pretrain:
        stack = stack_params(
            sizes,
            seed=est._fit_seed,
            layer_params=check_layer_params(est.layer_params, len(sizes)),
            common=_with_batch_size(est._pretraining_settings(), run),
            first_visible=first_visible,
            last_hidden=last_hidden,
            verbose=est.verbose,
        )
    # fit_distributed trains a fixed number of rounds: an "auto" fine-tuning length is its ceiling
    # (no convergence test between rounds).
    finetune_epochs = plan_epochs(est.finetune_iter, run.n_rows, batch_size, budget)
    run.start_progress(_stack_rounds(stack, run) + [(finetune_epochs, batch_size)])
    reset_finetune_state(est)  # before initialise(), which may set the scale divergence is judged against
    if pretrain:
        rbms = []
        _pretrain(run, stack, sample, rbms)
        unroll(rbms)
    else:
        initialise()
    fine_tuning = phase()
    fine_tuning.rows_per_batch = batch_size
    if finetune_epochs == 0:
        commit()
        return
    run.train(fine_tuning, est, epochs=finetune_epochs, on_commit=commit)


@register(DBNClassifier, targets="classes")
def fit_dbn_classifier(est, run):
    _fit_classifier_stack(est, run, "classes")


@register(DBNRegressor, targets="values")
def fit_dbn_regressor(est, run):
    _fit_classifier_stack(est, run, "values")


@register(DeepAutoencoder)
def fit_autoencoder(est, run):
    est._check_params()
    _refuse_early_stopping(est)
    with est._fit_transaction() as commit:
        sample = est._validate_X(run.sample(), reset=True, stream=True)
        if est.loss == "cross_entropy":
            check_unit_interval(sample, what="loss='cross_entropy'", hint="loss='squared_error'")
            est.loss_function_ = "cross_entropy"
        elif est.loss == "auto":  # as fit decides from all of X
            low, high = run.compute(run.X.min(), run.X.max())
            est.loss_function_ = "cross_entropy" if low >= 0 and high <= 1 else "squared_error"
        else:
            est.loss_function_ = est.loss
        visible = units_for_loss(est.loss_function_)
        est.pretrained_ = pretrains(est.pretrain, visible)
        est.linear_path_ = est._resolve_linear_path()
        est._fit_seed = seed_from(est.random_state)
        _pretrain_unroll_fine_tune(
            run,
            est,
            commit,
            sample,
            sizes=est._resolve_auto_settings(run.n_rows, sample.shape[1]) + (est.n_components,),
            first_visible=visible,
            last_hidden=GAUSSIAN.name,
            unroll=lambda rbms: est._unroll(rbms, visible),
            initialise=lambda: est._random_network(sample),
            pretrain=est.pretrained_,
            budget=LINEAR_PATH_FINETUNE_BUDGET if est.linear_path_ else FINETUNE_BUDGET,
            phase=lambda: FineTunePhase(
                est,
                activations=est._activations(),
                loss=est._kernel_loss(),
                tuner=DeepAutoencoder._tuner,
                targets="inputs",
                unit_check=(get_units(visible), "loss='cross_entropy'", "loss='squared_error'"),
            ),
        )


# -- VAEs -------------------------------------------------------------------------------------------


def _fit_vae_family(est, run, conditional):
    est._check_params()
    if conditional:
        _require_y(est, run)
    epochs = plan_epochs(est.n_iter, run.n_rows, est.batch_size, VAE_BUDGET)
    run.start_progress([(epochs, est.batch_size)])
    with est._fit_transaction() as commit:
        est._start_new_network()
        sample = est._check_X(run.sample(), reset=True, stream=True)
        if conditional:
            y = run.y if run.y.ndim == 1 else run.y[:, 0]
            (labels,) = run.compute(da.unique(y))
            est._set_classes(est._validate_y(labels, len(labels), classification=True))
        est._init_params(sample.shape[1])
        run.train(VAEPhase(est), est, epochs=epochs, on_commit=commit)


@register(VAE)
def fit_vae(est, run):
    _fit_vae_family(est, run, conditional=False)


@register(CVAE, targets="classes")
def fit_cvae(est, run):
    _fit_vae_family(est, run, conditional=True)
