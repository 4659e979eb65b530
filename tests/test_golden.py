"""Golden outputs: every estimator and every kernel of ``deepgm._core``, fitted or called with a fixed
seed and explicit settings, must reproduce the arrays recorded in ``tests/data/golden/`` bit for bit,
on one thread and on two.

The goldens pin behaviour through refactors: a change that alters any result, even in its last bit,
fails here and has to say in its commit which result it changes and why (then re-record with
``python tests/data/golden/record.py``). Every hyperparameter is passed explicitly, so a change of a
default does not change a golden.

Bit-identity holds only on the instruction set the goldens were recorded on: the vectorised loops
may round differently with AVX-512 than with AVX2, and NumPy's own float64 routines do (when the
AVX-512 folder was first recorded, 3 of 644 arrays differed from the AVX2 ones, all in the last bit
of a NumPy exp or standard deviation; deepgm's kernels gave the same bits). So each instruction set
has its own folder of goldens (``tests/data/golden/x86_64-avx2/``, ``.../x86_64-avx512/``), recorded from the same
code; the test compares against the folder of the set this machine dispatches to, and says so when
there is none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import deepgm
from deepgm import _core
from deepgm.datasets import load_mnist

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"


# -- the data ------------------------------------------------------------------------------------------


def mnist(n=300):
    """The first n embedded MNIST images at half resolution, every other pixel of every other row:
    14 x 14 = 196 features (float32 in [0, 1], as sparse as the full images), and their labels."""
    X, y = load_mnist()
    return np.ascontiguousarray(X[:n].reshape(n, 28, 28)[:, ::2, ::2].reshape(n, 196)), y[:n]


def digits(n=400):
    """The first n of scikit-learn's 8x8 digits: pixel values 0-16 (float64) and labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return np.ascontiguousarray(data.data[:n]), data.target[:n]


def diabetes():
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    return np.ascontiguousarray(data.data), data.target


# -- what a case records -------------------------------------------------------------------------------


def flatten(outputs):
    """{name: array}: lists and tuples of arrays become name_0, name_1, ...; numbers 0-d arrays."""
    flat = {}
    for name, value in outputs.items():
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                flat.update(flatten({f"{name}_{i}": item}))
        elif isinstance(value, dict):
            flat.update(flatten({f"{name}.{key}": item for key, item in value.items()}))
        else:
            flat[name] = np.asarray(value)
    return flat


def history(est):
    """The numeric per-epoch history of an estimator, without wall-clock times."""
    return {key: np.asarray(values, dtype=np.float64) for key, values in est.history_.items() if "time" not in key}


def rbm_arrays(rbm):
    return {
        "components": rbm.components_,
        "intercept_hidden": rbm.intercept_hidden_,
        "intercept_visible": rbm.intercept_visible_,
        "h_samples": rbm.h_samples_,
        "visible_mean": rbm.visible_mean_,
    }


def vae_arrays(vae):
    return {
        "encoder_coefs": vae.encoder_coefs_,
        "encoder_intercepts": vae.encoder_intercepts_,
        "decoder_coefs": vae.decoder_coefs_,
        "decoder_intercepts": vae.decoder_intercepts_,
    }


# -- estimator cases -----------------------------------------------------------------------------------

RBM_SCHEDULE = dict(momentum=0.5, final_momentum=0.9, initial_momentum_epochs=1, weight_decay=2e-4)


def rbm_outputs(rbm, X, *, exact=False):
    out = rbm_arrays(rbm)
    out.update(
        history=history(rbm),
        transform=rbm.transform(X[:20]),
        reconstruct=rbm.reconstruct(X[:20]),
        free_energy=rbm.free_energy(X[:20]),
        score_samples=rbm.score_samples(X[:20]),
        gibbs=rbm.gibbs(X[:20]),
        sample=rbm.sample(n_samples=8, n_steps=25),
        sample_means=rbm.sample(n_samples=8, n_steps=5, return_means=True),
    )
    log_z = rbm.log_partition("ais", n_chains=16, n_betas=300, random_state=5)
    out.update(ais_log_z=float(log_z), ais_std_error=log_z.std_error, log_likelihood=rbm.log_likelihood(X[:20], log_z=log_z))
    if exact:
        out["exact_log_z"] = float(rbm.log_partition("exact"))
    return out


