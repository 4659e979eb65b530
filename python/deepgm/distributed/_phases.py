"""The per-model glue of parameter averaging: one *phase* per kind of training stage.

A phase is the part of an estimator's training that rounds of averaging drive: an RBM layer trained by
CD-k / PCD-k, the fine-tuning of a dense network by backpropagation, or a VAE trained with Adam. It
says, for its estimator,

- which arrays are averaged after each round (:attr:`averaged`: the parameters and the optimiser
  state) and which counters every replica advances alike (:attr:`counters`);
- what a worker does to a block before training on it (:meth:`prepare`: validation, and for the upper
  layers of a stack the transform through the layers below);
- what one minibatch step is (:meth:`step`), with the existing Rust kernels and the estimators' own
  private methods, on a worker-local copy of the estimator (:meth:`local`).

A phase object is pickled to the workers once per phase; it holds a *template* of the estimator (its
settings and the fitted attributes that do not change in this phase), never the arrays that travel
each round. Each adapter is deliberately thin so that it can be replaced by a hook on the estimator
(see the module docs of :mod:`deepgm.distributed`).

Optimiser state is averaged like the parameters (row-weighted). For SGD with momentum, whose velocity
is linear in the gradients, one local step per round then gives exactly the large-batch update of a
single process; for Adam the averaged second moment is the mean of the replicas' squared gradients.
"""

from __future__ import annotations

import copy
import functools

import numpy as np

from .. import _core
from .._base import check_loss_explosion
from .._mlp import FineTuner

__all__ = ["RBMPhase", "FineTunePhase", "VAEPhase"]


def writable_copy(value):
    """A private, writable copy of an array or a nested list of arrays (what a worker receives may be
    read-only and shared with another task)."""
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True, order="C")
    if isinstance(value, list):
        return [writable_copy(v) for v in value]
    return value


class Phase:
    """Common driver and worker behaviour; subclasses set the names and the step."""

    #: Shown in the progress bar and in error messages.
    name = "training"
    #: Attributes averaged after each round (arrays or nested lists of arrays).
    averaged: tuple = ()
    #: Integer attributes every replica advances by the same amount (step counts).
    counters: tuple = ()
    #: Other attributes the workers do not need.
    not_sent: tuple = ("history_", "feature_names_in_")

    def __init__(self, est):
        self.template = copy.copy(est)
        for attr in self.averaged + self.not_sent:
            # The averaged arrays travel each round; history stays on the driver; feature names are
            # checked there (the workers see plain arrays).
            self.template.__dict__.pop(attr, None)
        self.template.verbose = 0

    # -- driver side --------------------------------------------------------------------------------

    def payload(self, est) -> dict:
        """What is broadcast at the start of a round and returned by each replica at its end."""
        return {name: getattr(est, name) for name in self.averaged + self.counters}

    def batch_size(self, est) -> int:
        return int(est.batch_size)

    def round_settings(self, est, epochs_done: int) -> dict:
        """Settings that change from round to round (e.g. the momentum schedule)."""
        return {}

    def shard_state(self, est):
        """Per-replica state that is not averaged (persistent chains), at the start of training."""
        return None

    def check_round(self, est, metrics):
        """Raises FloatingPointError if the round's metrics show divergence (before it is committed)."""

    def after_round(self, est, r, epochs, metrics, shard_states):
        """Bookkeeping of the estimator once round ``r`` (0-based) is committed; ``epochs``: passes
        over the data so far (rows processed by all shards / rows of X)."""

    # -- worker side --------------------------------------------------------------------------------

    def local(self, payload: dict, n_jobs: int, shard_state):
        """A worker-local estimator: the template with private copies of the broadcast arrays."""
        est = copy.copy(self.template)
        for name, value in payload.items():
            setattr(est, name, writable_copy(value))
        est.n_jobs = n_jobs
        return est

    def local_state(self, est):
        """The per-replica state to hand back after a round."""
        return None

    def prepare(self, est, X, y):
        """(data, targets) of one block, validated (and transformed) for training."""
        raise NotImplementedError

    def step(self, est, data, targets, rows, *, seed: int, step: int, settings: dict) -> dict:
        """One minibatch update on ``data[rows]``; returns metric sums over the minibatch's rows."""
        raise NotImplementedError


