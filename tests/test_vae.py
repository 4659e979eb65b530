"""deepgm.VAE and deepgm.CVAE: ELBO gradients against float64 finite differences of a NumPy oracle,
the KL term against its closed form and a Monte Carlo estimate, the importance-sampled log-likelihood
(IWAE bound) against the ELBO and numerical integration, the Gaussian decoder, class-conditional
generation, the estimator API, partial_fit, dtype, determinism and bad input."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression

from deepgm import CVAE, VAE, _core


def f64(a):
    return np.asarray(a, dtype=np.float64)


def softplus(x):
    return np.logaddexp(0.0, x)


ACTIVATIONS = {
    "identity": lambda a: a,
    "tanh": np.tanh,
    "sigmoid": expit,
    "softplus": softplus,
    "relu": lambda a: np.maximum(a, 0.0),
}

# --------------------------------------------------------------------------------------------------
# float64 oracle of the (conditional) VAE, from the definitions


def mlp64(x, weights, biases, activations):
    a = f64(x)
    for W, b, act in zip(weights, biases, activations):
        a = ACTIVATIONS[act](a @ f64(W) + f64(b))
    return a


def onehot(y, n_classes):
    out = np.zeros((len(y), n_classes))
    out[np.arange(len(y)), y] = 1
    return out


def vae_losses64(x, eps, net, y, *, n_latent, likelihood, conditioning, n_classes, decoder_variance=1.0):
    """Per-sample (-log p(x | z), KL(q(z | x) || prior)) with z = mu + exp(log_var / 2) * eps."""
    enc_w, enc_b, enc_act, dec_w, dec_b, dec_act, class_means = net
    x, eps, k = f64(x), f64(eps), n_latent
    enc_in = np.hstack([x, onehot(y, n_classes)]) if conditioning == "concat" else x
    out = mlp64(enc_in, enc_w, enc_b, enc_act)
    mu, log_var = out[:, :k], out[:, k:]
    z = mu + np.exp(0.5 * log_var) * eps
    dec_in = np.hstack([z, onehot(y, n_classes)]) if conditioning == "concat" else z
    o = mlp64(dec_in, dec_w, dec_b, dec_act)
    if likelihood == "bernoulli":
        recon = np.sum(softplus(o) - x * o, axis=1)
    else:
        d = x.shape[1]
        recon = 0.5 * np.sum((x - o) ** 2, axis=1) / decoder_variance + 0.5 * d * np.log(2 * np.pi * decoder_variance)
    prior = f64(class_means)[y] if conditioning == "prior_mean" else 0.0
    kl = 0.5 * np.sum((mu - prior) ** 2 + np.exp(log_var) - log_var - 1, axis=1)
    return recon, kl


def gaussian_kl64(mu, log_var, prior_mean=None):
    mu, log_var = f64(mu), f64(log_var)
    prior = 0.0 if prior_mean is None else f64(prior_mean)
    return 0.5 * np.sum((mu - prior) ** 2 + np.exp(log_var) - log_var - 1, axis=1)


def random_net(d, hidden, k, n_classes, conditioning, seed):
    r = np.random.default_rng(seed)
    extra = n_classes if conditioning == "concat" else 0
    enc = (d + extra, hidden, 2 * k)
    dec = (k + extra, hidden, d)

    def layers(widths):
        return ([r.normal(0, 0.6, (a, b)) for a, b in zip(widths[:-1], widths[1:])], [r.normal(0, 0.3, b) for b in widths[1:]])

    enc_w, enc_b = layers(enc)
    dec_w, dec_b = layers(dec)
    class_means = r.normal(0, 1.0, (n_classes, k)) if conditioning == "prior_mean" else None
    return [enc_w, enc_b, ["tanh", "identity"], dec_w, dec_b, ["tanh", "identity"], class_means]


# --------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def vae2d(mnist_split):
    """A 2-D latent VAE trained on the 8,000 training images (for the log-likelihood estimates)."""
    X_train = mnist_split[0]
    return VAE(n_components=2, hidden_layer_sizes=(128,), n_iter=5, random_state=0).fit(X_train)


@pytest.fixture(scope="module")
def vae_small(mnist_small):
    X, _ = mnist_small
    return VAE(n_components=4, hidden_layer_sizes=(64,), n_iter=2, random_state=0).fit(X)


@pytest.fixture(scope="module")
def cvae(mnist_split):
    X_train, y_train, _, _ = mnist_split
    return CVAE(n_components=20, hidden_layer_sizes=(256,), n_iter=8, learning_rate=2e-3, random_state=0).fit(X_train, y_train)


@pytest.fixture(scope="module")
def digit_classifier(mnist_split):
    X_train, y_train, _, _ = mnist_split
    return LogisticRegression(C=0.1, max_iter=100).fit(X_train, y_train)


# --------------------------------------------------------------------------------------------------
# gradients of the ELBO


CASES = [
    ("bernoulli", "none"),
    ("gaussian", "none"),
    ("bernoulli", "prior_mean"),
    ("gaussian", "prior_mean"),
    ("bernoulli", "concat"),
]


@pytest.mark.parametrize("likelihood, conditioning", CASES)
def test_elbo_gradients_match_finite_differences(likelihood, conditioning):
    d, hidden, k, n_classes, n = 5, 4, 2, 3, 6
    r = np.random.default_rng(42)
    x = r.random((n, d)) if likelihood == "bernoulli" else r.normal(0, 1.5, (n, d))
    eps = r.standard_normal((n, k))
    y = np.array([0, 2, 1, 2, 0, 1], dtype=np.int64)
    net = random_net(d, hidden, k, n_classes, conditioning, seed=7)
    cond = conditioning != "none"
    settings = dict(n_latent=k, likelihood=likelihood, conditioning=conditioning, n_classes=n_classes if cond else 0)
    y_arg = y if cond else None
    variance = 0.7 if likelihood == "gaussian" else 1.0

    # The kernel's per-sample losses against the oracle.
    recon, kl = _core.vae_losses(x, *net, y=y_arg, eps=eps, decoder_variance=variance, **settings)
    want_recon, want_kl = vae_losses64(x, eps, net, y, decoder_variance=variance, **settings)
    np.testing.assert_allclose(recon, want_recon, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kl, want_kl, rtol=1e-12, atol=1e-12)

    loss, enc_grads, dec_grads, cm_grad = _core.vae_gradients(x, eps, *net, y=y_arg, decoder_variance=variance, **settings)
    assert loss == pytest.approx(np.mean(want_recon + want_kl), rel=1e-12)

    def objective():
        rc, k_ = vae_losses64(x, eps, net, y, decoder_variance=variance, **settings)
        return float(np.mean(rc + k_))

    h = 1e-6

    def check(param, got, what):
        want = np.zeros_like(param)
        flat, g = param.reshape(-1), want.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + h
            up = objective()
            flat[i] = orig - h
            down = objective()
            flat[i] = orig
            g[i] = (up - down) / (2 * h)
        assert np.shape(got) == param.shape, what
        err = np.linalg.norm(f64(got) - want)
        assert err <= 1e-6 * np.linalg.norm(want) + 1e-8, f"{what}: error {err:.2e}, norm {np.linalg.norm(want):.2e}"

    enc_w, enc_b, _, dec_w, dec_b, _, class_means = net
    assert len(enc_grads) == len(enc_w) and len(dec_grads) == len(dec_w)
    for i, (gw, gb) in enumerate(enc_grads):
        check(enc_w[i], gw, f"encoder W{i}")
        check(enc_b[i], gb, f"encoder b{i}")
    for i, (gw, gb) in enumerate(dec_grads):
        check(dec_w[i], gw, f"decoder W{i}")
        check(dec_b[i], gb, f"decoder b{i}")
    if conditioning == "prior_mean":
        check(class_means, cm_grad, "class means mu_y")
    else:
        assert cm_grad is None


# --------------------------------------------------------------------------------------------------
# KL term


def test_gaussian_kl_closed_form_and_monte_carlo():
    r = np.random.default_rng(0)
    mu = r.normal(0, 1, (5, 3))
    log_var = r.normal(0, 0.7, (5, 3))
    prior = r.normal(0, 1, (5, 3))
    np.testing.assert_allclose(_core.gaussian_kl(mu, log_var), gaussian_kl64(mu, log_var), rtol=1e-12)
    kl = _core.gaussian_kl(mu, log_var, prior)
    np.testing.assert_allclose(kl, gaussian_kl64(mu, log_var, prior), rtol=1e-12)
    np.testing.assert_allclose(_core.gaussian_kl(mu.astype(np.float32), log_var.astype(np.float32)), gaussian_kl64(mu, log_var), rtol=1e-5)
    # Monte Carlo: KL = E_q[log q(z) - log p(z)].
    m = 200_000
    for i in range(len(mu)):
        sigma = np.exp(0.5 * log_var[i])
        e = r.standard_normal((m, 3))
        z = mu[i] + sigma * e
        log_q = np.sum(-0.5 * e**2 - 0.5 * log_var[i], axis=1)
        log_p = np.sum(-0.5 * (z - prior[i]) ** 2, axis=1)
        diff = log_q - log_p
        assert abs(diff.mean() - kl[i]) < 5 * diff.std() / np.sqrt(m), f"row {i}: MC {diff.mean():.4f} vs {kl[i]:.4f}"


def test_losses_of_a_fitted_model_against_the_oracle(vae_small, mnist):
    X, _ = mnist
    V = X[9000:9020]
    mu, log_var = vae_small.encode(V)
    r = np.random.default_rng(1)
    eps = r.standard_normal((20, 4)).astype(np.float32)
    net = [
        vae_small.encoder_coefs_,
        vae_small.encoder_intercepts_,
        ["relu", "identity"],
        vae_small.decoder_coefs_,
        vae_small.decoder_intercepts_,
        ["relu", "identity"],
        None,
    ]
    recon, kl = _core.vae_losses(V, *net, eps=eps, n_latent=4)
    want_recon, want_kl = vae_losses64(V, eps, net, None, n_latent=4, likelihood="bernoulli", conditioning="none", n_classes=0)
    np.testing.assert_allclose(recon, want_recon, rtol=1e-4)
    np.testing.assert_allclose(kl, want_kl, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(kl, gaussian_kl64(mu, log_var), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mu, mlp64(V, *net[:3])[:, :4], atol=1e-4)


# --------------------------------------------------------------------------------------------------
# log-likelihood estimates


def test_importance_sampled_log_likelihood_bounds(vae2d, mnist_split):
    X_test = mnist_split[2][:200]
    elbo = vae2d.elbo(X_test)
    ll1 = vae2d.log_likelihood(X_test, n_importance=1)
    ll100 = vae2d.log_likelihood(X_test, n_importance=100)
    ll1000 = vae2d.log_likelihood(X_test, n_importance=1000)
    for ll in (ll1, ll100, ll1000):
        assert ll.shape == (200,) and np.all(np.isfinite(ll))
    # K = 1 is an unbiased estimate of the ELBO.
    diff = ll1 - elbo
    assert abs(diff.mean()) < 5 * diff.std() / np.sqrt(len(diff)) + 1e-6
    assert ll100.mean() >= elbo.mean()
    assert ll1.mean() < ll100.mean() <= ll1000.mean() + 0.05
    np.testing.assert_array_equal(vae2d.log_likelihood(X_test, n_importance=100), ll100)  # int random_state


def test_importance_sampling_agrees_with_numerical_integration_in_2d(vae2d, mnist_split):
    X_test = mnist_split[2][:120]
    # Some test digits' posteriors sit 5-6 prior standard deviations out: a grid of +/- 9 holds
    # them whole (the default +/- 6 warns and reads up to half a nat low for them).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = vae2d.log_likelihood(X_test, method="grid", grid_range=9.0, grid_size=451)
    iwae = vae2d.log_likelihood(X_test, n_importance=1000)
    assert grid.shape == (120,) and np.all(np.isfinite(grid))
    gap = grid - iwae
    # The IWAE bound is below log p(x) on average and, with K = 1000 in 2-D, within about a nat of
    # it for most images (images whose posterior the encoder fits badly keep a larger gap) ...
    assert -0.2 < gap.mean() < 3.0, gap.mean()
    assert np.median(np.abs(gap)) < 1.0, np.median(np.abs(gap))
    assert np.mean(np.abs(gap) < 3.0) >= 0.8
    # ... and it closes in on the integral as K grows.
    gap100 = grid - vae2d.log_likelihood(X_test, n_importance=100)
    gap1 = grid - vae2d.log_likelihood(X_test, n_importance=1)
    assert gap1.mean() > gap100.mean() > gap.mean()
    assert grid.mean() > vae2d.elbo(X_test).mean()
    # The grid is fine enough: refining it changes little.
    finer = vae2d.log_likelihood(X_test[:10], method="grid", grid_range=9.0, grid_size=631)
    np.testing.assert_allclose(finer, grid[:10], atol=0.05)


def test_gaussian_decoder_loss_near_zero_is_not_mistaken_for_divergence():
    """With a Gaussian decoder the -ELBO holds the constant 0.5 d log(2 pi var), here about -2.6 per
    sample, so the first minibatch's loss can be near 0: growth is measured without the constant."""
    X = 0.02 * np.random.default_rng(0).standard_normal((2000, 10))
    vae = VAE(
        2,
        hidden_layer_sizes=(16,),
        likelihood="gaussian",
        decoder_variance=0.0941,
        learning_rate=1e-6,
        batch_size=16,
        n_iter=1,
        random_state=0,
    ).fit(X)
    assert len(vae.history_["loss"]) == 1 and np.isfinite(vae.history_["loss"][0])