def case_rbm_bernoulli_cd1(n_jobs):
    X, _ = mnist()
    rbm = deepgm.RBM(
        32,
        visible="bernoulli",
        hidden="bernoulli",
        k=1,
        persistent=False,
        learning_rate=0.05,
        batch_size=20,
        n_iter=3,
        random_state=0,
        dtype="float32",
        n_jobs=n_jobs,
        verbose=0,
        **RBM_SCHEDULE,
    ).fit(X)
    return rbm_outputs(rbm, X)


def case_rbm_bernoulli_pcd2_float64(n_jobs):
    X, _ = mnist(200)
    rbm = deepgm.RBM(
        24,
        visible="bernoulli",
        hidden="bernoulli",
        k=2,
        persistent=True,
        learning_rate=0.02,
        batch_size=25,
        n_iter=3,
        random_state=1,
        dtype="float64",
        n_jobs=n_jobs,
        verbose=0,
        **RBM_SCHEDULE,
    ).fit(X.astype(np.float64))
    return rbm_outputs(rbm, X.astype(np.float64))


def case_rbm_partial_fit(n_jobs):
    X, _ = mnist(200)
    rbm = deepgm.RBM(
        16,
        visible="bernoulli",
        hidden="bernoulli",
        k=1,
        persistent=True,
        learning_rate=0.05,
        batch_size=20,
        n_iter=1,
        random_state=2,
        dtype="float32",
        n_jobs=n_jobs,
        verbose=0,
        **RBM_SCHEDULE,
    )
    rbm.partial_fit(X[:100]).partial_fit(X[100:])
    out = rbm_arrays(rbm)
    out["history"] = history(rbm)
    return out


def case_rbm_gaussian_visible(n_jobs):
    X, _ = digits()
    rbm = deepgm.RBM(
        12,
        visible="gaussian",
        hidden="bernoulli",
        k=1,
        persistent=False,
        learning_rate=0.01,
        batch_size=40,
        n_iter=3,
        random_state=3,
        dtype="float32",
        n_jobs=n_jobs,
        verbose=0,
        **RBM_SCHEDULE,
    ).fit(X)
    out = rbm_outputs(rbm, X, exact=True)
    out.update(mean=rbm.mean_, scale=rbm.scale_)
    return out


def case_rbm_gaussian_hidden(n_jobs):
    X, _ = mnist(200)
    rbm = deepgm.RBM(
        6,
        visible="bernoulli",
        hidden="gaussian",
        k=1,
        persistent=False,
        learning_rate=0.001,
        batch_size=20,
        n_iter=2,
        random_state=4,
        dtype="float32",
        n_jobs=n_jobs,
        verbose=0,
        **RBM_SCHEDULE,
    ).fit(X)
    out = rbm_arrays(rbm)
    out.update(history=history(rbm), transform=rbm.transform(X[:20]), free_energy=rbm.free_energy(X[:20]), gibbs=rbm.gibbs(X[:10]))
    return out


def case_dbn(n_jobs):
    X, _ = mnist()
    dbn = deepgm.DBN(
        (32, 16),
        visible="bernoulli",
        k=1,
        persistent=False,
        learning_rate=0.05,
        batch_size=20,
        n_iter=2,
        layer_params=None,
        random_state=5,
        dtype="float32",
        n_jobs=n_jobs,
        verbose=0,
        **RBM_SCHEDULE,
    ).fit(X)
    out = {f"rbm{i}": rbm_arrays(r) for i, r in enumerate(dbn.rbms_)}
    out.update(transform=dbn.transform(X[:20]), sample=dbn.sample(n_samples=6, n_steps=20), sample_init=dbn.sample(n_steps=3, init=X[:4]))
    return out


def finetuned_arrays(est):
    return {"coefs": est.coefs_, "intercepts": est.intercepts_, "history": history(est)}


