"""The deep autoencoder of Hinton & Salakhutdinov (2006): RBM pretraining of a stack ending in a linear
code layer, unrolling into an encoder and a decoder with tied initial weights, and fine-tuning of the
reconstruction by backpropagation.

A network that is not pretrained (real-valued, tabular data) gets a linear path by default: with PCA's
components P (n_components, n_features) and mean m of the training data, fixed,

    z = E(x) + (x - m) P^T              (the code: PCA's projection plus the encoder's output)
    x_hat = D(z) + z P + m              (PCA's reconstruction of the code plus the decoder's output)

and the last layers of E and D start at zero, so fine-tuning starts from PCA's solution and learns
what a linear map misses. A sigmoid network from a random start has to learn the linear part itself
and learns it imprecisely: on scikit-learn's bundled data sets it ended up 6% worse than PCA on iris
on every one of 8 splits and seeds, and worse on 1 of 8 on wine and breast cancer (docs/own-data.md).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import expit
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.extmath import svd_flip
from sklearn.utils.validation import check_is_fitted

from . import _core
from ._base import (
    as_output,
    check_bool,
    check_hidden_layer_sizes,
    check_option,
    check_positive_int,
    check_unit_interval,
    matmul,
    mostly_binary,
    seed_from,
)
from ._failed_fit import kept_if_trained
from ._mlp import FineTuner, interleave, reset_finetune_state
from ._schedule import (
    FINETUNE_BUDGET,
    LINEAR_PATH_FINETUNE_BUDGET,
    auto_batch_size,
    autoencoder_layer_sizes,
    autoencoder_pretrain_epochs,
    autoencoder_weight_decay,
    plan_epochs,
    pretrains,
)
from ._stack import FineTunedStack, fold_standardisation, random_layers, unrolled_layers
from ._streams import Purpose, generator
from ._units import GAUSSIAN, get_units, units_for_loss

__all__ = ["DeepAutoencoder"]


class DeepAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, FineTunedStack):
    """RBM-pretrained deep autoencoder (Hinton & Salakhutdinov, Science 2006).

    Pretraining fits RBMs n_features-h1-...-hk-n_components, the last one with linear hidden units
    with Gaussian noise (the code). Unrolling gives an encoder (the RBMs' weights, sigmoid layers and a
    linear code layer) and a decoder (their transposes and visible biases) with tied initial weights;
    fine-tuning then trains all layers, untied, on the reconstruction: cross-entropy for mostly binary
    data in [0, 1] such as pixels (a sigmoid output), squared error otherwise (a linear output).

    Parameters
    ----------
    hidden_layer_sizes : int, tuple of int or "auto", default="auto"
        Encoder hidden layers (the decoder mirrors them); an int is one layer, as in MLPClassifier.
        "auto" (:func:`deepgm._schedule.autoencoder_layer_sizes`) fits them to the data: Hinton &
        Salakhutdinov's (1000, 500, 250) for image-sized data (at least 5,000 rows of at least 256
        features), else (w, w / 2) with w = 16 * n_features within [64, 128]. The wide stack
        overfits small data (standardised breast cancer, 398 rows, 5-d code: held-out error 10.97
        against PCA's 5.11; (128, 64): 4.64). ``hidden_layer_sizes_`` holds the layers used.
    n_components : int, default=30
        Size of the linear code layer.
    pretrain : bool or "auto", default="auto"
        RBM pretraining (else: random initialisation). "auto" pretrains when the loss is cross-entropy
        (data in [0, 1], Bernoulli visible units: the MNIST recipe of Hinton & Salakhutdinov 2006) and
        not for real-valued data, where Gaussian-RBM pretraining gave a worse start than a random one
        (standardised breast cancer, (128, 64) layers, 5-d code: held-out error 10.5 pretrained, 4.6
        not, PCA 5.1). ``pretrained_`` records the choice.
    pretrain_iter : int or "auto", default="auto"
        RBM epochs per layer. "auto" (:func:`deepgm._schedule.autoencoder_pretrain_epochs`): at least
        3,200 updates per layer for image-sized data (40 epochs of 8,000 images: the linear code
        layer learns slowly), the RBM's own rule otherwise (:mod:`deepgm._schedule`).
        ``pretrain_iter_`` holds the epochs used.
    pretrain_learning_rate : float or "auto", default="auto"
        See :class:`deepgm.RBM` ("auto": 0.1, 0.01 for Gaussian visible units, 0.001 for the linear code layer).
    loss : {"auto", "cross_entropy", "squared_error"}, default="auto"
        Reconstruction loss of fine-tuning. "auto" picks cross-entropy for mostly binary data (every
        value in [0, 1] and at least half of them exactly 0 or 1: pixels, indicators; the first RBM
        then has Bernoulli visible units), as ``DBN(visible="auto")`` picks its units, and squared
        error otherwise (Gaussian), MinMaxScaler output of continuous measurements included: with
        cross-entropy and no linear path such tables reconstructed far worse than PCA (held-out
        error 3-21x PCA's on iris, 1.5-2.1x on breast cancer; with squared error 0.99-1.03x and
        0.93x).
    linear_path : bool or "auto", default="auto"
        A fixed linear path through the code (see the module's description): the code is PCA's
        projection of the training data plus the encoder's output, the reconstruction PCA's
        reconstruction of the code plus the decoder's output, and the network's last layers start at
        zero, so training starts from PCA's solution. "auto" adds it to networks that are not
        pretrained, with the squared error and no dropout (the path is defined for those alone;
        True with any other setting is refused). Held-out error against PCA's, 4 splits x 2 seeds,
        standardised data: iris (2-d code) 1.003 x PCA's with the path, 1.065 without; wine (5-d)
        0.883 / 0.958; breast cancer 0.889 / 0.929; diabetes 0.900 / 0.763. ``linear_path_``
        records the choice.
    k, persistent, pretrain_weight_decay, layer_params
        RBM settings (see :class:`deepgm.DBN`).
    finetune_iter : int, default=50
        Fine-tuning epochs.
    optimizer : {"sgd", "adam"}, default="adam"
    learning_rate : float, default=1e-3
    momentum : float, default=0.9
        SGD momentum.
    weight_decay : float or "auto", default="auto"
        L2 penalty of fine-tuning. "auto" (:func:`deepgm._schedule.autoencoder_weight_decay`): 1e-3
        for image-sized data, where the wide network overfits without it, 0 otherwise.
        ``weight_decay_`` holds the value used.
    dropout, batch_size, early_stopping, validation_fraction, n_iter_no_change, tol
        Fine-tuning settings (validation score: minus the mean squared error per sample).
    random_state, dtype, n_jobs, verbose
        As in :class:`deepgm.RBM`.

    Attributes
    ----------
    pretrained_ : bool
        Whether the network was pretrained (what ``pretrain="auto"`` chose).
    linear_path_ : bool
        Whether the network has the linear path (what ``linear_path="auto"`` chose).
    path_components_ : ndarray of shape (n_components, n_features)
        P, the linear path's projection: PCA's components of the training data (rows beyond
        their rank are zero). Only with ``linear_path_``.
    path_mean_ : ndarray of shape (n_features,)
        m, the training data's mean. Only with ``linear_path_``.
    rbms_ : list of RBM
        The pretrained RBMs.
    coefs_, intercepts_ : list of ndarray
        The fine-tuned layers of the unrolled network, encoder then decoder (``coefs_[i]`` of shape
        (n_in, n_out)); the first ``len(hidden_layer_sizes_) + 1`` layers are the encoder.
    hidden_layer_sizes_ : tuple of int
        The encoder's hidden layers (what ``hidden_layer_sizes="auto"`` chose).
    pretrain_iter_ : int
        RBM epochs per layer (what ``pretrain_iter="auto"`` chose).
    weight_decay_ : float
        Fine-tuning weight decay (what ``weight_decay="auto"`` chose).
    loss_function_ : str
        The reconstruction loss used, "cross_entropy" or "squared_error".
    n_iter_, loss_, loss_curve_, history_
        Fine-tuning epochs run, the last and every epoch's mean training loss, per-epoch metrics.

    Examples
    --------
    >>> from deepgm import DeepAutoencoder
    >>> from deepgm.datasets import load_mnist
    >>> X, _ = load_mnist()
    >>> ae = DeepAutoencoder((64,), n_components=8, pretrain_iter=2, finetune_iter=2, random_state=0).fit(X[:500])
    >>> ae.transform(X[:3]).shape
    (3, 8)
    """

    _auto_weight_decay = True  # weight_decay="auto": see _resolve_auto_settings

    def __init__(
        self,
        hidden_layer_sizes="auto",
        n_components=30,
        *,
        pretrain="auto",
        pretrain_iter="auto",
        pretrain_learning_rate="auto",
        loss="auto",
        linear_path="auto",
        k=1,
        persistent=False,
        pretrain_weight_decay=2e-4,
        layer_params=None,
        finetune_iter="auto",
        optimizer="adam",
        learning_rate=1e-3,
        momentum=0.9,
        weight_decay="auto",
        dropout=0.0,
        batch_size="auto",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        random_state=None,
        dtype="float32",
        n_jobs=None,
        verbose=0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_components = n_components
        self.pretrain = pretrain
        self.pretrain_iter = pretrain_iter
        self.pretrain_learning_rate = pretrain_learning_rate
        self.loss = loss
        self.linear_path = linear_path
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

    def _check_params(self):
        if isinstance(self.hidden_layer_sizes, str):
            check_option(self.hidden_layer_sizes, "hidden_layer_sizes", ("auto",), or_else="a sequence of positive ints")
            n_layers = None  # layer_params is checked in fit, once the layers are known
        else:
            n_layers = len(check_hidden_layer_sizes(self.hidden_layer_sizes)) + 1  # an int is one layer
        check_positive_int(self.n_components, "n_components")
        check_option(self.loss, "loss", ("auto", "cross_entropy", "squared_error"))
        if isinstance(self.linear_path, str):
            check_option(self.linear_path, "linear_path", ("auto",), or_else="True or False")
        else:
            check_bool(self.linear_path, "linear_path")
        self._check_stack_params(n_layers)

    # -- network layout -----------------------------------------------------------------------------

    def _n_encoder_layers(self):
        return len(self.coefs_) // 2  # the decoder mirrors the encoder

    def _resolve_auto_settings(self, n_samples, n_features):
        """Sets what the "auto" settings choose for training data of this shape (see
        :mod:`deepgm._schedule`): ``hidden_layer_sizes_``, ``pretrain_iter_`` and ``weight_decay_``.
        Returns the hidden layer sizes."""
        if isinstance(self.hidden_layer_sizes, str):
            self.hidden_layer_sizes_ = autoencoder_layer_sizes(n_samples, n_features)
        else:
            self.hidden_layer_sizes_ = check_hidden_layer_sizes(self.hidden_layer_sizes)
        batch_size = auto_batch_size(self.batch_size, n_samples)
        self.pretrain_iter_ = autoencoder_pretrain_epochs(self.pretrain_iter, n_samples, n_features, batch_size)
        self.weight_decay_ = autoencoder_weight_decay(self.weight_decay, n_samples, n_features)
        return self.hidden_layer_sizes_

    def _pretraining_settings(self):
        return dict(super()._pretraining_settings(), n_iter=self.pretrain_iter_)

    def _finetune_weight_decay(self) -> float:
        return self.weight_decay_

    def _activations(self):
        n_enc = self._n_encoder_layers()
        encoder = ["sigmoid"] * (n_enc - 1) + ["identity"]
        # The decoder's output layer is linear: logits for cross-entropy, values for squared error.
        decoder = ["sigmoid"] * (n_enc - 1) + ["identity"]
        return encoder + decoder

    def _kernel_loss(self):
        return "binary_cross_entropy" if self.loss_function_ == "cross_entropy" else "squared_error"

    def _tuner(self):
        if self._has_linear_path:
            return _LinearPathTuner(self, self._activations(), self._kernel_loss())
        return FineTuner(self, self._activations(), self._kernel_loss())

    @property
    def _has_linear_path(self) -> bool:
        """Whether the fitted network has the linear path (False for models saved before it existed)."""
        return getattr(self, "linear_path_", False)

    def _resolve_linear_path(self) -> bool:
        """Whether the network gets the linear path: ``linear_path``, or for "auto" whether it is not
        pretrained, fits the squared error and has no dropout. Call once ``pretrained_`` and
        ``loss_function_`` are set."""
        if isinstance(self.linear_path, str):
            return not self.pretrained_ and self.loss_function_ == "squared_error" and self.dropout == 0
        if self.linear_path:
            needs = [
                ("pretrain=False", self.pretrained_, "a pretrained network"),
                ("loss='squared_error'", self.loss_function_ != "squared_error", f"loss_function_={self.loss_function_!r}"),
                ("dropout=0", self.dropout != 0, f"dropout={self.dropout!r}"),
            ]
            for need, missing, got in needs:
                if missing:
                    raise ValueError(f"linear_path=True needs {need}; got {got}")
        return bool(self.linear_path)

    # -- training -----------------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Pretrains the RBM stack on X, unrolls it and fine-tunes the reconstruction of X.

        Returns
        -------
        self : DeepAutoencoder
        """
        self._check_params()
        with self._fit_transaction() as commit:
            X = self._validate_X(X, reset=True, stream=True)
            if self.n_components >= X.shape[1]:
                warnings.warn(
                    f"n_components={self.n_components} is not smaller than the {X.shape[1]} features of X: the code can "
                    "copy the input instead of compressing it (PCA refuses this); choose n_components < n_features",
                    UserWarning,
                    stacklevel=2,
                )
            if self.loss == "cross_entropy":
                check_unit_interval(X, what="loss='cross_entropy'", hint="loss='squared_error'")
                self.loss_function_ = "cross_entropy"
            elif self.loss == "auto":
                self.loss_function_ = "cross_entropy" if mostly_binary(X) else "squared_error"
            else:
                self.loss_function_ = self.loss
            visible = units_for_loss(self.loss_function_)
            self.pretrained_ = pretrains(self.pretrain, visible)
            self.linear_path_ = self._resolve_linear_path()
            train_X, _, validation = self._validation_split(X)
            sizes = self._resolve_auto_settings(*train_X.shape) + (self.n_components,)
            self._fit_seed = seed_from(self.random_state)
            self._check_layer_settings(train_X.shape[0], sizes, first_visible=visible, last_hidden=GAUSSIAN.name)
            reset_finetune_state(self)
            if self.pretrained_:
                self._unroll(self._pretrain(train_X, sizes, first_visible=visible, last_hidden=GAUSSIAN.name), visible)
            else:
                self._random_network(train_X)
            n_rows = train_X.shape[0]
            budget = LINEAR_PATH_FINETUNE_BUDGET if self.linear_path_ else FINETUNE_BUDGET
            with kept_if_trained(commit, lambda: self.n_iter_):
                self._tuner().run(
                    train_X,
                    train_X,
                    n_epochs=plan_epochs(self.finetune_iter, n_rows, auto_batch_size(self.batch_size, n_rows), budget),
                    seed=self._fit_seed,
                    validation=validation,
                    score=lambda Xv, _: -self._mse(Xv),
                    desc="DeepAutoencoder",
                    converge=self.finetune_iter == "auto",
                    converge_after=budget.min_epochs if self.linear_path_ else 0,
                )
        return self

    def _unroll(self, rbms, visible):
        """The network of pretrained RBMs: the encoder is the RBMs, the decoder their transposes with
        the visible biases (tied initial weights)."""
        self.rbms_ = rbms
        encoder = unrolled_layers(rbms)
        decoder = [(np.ascontiguousarray(r.components_), r.intercept_visible_.copy()) for r in reversed(rbms)]
        if get_units(visible).standardised:
            # The bottom RBM worked on standardised data: fold (x - mean) / scale into the first
            # encoder layer and x = mean + scale * v into the last decoder layer.
            first, dtype = rbms[0], self._dtype()
            encoder[0] = fold_standardisation(first, *encoder[0], dtype)
            Wd, bd = decoder[-1]
            decoder[-1] = (np.ascontiguousarray(Wd * first.scale_[None, :], dtype=dtype), (bd * first.scale_ + first.mean_).astype(dtype))
        self._set_layers(encoder + decoder)

    def _random_network(self, X):
        """A network of random layers (no pretraining) for X: encoder, then the mirrored decoder; with
        the linear path, PCA's components of X and zero last layers. Call after
        ``reset_finetune_state``."""
        sizes = self.hidden_layer_sizes_ + (self.n_components,)
        rng = generator(self._fit_seed, Purpose.AUTOENCODER_INIT)
        widths = (X.shape[1],) + sizes
        self.rbms_ = []
        layers = random_layers(rng, widths, self._dtype()) + random_layers(rng, widths[::-1], self._dtype())
        self.__dict__.pop("path_components_", None)
        self.__dict__.pop("path_mean_", None)
        if self._has_linear_path:
            mean, scatter = _centred_moments(X)
            self.path_components_, self.path_mean_ = self._principal_components(X, mean, scatter)
            # The network starts as PCA, whose loss may be ~0 (data of rank <= n_components): fine-tuning
            # judges divergence against the loss of reconstructing every row by the mean instead,
            # mean_i |x_i - m|^2 / 2.
            self._finetune_first_loss = float(0.5 * np.trace(scatter) / X.shape[0])
            # The code layer and the output layer start at zero: the network starts as PCA.
            for i in (len(sizes) - 1, len(layers) - 1):
                layers[i] = (np.zeros_like(layers[i][0]), np.zeros_like(layers[i][1]))
        self._set_layers(layers)

    def _principal_components(self, X, mean, scatter):
        """PCA's components P (n_components, n_features) and mean m (n_features,) of X, in the model's
        dtype, from X's mean and scatter matrix (:func:`_centred_moments`); rows beyond
        min(n_samples - 1, n_features) are zero (no direction of variance left). The signs are
        scikit-learn's (``svd_flip``: each row's largest entry positive), so P is PCA's."""
        dtype = self._dtype()
        n_samples, n_features = X.shape
        P = np.zeros((self.n_components, n_features), dtype=dtype)
        rank = min(self.n_components, n_samples - 1, n_features)
        if rank > 0:
            _, vectors = np.linalg.eigh(scatter)  # eigenvalues ascending
            top = np.ascontiguousarray(vectors[:, ::-1][:, :rank].T)
            _, top = svd_flip(None, top, u_based_decision=False)
            P[:rank] = top
        return P, mean.astype(dtype)

    # -- inference ----------------------------------------------------------------------------------

    def _check_input(self, X):
        """X for inference: finite values of any range (a scaler fitted on training data can map test
        data slightly outside [0, 1]; the network is defined for every real input)."""
        check_is_fitted(self)
        return self._validate_X(X, reset=False)

    def _run_layers(self, X, start, stop):
        acts = self._activations()
        return _core.mlp_forward(
            np.ascontiguousarray(X, dtype=self._dtype()),
            self.coefs_[start:stop],
            self.intercepts_[start:stop],
            acts[start:stop],
            n_jobs=self._n_jobs(),
        )

    @property
    def _n_features_out(self):
        """Width of ``transform``'s output, from the fitted parameters (``get_feature_names_out``)."""
        return self.coefs_[len(self.coefs_) // 2 - 1].shape[1]  # the code layer: encoder and decoder mirror each other

    def transform(self, X):
        """The codes (the linear code layer's values).

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            float32 for float32 X, float64 otherwise (scikit-learn's convention).
        """
        return as_output(self._encode(self._check_input(X)), X)

    def _encode(self, X):
        """The codes of a validated X (the model's dtype)."""
        Z = self._run_layers(X, 0, self._n_encoder_layers())
        if self._has_linear_path:
            Z += matmul(X - self.path_mean_, self.path_components_, trans_b=True, n_jobs=self._n_jobs()).astype(Z.dtype, copy=False)
        return Z

    def inverse_transform(self, Z):
        """Decodes codes back to data space.

        Parameters
        ----------
        Z : array-like of shape (n_samples, n_components)

        Returns
        -------
        X_rec : ndarray of shape (n_samples, n_features)
            In the dtype of Z as for :meth:`transform`.
        """
        check_is_fitted(self)
        codes = self._validate_array(Z, "Z", self._n_features_out, "n_components of the fitted model")
        return as_output(self._decode(codes), Z)

    def _decode(self, Z):
        """The decoder's output for codes Z of the model's dtype (probabilities for cross-entropy)."""
        out = self._run_layers(Z, self._n_encoder_layers(), len(self.coefs_))
        if self._has_linear_path:
            out += (matmul(Z, self.path_components_, n_jobs=self._n_jobs()) + self.path_mean_).astype(out.dtype, copy=False)
        if self.loss_function_ == "cross_entropy":
            out = expit(out).astype(self._dtype())
        return out

    def reconstruct(self, X):
        """Reconstruction of X through the code layer.

        Returns
        -------
        X_rec : ndarray of shape (n_samples, n_features)
            In the dtype of X as for :meth:`transform`.
        """
        return as_output(self._reconstruct(self._check_input(X)), X)

    def _reconstruct(self, X):
        if self._has_linear_path:
            return self._decode(self._encode(X))
        out = self._run_layers(X, 0, len(self.coefs_))
        if self.loss_function_ == "cross_entropy":
            out = expit(out).astype(self._dtype())
        return out

    def _mse(self, X):
        """Mean squared reconstruction error per sample of a validated X."""
        rec = self._reconstruct(X).astype(np.float64)
        return float(np.mean(np.sum((np.asarray(X, dtype=np.float64) - rec) ** 2, axis=1)))

    def reconstruction_error(self, X):
        """Mean squared reconstruction error per sample, ``mean_i sum_j (x_ij - x̂_ij)^2`` (lower is
        better). It is PCA's reconstruction error for the same data, so the two compare directly.

        Returns
        -------
        error : float
        """
        return self._mse(self._check_input(X))

    def score(self, X, y=None):
        """Minus :meth:`reconstruction_error`: higher is better, as scikit-learn's model selection
        (``GridSearchCV``, ``cross_val_score``) expects of a score.

        Returns
        -------
        score : float
        """
        return -self.reconstruction_error(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        # loss="cross_entropy" needs X in [0, 1] ("auto" picks it only for such data).
        tags.input_tags.positive_only = self.loss == "cross_entropy"
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]  # see output_dtype
        return tags


def _centred_moments(X, chunk_rows: int | None = None):
    """The mean m (n_features,) and scatter matrix sum_i (x_i - m)(x_i - m)^T (n_features, n_features)
    of X, in float64, from chunks of rows: fitting never copies X (scikit-learn's PCA would centre a
    float64 copy of it, and its full SVD work on an array of X's size)."""
    n_rows, n_cols = X.shape
    if chunk_rows is None:  # 1 MiB of float64 rows: a few MiB of temporaries at most
        chunk_rows = max(1, (1 << 20) // (8 * max(1, n_cols)))
    chunks = [slice(start, start + chunk_rows) for start in range(0, n_rows, chunk_rows)]
    mean = sum(np.asarray(X[rows], dtype=np.float64).sum(axis=0) for rows in chunks) / n_rows
    scatter = np.zeros((n_cols, n_cols))
    for rows in chunks:
        centred = np.asarray(X[rows], dtype=np.float64) - mean
        scatter += centred.T @ centred
    return mean, scatter


class _LinearPathTuner(FineTuner):
    """Fine-tuning of a network with the linear path (``DeepAutoencoder(linear_path=True)``):

        z = E(x) + (x - m) P^T,    x_hat = D(z) + z P + m,    loss = mean over rows of |x_hat - x|^2 / 2

    The decoder's squared error against the target ``x - m - z P`` is this loss, so the kernel gives
    D's gradients and ``J_D^T r / B`` (r = x_hat - x, B rows); the path adds ``r P^T / B`` to the
    code's gradient g. E's gradients are those of a squared error whose residual is B g: its target
    ``E(x) - B g``. A step is two gradient passes and three forward passes of the kernels, then one
    optimiser step per parameter array (biases not decayed, as ``mlp_train_step`` does); it draws
    nothing at random.
    """

    def loss_gradients(self, x):
        """The mean loss of the rows ``x`` (B, n_features; the model's dtype) and its gradients, in
        ``params()`` order [W0, b0, W1, b1, ...]."""
        est = self.est
        n_jobs = est._n_jobs()
        P, m = est.path_components_, est.path_mean_
        n_enc = est._n_encoder_layers()
        enc = (est.coefs_[:n_enc], est.intercepts_[:n_enc], self.activations[:n_enc])
        dec = (est.coefs_[n_enc:], est.intercepts_[n_enc:], self.activations[n_enc:])
        rows = x.shape[0]
        e = _core.mlp_forward(x, *enc, n_jobs=n_jobs)  # (B, n_components)
        z = np.ascontiguousarray(e + matmul(x - m, P, trans_b=True, n_jobs=n_jobs), dtype=x.dtype)
        if not np.isfinite(z).all():  # diverged parameters (the data were checked): _epoch_guard reports it
            raise FloatingPointError("the codes are no longer finite")
        target = np.ascontiguousarray(x - m - matmul(z, P, n_jobs=n_jobs), dtype=x.dtype)  # (B, n_features)
        loss, dec_gw, dec_gb, grad_z = _core.mlp_loss_gradients(z, target, *dec, "squared_error", n_jobs=n_jobs)
        residual = _core.mlp_forward(z, *dec, n_jobs=n_jobs) - target  # x_hat - x
        if not np.isfinite(loss):
            raise FloatingPointError(f"the minibatch loss is {loss}")
        grad_z += (matmul(residual, P, trans_b=True, n_jobs=n_jobs) / rows).astype(x.dtype, copy=False)
        encoder_target = np.ascontiguousarray(e - rows * grad_z, dtype=x.dtype)
        _, enc_gw, enc_gb, _ = _core.mlp_loss_gradients(x, encoder_target, *enc, "squared_error", n_jobs=n_jobs)
        return float(loss), interleave(list(enc_gw) + list(dec_gw), list(enc_gb) + list(dec_gb))

    def step(self, X, Y, rows, *, seed: int, step: int) -> float:
        """One minibatch update on X[rows] (the targets are X itself); returns the loss before it."""
        est = self.est
        slots = self.slots()
        est._optimizer_t += 1
        loss, grads = self.loss_gradients(np.ascontiguousarray(X[rows], dtype=est._dtype()))
        decay = est._finetune_weight_decay()
        for param, grad, state in zip(self.params(), grads, slots):
            _core.optimizer_step(
                param,
                grad,
                state,
                optimizer=est.optimizer,
                learning_rate=float(est.learning_rate),
                momentum=float(est.momentum),
                t=est._optimizer_t,
                weight_decay=decay if param.ndim == 2 else 0.0,
                n_jobs=est._n_jobs(),
            )
        return loss
