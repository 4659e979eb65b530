"""The pictures: every plotting function draws and saves a PNG of the right content."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import deepgm
from deepgm import plotting


@pytest.fixture(scope="module")
def models():
    X, y = deepgm.datasets.load_mnist()
    X, y = X[:500], y[:500]
    rbm = deepgm.RBM(16, n_iter=2, random_state=0).fit(X)
    vae = deepgm.VAE(2, hidden_layer_sizes=(16,), n_iter=2, random_state=0).fit(X)
    cvae = deepgm.CVAE(2, hidden_layer_sizes=(16,), n_iter=2, random_state=0).fit(X, y)
    return X, y, rbm, vae, cvae


def saved(fig, tmp_path, name):
    path = tmp_path / name
    fig.savefig(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_tile_places_images_in_a_grid():
    images = np.arange(6 * 4, dtype=float).reshape(6, 4)  # six 2x2 images
    mosaic = plotting.tile(images, n_cols=3, image_shape=(2, 2), padding=1, normalize=None)
    assert mosaic.shape == (2 * 3 + 1, 3 * 3 + 1)
    np.testing.assert_array_equal(mosaic[1:3, 1:3], images[0].reshape(2, 2))
    np.testing.assert_array_equal(mosaic[4:6, 7:9], images[5].reshape(2, 2))
    with pytest.raises(ValueError, match="square"):
        plotting.tile(np.zeros((2, 5)))


def test_every_plot_renders(models, tmp_path):
    X, y, rbm, vae, cvae = models
    saved(plotting.plot_filters(rbm, 16), tmp_path, "filters.png")
    saved(plotting.plot_samples(rbm.sample(4, n_steps=5)), tmp_path, "samples.png")
    saved(
        plotting.plot_reconstructions(X[:5], rbm.reconstruct(X[:5]), vae.reconstruct(X[:5]), labels=["in", "rbm", "vae"]),
        tmp_path,
        "rec.png",
    )
    saved(plotting.plot_training_curves(vae, ["elbo", "kl"]), tmp_path, "curves.png")
    saved(plotting.plot_latent_map(vae.transform(X), y), tmp_path, "latent.png")
    saved(plotting.plot_manifold(vae, n=5), tmp_path, "manifold.png")
    fig = plotting.plot_class_samples(cvae, 3)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [str(c) for c in cvae.classes_]
    saved(fig, tmp_path, "classes.png")


def test_filters_of_the_stacks_are_their_bottom_layer_weights(models, monkeypatch):
    """plot_filters takes a DBN (its bottom RBM) and the fine-tuned stacks (their first layer,
    coefs_[0].T): the pictures are exactly those of the weight matrices."""
    X, y, *_ = models
    drawn = []
    monkeypatch.setattr(plotting, "image_grid", lambda weights, **kwargs: drawn.append(np.array(weights)))
    dbn = deepgm.DBN((9, 4), n_iter=1, random_state=0).fit(X)
    clf = deepgm.DBNClassifier((9,), pretrain_iter=1, finetune_iter=1, random_state=0).fit(X, y)
    ae = deepgm.DeepAutoencoder((9,), n_components=2, pretrain_iter=1, finetune_iter=1, random_state=0).fit(X)
    for model, weights in [(dbn, dbn.rbms_[0].components_), (clf, clf.coefs_[0].T), (ae, ae.coefs_[0].T)]:
        plotting.plot_filters(model)
        np.testing.assert_array_equal(drawn.pop(), weights)


def test_values_outside_the_unit_interval_are_scaled_not_clipped():
    """Standardised inputs (a Gaussian model's data) keep their contrast: every row of a
    reconstruction plot is scaled by one shared range, where clipping to [0, 1] would flatten all
    negative values to black and every value above 1 to white."""
    originals = np.linspace(-3.0, 3.0, 2 * 16).reshape(2, 16)
    reconstructions = 0.5 * originals
    fig = plotting.plot_reconstructions(originals, reconstructions, image_shape=(4, 4))
    drawn = [np.asarray(ax.images[0].get_array()) for ax in fig.axes]
    first_input = drawn[0][1:5, 1:5].ravel()
    first_reconstruction = drawn[1][1:5, 1:5].ravel()
    np.testing.assert_allclose(first_input, (originals[0] + 3.0) / 6.0)
    np.testing.assert_allclose(first_reconstruction, (reconstructions[0] + 3.0) / 6.0)
    assert len(np.unique(first_input)) == 16  # no two values merged by clipping
    unit = np.linspace(0.0, 1.0, 16).reshape(1, 16)  # intensities are drawn as they are
    fig = plotting.plot_reconstructions(unit, unit[:, ::-1], image_shape=(4, 4))
    np.testing.assert_allclose(np.asarray(fig.axes[1].images[0].get_array())[1:5, 1:5].ravel(), unit[0, ::-1])


def test_plot_errors_are_clear(models):
    X, y, rbm, vae, cvae = models
    with pytest.raises(ValueError, match="2-D codes"):
        plotting.plot_latent_map(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="same shape"):
        plotting.plot_reconstructions(X[:3], X[:4])
    big = deepgm.VAE(3, hidden_layer_sizes=(8,), n_iter=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_components=2"):
        plotting.plot_manifold(big)
    # the wrong kind of model, or a missing argument: errors that name what is expected
    with pytest.raises(ValueError, match="y is required for a CVAE"):
        plotting.plot_manifold(cvae)
    with pytest.raises(ValueError, match="y applies to a CVAE only"):
        plotting.plot_manifold(vae, y=3)
    with pytest.raises(TypeError, match="cvae must be a fitted deepgm CVAE; got VAE"):
        plotting.plot_class_samples(vae)
    with pytest.raises(TypeError, match="model must be a fitted RBM, DBN, DBNClassifier, DBNRegressor or DeepAutoencoder"):
        plotting.plot_filters(vae)
    with pytest.raises(NotFittedError, match="This DBN instance is not fitted yet"):
        plotting.plot_filters(deepgm.DBN())
    # arguments out of range name themselves
    with pytest.raises(ValueError, match="n_filters == 0, must be >= 1"):
        plotting.plot_filters(rbm, n_filters=0)
    with pytest.raises(ValueError, match="normalize must be 'global', 'each' or None; got 'bogus'"):
        plotting.image_grid(X[:4], normalize="bogus")
    with pytest.raises(ValueError, match=r"labels must name every row, the originals' and each reconstruction's \(2\); got 1"):
        plotting.plot_reconstructions(X[:3], X[:3], labels=["a"])
    with pytest.raises(ValueError, match=r"y must hold one value per point of Z \(20\); got shape \(10,\)"):
        plotting.plot_latent_map(np.zeros((20, 2)), y[:10])
    with pytest.raises(ValueError, match="n == 0, must be >= 1"):
        plotting.plot_manifold(vae, n=0)
    with pytest.raises(ValueError, match="history: VAE has no history_"):
        plotting.plot_training_curves(deepgm.VAE())
    with pytest.raises(ValueError, match=r"keys \['nope'\] are not in the history"):
        plotting.plot_training_curves(vae, ["nope"])
    with pytest.raises(TypeError, match="vae must be a fitted deepgm VAE"):
        plotting.plot_manifold(rbm)
    saved_manifold = plotting.plot_manifold(cvae, n=3, y=cvae.classes_[0])  # a CVAE given its class draws
    assert saved_manifold.axes


def test_a_dbns_training_curves_draw_one_line_per_layer(tmp_path):
    X, _ = deepgm.datasets.load_mnist()
    dbn = deepgm.DBN((16, 8), n_iter=3, random_state=0).fit(X[:300])
    fig = plotting.plot_training_curves(dbn, ["reconstruction_error"])
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["layer 1", "layer 2"]
    for layer, line in zip((1, 2), lines):
        rows = [i for i, k in enumerate(dbn.history_["layer"]) if k == layer]
        np.testing.assert_array_equal(line.get_xdata(), [dbn.history_["epoch"][i] for i in rows])
        np.testing.assert_allclose(line.get_ydata(), [dbn.history_["reconstruction_error"][i] for i in rows])
    saved(fig, tmp_path, "dbn_curves.png")


def test_a_continuous_target_colours_the_latent_map_with_a_colour_bar(tmp_path):
    rng = np.random.default_rng(0)
    Z, target = rng.standard_normal((200, 2)), rng.random(200)
    fig = plotting.plot_latent_map(Z, target)
    assert len(fig.axes) == 2 and fig.axes[0].get_legend() is None  # the map and its colour bar
    classes = plotting.plot_latent_map(Z, rng.integers(0, 3, 200))
    assert len(classes.axes) == 1 and len(classes.axes[0].get_legend().get_texts()) == 3
    saved(fig, tmp_path, "continuous.png")
