"""``deepgm demo``: trains every model on the embedded MNIST test set (first 8,000 images to train,
last 2,000 to test), prints a summary table and writes an HTML report of what each model learned."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from . import CVAE, DBN, RBM, VAE, DBNClassifier, DeepAutoencoder
from ._base import check_n_jobs
from .bench.machine import cpu_kind, cpu_model
from .datasets import load_mnist

__all__ = ["run_demo", "SETTINGS"]

#: Model sizes and epochs: "quick" (the default, about three minutes on two cores) and "full" (the
#: settings of the quality bars).
SETTINGS = {
    "quick": {
        "rbm": dict(n_components=500, batch_size=100, n_iter=15, k=10),
        "ais": dict(n_chains=100, n_betas=2000),
        "dbn_generative": dict(hidden_layer_sizes=(500, 500, 2000), n_iter=5, layer_params=[{}, {}, {"n_iter": 20}]),
        "dbn": dict(hidden_layer_sizes=(500, 500, 2000), pretrain_iter=5, finetune_iter=30),
        "ae": dict(hidden_layer_sizes=(1000, 500, 250), n_components=30, pretrain_iter=8, finetune_iter=40, weight_decay=1e-4),
        "vae": dict(n_components=20, hidden_layer_sizes=(400,), n_iter=30),
        "vae2d": dict(n_components=2, hidden_layer_sizes=(400,), n_iter=20),
        "cvae": dict(n_components=20, hidden_layer_sizes=(400,), n_iter=30),
        "n_importance": 200,
    },
    "full": {  # also the settings of benches/quality.py
        "rbm": dict(n_components=500, batch_size=100, n_iter=30, k=10),
        "ais": dict(n_chains=100, n_betas=10000),
        "dbn_generative": dict(hidden_layer_sizes=(500, 500, 2000)),
        "dbn": dict(hidden_layer_sizes=(500, 500, 2000), pretrain_iter=10, finetune_iter=60),
        "ae": dict(hidden_layer_sizes=(1000, 500, 250), n_components=30, pretrain_iter=20, finetune_iter=100, weight_decay=1e-4),
        "vae": dict(n_components=20, hidden_layer_sizes=(400,), n_iter=50),
        "vae2d": dict(n_components=2, hidden_layer_sizes=(400,), n_iter=50),
        "cvae": dict(n_components=20, hidden_layer_sizes=(400,), n_iter=50),
        "n_importance": 1000,
    },
}


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run_demo(out="deepgm-report", *, full=False, random_state=0, n_jobs=None, verbose=1, log=print, settings=None):
    """Trains RBM, DBNClassifier, DeepAutoencoder, VAE and CVAE on the embedded MNIST data and writes
    ``<out>/index.html``. Returns the summary rows (model, time in s, metric, value, reference) and the
    path of the index. ``settings`` overrides :data:`SETTINGS` (same keys), e.g. for tiny test runs."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    from . import plotting
    from .report import Report

    cfg = settings or SETTINGS["full" if full else "quick"]
    X, y = load_mnist()
    Xtr, ytr, Xte, yte = X[:8000], y[:8000], X[8000:], y[8000:]
    common = dict(random_state=random_state, n_jobs=n_jobs, verbose=verbose)
    report = Report(out, title="deepgm demo: what each model learned on MNIST")
    rows = []
    show = Xte[:12]

    log("[1/5] RBM 784-500, CD-10")
    rbm, t_rbm = _timed(lambda: RBM(**cfg["rbm"], **common).fit(Xtr))
    log_z = rbm.log_partition(**cfg["ais"])
    ll = rbm.log_likelihood(Xte, log_z=log_z)
    rows.append(["RBM", t_rbm, "test log-likelihood (AIS), nats", ll, f"log Z = {log_z.log_z:.1f} ± {log_z.std_error:.2f}"])
    report.figure(
        "Restricted Boltzmann machine",
        plotting.plot_filters(rbm, 100),
        "rbm_filters.png",
        "The first 100 RBM filters (rows of components_), each scaled to its own range.",
    )
    steps = cfg.get("gibbs_steps", 1000)
    report.figure(
        "Restricted Boltzmann machine",
        plotting.plot_samples(rbm.sample(36, n_steps=steps, return_means=True), title="RBM samples"),
        "rbm_samples.png",
        f"RBM fantasies: 36 chains after {steps:,} steps of Gibbs sampling from random states (visible means).",
    )

    log("[2/5] DBNClassifier 784-500-500-2000-10")
    clf, t_clf = _timed(lambda: DBNClassifier(**cfg["dbn"], **common).fit(Xtr, ytr))
    err = 1 - clf.score(Xte, yte)
    lr, t_lr = _timed(lambda: LogisticRegression(max_iter=200).fit(Xtr, ytr))
    rows.append(["DBNClassifier", t_clf, "test error", err, f"logistic regression: {1 - lr.score(Xte, yte):.4f}"])
    # A generative DBN of its own, fitted with labels (Hinton, Osindero & Teh 2006): its top RBM
    # learns the digits with a softmax group of label units, so that it generates a chosen digit.
    gen_cfg = cfg["dbn_generative"]
    dbn, t_gen = _timed(lambda: DBN(**gen_cfg, random_state=random_state, n_jobs=n_jobs).fit(Xtr, ytr))
    sizes = "-".join(str(v) for v in (X.shape[1],) + tuple(gen_cfg["hidden_layer_sizes"]))
    labels = np.repeat(dbn.classes_, 10)
    samples = dbn.sample(n_steps=steps, y=labels)
    recognised = float(np.mean(lr.predict(samples) == labels))
    rows.append(
        [
            "DBN with labels",
            t_gen,
            "samples recognised as their class",
            recognised,
            f"generative classifier test error: {1 - dbn.score(Xte, yte):.4f}",
        ]
    )
    report.figure(
        "Deep belief network",
        plotting.plot_samples(samples, n_cols=10, title="DBN samples, one row per digit"),
        "dbn_samples.png",
        f"A {sizes} DBN with 10 label units in its top RBM generates each digit, one row per label: {steps:,} steps of Gibbs "
        "sampling in the top RBM with the label clamped (at label_strength 1.25, the default), then a down pass to the pixels.",
    )
    report.figure(
        "Deep belief network",
        plotting.plot_training_curves(clf, ["loss"], title="DBNClassifier fine-tuning"),
        "dbn_curves.png",
        "Cross-entropy of the training set during fine-tuning by backpropagation.",
    )

    log("[3/5] DeepAutoencoder 784-1000-500-250-30")
    ae, t_ae = _timed(lambda: DeepAutoencoder(**cfg["ae"], **common).fit(Xtr))
    pca = PCA(n_components=cfg["ae"]["n_components"], random_state=random_state).fit(Xtr)
    pca_rec = pca.inverse_transform(pca.transform(Xte))
    pca_err = float(np.mean(np.sum((Xte - pca_rec) ** 2, axis=1)))
    rows.append(
        [
            "DeepAutoencoder",
            t_ae,
            "test squared error per image",
            ae.reconstruction_error(Xte),
            f"PCA ({cfg['ae']['n_components']} components): {pca_err:.2f}",
        ]
    )
    report.figure(
        "Deep autoencoder",
        plotting.plot_reconstructions(
            show, ae.reconstruct(show), pca.inverse_transform(pca.transform(show)), labels=["input", "autoencoder", "PCA"]
        ),
        "ae_reconstructions.png",
        "Test digits (top), their reconstructions through the 30-unit code of the deep autoencoder (middle) and by PCA with 30 components (bottom).",
        wide=True,
    )
    report.figure(
        "Deep autoencoder",
        plotting.plot_training_curves(ae, ["loss"], title="Autoencoder fine-tuning"),
        "ae_curves.png",
        "Reconstruction cross-entropy of the training set during fine-tuning.",
    )

    log("[4/5] VAE 784-400-20 (and a 2-D one for the latent map)")
    vae, t_vae = _timed(lambda: VAE(**cfg["vae"], **common).fit(Xtr))
    elbo = vae.score(Xte)
    iwae = float(np.mean(vae.log_likelihood(Xte, n_importance=cfg["n_importance"])))
    rows.append(["VAE", t_vae, "test ELBO, nats", elbo, f"importance-sampled log-likelihood (K={cfg['n_importance']}): {iwae:.2f}"])
    vae2, _ = _timed(lambda: VAE(**cfg["vae2d"], **common).fit(Xtr))
    report.figure(
        "Variational autoencoder",
        plotting.plot_samples(vae.sample(36), title="VAE samples"),
        "vae_samples.png",
        "VAE samples: z ~ N(0, I) through the decoder (pixel probabilities).",
    )
    report.figure(
        "Variational autoencoder",
        plotting.plot_reconstructions(show, vae.reconstruct(show), labels=["input", "VAE"]),
        "vae_reconstructions.png",
        "Test digits and their VAE reconstructions decode(E[z | x]).",
        wide=True,
    )
    report.figure(
        "Variational autoencoder",
        plotting.plot_latent_map(vae2.transform(Xte), yte, title="2-D VAE: test digits"),
        "vae_latent_map.png",
        "Posterior means of the test digits under a VAE with a 2-D latent space, coloured by class.",
    )
    report.figure(
        "Variational autoencoder",
        plotting.plot_manifold(vae2, n=15),
        "vae_manifold.png",
        "The decoded manifold of the 2-D VAE: a 15 x 15 grid of latent points in [-2.5, 2.5]^2.",
    )
    report.figure(
        "Variational autoencoder",
        plotting.plot_training_curves(vae, ["elbo", "reconstruction", "kl"], title="VAE training"),
        "vae_curves.png",
        "Per-epoch ELBO, reconstruction term and KL term of the 20-D VAE on the training set.",
        wide=True,
    )

    log("[5/5] CVAE with learned class prior means")
    cvae, t_cvae = _timed(lambda: CVAE(**cfg["cvae"], **common).fit(Xtr, ytr))
    per_class = cfg.get("samples_per_class", 100)
    labels = np.repeat(cvae.classes_, per_class)
    samples = cvae.sample(len(labels), y=labels)
    recognised = float(np.mean(lr.predict(samples) == labels))
    rows.append(["CVAE", t_cvae, "samples recognised as their class", recognised, f"test ELBO: {cvae.score(Xte, yte):.2f}"])
    report.figure(
        "Conditional VAE",
        plotting.plot_class_samples(cvae, 10),
        "cvae_samples.png",
        "CVAE samples, one row per class: z ~ N(mu_y, I) around each class's learned prior mean, decoded.",
    )

    n_threads = n_jobs or __import__("os").cpu_count()
    report.subtitle = (
        f"{'Full' if full else 'Quick'} settings; MNIST test set: 8,000 images to train, 2,000 to test; "
        f"{cpu_model()} ({cpu_kind()}), {n_threads} threads, Python {platform.python_version()}."
    )
    report.table(
        ["model", "training time (s)", "metric", "value", "reference"],
        [[m, f"{t:.1f}", metric, f"{v:.4f}" if isinstance(v, float) else v, ref] for m, t, metric, v, ref in rows],
    )
    index = report.write()
    return rows, index


def format_table(rows) -> str:
    """The summary rows as a plain-text table."""
    header = ["model", "time (s)", "metric", "value", "reference"]
    body = [[m, f"{t:.1f}", metric, f"{v:.4f}", ref] for m, t, metric, v, ref in rows]
    widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in body])


def main_demo(out: str | Path, full: bool, random_state: int, n_jobs, verbose: int):
    check_n_jobs(n_jobs)  # before the first model starts training
    rows, index = run_demo(out, full=full, random_state=random_state, n_jobs=n_jobs, verbose=verbose)
    print()
    print(format_table(rows))
    print(f"\nReport: {Path(index).resolve()}")
    return 0