class RBMPhase(Phase):
    """One RBM trained by CD-k / PCD-k: an RBM estimator, or one layer of a stack (``lower`` holds the
    fitted layers below it; each worker transforms its own blocks through them)."""

    averaged = (
        "components_",
        "intercept_hidden_",
        "intercept_visible_",
        "components_velocity_",
        "intercept_hidden_velocity_",
        "intercept_visible_velocity_",
    )
    counters = ("_steps",)

    def __init__(self, rbm, lower=(), name="RBM"):
        super().__init__(rbm)
        self.name = name
        self.lower = [copy.copy(layer) for layer in lower]
        for layer in self.lower:
            layer.__dict__.pop("history_", None)

    def round_settings(self, est, epochs_done):
        momentum = est.momentum if epochs_done < est.initial_momentum_epochs else est.final_momentum
        return {"momentum": float(momentum)}

    def shard_state(self, est):
        # Persistent chains stay with their replica: each shard keeps its own fantasy particles.
        return est.h_samples_.copy() if est.persistent else None

    def after_round(self, est, r, epochs, metrics, shard_states):
        est._epochs_done = int(epochs)  # whole passes over the data: they drive the momentum schedule
        if est.persistent:
            est.h_samples_ = writable_copy(shard_states[0])  # the first replica's chains stand for the fitted ones

    def local(self, payload, n_jobs, shard_state):
        est = super().local(payload, n_jobs, shard_state)
        if shard_state is not None:
            est.h_samples_ = writable_copy(shard_state)
        return est

    def local_state(self, est):
        return est.h_samples_ if est.persistent else None

    def prepare(self, est, X, y):
        for layer in self.lower:
            layer = copy.copy(layer)  # the phase is shared by the tasks of a worker: no changes to it
            layer.n_jobs = est.n_jobs
            X = layer.transform(X)
        return est._check_X(X, stream=True), None

    def step(self, est, data, targets, rows, *, seed, step, settings):
        # As RBM._train_epochs does for one minibatch.
        data, data_rows = est._batch(data, rows)
        _core.rbm_cd_step(
            data,
            est.components_,
            est.intercept_visible_,
            est.intercept_hidden_,
            est.components_velocity_,
            est.intercept_visible_velocity_,
            est.intercept_hidden_velocity_,
            rows=data_rows,
            h_samples=est.h_samples_ if est.persistent else None,
            visible=est.visible,
            hidden=est.hidden,
            k=est.k,
            learning_rate=est._learning_rate(),
            momentum=settings["momentum"],
            weight_decay=est.weight_decay,
            seed=seed,
            step=step,
            n_jobs=est._n_jobs(),
        )
        est._steps += 1
        return {}