def pretrain_layers(n_layers, learning_rates):
    """layer_params that fix every pretraining RBM's schedule (not left to the RBM defaults)."""
    return [dict(RBM_SCHEDULE, learning_rate=learning_rates[i]) for i in range(n_layers)]


FINETUNE = dict(momentum=0.9, weight_decay=1e-5, tol=1e-4, n_iter_no_change=10)


def case_dbn_classifier(n_jobs):
    X, y = digits()
    X = X / 16.0
    clf = deepgm.DBNClassifier(
        (32, 24),
        pretrain=True,
        pretrain_iter=2,
        pretrain_learning_rate=0.05,
        visible="bernoulli",
        k=1,
        persistent=False,
        pretrain_weight_decay=2e-4,
        layer_params=pretrain_layers(2, [0.05, 0.05]),
        finetune_iter=4,
        optimizer="sgd",
        learning_rate=0.1,
        dropout=0.0,
        batch_size=32,
        early_stopping=True,
        validation_fraction=0.2,
        random_state=6,
        dtype="float32",
        n_jobs=n_jobs,
        verbose=0,
        **FINETUNE,
    ).fit(X, y)
    out = finetuned_arrays(clf)
    out.update(
        {f"rbm{i}": rbm_arrays(r) for i, r in enumerate(clf.rbms_)},
        predict_proba=clf.predict_proba(X[:50]),
        predict=clf.predict(X[:50]),
        transform=clf.transform(X[:50]),
    )
    return out


def case_dbn_classifier_no_pretrain_dropout(n_jobs):
    X, y = digits(300)
    clf = deepgm.DBNClassifier(
        (20,),
        pretrain=False,
        pretrain_iter=1,
        pretrain_learning_rate=0.05,
        visible="bernoulli",
        k=1,
        persistent=False,
        pretrain_weight_decay=2e-4,
        layer_params=None,
        finetune_iter=3,
        optimizer="adam",
        learning_rate=3e-3,
        dropout=0.2,
        batch_size=30,
        early_stopping=False,
        validation_fraction=0.1,
        random_state=7,
        dtype="float64",
        n_jobs=n_jobs,
        verbose=0,
        **FINETUNE,
    ).fit(X / 16.0, y)
    out = finetuned_arrays(clf)
    out.update(predict_proba=clf.predict_proba(X[:50] / 16.0))
    return out


def case_dbn_regressor(n_jobs):
    X, y = diabetes()
    reg = deepgm.DBNRegressor(
        (16,),
        pretrain=True,
        pretrain_iter=2,
        pretrain_learning_rate=0.01,
        visible="gaussian",
        k=1,
        persistent=False,
        pretrain_weight_decay=2e-4,
        layer_params=pretrain_layers(1, [0.01]),
        finetune_iter=4,
        optimizer="adam",
        learning_rate=3e-3,
        dropout=0.0,
        batch_size=40,
        early_stopping=False,
        validation_fraction=0.1,
        random_state=8,
        dtype="float32",
        n_jobs=n_jobs,
        verbose=0,
        **FINETUNE,
    ).fit(X, y)
    out = finetuned_arrays(reg)
    out.update({f"rbm{i}": rbm_arrays(r) for i, r in enumerate(reg.rbms_)}, predict=reg.predict(X[:50]))
    return out


def case_deep_autoencoder(n_jobs):
    X, _ = mnist()
    ae = deepgm.DeepAutoencoder(
        (32, 16),
        4,
        pretrain=True,
        pretrain_iter=2,
        pretrain_learning_rate=0.05,
        loss="cross_entropy",
        k=1,
        persistent=False,
        pretrain_weight_decay=2e-4,
        layer_params=pretrain_layers(3, [0.05, 0.05, 0.001]),
        finetune_iter=3,
        optimizer="adam",
        learning_rate=1e-3,
        dropout=0.0,
        batch_size=25,
        early_stopping=True,
        validation_fraction=0.1,
        random_state=9,
        dtype="float32",
        n_jobs=n_jobs,
        verbose=0,
        **FINETUNE,
    ).fit(X)
    codes = ae.transform(X[:20])
    out = finetuned_arrays(ae)
    out.update(
        {f"rbm{i}": rbm_arrays(r) for i, r in enumerate(ae.rbms_)},
        transform=codes,
        inverse_transform=ae.inverse_transform(codes),
        reconstruct=ae.reconstruct(X[:20]),
        score=ae.score(X[:20]),
    )
    return out


