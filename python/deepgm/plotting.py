"""Pictures of what the models learned: image grids (samples, filters, reconstructions), training
curves, VAE latent maps and decoded manifolds, CVAE samples by class.

matplotlib (a dependency of deepgm) is imported when a function is first called, so ``import deepgm``
stays fast. Every function returns the matplotlib Figure; save it with ``fig.savefig(path)``.
"""

from __future__ import annotations

import math

import numpy as np

from ._base import check_number, check_positive_int

__all__ = [
    "image_grid",
    "plot_filters",
    "plot_samples",
    "plot_reconstructions",
    "plot_training_curves",
    "plot_latent_map",
    "plot_manifold",
    "plot_class_samples",
]


def _pyplot():
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline") and not _has_display():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - a broken installation
        raise ImportError(f"deepgm.plotting needs matplotlib, a dependency of deepgm that failed to import: {err}") from err
    return plt


def _describe(obj):
    return type(obj).__name__ if hasattr(obj, "get_params") else f"a {type(obj).__name__}"


def _check_fitted_model(model, cls, name, expected):
    """TypeError naming ``name`` unless ``model`` is a ``cls``; NotFittedError if it is not fitted."""
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(model, cls):
        raise TypeError(f"{name} must be {expected}; got {_describe(model)}")
    check_is_fitted(model)


def _has_display():
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _image_shape(n_features, image_shape):
    if image_shape is not None:
        if int(np.prod(image_shape)) != n_features:
            raise ValueError(f"image_shape {image_shape} does not hold {n_features} values")
        return tuple(image_shape)
    side = int(round(math.sqrt(n_features)))
    if side * side != n_features:
        raise ValueError(f"cannot infer a square image shape for {n_features} features; pass image_shape")
    return (side, side)


def tile(images, n_cols=None, image_shape=None, padding=1, normalize="global"):
    """Arranges rows of ``images`` (n, n_features) as a 2-D mosaic array (for imshow).

    normalize: "global" scales all tiles together to [0, 1], "each" scales every tile on its own
    (filters), None keeps the values.
    """
    if normalize not in ("global", "each", None):
        raise ValueError(f"normalize must be 'global', 'each' or None; got {normalize!r}")
    if n_cols is not None:
        n_cols = check_positive_int(n_cols, "n_cols")
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 2 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty 2-D array (n_images, n_features); got shape {images.shape}")
    h, w = _image_shape(images.shape[1], image_shape)
    n = images.shape[0]
    n_cols = n_cols or int(math.ceil(math.sqrt(n)))
    n_rows = int(math.ceil(n / n_cols))
    if normalize == "each":
        lo = images.min(axis=1, keepdims=True)
        hi = images.max(axis=1, keepdims=True)
        images = (images - lo) / np.where(hi > lo, hi - lo, 1)
    elif normalize == "global":
        lo, hi = images.min(), images.max()
        images = (images - lo) / (hi - lo if hi > lo else 1)
    mosaic = np.ones((n_rows * (h + padding) + padding, n_cols * (w + padding) + padding))
    for i in range(n):
        r, c = divmod(i, n_cols)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        mosaic[top : top + h, left : left + w] = images[i].reshape(h, w)
    return mosaic


def image_grid(images, *, n_cols=None, image_shape=None, title=None, normalize="global", ax=None, cmap="gray", figsize=None):
    """A figure showing the rows of ``images`` as a grid of pictures."""
    plt = _pyplot()
    mosaic = tile(images, n_cols=n_cols, image_shape=image_shape, normalize=normalize)
    if ax is None:
        scale = 6.0 / max(mosaic.shape)
        width, height = max(2.0, mosaic.shape[1] * scale), max(2.0, mosaic.shape[0] * scale) + (0.4 if title else 0)
        fig, ax = plt.subplots(figsize=figsize or (width, height))
    else:
        fig = ax.figure
    ax.imshow(mosaic, cmap=cmap, interpolation="nearest", vmin=0, vmax=1 if normalize else None)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_filters(model, n_filters=100, *, image_shape=None, title="RBM filters", **kwargs):
    """The first ``n_filters`` filters of a model's bottom layer (or rows of a given weight matrix) as
    images, each scaled on its own: an RBM's ``components_``; a DBN's bottom RBM; the first layer of
    a fine-tuned DBNClassifier, DBNRegressor or DeepAutoencoder (``coefs_[0].T``, one row per unit)."""
    from .autoencoder import DeepAutoencoder
    from .dbn import DBN, DBNClassifier, DBNRegressor
    from .rbm import RBM

    n_filters = check_positive_int(n_filters, "n_filters")
    if hasattr(model, "get_params"):  # an estimator: the weights of its bottom layer
        _check_fitted_model(
            model,
            (RBM, DBN, DBNClassifier, DBNRegressor, DeepAutoencoder),
            "model",
            "a fitted RBM, DBN, DBNClassifier, DBNRegressor or DeepAutoencoder, or a 2-D weight matrix",
        )
        if getattr(model, "rbms_", None) and not hasattr(model, "coefs_"):
            model = model.rbms_[0]  # a DBN
        model = model.components_ if hasattr(model, "components_") else np.asarray(model.coefs_[0]).T
    weights = np.asarray(model)
    if weights.ndim != 2 or weights.dtype.kind not in "fiu":
        raise ValueError(
            f"model must be a fitted RBM or a 2-D numeric weight matrix (n_filters, n_features); got an array of shape {weights.shape}"
        )
    weights = weights[:n_filters]
    return image_grid(weights, image_shape=image_shape, title=title, normalize="each", **kwargs)


