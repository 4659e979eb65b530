"""A DBN with label units generates chosen digits (Hinton, Osindero & Teh 2006), measured on the MNIST
split (embedded test set: first 8,000 images to train, last 2,000 to test).

    python benches/quality_labels.py [--sizes 500,500,2000] [--n-iter N] [--top-iter N] [--top-k K] [--per-class 100]
                                     [--steps 1000] [--repeats 2] [--label-strength 1.0]
                                     [--init-steps 50] [--out DIR]

With no options it measures ``DBN().fit(X, y)`` and ``sample(y=...)`` with their defaults (n_iter,
k and learning_rate "auto": CD-1 for 10 epochs below; in the top RBM CD-10 for 34 epochs, the last
10 at a tenth of the learning rate; 1,000 Gibbs steps from random features with the label clamped).
Sample quality varies between sampling seeds by a few points, so the samples are drawn --repeats
times (successive ``sample`` calls: new seeds) and the bar is judged on the mean.

- Bar: samples generated for each class are recognised as that class by a classifier trained on the
  real digits (scikit-learn's MLPClassifier) at least 90% of the time, and are diverse: the mean
  pairwise distance between a class's samples, relative to that between its real test digits, is
  reported (1.0: as varied as real digits; near 0: one digit repeated).
- Reported beside it: the same measures for chains started from the up pass of real training digits
  of the class (``sample(init=..., y=...)``), run for --init-steps Gibbs steps with the label clamped,
  and how far their samples moved from the starting digits. This is not the bar (the chains do not
  start from noise); it shows what the label-clamped chain does near the data.
- Also reported: the test error of the DBN's own generative classifier (``DBN.predict``: the label of
  lowest free energy in the top RBM, no fine-tuning), and the per-epoch time of the top layer.

Writes ``quality_labels.md``, ``quality_labels.json``, ``labels_grid.png``,
``labels_grid_from_data.png`` (one row per digit) and the fitted ``dbn_labels.safetensors`` into the
output folder (default benches/results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.neural_network import MLPClassifier

import deepgm
from deepgm import DBN
from deepgm.bench.machine import cpu_model
from deepgm.datasets import load_mnist

HERE = Path(__file__).resolve().parent


def diversity(samples, labels, X_real, y_real):
    """Per class: mean pairwise distance of the samples over that of the real digits of the class."""
    return {int(c): float(pdist(samples[labels == c]).mean() / pdist(X_real[y_real == c][:200]).mean()) for c in np.unique(labels)}


def save_grid(samples, labels, path, per_row=10):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = np.unique(labels)
    fig, axes = plt.subplots(len(classes), per_row, figsize=(per_row, len(classes)))
    for r, c in enumerate(classes):
        for i, image in enumerate(samples[labels == c][:per_row]):
            axes[r, i].imshow(image.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axes[r, i].axis("off")
    fig.savefig(path, dpi=60, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500,500,2000")
    parser.add_argument("--n-iter", type=int, default=None, help="epochs of each lower layer (default: 'auto')")
    parser.add_argument("--top-iter", type=int, default=None, help="epochs of the top (label) RBM (default: 'auto')")
    parser.add_argument("--top-k", type=int, default=None, help="CD-k of the top RBM (default: 'auto', CD-10)")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000, help="Gibbs steps in the top RBM per sample")
    parser.add_argument("--repeats", type=int, default=2, help="sampling runs (new seeds); the bar is judged on their mean")
    parser.add_argument(
        "--label-strength", type=float, default=None, help="sample(label_strength=...): the clamped label unit's value (default: 'auto')"
    )
    parser.add_argument("--init-steps", type=int, default=50, help="Gibbs steps of the chains started from real digits")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--model", default=None, help="a DBN saved by an earlier run (dbn_labels.safetensors): sample, do not fit")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = load_mnist()
    Xtr, ytr, Xte, yte = X[:8000], y[:8000], X[8000:], y[8000:]
    print(f"CPU: {cpu_model()}", flush=True)

    start = time.perf_counter()
    judge = MLPClassifier((500,), max_iter=20, random_state=0).fit(Xtr, ytr)
    judge_accuracy = float(judge.score(Xte, yte))
    print(f"judge (MLPClassifier 500, real digits): test accuracy {100 * judge_accuracy:.1f}% ({time.perf_counter() - start:.0f} s)")

    top_params = {name: value for name, value in (("n_iter", args.top_iter), ("k", args.top_k)) if value is not None}
    layer_params = [{} for _ in sizes[:-1]] + [top_params]
    start = time.perf_counter()
    n_iter = "auto" if args.n_iter is None else args.n_iter
    if args.model is None:
        dbn = DBN(hidden_layer_sizes=sizes, n_iter=n_iter, layer_params=layer_params, random_state=0).fit(Xtr, ytr)
        train_s = time.perf_counter() - start
    else:
        dbn = deepgm.load(args.model)
        sizes = tuple(dbn.hidden_layer_sizes)
        train_s = float(np.sum(dbn.history_["time"]))  # the epochs' time, without the up passes between layers
    top_epochs = [t for layer, t in zip(dbn.history_["layer"], dbn.history_["time"]) if layer == len(sizes)]
    top_k = [k for layer, k in zip(dbn.history_["layer"], dbn.history_["k"]) if layer == len(sizes)]
    top_schedule = f"k {top_k[0]}->{top_k[-1]}" if top_k[0] != top_k[-1] else f"CD-{top_k[0]}"
    top_rates = [r for layer, r in zip(dbn.history_["layer"], dbn.history_.get("learning_rate", [])) if layer == len(sizes)]
    if top_rates and top_rates[0] != top_rates[-1]:
        top_schedule += f", learning rate {top_rates[0]:g} then {top_rates[-1]:g} for the last {top_rates.count(top_rates[-1])} epochs"
    error = 1.0 - dbn.score(Xte, yte)
    if args.model is None:
        dbn.save(out / "dbn_labels.safetensors")  # to sample from again (--model) without refitting
    print(
        f"DBN {sizes} with labels (top RBM {top_schedule}, {len(top_epochs)} epochs): trained in {train_s:.0f} s (top layer {np.mean(top_epochs):.2f} s/epoch); "
        f"generative classifier test error {100 * error:.2f}%"
    )

    labels = np.repeat(dbn.classes_, args.per_class)
    runs = []
    for run in range(args.repeats):
        start = time.perf_counter()
        strength = "auto" if args.label_strength is None else args.label_strength
        samples = dbn.sample(n_steps=args.steps, y=labels, label_strength=strength)
        sample_s = time.perf_counter() - start
        predicted = judge.predict(samples)
        per_class = {int(c): float(np.mean(predicted[labels == c] == c)) for c in dbn.classes_}
        runs.append(
            {"recognised": float(np.mean(predicted == labels)), "per_class": per_class, "diversity": diversity(samples, labels, Xte, yte)}
        )
        spread = runs[-1]["diversity"]
        print(
            f"run {run + 1}: samples recognised as their class: {100 * runs[-1]['recognised']:.1f}% (worst class "
            f"{min(per_class, key=per_class.get)}: {100 * min(per_class.values()):.0f}%); diversity vs real digits: mean "
            f"{np.mean(list(spread.values())):.2f}, min {min(spread.values()):.2f} ({sample_s:.0f} s to sample)"
        )
        if run == 0:
            save_grid(samples, labels, out / "labels_grid.png")
    recognised = float(np.mean([r["recognised"] for r in runs]))
    per_class = {int(c): float(np.mean([r["per_class"][int(c)] for r in runs])) for c in dbn.classes_}
    spread = {int(c): float(np.mean([r["diversity"][int(c)] for r in runs])) for c in dbn.classes_}
    print(
        f"mean of {len(runs)} runs: {100 * recognised:.1f}% recognised (worst class {min(per_class, key=per_class.get)}: {100 * min(per_class.values()):.0f}%)"
    )

    # The same, with each chain started from the up pass of a different real training digit of its
    # class (``init=``): Gibbs with the label clamped for --init-steps steps moves away from it.
    starts = np.concatenate([np.flatnonzero(ytr == c)[: args.per_class] for c in dbn.classes_])
    from_data = dbn.sample(n_steps=args.init_steps, init=Xtr[starts], y=ytr[starts])
    predicted_init = judge.predict(from_data)
    recognised_init = float(np.mean(predicted_init == ytr[starts]))
    spread_init = diversity(from_data, ytr[starts], Xte, yte)
    moved = float(np.mean(np.linalg.norm(from_data - Xtr[starts], axis=1)))
    print(
        f"started from real digits ({args.init_steps} steps): recognised {100 * recognised_init:.1f}%, diversity "
        f"{np.mean(list(spread_init.values())):.2f}, mean distance from the starting digit {moved:.2f}"
    )
    save_grid(from_data, ytr[starts], out / "labels_grid_from_data.png")

    result = {
        "cpu": cpu_model(),
        "sizes": sizes,
        "n_iter": args.n_iter,
        "top_iter": len(top_epochs),
        "top_k": top_k,
        "steps": args.steps,
        "label_strength": "auto" if args.label_strength is None else args.label_strength,
        "per_class": args.per_class,
        "judge_test_accuracy": judge_accuracy,
        "repeats": runs,
        "recognised": recognised,
        "recognised_per_class": per_class,
        "diversity": spread,
        "generative_test_error": error,
        "train_s": train_s,
        "top_epoch_s": float(np.mean(top_epochs)),
        "sample_s": sample_s,
        "bar": 0.9,
        "pass": recognised >= 0.9,
        "init_steps": args.init_steps,
        "recognised_from_data": recognised_init,
        "diversity_from_data": spread_init,
        "distance_from_start": moved,
    }
    (out / "quality_labels.json").write_text(json.dumps(result, indent=2))
    (out / "quality_labels.md").write_text(
        f"# DBN with label units ({cpu_model()})\n\n"
        f"| DBN | top RBM | samples recognised | worst class | diversity (mean / min) | generative test error | train |\n"
        f"|---|---|---|---|---|---|---|\n"
        f"| 784-{'-'.join(map(str, sizes))} + 10 labels | {top_schedule}, {len(top_epochs)} epochs | {100 * recognised:.1f}% | {100 * min(per_class.values()):.0f}% | "
        f"{np.mean(list(spread.values())):.2f} / {min(spread.values()):.2f} | {100 * error:.2f}% | {train_s:.0f} s |\n"
    )
    return 0 if recognised >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