VAE_SETTINGS = dict(learning_rate=2e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=1e-5, verbose=0)


def vae_outputs(vae, X, y=None):
    def labels(n):
        return () if y is None else (y[:n],)

    Z = vae.transform(X[:20], *labels(20))
    mu, log_var = vae.encode(X[:20], *labels(20))
    out = vae_arrays(vae)
    out.update(
        history=history(vae),
        transform=Z,
        mu=mu,
        log_var=log_var,
        decode=vae.decode(Z, *labels(20)),
        reconstruct=vae.reconstruct(X[:20], *labels(20)),
        elbo=vae.elbo(X[:20], *labels(20)),
        log_likelihood=vae.log_likelihood(X[:10], *labels(10), n_importance=30),
    )
    return out


def case_vae_bernoulli(n_jobs):
    X, _ = mnist()
    vae = deepgm.VAE(
        2,
        hidden_layer_sizes=(32,),
        likelihood="bernoulli",
        decoder_variance=1.0,
        activation="relu",
        batch_size=32,
        n_iter=3,
        random_state=10,
        dtype="float32",
        n_jobs=n_jobs,
        **VAE_SETTINGS,
    ).fit(X)
    out = vae_outputs(vae, X)
    out.update(sample=vae.sample(8), log_likelihood_grid=vae.log_likelihood(X[:5], method="grid", grid_size=41, grid_range=8.0))
    return out


def case_vae_gaussian_float64(n_jobs):
    X, _ = digits()
    X = X / 16.0
    vae = deepgm.VAE(
        3,
        hidden_layer_sizes=(24, 16),
        likelihood="gaussian",
        decoder_variance=0.5,
        activation="tanh",
        batch_size=50,
        n_iter=3,
        random_state=11,
        dtype="float64",
        n_jobs=n_jobs,
        **VAE_SETTINGS,
    ).fit(X)
    out = vae_outputs(vae, X)
    out["sample"] = vae.sample(8)
    return out


def case_vae_partial_fit(n_jobs):
    X, _ = mnist(200)
    vae = deepgm.VAE(
        4,
        hidden_layer_sizes=(16,),
        likelihood="bernoulli",
        decoder_variance=1.0,
        activation="softplus",
        batch_size=40,
        n_iter=1,
        random_state=12,
        dtype="float32",
        n_jobs=n_jobs,
        **VAE_SETTINGS,
    )
    vae.partial_fit(X[:100]).partial_fit(X[100:])
    return dict(vae_arrays(vae), history=history(vae))


def cvae_case(conditioning, seed, n_jobs):
    X, y = mnist()
    cvae = deepgm.CVAE(
        2,
        conditioning=conditioning,
        hidden_layer_sizes=(32,),
        likelihood="bernoulli",
        decoder_variance=1.0,
        activation="relu",
        batch_size=32,
        n_iter=3,
        random_state=seed,
        dtype="float32",
        n_jobs=n_jobs,
        **VAE_SETTINGS,
    ).fit(X, y)
    out = vae_outputs(cvae, X, y)
    out.update(sample=cvae.sample(6, y=3), sample_labels=cvae.sample(4, y=y[:4]))
    if conditioning == "prior_mean":
        out["class_means"] = cvae.class_means_
    return out


def case_cvae_prior_mean(n_jobs):
    return cvae_case("prior_mean", 13, n_jobs)


def case_cvae_concat(n_jobs):
    return cvae_case("concat", 14, n_jobs)


# -- kernel cases: deepgm._core called directly --------------------------------------------------------