class FineTunePhase(Phase):
    """Backpropagation through a dense network (DBNClassifier, DBNRegressor, DeepAutoencoder) by the
    estimators' FineTuner: ``activations`` and ``loss`` as the estimator's fit uses them, ``targets``
    one of "classes" (one-hot labels), "values" (standardised targets) or "inputs" (X itself)."""

    averaged = ("coefs_", "intercepts_", "_optimizer_state")
    counters = ("_optimizer_t", "_finetune_steps")
    not_sent = Phase.not_sent + ("rbms_", "loss_curve_", "validation_scores_")

    def __init__(self, est, *, activations, loss, targets, unit_check=None, tuner=None):
        # ``tuner(est)`` gives the estimator's FineTuner (a replica's, in ``step``); by default the plain
        # one for ``activations`` and ``loss``.
        self.tuner = tuner if tuner is not None else functools.partial(FineTuner, activations=activations, loss=loss)
        # The optimiser state the rounds average must exist (with its kind) before the template is taken:
        # a replica without it would start every round from zero velocities.
        self.tuner(est).slots()
        super().__init__(est)
        self.name = "fine-tune"
        self.targets = targets
        # None, or the (units, what, hint) of the estimator's own refusal of data its bottom visible
        # units do not accept (see DeepGMEstimator._validate_X).
        self.unit_check = unit_check

    #: Rows per minibatch: the estimator's ``batch_size`` with "auto" resolved from all of X (set by
    #: the fitter before training).
    rows_per_batch = None

    def batch_size(self, est) -> int:
        return int(self.rows_per_batch if self.rows_per_batch is not None else est.batch_size)

    def prepare(self, est, X, y):
        units, what, hint = self.unit_check or (None, None, None)
        X = est._validate_X(X, reset=False, units=units, stream=True, unit_what=what, unit_hint=hint)
        dtype = est._dtype()
        if self.targets == "inputs":
            return X, X
        y = est._validate_y(y, X.shape[0], classification=self.targets == "classes", multi_output=self.targets == "values")
        if self.targets == "classes":
            codes = est._label_encoder.transform(y)
            Y = np.zeros((len(codes), len(est.classes_)), dtype=dtype)
            Y[np.arange(len(codes)), codes] = 1
            return X, Y
        Y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        return X, np.ascontiguousarray((Y - est.y_mean_) / est.y_scale_, dtype=dtype)

    def step(self, est, data, targets, rows, *, seed, step, settings):
        loss = self.tuner(est).step(data, targets, rows, seed=seed, step=step)
        est._finetune_steps += 1
        return {"loss": float(loss) * len(rows)}

    def check_round(self, est, metrics):
        check_loss_explosion(metrics["loss"], est._finetune_first_loss)

    def after_round(self, est, r, epochs, metrics, shard_states):
        # As FineTuner.run after an epoch, a round standing for an epoch.
        if est._finetune_first_loss is None:
            est._finetune_first_loss = metrics["loss"]
        est.n_iter_ = r + 1
        est.loss_curve_ = list(est.loss_curve_) + [metrics["loss"]]
        est.loss_ = metrics["loss"]


class VAEPhase(Phase):
    """A VAE or CVAE trained with Adam on the negative ELBO."""

    counters = ("_adam_t", "_steps")

    def __init__(self, est):
        self.averaged = _vae_arrays(est)
        super().__init__(est)
        self.name = type(est).__name__

    def prepare(self, est, X, y):
        X = est._check_X(X, stream=True)
        codes = est._encode_labels(np.asarray(y).ravel(), X.shape[0]) if y is not None else None
        return X, codes

    def round_settings(self, est, epochs_done):
        # The KL weight of the round's first epoch (its warm-up advances per epoch, not per step here).
        if est.kl_warmup == 0:
            return {"kl_weight": float(est.kl_weight)}
        return {"kl_weight": float(est.kl_weight) * min(1.0, (epochs_done + 1) / est.kl_warmup)}

    def step(self, est, data, targets, rows, *, seed, step, settings):
        # VAE._train_step, as fit makes it: "loss" is the training objective, reconstruction + w * KL.
        loss, recon, kl = est._train_step(data, targets, rows, settings["kl_weight"], seed=seed, step=step)
        n = len(rows)
        return {"loss": loss * n, "reconstruction": recon * n, "kl": kl * n}

    def check_round(self, est, metrics):
        # As VAE._train_epochs: compare -ELBO without the Gaussian likelihood's constant.
        offset = est._loss_constant(est.n_features_in_)
        first = est._first_loss
        check_loss_explosion(_negative_elbo(metrics) - offset, None if first is None else first - offset)

    def after_round(self, est, r, epochs, metrics, shard_states):
        if est._first_loss is None:
            est._first_loss = _negative_elbo(metrics)
        est.n_iter_ = r + 1
        metrics["elbo"] = -_negative_elbo(metrics)


def _negative_elbo(metrics):
    """-ELBO = reconstruction + KL (the objective "loss" differs from it when the KL is weighted)."""
    return metrics["reconstruction"] + metrics["kl"]


def _vae_arrays(est):
    names = ("encoder_coefs_", "encoder_intercepts_", "decoder_coefs_", "decoder_intercepts_")
    if est._class_means_param() is not None:
        names += ("class_means_",)
    return names + ("_adam",)
