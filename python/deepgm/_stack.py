"""The pretrain-unroll-fine-tune stack: greedy RBM pretraining (Hinton, Osindero & Teh 2006) and the
network it initialises, shared by DBN (pretraining only), DBNClassifier, DBNRegressor and
DeepAutoencoder.

Pretraining fits RBM i to the hidden means of RBM i - 1 on X, each by :class:`deepgm.RBM`'s own code
path. Unrolling turns RBM i into the layer h_i = sigmoid(h_{i-1} W_i + b_i) with W_i its weights
transposed to (n_in, n_out) and b_i its hidden biases; without pretraining the layers start random,
W ~ N(0, 1/n_in), b = 0 (the DBN classifier and regressor then draw their first layer's biases
from U(-1, 1)). Fine-tuning by backpropagation is :mod:`deepgm._mlp`'s. The stream keys are
:mod:`deepgm._streams`' (one seed per layer: ``Purpose.LAYER_SEEDS``; the validation split:
``Purpose.VALIDATION_SPLIT``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._base import DeepGMEstimator, check_bool, check_number, check_option, check_positive_int, seed_from
from ._mlp import check_finetune_params, init_layer, split_validation
from ._schedule import auto_batch_size, check_length
from ._streams import Purpose, child_seeds
from ._units import BERNOULLI
from .rbm import RBM

__all__ = ["FineTunedStack", "check_layer_params", "pretrain_stack", "stack_params"]

#: RBM parameters that define the stack's structure, so that every layer must agree with the estimator.
_STACK_OWNED = {
    "n_components": "hidden_layer_sizes",
    "visible": "the estimator's visible (bottom layer); upper layers see probabilities",
    "hidden": "the estimator (linear code layer of the autoencoder, Bernoulli elsewhere)",
    "dtype": "the estimator's dtype",
    "random_state": "the estimator's random_state (one derived seed per layer)",
}

#: The momentum schedule of the RBMs a fine-tuned stack is pretrained with (Hinton 2010: 0.5, then
#: 0.9 after 5 epochs). Standalone RBMs keep 0.5 throughout by default (see :class:`deepgm.RBM`).
PRETRAIN_MOMENTUM = dict(momentum=0.5, final_momentum=0.9, initial_momentum_epochs=5)

#: The least patience of early stopping that ``early_stopping="auto"`` turned on. Its validation set
#: is small where it matters most (20 rows of make_friedman1 300 x 10 in 3-fold cross-validation), its
#: R^2 noisy, and 10 epochs stopped that fit at 0.75 against 0.96 with 30 (0.87 without early
#: stopping); on diabetes 10 and 30 both give 0.485 (benches/NOTES.md, entry 53).
AUTO_EARLY_STOPPING_PATIENCE = 30


def check_auto_or_positive(value, name: str):
    """ "auto" or a finite number > 0 (a learning rate whose "auto" the RBM resolves)."""
    if isinstance(value, str):
        return check_option(value, name, ("auto",), or_else="a number > 0")
    return check_number(value, name, low=0, low_open=True)


def check_layer_params(layer_params, n_layers: int):
    """Per-layer RBM settings: None, or a list of n_layers dicts of RBM parameters."""
    if layer_params is None:
        return [{} for _ in range(n_layers)]
    if not isinstance(layer_params, (list, tuple)) or len(layer_params) != n_layers or not all(isinstance(p, dict) for p in layer_params):
        raise ValueError(f"layer_params must be None or a list of {n_layers} dicts (one per layer); got {layer_params!r}")
    valid = set(RBM().get_params())
    for i, p in enumerate(layer_params):
        unknown = set(p) - valid
        if unknown:
            raise ValueError(f"layer_params[{i}] has unknown RBM parameters {sorted(unknown)}; valid: {sorted(valid)}")
        structural = sorted(set(p) & set(_STACK_OWNED))
        if structural:
            owners = ", ".join(f"{name} by {_STACK_OWNED[name]}" for name in structural)
            raise ValueError(f"layer_params[{i}] may not set {structural}: the stack sets them ({owners}); got {p!r}")
    return [dict(p) for p in layer_params]


def stack_params(sizes, *, seed, layer_params, common, first_visible=BERNOULLI.name, last_hidden=BERNOULLI.name, verbose=0):
    """The full RBM parameters of every layer, each validated (so that a bad per-layer setting is
    reported before any layer is trained)."""
    seeds = child_seeds(seed, Purpose.LAYER_SEEDS, len(sizes))
    stack = []
    for i, size in enumerate(sizes):
        params = dict(common)
        params.update(
            n_components=size,
            # The layers above the bottom one see hidden probabilities, in [0, 1].
            visible=first_visible if i == 0 else BERNOULLI.name,
            hidden=last_hidden if i == len(sizes) - 1 else BERNOULLI.name,
            random_state=seeds[i],
            verbose=verbose,
        )
        params.update(layer_params[i])
        try:
            RBM(**params)._check_params()
        except (ValueError, TypeError) as err:
            where = f"layer_params[{i}]" if layer_params[i] else f"layer {i + 1}"
            raise type(err)(f"{where}: {err}") from None
        stack.append(params)
    return stack


def pretrain_stack(
    X,
    sizes,
    *,
    seed,
    layer_params,
    common,
    first_visible=BERNOULLI.name,
    last_hidden=BERNOULLI.name,
    verbose=0,
    out=None,
    return_features=False,
):
    """Greedy layer-wise pretraining: RBM i is fitted (by :class:`RBM`'s own code path) to the hidden
    means of RBM i - 1 on X. Returns the fitted RBMs. A ``batch_size`` of "auto" in ``common`` is
    resolved from the number of rows of X (:func:`deepgm._schedule.auto_batch_size`).

    Every layer's parameters are validated before the first is trained. With ``out`` (a list), each
    RBM is appended to it before it is fitted, so that a caller interrupted mid-stack can keep the
    layers trained so far. With ``return_features``, returns ``(rbms, features)``: the features are
    the top RBM's hidden means on X (n, sizes[-1]), computed from the layers' outputs already at hand
    (the up pass is not repeated)."""
    common = dict(common, batch_size=auto_batch_size(common.get("batch_size", "auto"), X.shape[0]))
    stack = stack_params(
        sizes,
        seed=seed,
        layer_params=layer_params,
        common=common,
        first_visible=first_visible,
        last_hidden=last_hidden,
        verbose=verbose,
    )
    rbms = [] if out is None else out
    data = X
    for i, params in enumerate(stack):
        rbm = RBM(**params)
        rbms.append(rbm)
        rbm.fit(data)
        # The next layer's data; the top layer has none unless asked (its transform was ~10% of a
        # DBN's pretraining epoch: benches/NOTES.md entry 41).
        if i + 1 < len(stack) or return_features:
            data = rbm.transform(data)
    return (rbms, data) if return_features else rbms


def standardisation(X, chunk_rows: int = 4096):
    """(mean, scale) of the columns of X (dense or sparse), float64, read in chunks of rows so that a
    memory-mapped X is not copied; a scale of 1 for constant columns."""
    total = np.zeros(X.shape[1])
    squares = np.zeros(X.shape[1])
    for start in range(0, X.shape[0], chunk_rows):
        block = X[start : start + chunk_rows]
        block = block.toarray() if sp.issparse(block) else np.asarray(block, dtype=np.float64)
        total += block.sum(axis=0)
        squares += np.square(block).sum(axis=0)
    mean = total / X.shape[0]
    scale = np.sqrt(np.maximum(squares / X.shape[0] - mean**2, 0.0))
    return mean, np.where(scale > 1e-12 * np.maximum(1.0, np.abs(mean)), scale, 1.0)


def random_layers(rng: np.random.Generator, widths, dtype):
    """Layers (W, b) between consecutive ``widths``: W ~ N(0, 1/n_in) of shape (n_in, n_out), b = 0."""
    return [init_layer(rng, a, b, dtype, scale=1.0 / np.sqrt(a)) for a, b in zip(widths[:-1], widths[1:])]


def unrolled_layers(rbms):
    """The feed-forward layers (W (n_in, n_out), b) of pretrained RBMs, bottom to top: the weights
    transposed and the hidden biases (copies)."""
    return [(np.ascontiguousarray(r.components_.T), r.intercept_hidden_.copy()) for r in rbms]


def fold_standardisation(first, W, b, dtype):
    """An input layer (W, b) of a Gaussian bottom RBM ``first`` that saw standardised data, taking raw
    data: (x - mean) / scale folded into the weights and biases."""
    W = W / first.scale_[:, None]
    return np.ascontiguousarray(W, dtype=dtype), (b - first.mean_ @ W).astype(dtype)


class FineTunedStack(DeepGMEstimator):
    """Base of the estimators that pretrain a stack of RBMs (or start it random), unroll it into a
    network and fine-tune it by backpropagation: DBNClassifier, DBNRegressor, DeepAutoencoder.

    Subclasses hold the parameters ``pretrain_iter``, ``pretrain_learning_rate``, ``k``,
    ``persistent``, ``pretrain_weight_decay``, ``layer_params``, ``finetune_iter``, those of
    :func:`deepgm._mlp.check_finetune_params`, and the common ones; they add their own layout.
    """

    _param_names = ("coefs_", "intercepts_")
    _state_names = ("_optimizer_state", "_optimizer_t", "_finetune_steps", "_finetune_first_loss")
    _fitted_attribute = "coefs_"
    #: Whether ``weight_decay`` may be "auto" (resolved by :meth:`_finetune_weight_decay`).
    _auto_weight_decay = False
    #: Whether ``early_stopping`` may be "auto", and from how many training rows it then holds out
    #: validation data (None: "auto" never does; see :meth:`_uses_early_stopping`).
    _auto_early_stopping = False
    _auto_early_stopping_rows = None

    def _check_stack_params(self, n_layers):
        """The pretraining and fine-tuning settings of a stack of ``n_layers`` RBMs (None: not known
        before fit, which checks ``layer_params`` once it is)."""
        if isinstance(self.pretrain, str):
            check_option(self.pretrain, "pretrain", ("auto",), or_else="True or False")
        else:
            check_bool(self.pretrain, "pretrain")
        check_length(self.pretrain_iter, "pretrain_iter")
        check_auto_or_positive(self.pretrain_learning_rate, "pretrain_learning_rate")
        check_positive_int(self.k, "k")
        check_bool(self.persistent, "persistent")
        check_number(self.pretrain_weight_decay, "pretrain_weight_decay", low=0)
        if n_layers is not None:
            check_layer_params(self.layer_params, n_layers)
        check_length(self.finetune_iter, "finetune_iter", minimum=0)
        check_finetune_params(self, auto_weight_decay=self._auto_weight_decay, auto_early_stopping=self._auto_early_stopping)
        self._check_common_params()

    def _finetune_weight_decay(self) -> float:
        """The weight decay fine-tuning applies (``weight_decay``; subclasses resolve "auto")."""
        return float(self.weight_decay)

    def _pretraining_settings(self):
        """The RBM settings every layer is pretrained with, from the ``pretrain_*`` parameters."""
        return dict(
            PRETRAIN_MOMENTUM,
            k=self.k,
            persistent=self.persistent,
            learning_rate=self.pretrain_learning_rate,
            weight_decay=self.pretrain_weight_decay,
            batch_size=self.batch_size,
            n_iter=self.pretrain_iter,
            dtype=self.dtype,
            n_jobs=self.n_jobs,
        )

    def _pretrain(self, X, sizes, *, first_visible, last_hidden=BERNOULLI.name):
        """RBMs of ``sizes`` pretrained on X (seeded by ``_fit_seed``), stored in ``rbms_``."""
        self.rbms_ = pretrain_stack(
            X,
            sizes,
            seed=self._fit_seed,
            layer_params=check_layer_params(self.layer_params, len(sizes)),
            common=self._pretraining_settings(),
            first_visible=first_visible,
            last_hidden=last_hidden,
            verbose=self.verbose,
        )
        return self.rbms_

    def _check_layer_settings(self, n_rows, sizes, *, first_visible, last_hidden=BERNOULLI.name):
        """Validates every layer's RBM settings (``layer_params`` included) for X of ``n_rows`` rows,
        so that they are refused before anything is trained, with pretraining or without."""
        common = dict(self._pretraining_settings(), batch_size=auto_batch_size(self.batch_size, n_rows))
        layer_params = check_layer_params(self.layer_params, len(sizes))
        stack_params(
            sizes, seed=self._fit_seed, layer_params=layer_params, common=common, first_visible=first_visible, last_hidden=last_hidden
        )

    def _uses_early_stopping(self, n_rows: int) -> bool:
        """``early_stopping`` for a fit on ``n_rows`` rows, "auto" resolved by the class's rule."""
        if isinstance(self.early_stopping, str):
            return self._auto_early_stopping_rows is not None and n_rows >= self._auto_early_stopping_rows
        return bool(self.early_stopping)

    def _early_stopping_patience(self) -> int:
        """Epochs without a better validation score before early stopping stops: ``n_iter_no_change``,
        and at least ``AUTO_EARLY_STOPPING_PATIENCE`` when "auto" turned early stopping on."""
        if isinstance(self.early_stopping, str):
            return max(int(self.n_iter_no_change), AUTO_EARLY_STOPPING_PATIENCE)
        return int(self.n_iter_no_change)

    def _validation_split(self, X, Y=None, stratify=None):
        """(train_X, train_Y, validation): with ``early_stopping``, ``validation_fraction`` of the rows
        (stratified by ``stratify``) held out as validation = (X_val, Y_val), Y_val = X_val for an
        autoencoder (Y None); else (X, Y, None)."""
        if not self._uses_early_stopping(X.shape[0]):
            return X, Y, None
        tr, va = split_validation(X.shape[0], self.validation_fraction, seed_from(self.random_state), stratify)
        X_val = np.ascontiguousarray(X[va], dtype=self._dtype())
        if Y is None:
            return np.ascontiguousarray(X[tr], dtype=self._dtype()), None, (X_val, X_val)
        return np.ascontiguousarray(X[tr], dtype=self._dtype()), np.ascontiguousarray(Y[tr]), (X_val, Y[va])

    def _set_layers(self, layers):
        """The network's ``coefs_`` and ``intercepts_`` from its layers [(W, b)], in the model's dtype."""
        dtype = self._dtype()
        self.coefs_ = [w.astype(dtype) for w, _ in layers]
        self.intercepts_ = [b.astype(dtype) for _, b in layers]