def rng_and_dtype(seed, dtype):
    return np.random.default_rng(seed), np.dtype(dtype)


def small_rbm(rng, nv, nh, dtype, scale=0.1):
    w = (rng.standard_normal((nh, nv)) * scale).astype(dtype)
    b = (rng.standard_normal(nv) * scale - 1.0).astype(dtype)
    c = (rng.standard_normal(nh) * scale).astype(dtype)
    return w, b, c


def case_kernels_rbm(n_jobs):
    out = {}
    X, _ = mnist(120)
    for dtype in ("float32", "float64"):
        rng, dt = rng_and_dtype(20, dtype)
        data = X.astype(dt)
        # CD-1, PCD-2, Gaussian visible and Gaussian hidden steps, several of each.
        for name, visible, hidden, k, persistent in [
            ("cd1", "bernoulli", "bernoulli", 1, False),
            ("pcd2", "bernoulli", "bernoulli", 2, True),
            ("gauss_visible", "gaussian", "bernoulli", 1, False),
            ("gauss_hidden", "bernoulli", "gaussian", 1, False),
        ]:
            if dtype == "float64" and name in ("pcd2", "gauss_hidden"):
                continue  # float64 dispatch is covered by the other two; the goldens stay small
            w, b, c = small_rbm(rng, 196, 20, dt)
            vw, vb, vc = np.zeros_like(w), np.zeros_like(b), np.zeros_like(c)
            chain = np.zeros((10, 20), dtype=dt) if persistent else None
            x = data if visible == "bernoulli" else np.ascontiguousarray((data - data.mean(0)) / (data.std(0) + 1.0), dtype=dt)
            for step in range(4):
                rows = np.arange(step * 30, step * 30 + 30) % x.shape[0]
                _core.rbm_cd_step(
                    x,
                    w,
                    b,
                    c,
                    vw,
                    vb,
                    vc,
                    rows=rows,
                    h_samples=chain,
                    visible=visible,
                    hidden=hidden,
                    k=k,
                    learning_rate=0.05,
                    momentum=0.5,
                    weight_decay=1e-4,
                    seed=77,
                    step=step,
                    n_jobs=n_jobs,
                )
            key = f"{dtype}.{name}"
            out[f"{key}.cd"] = [w, b, c, vb, vc] + ([chain] if persistent else [])
            v = x[:12]
            out[f"{key}.free_energy"] = _core.rbm_free_energy(v, w, b, c, visible=visible, hidden=hidden, n_jobs=n_jobs)
            out[f"{key}.hidden"] = _core.rbm_hidden(v, w, c, hidden=hidden, seed=3, step=2, n_jobs=n_jobs)
            h = out[f"{key}.hidden"][1]
            out[f"{key}.visible"] = _core.rbm_visible(h, w, b, visible=visible, seed=4, step=1, n_jobs=n_jobs)
            out[f"{key}.gibbs"] = _core.rbm_gibbs(v, w, b, c, n_steps=5, visible=visible, hidden=hidden, seed=5, n_jobs=n_jobs)
            if hidden == "bernoulli":
                betas = np.linspace(0.0, 1.0, 150)
                out[f"{key}.ais"] = _core.rbm_ais(w, b, c, b.copy(), betas, visible=visible, n_chains=12, seed=6, n_jobs=n_jobs)
            if visible == "bernoulli" and hidden == "bernoulli":
                out[f"{key}.pl_drawn"] = _core.rbm_pseudo_likelihood(v, w, b, c, seed=8, step=1, n_jobs=n_jobs)
                flip = np.arange(12) * 17 % 196
                out[f"{key}.pl_flip"] = _core.rbm_pseudo_likelihood(v, w, b, c, flip=flip, n_jobs=n_jobs)
        # Exact log Z, enumerating the visible layer (Bernoulli) and the hidden layer (Gaussian visible).
        w, b, c = small_rbm(rng, 10, 14, dt, scale=0.5)
        out[f"{dtype}.exact_visible"] = _core.rbm_log_partition_exact(w, b, c, visible="bernoulli", max_units=20, n_jobs=n_jobs)
        w, b, c = small_rbm(rng, 30, 12, dt, scale=0.2)
        out[f"{dtype}.exact_gaussian"] = _core.rbm_log_partition_exact(w, b, c, visible="gaussian", max_units=20, n_jobs=n_jobs)
    return out