def test_grid_warns_when_the_posterior_reaches_past_its_edge():
    """A sharp Gaussian decoder puts some posteriors 6-8 prior standard deviations out: a grid of
    +/- 6 misses them (values far below the importance-sampled lower bound) and says so; a wider
    grid integrates them and agrees with the importance-sampled estimate."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((2000, 2))
    X = (Z @ (3 * rng.standard_normal((2, 10))) + 5 + 0.1 * rng.standard_normal((2000, 10))).astype(np.float32)
    vae = VAE(2, hidden_layer_sizes=(32,), likelihood="gaussian", decoder_variance=0.05, n_iter=60, learning_rate=3e-3, random_state=0).fit(
        X
    )
    iwae = vae.log_likelihood(X[:200], n_importance=1000)
    with pytest.warns(RuntimeWarning, match="on the edge of the grid .* increase grid_range"):
        narrow = vae.log_likelihood(X[:200], method="grid")
    assert (narrow - iwae).min() < -10, "the narrow grid misses a posterior's mass"
    with pytest.warns(RuntimeWarning, match="on the edge of the grid"):  # a finer grid misses it just the same
        vae.log_likelihood(X[:200], method="grid", grid_size=901)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wide = vae.log_likelihood(X[:200], method="grid", grid_range=14, grid_size=601)
    assert (wide - iwae).min() > -1.0 and abs(wide.mean() - iwae.mean()) < 0.2


# --------------------------------------------------------------------------------------------------
# training


def test_vae_training_raises_the_elbo(vae2d, mnist_split):
    loss = vae2d.history_["loss"]
    assert len(loss) == 5 and loss[-1] < loss[0]
    for key in ("reconstruction", "kl", "elbo", "time"):
        assert len(vae2d.history_[key]) == 5
    np.testing.assert_allclose(vae2d.history_["elbo"], -np.array(loss))
    assert vae2d.n_iter_ == 5


def test_gaussian_decoder_learns_real_valued_data(rng):
    Z = rng.standard_normal((2000, 2))
    X = 3 * np.tanh(Z @ rng.standard_normal((2, 10))) + 0.1 * rng.standard_normal((2000, 10)) + 5
    model = VAE(
        2, hidden_layer_sizes=(32,), likelihood="gaussian", decoder_variance=0.1, learning_rate=3e-3, n_iter=60, random_state=0
    ).fit(X)
    loss = model.history_["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < 0.2 * loss[0]
    R = model.reconstruct(X)
    assert R.shape == X.shape and np.all(np.isfinite(R))
    corr = [np.corrcoef(X[:, j], R[:, j])[0, 1] for j in range(10)]
    assert np.mean(corr) > 0.85, corr
    assert np.mean(np.sum((X - R) ** 2, axis=1)) < 0.5 * np.sum(X.var(axis=0))
    S = model.sample(5)
    assert S.shape == (5, 10) and np.all(np.isfinite(S))


@pytest.mark.parametrize("scale", [0.05, 30.0])
def test_a_gaussian_decoder_warns_when_the_data_are_not_at_its_scale(scale, rng):
    """The fixed decoder variance (1.0) against data of variance 0.0025 (sklearn's diabetes features
    are like this: the KL term wins and the codes carry nothing) or 900 (unscaled measurements): fit
    says so and names the remedies; standardised data, a matching decoder_variance and the Bernoulli
    decoder stay silent."""
    X = rng.standard_normal((200, 6)) * scale
    small = dict(hidden_layer_sizes=(8,), n_iter=1, random_state=0, n_jobs=1)
    with pytest.warns(UserWarning, match=r"decoder_variance=1\b.*mean variance of .*StandardScaler"):
        VAE(2, likelihood="gaussian", **small).fit(X)
    with pytest.warns(UserWarning, match="decoder_variance"):
        CVAE(2, likelihood="gaussian", **small).fit(X, rng.integers(0, 2, 200))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VAE(2, likelihood="gaussian", **small).fit((X - X.mean(0)) / X.std(0))
        VAE(2, likelihood="gaussian", decoder_variance=scale**2, **small).fit(X)
        VAE(2, **small).fit(rng.random((200, 6)) * min(scale, 1.0))


def test_partial_fit_continues_training(mnist_small, mnist):
    X, _ = mnist_small
    X_test = mnist[0][9000:9500]
    model = VAE(4, hidden_layer_sizes=(64,), n_iter=1, random_state=0).fit(X)
    W = model.encoder_coefs_[0].copy()
    score = model.score(X_test)
    for _ in range(3):
        model.partial_fit(X)
    assert model.n_iter_ == 4 and len(model.history_["loss"]) == 4
    assert not np.array_equal(model.encoder_coefs_[0], W)
    assert model.score(X_test) > score, "training continued from the fitted model"
    assert model.history_["loss"][-1] < model.history_["loss"][0]
    # A first partial_fit initialises the model.
    fresh = VAE(4, hidden_layer_sizes=(64,), random_state=0).partial_fit(X[:256])
    assert fresh.n_iter_ == 1 and fresh.transform(X[:3]).shape == (3, 4)
    assert model.score(X_test) > fresh.score(X_test)


# --------------------------------------------------------------------------------------------------
# API


def test_vae_api_shapes(vae_small, mnist):
    X, _ = mnist
    V = X[9000:9030]
    mu, log_var = vae_small.encode(V)
    assert mu.shape == log_var.shape == (30, 4)
    Z = vae_small.transform(V)
    np.testing.assert_array_equal(Z, mu)
    D = vae_small.decode(Z)
    assert D.shape == (30, 784) and np.all((D >= 0) & (D <= 1))
    np.testing.assert_array_equal(vae_small.reconstruct(V), D)
    e = vae_small.elbo(V)
    assert e.shape == (30,) and np.all(e < 0)
    assert vae_small.score(V) == pytest.approx(float(np.mean(e)))
    S = vae_small.sample(7)
    assert S.shape == (7, 784) and np.all((S >= 0) & (S <= 1))
    assert vae_small.log_likelihood(V, n_importance=10).shape == (30,)
    assert vae_small.fit_transform(X[:2000]).shape == (2000, 4)
    assert [w.shape for w in vae_small.encoder_coefs_] == [(784, 64), (64, 8)]
    assert [w.shape for w in vae_small.decoder_coefs_] == [(4, 64), (64, 784)]
    assert vae_small.n_features_in_ == 784


def test_inference_of_a_row_does_not_depend_on_its_batch(vae_small, mnist):
    """Training steps skip a minibatch's all-zero pixel columns; inference must not: a row gets the
    same bits alone or among rows whose zero columns differ (550 vs 289 non-zero columns here)."""
    X, y = mnist
    V, labels = X[1000:1300], y[1000:1300]
    assert (V != 0).any(axis=0).sum() > (V[:5] != 0).any(axis=0).sum() + 100
    np.testing.assert_array_equal(vae_small.encode(V)[1][:5], vae_small.encode(V[:5])[1])
    np.testing.assert_array_equal(vae_small.transform(V)[:5], vae_small.transform(V[:5]))
    np.testing.assert_array_equal(vae_small.reconstruct(V)[:5], vae_small.reconstruct(V[:5]))
    np.testing.assert_array_equal(vae_small.elbo(V)[:5], vae_small.elbo(V[:5]))
    np.testing.assert_array_equal(vae_small.log_likelihood(V, n_importance=10)[:5], vae_small.log_likelihood(V[:5], n_importance=10))
    cvae = CVAE(n_components=4, hidden_layer_sizes=(32,), conditioning="concat", n_iter=1, random_state=0).fit(X[:1000], y[:1000])
    np.testing.assert_array_equal(cvae.transform(V, labels)[:5], cvae.transform(V[:5], labels[:5]))
    np.testing.assert_array_equal(cvae.elbo(V, labels)[:5], cvae.elbo(V[:5], labels[:5]))


def mean_images_agree(A, B):
    """The mean images of two independent samples agree up to Monte Carlo error (per-pixel z-scores)."""
    A, B = f64(A), f64(B)
    se2 = (A.var(axis=0) + B.var(axis=0)) / len(A) + 1e-10
    z2 = (A.mean(axis=0) - B.mean(axis=0)) ** 2 / se2
    return float(z2.mean())


def test_samples_decode_prior_draws(vae_small, cvae):
    """VAE.sample decodes z ~ N(0, I); CVAE.sample(y) decodes z ~ N(mu_y, I) (prior_mean)."""
    n = 3000
    r = np.random.default_rng(0)
    S = vae_small.sample(n)
    D = vae_small.decode(r.standard_normal((n, 4)).astype(np.float32))
    assert mean_images_agree(S, D) < 1.5
    # Not the same as decoding a wider prior.
    assert mean_images_agree(S, vae_small.decode(3 * r.standard_normal((n, 4)).astype(np.float32))) > 3
    S7 = cvae.sample(n, y=7)
    D7 = cvae.decode((cvae.class_means_[7] + r.standard_normal((n, 20))).astype(np.float32), np.full(n, 7))
    assert mean_images_agree(S7, D7) < 1.5


def test_vae_determinism_threads_float64_and_pickle(mnist_tiny):
    X, _ = mnist_tiny
    fits = [VAE(3, hidden_layer_sizes=(16,), n_iter=2, random_state=5, n_jobs=n).fit(X) for n in (1, 2, 1)]
    for name in ("encoder_coefs_", "encoder_intercepts_", "decoder_coefs_", "decoder_intercepts_"):
        for a, b in zip(getattr(fits[0], name), getattr(fits[1], name)):
            np.testing.assert_array_equal(a, b, err_msg=name)
        for a, b in zip(getattr(fits[0], name), getattr(fits[2], name)):
            np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(fits[0].elbo(X), fits[0].elbo(X))  # reproducible under an int random_state
    np.testing.assert_array_equal(fits[0].sample(3), fits[1].sample(3))
    other = VAE(3, hidden_layer_sizes=(16,), n_iter=2, random_state=6).fit(X)
    assert not np.array_equal(other.encoder_coefs_[0], fits[0].encoder_coefs_[0])
    m64 = VAE(3, hidden_layer_sizes=(16,), n_iter=1, random_state=0, dtype="float64").fit(X)
    assert all(w.dtype == np.float64 for w in m64.encoder_coefs_ + m64.decoder_coefs_)
    # Outputs follow the input's dtype (scikit-learn's convention); samples the model's dtype.
    assert m64.transform(X).dtype == X.dtype and m64.transform(X.astype(np.float64)).dtype == np.float64
    assert m64.sample(2).dtype == np.float64
    again = pickle.loads(pickle.dumps(fits[0]))
    np.testing.assert_array_equal(again.transform(X), fits[0].transform(X))
    fresh = clone(fits[0])
    assert fresh.get_params() == fits[0].get_params() and not hasattr(fresh, "encoder_coefs_")


def test_spec_defaults():
    vp = VAE().get_params()
    assert vp["n_components"] == 20 and tuple(vp["hidden_layer_sizes"]) == (400,) and vp["likelihood"] == "bernoulli"
    assert vp["learning_rate"] == 1e-3 and vp["batch_size"] == 128 and vp["dtype"] == "float32"
    cp = CVAE().get_params()
    assert cp["n_components"] == 20 and cp["conditioning"] == "prior_mean" and set(vp) <= set(cp)


def test_memory_mapped_float64_input(tmp_path, mnist_tiny):
    """A float64 numpy.memmap (np.load(..., mmap_mode="r")) works like the same data in memory."""
    X, y = mnist_tiny
    X = f64(X)
    np.save(tmp_path / "x.npy", X)
    M = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = VAE(2, hidden_layer_sizes=(8,), n_iter=2, random_state=0).fit(X)
    b = VAE(2, hidden_layer_sizes=(8,), n_iter=2, random_state=0).fit(M)
    np.testing.assert_array_equal(a.encoder_coefs_[0], b.encoder_coefs_[0])
    for method in ("transform", "reconstruct", "elbo", "score", "log_likelihood"):
        np.testing.assert_array_equal(getattr(a, method)(M), getattr(a, method)(X), err_msg=method)
    c = CVAE(2, hidden_layer_sizes=(8,), n_iter=1, random_state=0).fit(M, y)
    np.testing.assert_array_equal(c.transform(M, y), c.transform(X, y))


# --------------------------------------------------------------------------------------------------
# CVAE


def test_cvae_class_means_separate_the_classes(cvae, mnist_split):
    _, _, X_test, y_test = mnist_split
    means = cvae.class_means_
    assert means.shape == (10, 20)
    np.testing.assert_array_equal(cvae.classes_, np.arange(10))
    Z = cvae.transform(X_test, y_test)
    assert Z.shape == (2000, 20)
    d = ((Z[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
    own = np.mean(np.argmin(d, axis=1) == y_test)
    assert own > 0.6, f"nearest class mean is the own class for {own:.1%} of the test images"
    # Posterior means lie nearer their own class mean than the other class means, on average.
    own_dist = np.sqrt(d[np.arange(len(y_test)), y_test]).mean()
    other = np.sqrt(d + np.where(np.arange(10)[None, :] == y_test[:, None], np.inf, 0)).min(axis=1).mean()
    assert own_dist < other


def test_cvae_samples_follow_the_requested_class(cvae, digit_classifier):
    # A quick model (8 epochs, 256 hidden units): the bar here is 70%; the quality bar of 90% for a fully
    # trained CVAE is checked by the separate benchmark script.
    labels = np.repeat(np.arange(10), 50)
    S = cvae.sample(500, labels)
    assert S.shape == (500, 784) and np.all((S >= 0) & (S <= 1))
    pred = digit_classifier.predict(S)
    assert np.mean(pred == labels) >= 0.7, np.mean(pred == labels)
    per_class = [np.mean(pred[labels == c] == c) for c in range(10)]
    assert np.median(per_class) >= 0.7, per_class
    # One label for all samples.
    S3 = cvae.sample(40, y=3)
    assert S3.shape == (40, 784)
    assert np.mean(digit_classifier.predict(S3) == 3) >= 0.6


def test_cvae_samples_without_labels_mix_the_classes(cvae, digit_classifier):
    """sample(n) with y=None, as for a VAE: each sample's class drawn uniformly from classes_, so the
    recognised classes spread over all ten digits; reproducible under random_state."""
    import copy

    twin = copy.deepcopy(cvae)
    S = cvae.sample(300)
    assert S.shape == (300, 784) and np.all((S >= 0) & (S <= 1))
    counts = np.bincount(digit_classifier.predict(S), minlength=10)
    assert np.all(counts >= 10), counts  # expected 30 each; 10 is ~4 standard deviations below
    np.testing.assert_array_equal(twin.sample(300), S)
    with pytest.raises(ValueError, match="n_samples"):
        cvae.sample(0)


def test_cvae_api_shapes(cvae, mnist_split):
    _, _, X_test, y_test = mnist_split
    V, t = X_test[:25], y_test[:25]
    mu, log_var = cvae.encode(V, t)
    assert mu.shape == log_var.shape == (25, 20)
    D = cvae.decode(mu, t)
    assert D.shape == (25, 784) and np.all((D >= 0) & (D <= 1))
    np.testing.assert_array_equal(cvae.reconstruct(V, t), D)
    e = cvae.elbo(V, t)
    assert e.shape == (25,) and np.all(np.isfinite(e))
    assert cvae.score(V, t) == pytest.approx(float(np.mean(e)))
    assert cvae.log_likelihood(V, t, n_importance=20).shape == (25,)
    assert cvae.sample(4, y=[1, 2, 3, 4]).shape == (4, 784)


def test_cvae_concat_conditioning_and_string_labels(mnist_small, digit_classifier):
    X, y = mnist_small
    names = np.array(list("abcdefghij"))[y]
    model = CVAE(8, conditioning="concat", hidden_layer_sizes=(64,), n_iter=3, random_state=0).fit(X, names)
    np.testing.assert_array_equal(model.classes_, np.array(list("abcdefghij")))
    assert model.encoder_coefs_[0].shape == (784 + 10, 64) and model.decoder_coefs_[0].shape == (8 + 10, 64)
    np.testing.assert_array_equal(model.class_means_, 0)
    S = model.sample(6, y="c")
    assert S.shape == (6, 784)
    assert model.transform(X[:5], names[:5]).shape == (5, 8)
    with pytest.raises(ValueError, match="unseen|label"):
        model.sample(3, y="z")


def test_cvae_unseen_and_bad_labels_raise(cvae, mnist_split):
    _, _, X_test, y_test = mnist_split
    V, t = X_test[:5], y_test[:5]
    bad = t.copy()
    bad[0] = 11
    with pytest.raises(ValueError, match="unseen|label"):
        cvae.sample(3, y=11)
    with pytest.raises(ValueError, match="unseen|label"):
        cvae.sample(5, y=bad)
    for method in (cvae.transform, cvae.elbo, cvae.encode, cvae.reconstruct):
        with pytest.raises(ValueError, match="unseen|label"):
            method(V, bad)
        with pytest.raises(ValueError, match="y"):
            method(V, t[:3])  # one label per sample
    with pytest.raises(ValueError, match="y"):
        cvae.sample(4, y=[1, 2])
    for method in (cvae.transform, cvae.elbo, cvae.encode, cvae.reconstruct):
        with pytest.raises(ValueError, match="y is required"):
            method(V, None)  # only sample draws the classes when y is None
    with pytest.raises(ValueError, match="unseen|label"):
        cvae.decode(np.zeros((5, 20), dtype=np.float32), bad)


def test_cvae_determinism_and_partial_fit(mnist_tiny):
    X, y = mnist_tiny
    a = CVAE(4, hidden_layer_sizes=(16,), n_iter=2, random_state=1, n_jobs=1).fit(X, y)
    b = CVAE(4, hidden_layer_sizes=(16,), n_iter=2, random_state=1, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(a.class_means_, b.class_means_)
    np.testing.assert_array_equal(a.encoder_coefs_[0], b.encoder_coefs_[0])
    np.testing.assert_array_equal(a.sample(5, y=2), b.sample(5, y=2))
    means = a.class_means_.copy()
    a.partial_fit(X, y)
    assert a.n_iter_ == 3 and not np.array_equal(a.class_means_, means)
    c = CVAE(4, hidden_layer_sizes=(16,), random_state=0).partial_fit(X[:20], y[:20], classes=np.arange(10))
    assert c.class_means_.shape == (10, 4)
    # Later calls may repeat the classes, not change them (as scikit-learn's partial_fit).
    c.partial_fit(X[20:40], y[20:40], classes=np.arange(10))
    with pytest.raises(ValueError, match="classes"):
        c.partial_fit(X[20:40], y[20:40], classes=np.arange(12))
    # Labels outside the given classes are listed as plain values.
    with pytest.raises(ValueError, match=r"not in classes: \[5, 6, 7, 8, 9\]"):
        CVAE(4, hidden_layer_sizes=(16,)).partial_fit(X[:40], np.arange(40) % 10, classes=np.arange(5))
    c64 = CVAE(4, hidden_layer_sizes=(16,), n_iter=1, dtype="float64", random_state=0).fit(X, y)
    assert c64.class_means_.dtype == np.float64 and c64.sample(2, y=0).dtype == np.float64


# --------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("Est", [VAE, CVAE])
@pytest.mark.parametrize(
    "params, name",
    [
        ({"n_components": 0}, "n_components"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"activation": "gelu"}, "activation"),
        ({"batch_size": 0}, "batch_size"),
        ({"n_iter": 0}, "n_iter"),
        ({"decoder_variance": 0.0}, "decoder_variance"),
        ({"beta_1": 1.0}, "beta_1"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_invalid_hyperparameters(Est, params, name, mnist_tiny):
    X, y = mnist_tiny
    with pytest.raises((ValueError, TypeError), match=name):
        Est(**params).fit(X[:50], y[:50])


def test_invalid_conditioning(mnist_tiny):
    X, y = mnist_tiny
    with pytest.raises(ValueError, match="conditioning"):
        CVAE(conditioning="film").fit(X[:50], y[:50])


def test_bad_data(vae_small, vae2d, mnist_tiny, rng):
    X, y = mnist_tiny
    X_nan = X[:50].copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        VAE(2).fit(X_nan)
    with pytest.raises(ValueError, match="NaN"):
        CVAE(2).fit(X_nan, y[:50])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        VAE(2).fit(X[:50] * 2)
    with pytest.raises(ValueError, match="samples|same"):
        CVAE(2).fit(X[:50], y[:40])
    VAE(2, likelihood="gaussian", n_iter=1, hidden_layer_sizes=(8,)).fit(rng.standard_normal((50, 4)) * 5)  # real values ok
    for method in (vae_small.transform, vae_small.encode, vae_small.elbo, vae_small.reconstruct, vae_small.score, vae_small.log_likelihood):
        with pytest.raises(ValueError, match="features"):
            method(X[:5, :100])
        with pytest.raises(ValueError, match="NaN"):
            method(X_nan[:5])
    # The likelihood methods need data in [0, 1] for the Bernoulli decoder; the encoder takes any real input.
    for method in (vae_small.elbo, vae_small.score, vae_small.log_likelihood):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            method(X[:5] + 1)
    for method in (vae_small.transform, vae_small.reconstruct):
        assert np.all(np.isfinite(method(X[:5] + 1)))
    with pytest.raises(ValueError, match="n_components"):
        vae_small.decode(np.zeros((3, 7)))
    with pytest.raises(ValueError, match="method"):
        vae_small.log_likelihood(X[:5], method="exact")
    with pytest.raises(ValueError, match="grid|n_components"):
        vae_small.log_likelihood(X[:5], method="grid")  # 4 latent dimensions
    with pytest.raises((ValueError, TypeError), match="n_importance"):
        vae_small.log_likelihood(X[:5], n_importance=0)
    with pytest.raises((ValueError, TypeError), match="n_samples"):
        vae_small.sample(0)
    with pytest.raises(NotFittedError):
        VAE().transform(X[:3])
    with pytest.raises(NotFittedError):
        VAE().sample(3)
    with pytest.raises(NotFittedError):
        CVAE().sample(3, y=1)


def _small_digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16).astype(np.float32), y[:300]


@pytest.mark.parametrize(
    "change",
    [
        {"n_components": 3},
        {"hidden_layer_sizes": (4, 4)},
        {"activation": "tanh"},
        {"likelihood": "gaussian", "decoder_variance": 0.5},
    ],
    ids=lambda c: ",".join(c),
)
def test_a_fitted_vae_keeps_computing_as_fitted_after_set_params_until_refit(change):
    """set_params changes the next fit, not the fitted network (as scikit-learn's MLPs keep their
    coefs_): transform, score, sample and partial_fit go on with the network as fitted."""
    X, _ = _small_digits()
    vae = VAE(2, hidden_layer_sizes=(8,), n_iter=2, random_state=0, n_jobs=1).fit(X)
    twin = pickle.loads(pickle.dumps(vae))
    vae.set_params(**change)
    np.testing.assert_array_equal(vae.transform(X), twin.transform(X))
    np.testing.assert_array_equal(vae.elbo(X), twin.elbo(X))
    np.testing.assert_array_equal(vae.sample(3), twin.sample(3))
    vae.partial_fit(X)
    twin.partial_fit(X)
    np.testing.assert_array_equal(vae.transform(X), twin.transform(X))
    # The next fit builds the network the parameters now describe.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the Gaussian decoder's scale warning
        vae.fit(X)
    expected = VAE(2, hidden_layer_sizes=(8,), n_iter=2, random_state=0, n_jobs=1).set_params(**change)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected.fit(X)
    np.testing.assert_array_equal(vae.transform(X), expected.transform(X))


def test_a_fitted_cvae_keeps_its_conditioning_after_set_params():
    X, y = _small_digits()
    cvae = CVAE(2, hidden_layer_sizes=(8,), n_iter=2, random_state=0, n_jobs=1).fit(X, y)
    codes = cvae.transform(X, y)
    cvae.set_params(conditioning="concat")
    np.testing.assert_array_equal(cvae.transform(X, y), codes)
    assert cvae.fit(X, y).encoder_coefs_[0].shape[0] == X.shape[1] + 10  # the one-hot labels, once refit


def test_cvae_sample_draws_one_sample_per_label_given():
    X, y = _small_digits()
    cvae = CVAE(2, hidden_layer_sizes=(8,), n_iter=1, random_state=0, n_jobs=1).fit(X, y)
    assert cvae.sample(y=[3, 1, 4]).shape == (3, X.shape[1])
    assert cvae.sample(y=np.array([2, 2])).shape == (2, X.shape[1])
    assert cvae.sample(y=5).shape == (16, X.shape[1])  # one class for the default 16
    assert cvae.sample(3, y=[3, 1, 4]).shape == (3, X.shape[1])
    with pytest.raises(ValueError, match=r"y must hold one label per sample \(2\); got 3"):
        cvae.sample(2, y=[3, 1, 4])


def test_history_holds_plain_numbers():
    X, y = _small_digits()
    for model in (VAE(2, hidden_layer_sizes=(8,), n_iter=2, random_state=0, n_jobs=1).fit(X), CVAE(2, n_iter=1, random_state=0).fit(X, y)):
        kinds = {type(v) for values in model.history_.values() for v in values}
        assert kinds <= {int, float}, kinds
