"""The quality bars, measured: MNIST test set, first 8,000 images to train,
last 2,000 to test.

    python benches/quality.py [--models rbm,ais,dbn,ae,ae_defaults,vae,cvae] [--references] [--out DIR]

- AIS: log Z within 0.5 nats of the exact value for RBMs small enough to enumerate (10-16 hidden units).
- RBM: 500 hidden units trained with CD-1 and with PCD; AIS log-likelihood of the test images.
- DBNClassifier 784-500-500-2000: test error <= 3.0% (scikit-learn MLP 500-500: 3.2%; BernoulliRBM +
  logistic regression: 3.7%, re-measured here with --references), trained in <= 10 minutes.
- DeepAutoencoder 784-1000-500-250-30: test squared error per image <= 7.0 (PCA, 30 components: 14.3),
  trained in <= 10 minutes.
- DeepAutoencoder() at its defaults (``hidden_layer_sizes="auto"`` picks 1000-500-250 for the split,
  a 30-d code): test squared error per image <= 5.0, trained in <= 10 minutes.
- VAE 784-400-20: test ELBO and importance-sampled log-likelihood (K = 1000); the ELBO within 1 nat of a
  PyTorch VAE trained the same way (when PyTorch is installed).
- CVAE: samples generated for class y recognised as y by a classifier trained on the real digits at
  least 90% of the time.

Writes ``quality.md`` and ``quality.json`` into the output folder (default benches/results).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from deepgm import CVAE, RBM, VAE, DBNClassifier, DeepAutoencoder  # noqa: E402
from deepgm.datasets import load_mnist  # noqa: E402
from deepgm.demo import SETTINGS as DEMO_SETTINGS  # noqa: E402

FULL = DEMO_SETTINGS["full"]

#: The settings the bars are measured with: those of ``deepgm demo --full`` (one source of truth).
SETTINGS = {
    key: (dict(value, random_state=0) if isinstance(value, dict) and key != "ais" else value)
    for key, value in FULL.items()
    if key in ("rbm", "ais", "dbn", "ae", "vae", "cvae")
}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def ais_vs_exact(Xtr, log):
    rows = []
    for nh in (10, 12, 16):
        rbm = RBM(nh, n_iter=10, random_state=nh).fit(Xtr)
        exact = rbm.log_partition("exact").log_z
        ais = rbm.log_partition("ais", n_chains=100, n_betas=2000)
        rows.append({"hidden": nh, "exact": exact, "ais": ais.log_z, "std_error": ais.std_error, "error": abs(ais.log_z - exact)})
        log(
            f"  AIS vs exact, {nh} hidden: exact {exact:.3f}, AIS {ais.log_z:.3f} ± {ais.std_error:.3f} (error {abs(ais.log_z - exact):.3f})"
        )
    return {"rows": rows, "max_error": max(r["error"] for r in rows), "bar": 0.5, "pass": all(r["error"] <= 0.5 for r in rows)}


def rbm_likelihoods(Xtr, Xte, log):
    out = {}
    for name, persistent in (("CD-1", False), ("PCD", True)):
        rbm, t = timed(lambda: RBM(**{**SETTINGS["rbm"], "k": 1, "persistent": persistent}).fit(Xtr))
        log_z, t_ais = timed(lambda: rbm.log_partition(**SETTINGS["ais"]))
        out[name] = {
            "train_s": t,
            "ais_s": t_ais,
            "log_z": log_z.log_z,
            "log_z_std_error": log_z.std_error,
            "test_log_likelihood": rbm.log_likelihood(Xte, log_z=log_z),
            "train_log_likelihood": rbm.log_likelihood(Xtr, log_z=log_z),
        }
        log(
            f"  RBM {name}: test log-likelihood {out[name]['test_log_likelihood']:.2f} nats (log Z {log_z.log_z:.2f} ± {log_z.std_error:.2f}; train {t:.0f} s, AIS {t_ais:.0f} s)"
        )
    return out


def dbn_classifier(Xtr, ytr, Xte, yte, log, references):
    clf, t = timed(lambda: DBNClassifier(**SETTINGS["dbn"]).fit(Xtr, ytr))
    err = 1 - clf.score(Xte, yte)
    out = {"test_error": err, "train_s": t, "bar": 0.03, "pass": err <= 0.03 and t <= 600}
    log(f"  DBNClassifier: test error {100 * err:.2f}% in {t:.0f} s")
    if references:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import BernoulliRBM, MLPClassifier
        from sklearn.pipeline import Pipeline

        mlp, t_mlp = timed(lambda: MLPClassifier((500, 500), random_state=0, max_iter=200).fit(Xtr, ytr))
        out["sklearn_mlp_500_500_error"] = 1 - mlp.score(Xte, yte)
        pipe = Pipeline(
            [
                ("rbm", BernoulliRBM(n_components=500, learning_rate=0.06, n_iter=20, random_state=0)),
                ("logistic", LogisticRegression(C=6000, max_iter=1000)),
            ]
        )
        pipe, t_pipe = timed(lambda: pipe.fit(Xtr, ytr))
        out["sklearn_rbm_logistic_error"] = 1 - pipe.score(Xte, yte)
        log(
            f"  references: scikit-learn MLP 500-500 {100 * out['sklearn_mlp_500_500_error']:.2f}% ({t_mlp:.0f} s), "
            f"BernoulliRBM + logistic regression {100 * out['sklearn_rbm_logistic_error']:.2f}% ({t_pipe:.0f} s)"
        )
    return out, clf


def autoencoder(Xtr, Xte, log):
    from sklearn.decomposition import PCA

    ae, t = timed(lambda: DeepAutoencoder(**SETTINGS["ae"]).fit(Xtr))
    err = ae.reconstruction_error(Xte)
    pca = PCA(30, random_state=0).fit(Xtr)
    pca_err = float(np.mean(np.sum((Xte - pca.inverse_transform(pca.transform(Xte))) ** 2, axis=1)))
    log(f"  DeepAutoencoder: test squared error {err:.2f} per image (PCA 30: {pca_err:.2f}) in {t:.0f} s")
    return {"test_squared_error": err, "pca_squared_error": pca_err, "train_s": t, "bar": 7.0, "pass": err <= 7.0 and t <= 600}


def autoencoder_at_defaults(Xtr, Xte, log):
    ae, t = timed(lambda: DeepAutoencoder(random_state=0).fit(Xtr))
    err = ae.reconstruction_error(Xte)
    log(f"  DeepAutoencoder() {ae.hidden_layer_sizes_}: test squared error {err:.2f} per image after {ae.n_iter_} epochs in {t:.0f} s")
    return {
        "hidden_layer_sizes": list(ae.hidden_layer_sizes_),
        "finetune_epochs": ae.n_iter_,
        "test_squared_error": err,
        "train_s": t,
        "bar": 5.0,
        "pass": err <= 5.0 and t <= 600,
    }


def torch_vae_elbo(Xtr, Xte, epochs, log):
    import reference_torch as rt

    if not rt.TORCH_AVAILABLE:
        return None
    import torch

    model = rt.TorchVAE(n_latent=20, hidden=(400,), learning_rate=1e-3, batch_size=128, seed=0)
    Xt = torch.from_numpy(Xtr)
    start = time.perf_counter()
    for _ in range(epochs):
        model.fit_epoch(Xt)
    t = time.perf_counter() - start
    with torch.no_grad():
        torch.manual_seed(0)
        elbos = [-model.loss(torch.from_numpy(Xte[i : i + 500])).item() for i in range(0, len(Xte), 500)]
    elbo = float(np.mean(elbos))
    log(f"  PyTorch VAE (same model and training): test ELBO {elbo:.2f} in {t:.0f} s")
    return {"test_elbo": elbo, "train_s": t}


def vae(Xtr, Xte, log, with_torch=True):
    model, t = timed(lambda: VAE(**SETTINGS["vae"]).fit(Xtr))
    elbo = model.score(Xte)
    ll, t_ll = timed(lambda: float(np.mean(model.log_likelihood(Xte, n_importance=1000))))
    out = {"test_elbo": elbo, "test_log_likelihood_k1000": ll, "train_s": t, "iwae_s": t_ll}
    log(f"  VAE: test ELBO {elbo:.2f}, importance-sampled log-likelihood (K=1000) {ll:.2f} nats (train {t:.0f} s, IWAE {t_ll:.0f} s)")
    if with_torch:
        ref = torch_vae_elbo(Xtr, Xte, SETTINGS["vae"]["n_iter"], log)
        if ref is not None:
            out["torch"] = ref
            out["elbo_gap_to_torch"] = elbo - ref["test_elbo"]
            out["pass"] = abs(out["elbo_gap_to_torch"]) <= 1.0 or elbo > ref["test_elbo"]
    return out


def cvae(Xtr, ytr, Xte, yte, classifier, log, per_class=200):
    out = {}
    for conditioning in ("prior_mean", "concat"):
        model, t = timed(lambda: CVAE(conditioning=conditioning, **SETTINGS["cvae"]).fit(Xtr, ytr))
        labels = np.repeat(model.classes_, per_class)
        samples = model.sample(len(labels), y=labels)
        recognised = float(np.mean(classifier.predict(samples) == labels))
        per = {int(c): float(np.mean(classifier.predict(samples[labels == c]) == c)) for c in model.classes_}
        # The bar is the CVAE's (the default, prior_mean conditioning); concat is reported beside it.
        bar = 0.9 if conditioning == "prior_mean" else None
        out[conditioning] = {
            "recognised": recognised,
            "per_class": per,
            "test_elbo": model.score(Xte, yte),
            "train_s": t,
            "bar": bar,
            "pass": None if bar is None else recognised >= bar,
        }
        log(
            f"  CVAE ({conditioning}): samples recognised as their class {100 * recognised:.1f}% (worst class "
            f"{min(per, key=per.get)}: {100 * min(per.values()):.0f}%), test ELBO {out[conditioning]['test_elbo']:.2f} ({t:.0f} s)"
        )
    return out


def markdown(results: dict) -> str:
    lines = ["| bar | measured | target | pass |", "|---|---|---|---|"]
    if "ais" in results:
        r = results["ais"]
        lines.append(
            f"| AIS log Z vs exact (10, 12, 16 hidden units) | max error {r['max_error']:.3f} nats | <= 0.5 nats | {'yes' if r['pass'] else 'NO'} |"
        )
    if "rbm" in results:
        r = results["rbm"]
        lines.append(
            f"| RBM 500 hidden, test log-likelihood (AIS, 10,000 temperatures) | CD-1 {r['CD-1']['test_log_likelihood']:.2f}, PCD {r['PCD']['test_log_likelihood']:.2f} nats | reported | - |"
        )
    if "dbn" in results:
        r = results["dbn"]
        ref = (
            f" (sklearn MLP 500-500: {100 * r['sklearn_mlp_500_500_error']:.2f}%, BernoulliRBM + LR: {100 * r['sklearn_rbm_logistic_error']:.2f}%)"
            if "sklearn_mlp_500_500_error" in r
            else ""
        )
        lines.append(
            f"| DBNClassifier 784-500-500-2000 test error | {100 * r['test_error']:.2f}% in {r['train_s']:.0f} s{ref} | <= 3.0%, <= 600 s | {'yes' if r['pass'] else 'NO'} |"
        )
    if "ae" in results:
        r = results["ae"]
        lines.append(
            f"| DeepAutoencoder 784-1000-500-250-30 test squared error per image | {r['test_squared_error']:.2f} in {r['train_s']:.0f} s (PCA 30: {r['pca_squared_error']:.2f}) | <= 7.0, <= 600 s | {'yes' if r['pass'] else 'NO'} |"
        )
    if "ae_defaults" in results:
        r = results["ae_defaults"]
        layers = "-".join(str(n) for n in r["hidden_layer_sizes"])
        lines.append(
            f"| DeepAutoencoder() at its defaults ({layers}-30) test squared error per image | {r['test_squared_error']:.2f} in {r['train_s']:.0f} s | <= 5.0, <= 600 s | {'yes' if r['pass'] else 'NO'} |"
        )
    if "vae" in results:
        r = results["vae"]
        torch_part = f"; PyTorch {r['torch']['test_elbo']:.2f} (gap {r['elbo_gap_to_torch']:+.2f})" if "torch" in r else ""
        lines.append(
            f"| VAE 784-400-20 test ELBO / log-likelihood (K=1000) | {r['test_elbo']:.2f} / {r['test_log_likelihood_k1000']:.2f} nats{torch_part} | ELBO within 1 nat of PyTorch | {('yes' if r.get('pass') else 'NO') if 'pass' in r else '-'} |"
        )
    if "cvae" in results:
        for cond, r in results["cvae"].items():
            target, ok = (">= 90%", "yes" if r["pass"] else "NO") if r["bar"] else ("reported", "-")
            lines.append(f"| CVAE ({cond}) samples recognised as their class | {100 * r['recognised']:.1f}% | {target} | {ok} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", default="ais,rbm,dbn,ae,ae_defaults,vae,cvae", help="comma-separated subset of ais,rbm,dbn,ae,ae_defaults,vae,cvae"
    )
    parser.add_argument("--references", action="store_true", help="also re-measure the scikit-learn references of the DBN bar")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    models = set(args.models.split(","))
    log = lambda m: print(m, flush=True)  # noqa: E731
    X, y = load_mnist()
    Xtr, ytr, Xte, yte = X[:8000], y[:8000], X[8000:], y[8000:]
    results = {"settings": {k: {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in v.items()} for k, v in SETTINGS.items()}}
    start = time.perf_counter()
    classifier = None
    if "ais" in models:
        results["ais"] = ais_vs_exact(Xtr, log)
    if "rbm" in models:
        results["rbm"] = rbm_likelihoods(Xtr, Xte, log)
    if "dbn" in models or "cvae" in models:
        results["dbn"], classifier = dbn_classifier(Xtr, ytr, Xte, yte, log, args.references)
    if "ae" in models:
        results["ae"] = autoencoder(Xtr, Xte, log)
    if "ae_defaults" in models:
        results["ae_defaults"] = autoencoder_at_defaults(Xtr, Xte, log)
    if "vae" in models:
        results["vae"] = vae(Xtr, Xte, log)
    if "cvae" in models:
        results["cvae"] = cvae(Xtr, ytr, Xte, yte, classifier, log)
    results["elapsed_s"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(results)
    (out / "quality.md").write_text(md)
    (out / "quality.json").write_text(json.dumps(results, indent=2, default=float))
    log("")
    log(md)
    log(f"wrote {out / 'quality.md'} and {out / 'quality.json'} ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