def mlp(rng, widths, dtype):
    weights = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype) for a, b in zip(widths[:-1], widths[1:])]
    biases = [(rng.standard_normal(b) * 0.1).astype(dtype) for b in widths[1:]]
    return weights, biases


def case_kernels_dense(n_jobs):
    out = {}
    X, y = mnist(150)
    for dtype in ("float32", "float64"):
        rng, dt = rng_and_dtype(21, dtype)
        x = X.astype(dt)
        onehot = np.eye(10, dtype=dt)[y]
        acts = ["relu", "tanh", "identity"]
        for loss, target in [("softmax_cross_entropy", onehot), ("binary_cross_entropy", onehot), ("squared_error", onehot * 2 - 1)]:
            if dtype == "float64" and loss != "softmax_cross_entropy":
                continue  # float64 dispatch is covered by one loss; the goldens stay small
            weights, biases = mlp(rng, [196, 16, 12, 10], dt)
            value, gw, gb, gx = _core.mlp_loss_gradients(x[:12], target[:12], weights, biases, acts, loss, n_jobs=n_jobs)
            out[f"{dtype}.{loss}.gradients"] = [np.float64(value), *gw, *gb, gx]
            out[f"{dtype}.{loss}.forward"] = _core.mlp_forward(x[:12], weights, biases, acts, all_layers=True, n_jobs=n_jobs)
            for optimizer, dropout in [("sgd", 0.0), ("adam", 0.25)]:
                ws = [w.copy() for w in weights]
                bs = [b.copy() for b in biases]
                n_slots = 1 if optimizer == "sgd" else 2
                slots = [[np.zeros_like(p) for _ in range(n_slots)] for pair in zip(ws, bs) for p in pair]
                losses = []
                for t in range(1, 5):
                    rows = (np.arange(30) * 7 + t * 13) % x.shape[0]
                    losses.append(
                        _core.mlp_train_step(
                            x,
                            target,
                            ws,
                            bs,
                            acts,
                            loss,
                            slots,
                            rows=rows,
                            optimizer=optimizer,
                            learning_rate=0.01,
                            momentum=0.9,
                            beta1=0.9,
                            beta2=0.999,
                            epsilon=1e-8,
                            t=t,
                            weight_decay=1e-4,
                            dropout=dropout,
                            seed=9,
                            step=t,
                            n_jobs=n_jobs,
                        )
                    )
                key = f"{dtype}.{loss}.{optimizer}"
                out[f"{key}.params"] = ws + bs
                out[f"{key}.losses"] = np.array(losses)
        param = rng.standard_normal(500).astype(dt)
        grad = rng.standard_normal(500).astype(dt)
        m, v = np.zeros_like(param), np.zeros_like(param)
        for t in range(1, 4):
            _core.optimizer_step(
                param,
                grad,
                [m, v],
                optimizer="adam",
                learning_rate=0.01,
                momentum=0.0,
                beta1=0.9,
                beta2=0.99,
                epsilon=1e-8,
                t=t,
                weight_decay=1e-3,
                n_jobs=n_jobs,
            )
        out[f"{dtype}.optimizer_step"] = [param, m, v]
    return out


