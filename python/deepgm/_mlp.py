"""Supervised training of a dense layer chain with the Rust kernels: the fine-tuning stage shared by
DBNClassifier, DBNRegressor and DeepAutoencoder (minibatch SGD with momentum or Adam, weight decay,
dropout, early stopping on a validation fraction)."""

from __future__ import annotations

import numpy as np

from . import _core
from ._base import (
    batch_rows,
    check_bool,
    check_loss_explosion,
    check_number,
    check_option,
    check_positive_int,
    deferred_interrupts,
    interruption_point,
    minibatch,
)
from ._schedule import Convergence, auto_batch_size, check_batch_size
from ._streams import Purpose, generator


def init_layer(rng: np.random.Generator, n_in: int, n_out: int, dtype, scale: float = 0.01):
    """A new (W, b) pair: W ~ N(0, scale^2) of shape (n_in, n_out), b = 0."""
    return rng.normal(0.0, scale, size=(n_in, n_out)).astype(dtype), np.zeros(n_out, dtype=dtype)


def new_slots(params, optimizer: str):
    """Zeroed optimiser state: per parameter array, [velocity] for SGD or [m, v] for Adam."""
    n = 1 if optimizer == "sgd" else 2
    return [[np.zeros_like(p) for _ in range(n)] for p in params]


def interleave(coefs, intercepts):
    """[W0, b0, W1, b1, ...]: the parameter order of the kernels' optimiser state."""
    return [p for pair in zip(coefs, intercepts) for p in pair]


def check_finetune_params(est, *, auto_weight_decay=False, auto_early_stopping=False):
    """Validates the fine-tuning hyperparameters every fine-tuned estimator shares (``weight_decay``
    may be "auto" where ``auto_weight_decay``, ``early_stopping`` where ``auto_early_stopping``)."""
    check_option(est.optimizer, "optimizer", ("sgd", "adam"))
    check_number(est.learning_rate, "learning_rate", low=0, low_open=True)
    check_number(est.momentum, "momentum", low=0, high=1, high_open=True)
    if auto_weight_decay and isinstance(est.weight_decay, str):
        check_option(est.weight_decay, "weight_decay", ("auto",), or_else="a number >= 0")
    else:
        check_number(est.weight_decay, "weight_decay", low=0)
    check_number(est.dropout, "dropout", low=0, high=1, high_open=True)
    check_batch_size(est.batch_size)
    if auto_early_stopping and isinstance(est.early_stopping, str):
        check_option(est.early_stopping, "early_stopping", ("auto",), or_else="True or False")
    else:
        check_bool(est.early_stopping, "early_stopping")
    check_number(est.validation_fraction, "validation_fraction", low=0, high=1, low_open=True, high_open=True)
    check_positive_int(est.n_iter_no_change, "n_iter_no_change")
    check_number(est.tol, "tol", low=0)


def reset_finetune_state(est):
    """The fine-tuning record of a new network: no epochs, no optimiser state, no first loss."""
    est.history_ = {}
    est.n_iter_ = 0
    est.loss_curve_ = []
    est.validation_scores_ = []
    est.best_validation_score_ = None
    est._finetune_steps = 0
    est._finetune_first_loss = None
    est._optimizer_state = None