def _shown_as_is(images):
    """Whether ``images`` are intensities in [0, 1] (shown as they are) rather than other values
    (standardised data, a Gaussian decoder's means), which are scaled together to [0, 1] instead of
    being clipped."""
    return bool(images.min() >= 0 and images.max() <= 1)


def plot_samples(samples, *, image_shape=None, title="Samples", n_cols=None, **kwargs):
    """Generated samples as an image grid (values in [0, 1] are shown as they are, others scaled
    together to [0, 1])."""
    samples = np.asarray(samples)
    normalize = None if _shown_as_is(samples) else "global"
    return image_grid(samples, image_shape=image_shape, title=title, n_cols=n_cols, normalize=normalize, **kwargs)


def plot_reconstructions(originals, *reconstructions, labels=None, image_shape=None, title="Reconstructions"):
    """Inputs in the first row, then one row per model's reconstructions of the same inputs (values in
    [0, 1] shown as they are; otherwise every row scaled by the same range, so rows compare)."""
    plt = _pyplot()
    rows = [np.asarray(originals, dtype=np.float64)] + [np.asarray(r, dtype=np.float64) for r in reconstructions]
    n = rows[0].shape[0]
    if any(r.shape != rows[0].shape for r in rows):
        raise ValueError("originals and reconstructions must have the same shape")
    every = np.concatenate([r.ravel() for r in rows])
    if not _shown_as_is(every):
        lo, hi = every.min(), every.max()
        rows = [(r - lo) / (hi - lo if hi > lo else 1) for r in rows]
    labels = list(labels) if labels is not None else ["input"] + [f"model {i + 1}" for i in range(len(reconstructions))]
    if len(labels) != len(rows):
        raise ValueError(f"labels must name every row, the originals' and each reconstruction's ({len(rows)}); got {len(labels)}")
    fig, axes = plt.subplots(len(rows), 1, figsize=(max(4, 0.55 * n), 0.75 * len(rows) + 0.6))
    axes = np.atleast_1d(axes)
    for ax, images, label in zip(axes, rows, labels):
        ax.imshow(tile(images, n_cols=n, image_shape=image_shape, normalize=None), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    axes[0].set_title(title)
    fig.tight_layout()
    return fig


def plot_training_curves(history, keys=None, *, title="Training curves"):
    """Per-epoch metrics of an estimator (its ``history_``) or of a history dict, one panel per metric."""
    plt = _pyplot()
    if hasattr(history, "get_params"):
        if not hasattr(history, "history_"):
            raise ValueError(f"history: {_describe(history)} has no history_: fit it first")
        history = history.history_
    if not isinstance(history, dict):
        raise TypeError(f"history must be a fitted estimator or a dict of per-epoch metric lists; got {type(history).__name__}")
    skip = {"epoch", "time", "layer"}
    if keys is not None:
        unknown = [k for k in keys if k not in history]
        if unknown:
            raise ValueError(f"keys {unknown} are not in the history; it has {sorted(history)}")
    keys = keys or [k for k, v in history.items() if k not in skip and len(v) and isinstance(v[0], (int, float, np.floating))]
    if not keys:
        raise ValueError("history has no per-epoch metrics to plot")
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
    n_rows = len(history[keys[0]])
    epochs = list(history.get("epoch") or range(1, n_rows + 1))[:n_rows]
    # A DBN's history runs through its layers' epochs in turn: one curve per layer, each over its own
    # epochs (the layers' metrics are of different data, the features of the layer below).
    layers = history.get("layer")
    groups = (
        [(None, np.arange(n_rows))]
        if not layers
        else [(f"layer {k}", np.flatnonzero(np.asarray(layers[:n_rows]) == k)) for k in dict.fromkeys(layers)]
    )
    for ax, key in zip(axes[0], keys):
        values = np.asarray(history[key], dtype=np.float64)
        for label, rows in groups:
            rows = rows[rows < len(values)]
            ax.plot(np.asarray(epochs)[rows], values[rows], marker="o", markersize=3, label=label)
        if layers:
            ax.legend(fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_latent_map(Z, y=None, *, title="Latent space", ax=None, max_points=5000):
    """Points of a 2-D latent space (e.g. ``vae.transform(X)``) coloured by class, or with a colour bar
    by a continuous y (real-valued with more than 20 distinct values, such as a regression target)."""
    plt = _pyplot()
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[1] != 2:
        raise ValueError(f"plot_latent_map needs 2-D codes (n, 2); got shape {Z.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 5))
    else:
        fig = ax.figure
    idx = np.arange(Z.shape[0])[:max_points]
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != Z.shape[0]:
            raise ValueError(f"y must hold one value per point of Z ({Z.shape[0]}); got shape {y.shape}")
    if y is None:
        ax.scatter(Z[idx, 0], Z[idx, 1], s=3, alpha=0.6)
    elif y.dtype.kind == "f" and np.unique(y[idx]).size > 20:
        points = ax.scatter(Z[idx, 0], Z[idx, 1], s=3, alpha=0.8, c=y[idx], cmap="viridis")
        fig.colorbar(points, ax=ax)
    else:
        for label in np.unique(y[idx]):
            m = idx[y[idx] == label]
            ax.scatter(Z[m, 0], Z[m, 1], s=3, alpha=0.6, label=str(label))
        ax.legend(markerscale=4, fontsize=8, loc="best", ncol=2)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_manifold(vae, *, n=20, span=2.5, image_shape=None, title="Decoded latent grid", y=None):
    """For a model with 2 latent dimensions: decodes an n x n grid of z in [-span, span]^2 (around the
    class mean for a prior-mean CVAE given ``y``)."""
    from .vae import CVAE, VAE

    _check_fitted_model(vae, VAE, "vae", "a fitted deepgm VAE or CVAE")
    n = check_positive_int(n, "n")
    span = check_number(span, "span", low=0, low_open=True)
    if vae._n_features_out != 2:
        raise ValueError(f"plot_manifold needs a model with n_components=2; got {vae._n_features_out}")
    conditional = isinstance(vae, CVAE)
    if conditional and y is None:
        raise ValueError("y is required for a CVAE: the class whose manifold to draw")
    if not conditional and y is not None:
        raise ValueError(f"y applies to a CVAE only; got y={y!r} for a {type(vae).__name__}")
    axis = np.linspace(span, -span, n)
    zz = np.array([[x, yv] for yv in axis for x in axis[::-1]], dtype=np.float64)
    if conditional:
        code = vae._encode_labels(np.array([y]), 1)
        center = vae.class_means_[code[0]] if vae._conditioning == "prior_mean" else 0.0  # as fitted
        images = vae.decode(zz + center, np.full(len(zz), y))
    else:
        images = vae.decode(zz)
    normalize = None if _shown_as_is(images) else "global"
    return image_grid(images, n_cols=n, image_shape=image_shape, title=title, normalize=normalize)


def plot_class_samples(cvae, n_per_class=10, *, image_shape=None, title="Samples by class (one row per class)"):
    """A CVAE's samples with one row per class."""
    from .vae import CVAE

    _check_fitted_model(cvae, CVAE, "cvae", "a fitted deepgm CVAE")
    plt = _pyplot()
    rows = [cvae.sample(n_per_class, y=label) for label in cvae.classes_]
    images = np.concatenate(rows)
    normalize = None if _shown_as_is(images) else "global"
    fig = image_grid(images, n_cols=n_per_class, image_shape=image_shape, title=title, normalize=normalize)
    ax = fig.axes[0]
    h = _image_shape(images.shape[1], image_shape)[0] + 1
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([1 + h * i + h / 2 for i in range(len(cvae.classes_))])
    ax.set_yticklabels([str(c) for c in cvae.classes_])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    plt.setp(ax.get_yticklabels(), fontsize=8)
    return fig