def case_kernels_vae(n_jobs):
    out = {}
    X, y = mnist(150)
    y = y.astype(np.int64)
    for dtype in ("float32", "float64"):
        rng, dt = rng_and_dtype(22, dtype)
        x = X.astype(dt)
        for conditioning, likelihood in [("none", "bernoulli"), ("none", "gaussian"), ("prior_mean", "bernoulli"), ("concat", "bernoulli")]:
            if dtype == "float64" and (conditioning, likelihood) != ("prior_mean", "bernoulli"):
                continue  # float64 dispatch is covered by one network; the goldens stay small
            k, h = 3, 12
            extra = 10 if conditioning == "concat" else 0
            enc_w, enc_b = mlp(rng, [196 + extra, h, 2 * k], dt)
            dec_w, dec_b = mlp(rng, [k + extra, h, 196], dt)
            class_means = (rng.standard_normal((10, k)) * 0.5).astype(dt) if conditioning == "prior_mean" else None
            labels = y if conditioning != "none" else None
            settings = dict(
                n_latent=k,
                likelihood=likelihood,
                decoder_variance=0.7,
                conditioning=conditioning,
                n_classes=10 if conditioning != "none" else 0,
                n_jobs=n_jobs,
            )
            net = (enc_w, enc_b, ["tanh", "identity"], dec_w, dec_b, ["relu", "identity"], class_means)
            params = [p for pair in zip(enc_w, enc_b) for p in pair] + [p for pair in zip(dec_w, dec_b) for p in pair]
            params += [class_means] if class_means is not None else []
            slots = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
            results = []
            for t in range(1, 5):
                rows = (np.arange(40) * 11 + t * 7) % x.shape[0]
                results.append(
                    _core.vae_train_step(
                        x,
                        *net,
                        slots,
                        rows=rows,
                        y=labels,
                        optimizer="adam",
                        learning_rate=2e-3,
                        momentum=0.0,
                        beta1=0.9,
                        beta2=0.999,
                        epsilon=1e-8,
                        t=t,
                        weight_decay=1e-4,
                        seed=31,
                        step=t,
                        **settings,
                    )
                )
            key = f"{dtype}.{conditioning}.{likelihood}"
            out[f"{key}.train"] = [np.array(results), *params]
            lab = labels[:10] if labels is not None else None
            out[f"{key}.encode"] = _core.vae_encode(x[:10], *net, y=lab, **settings)
            out[f"{key}.decode"] = _core.vae_decode(out[f"{key}.encode"][0], *net, y=lab, **settings)
            out[f"{key}.losses"] = _core.vae_losses(x[:10], *net, y=lab, seed=5, step=3, **settings)
            eps = rng.standard_normal((10, k)).astype(dt)
            loss, enc_g, dec_g, cm_g = _core.vae_gradients(x[:10], eps, *net, y=lab, **settings)
            out[f"{key}.gradients"] = [np.float64(loss), *[g for pair in enc_g + dec_g for g in pair]] + (
                [cm_g] if cm_g is not None else []
            )
            out[f"{key}.log_likelihood"] = _core.vae_log_likelihood(x[:10], *net, y=lab, n_importance=300, seed=7, **settings)
    return out


def case_kernels_basic(n_jobs):
    out = {}
    for dtype in ("float32", "float64"):
        rng, dt = rng_and_dtype(23, dtype)
        a = rng.standard_normal((70, 40)).astype(dt)
        b = rng.standard_normal((40, 130)).astype(dt)
        c = rng.standard_normal((70, 130)).astype(dt)
        _core.gemm(a, b, c, alpha=0.5, beta=0.25, trans_a=False, trans_b=False, n_jobs=n_jobs)
        ct = rng.standard_normal((40, 40)).astype(dt)
        _core.gemm(a, a, ct, alpha=1.0, beta=1.0, trans_a=True, trans_b=False, n_jobs=n_jobs)
        out[f"{dtype}.gemm"] = [c, ct]
        x = (rng.standard_normal((10, 100)) * 4).astype(dt)
        for name in ("identity", "sigmoid", "tanh", "relu", "softplus"):
            out[f"{dtype}.{name}"] = [_core.activation(x, name, derivative=d, n_jobs=n_jobs) for d in (False, True)]
        bias = rng.standard_normal(100).astype(dt)
        out[f"{dtype}.sigmoid_bernoulli"] = _core.sigmoid_bernoulli(x, bias, seed=1, step=2, n_jobs=n_jobs)
        probs = rng.random((10, 1000)).astype(dt)  # more than one random stream chunk
        out[f"{dtype}.bernoulli"] = _core.bernoulli(probs, seed=3, step=4, n_jobs=n_jobs)
        mean = rng.standard_normal((3, 1500)).astype(dt)  # more than one random stream chunk
        out[f"{dtype}.gaussian"] = _core.gaussian(mean, np.abs(mean) + 0.1, seed=5, step=6, n_jobs=n_jobs)
        mu, lv, pm = (rng.standard_normal((40, 5)).astype(dt) for _ in range(3))
        out[f"{dtype}.gaussian_kl"] = [_core.gaussian_kl(mu, lv), _core.gaussian_kl(mu, lv, pm)]
    return out