class FineTuner:
    """Runs epochs of ``_core.mlp_train_step`` on an estimator's ``coefs_`` / ``intercepts_``.

    The optimiser state lives on the estimator (``_optimizer_state``) so that training can continue
    (warm starts, partial fits) and so that a pickled estimator resumes where it stopped.
    """

    def __init__(self, est, activations, loss: str):
        self.est = est
        self.activations = list(activations)
        self.loss = loss

    def params(self):
        return interleave(self.est.coefs_, self.est.intercepts_)

    def slots(self):
        est = self.est
        state = getattr(est, "_optimizer_state", None)
        if state is None or getattr(est, "_optimizer_kind", None) != est.optimizer:
            est._optimizer_state = new_slots(self.params(), est.optimizer)
            est._optimizer_kind = est.optimizer
            est._optimizer_t = 0
        return est._optimizer_state

    def step(self, X, Y, rows, *, seed: int, step: int) -> float:
        """One minibatch update on X[rows], Y[rows]; returns the minibatch loss before the update."""
        est = self.est
        dtype = est._dtype()
        slots = self.slots()
        est._optimizer_t += 1
        if self._standardises():
            x, x_rows = est._network_input(X[rows]), None  # only the minibatch is copied
        else:
            x, x_rows = minibatch(X, rows, dtype)
        if x_rows is None:
            y = np.ascontiguousarray(Y[rows], dtype=dtype)
        else:
            y = Y
        return _core.mlp_train_step(
            x,
            y,
            est.coefs_,
            est.intercepts_,
            self.activations,
            self.loss,
            slots,
            rows=x_rows,
            optimizer=est.optimizer,
            learning_rate=float(est.learning_rate),
            momentum=float(est.momentum),
            t=est._optimizer_t,
            weight_decay=est._finetune_weight_decay(),
            dropout=float(est.dropout),
            seed=seed,
            step=step,
            n_jobs=est._n_jobs(),
        )

    def _standardises(self) -> bool:
        """Whether the estimator standardises the network's input (a stack with Gaussian visible
        units: ``input_mean_``, see ``_FineTunedDBN._network_input``)."""
        return getattr(self.est, "input_mean_", None) is not None

    def forward(self, X, *, all_layers=False):
        est = self.est
        if self._standardises():
            X = est._network_input(X)
        return _core.mlp_forward(
            np.ascontiguousarray(X, dtype=est._dtype()),
            est.coefs_,
            est.intercepts_,
            self.activations,
            all_layers=all_layers,
            n_jobs=est._n_jobs(),
        )

    def run(self, X, Y, *, n_epochs: int, seed: int, validation=None, score=None, desc="fine-tune", converge=False, converge_after=0):
        """Trains for up to ``n_epochs`` epochs of shuffled minibatches (of ``est.batch_size`` rows,
        see :func:`deepgm._schedule.auto_batch_size` for "auto").

        ``validation`` is an (X_val, Y_val) pair and ``score(X_val, Y_val)`` a higher-is-better metric.
        Training stops early (see :class:`deepgm._schedule.Convergence`) when ``est.early_stopping`` is
        set and the validation score has not improved by ``tol`` for ``n_iter_no_change`` epochs (the
        best parameters are then restored), or, with ``converge`` and no validation set, when the
        training loss has not; neither rule stops training before epoch ``converge_after``. Per-epoch
        metrics go to ``history_``: "loss", "updates" (minibatch updates so far), "validation_score"
        with a validation set and "epochs_without_improvement" when a stopping rule is active.

        Ctrl-C stops between two minibatches (see ``deferred_interrupts``): the parameters are those
        after the last whole step, ``history_``, ``loss_curve_`` and ``n_iter_`` cover the completed epochs.
        """
        with deferred_interrupts():
            self._run(
                X,
                Y,
                n_epochs=n_epochs,
                seed=seed,
                validation=validation,
                score=score,
                desc=desc,
                converge=converge,
                converge_after=converge_after,
            )

    def _run(self, X, Y, *, n_epochs, seed, validation, score, desc, converge, converge_after):
        est = self.est
        n = X.shape[0]
        batch_size = auto_batch_size(est.batch_size, n)
        early = validation is not None and est.early_stopping
        monitor = None
        if early:
            monitor = Convergence(est.tol, est._early_stopping_patience(), higher_is_better=True)
        elif converge:
            monitor = Convergence(est.tol, est.n_iter_no_change)
        best_params = None
        for _ in range(n_epochs):
            epoch = est.n_iter_
            start = est._timer()
            rng = generator(seed, Purpose.FINETUNE_EPOCH_ORDER, epoch)
            batches = batch_rows(n, batch_size, rng)
            bar = est._progress(len(batches), f"{desc} epoch {epoch + 1}")
            total, count = 0.0, 0
            try:
                with est._epoch_guard(epoch):
                    for rows in batches:
                        interruption_point()
                        loss = self.step(X, Y, rows, seed=seed, step=est._finetune_steps)
                        if est._finetune_first_loss is None:  # the scale divergence is judged against
                            est._finetune_first_loss = float(loss)
                        est._finetune_steps += 1
                        total += loss * len(rows)
                        count += len(rows)
                        bar.update()
                    mean_loss = total / max(count, 1)
                    if not np.isfinite(total):
                        raise FloatingPointError(f"the epoch's mean training loss is {mean_loss}")
                    # A loss that stays finite can still explode (e.g. SGD on a squared error over
                    # wide sigmoid layers).
                    check_loss_explosion(mean_loss, est._finetune_first_loss)
            finally:
                bar.close()
            est.n_iter_ += 1
            est.loss_curve_.append(mean_loss)
            est.loss_ = mean_loss
            metrics = {"loss": mean_loss, "updates": est._finetune_steps}
            if validation is not None:
                val = float(score(*validation))
                est.validation_scores_.append(val)
                metrics["validation_score"] = val
                if est.best_validation_score_ is None or val > est.best_validation_score_:
                    est.best_validation_score_ = val
                    if early:
                        best_params = [p.copy() for p in self.params()]
            if monitor is not None:
                monitor.update(metrics["validation_score"] if early else mean_loss)
                metrics["epochs_without_improvement"] = monitor.stale
            est._log_epoch(epoch=est.n_iter_, **metrics, time=est._timer() - start)
            interruption_point()
            if monitor is not None and monitor.converged and est.n_iter_ >= converge_after:
                break
        if early and best_params is not None:
            for p, best in zip(self.params(), best_params):
                p[...] = best


def split_validation(n: int, fraction: float, seed: int, stratify=None):
    """Train and validation row indices (validation = ``fraction`` of the rows, stratified by class
    labels when given)."""
    rng = generator(seed, Purpose.VALIDATION_SPLIT)
    if stratify is None:
        order = rng.permutation(n)
        n_val = max(1, int(round(fraction * n)))
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    val = []
    for label in np.unique(stratify):
        idx = np.flatnonzero(stratify == label)
        idx = rng.permutation(idx)
        val.append(idx[: max(1, int(round(fraction * idx.size)))] if idx.size > 1 else idx[:0])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(n), val)
    return train, val