CASES = {name[len("case_") :]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


# -- the machine the goldens hold for ------------------------------------------------------------------


def instruction_set():
    """The vector instruction set the kernels dispatch to on this machine ("avx512", "avx2", ...).

    On x86 it is what the CPUID instruction reports to this process, as NumPy reads it: the kernels
    dispatch on the same, and under an emulator (``qemu-x86_64 -cpu Haswell``, see
    ``data/golden/record.py``) that is the emulated CPU, where ``/proc/cpuinfo`` still shows the host.
    """
    import platform

    machine = platform.machine().lower()
    flags = _cpuid_flags() if machine in ("x86_64", "amd64") else None
    if flags is None:
        flags = _proc_cpuinfo_flags()
    if flags is None:
        return f"{machine}-unknown"
    if machine in ("x86_64", "amd64"):
        if {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags:
            return "x86_64-avx512"
        if {"avx2", "fma"} <= flags:
            return "x86_64-avx2"
        return "x86_64-sse"
    return machine


def _cpuid_flags():
    """x86 features from NumPy's CPUID table, named as in /proc/cpuinfo; None without the table."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        return None
    flags = {name.lower() for name, present in __cpu_features__.items() if present}
    return flags | ({"fma"} if "fma3" in flags else set())


def _proc_cpuinfo_flags():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return set()


def golden_folder(instruction_set_name: str) -> Path:
    """The folder of the goldens recorded on that instruction set."""
    return GOLDEN_DIR / instruction_set_name


def recorded_instruction_sets() -> list[str]:
    return sorted(p.name for p in GOLDEN_DIR.iterdir() if p.is_dir() and any(p.glob("*.npz")))


# -- the test ------------------------------------------------------------------------------------------


def assert_bit_identical(case, got, want):
    assert sorted(got) == sorted(want), f"{case}: outputs {sorted(set(got) ^ set(want))} added or missing"
    for name in sorted(want):
        g, w = np.asarray(got[name]), want[name]
        assert g.dtype == w.dtype and g.shape == w.shape, f"{case}/{name}: {g.dtype}{g.shape} vs recorded {w.dtype}{w.shape}"
        if g.tobytes() != w.tobytes():
            diff = np.abs(g.astype(np.float64) - w.astype(np.float64))
            raise AssertionError(
                f"{case}/{name} differs from its golden: {np.count_nonzero(diff)} of {diff.size} values, "
                f"largest difference {np.nanmax(diff) if diff.size else 0:.3g}"
            )


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case, n_jobs):
    here = instruction_set()
    if here not in recorded_instruction_sets():
        pytest.skip(
            f"goldens are bit-exact on the instruction set they were recorded on ({', '.join(recorded_instruction_sets())}); "
            f"this machine dispatches to {here} (record its own with tests/data/golden/record.py)"
        )
    with np.load(golden_folder(here) / f"{case}.npz") as data:
        want = {name: data[name] for name in data.files}
    assert_bit_identical(case, flatten(CASES[case](n_jobs)), want)


def test_every_case_has_a_golden_and_every_golden_a_case():
    assert recorded_instruction_sets(), "no goldens recorded"
    for name in recorded_instruction_sets():
        files = {p.stem for p in golden_folder(name).glob("*.npz")}
        missing, stale = sorted(set(CASES) - files), sorted(files - set(CASES))
        assert files == set(CASES), f"{name}: cases without goldens: {missing}; stale goldens: {stale}"
