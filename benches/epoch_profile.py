"""Where the RBM CD-1, VAE, DBN fine-tuning and autoencoder epochs spend their time, against their
GEMM-bound time.

    python benches/epoch_profile.py [--repeats N] [--threads 1 2] [--models rbm vae dbn-finetune autoencoder]

For each thread count, in one process and interleaved repeat by repeat (medians), times:

- ``epoch``: the estimator's own epoch (``RBM._train`` / ``VAE._train`` / ``FineTuner.run``: Python
  loop, progress bar, minibatch selection, per-epoch monitor);
- ``kernel loop``: the same minibatches handed straight to the Rust step (``rbm_cd_step`` /
  ``vae_train_step`` / ``mlp_train_step``) from a bare Python loop;
- ``update`` (fine-tuning only): the SGD-with-momentum pass over every parameter
  (``optimizer_step``), one call per parameter array, as many times as the epoch has steps;
- ``products``: the step's GEMMs alone, same shapes, transposes and order, through ``_core.gemm``;
- ``peak``: the float32 GEMM peak on that many threads (2000x784x1000), measured in the same rounds.

so that epoch - kernel loop is Python between minibatches (and the monitor), kernel loop - products is
the step's work outside its products (sampling, activations, updates, thread hand-offs) and
products - work / peak is what the products' shapes cost against the peak. The RBM's products are
timed in sequence, while ``rbm_cd_step`` overlaps the positive statistics with the negative chain,
so its kernel loop can come out below its products. Prints one Markdown table per model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepgm import RBM, VAE, DBNClassifier, DeepAutoencoder, _core
from deepgm._base import batch_rows
from deepgm._mlp import FineTuner
from deepgm.datasets import load_mnist

PEAK = (2000, 784, 1000)


def median_time(fn, repeats=1):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def products_timer(shapes, n_jobs, repeat):
    """A function running the list of (m, k, n, trans_a, trans_b, beta) products `repeat` times, in order
    (the same operands each time, as the weights of a training loop)."""
    rng = np.random.default_rng(0)
    ops = []
    for m, k, n, ta, tb, beta in shapes:
        a = rng.random((k, m) if ta else (m, k), dtype=np.float32)
        b = rng.random((n, k) if tb else (k, n), dtype=np.float32)
        c = np.zeros((m, n), np.float32)
        ops.append((a, b, c, ta, tb, beta))

    def run():
        for _ in range(repeat):
            for a, b, c, ta, tb, beta in ops:
                _core.gemm(a, b, c, beta=beta, trans_a=ta, trans_b=tb, n_jobs=n_jobs)

    return run


def chain_products(layers, batch, n):
    """The products of one training step of a chain of dense `layers` ((n_in, n_out) each) in the
    order the step runs them, as (m, k, n, trans_a, trans_b, beta), and the FLOP of an epoch of `n` rows."""
    step = [(batch, a, b, False, False, 0.0) for a, b in layers]  # forward
    for i, (a, b) in reversed(list(enumerate(layers))):
        step.append((a, batch, b, True, False, 0.0))  # weight gradient
        if i != 0:
            step.append((batch, b, a, False, True, 0.0))  # input gradient (not for the data)
    flop = sum(2 * n * a * b * (2 if i == 0 else 3) for i, (a, b) in enumerate(layers))
    return step, flop


def rbm_case(X, y, n_jobs, batch=100, nh=500):
    n, nv = X.shape
    model = RBM(nh, batch_size=batch, n_iter=1, random_state=0, n_jobs=n_jobs).fit(X[: 2 * batch])
    rng = np.random.default_rng(1)
    batches = batch_rows(n, batch, rng)

    def kernel_loop():
        for step, rows in enumerate(batches):
            _core.rbm_cd_step(
                X,
                model.components_,
                model.intercept_visible_,
                model.intercept_hidden_,
                model.components_velocity_,
                model.intercept_visible_velocity_,
                model.intercept_hidden_velocity_,
                rows=rows,
                h_samples=None,
                visible="bernoulli",
                hidden="bernoulli",
                k=1,
                learning_rate=0.01,
                momentum=0.5,
                weight_decay=1e-4,
                seed=0,
                step=step,
                n_jobs=n_jobs,
            )

    # Per step: p(h | v_data), p(v | h), p(h | v_model), P_data^T V_data (beta = momentum), P_model^T V_model.
    step = [(batch, nv, nh, False, True, 0.0), (batch, nh, nv, False, False, 0.0), (batch, nv, nh, False, True, 0.0)]
    step += [(nh, batch, nv, True, False, 0.5), (nh, batch, nv, True, False, 1.0)]
    products = products_timer(step, n_jobs, n // batch)
    flop = 5 * 2 * n * nv * nh
    return {
        "epoch": lambda: model._train(X, n_epochs=1, shuffle=True),
        "monitor": lambda: model._monitor(X),
        "kernel loop": kernel_loop,
        "products": products,
    }, flop


def vae_case(X, y, n_jobs, batch=128):
    n, nv = X.shape
    model = VAE(20, batch_size=batch, n_iter=1, random_state=0, n_jobs=n_jobs).fit(X[: 2 * batch])
    net, kwargs = model._net(), model._net_kwargs()
    rng = np.random.default_rng(1)
    batches = batch_rows(n, batch, rng)

    def kernel_loop():
        for step, rows in enumerate(batches):
            model._adam_t += 1
            _core.vae_train_step(
                X, *net, model._adam, rows=rows, y=None, optimizer="adam", learning_rate=1e-3, beta1=0.9, beta2=0.999,
                epsilon=1e-8, t=model._adam_t, weight_decay=0.0, seed=0, step=step, **kwargs,
            )  # fmt: skip

    step, flop = chain_products([(nv, 400), (400, 40), (20, 400), (400, nv)], batch, n)
    products = products_timer(step, n_jobs, n // batch)
    return {
        "epoch": lambda: model._train(X, None, n_epochs=1, shuffle=True),
        "kernel loop": kernel_loop,
        "products": products,
    }, flop


def mlp_case(model, tuner, X, Y, n_jobs, batch=100):
    """A fine-tuning epoch of `model` (fitted, SGD with momentum) through its `tuner`."""
    n = X.shape[0]
    sizes = [w.shape for w in model.coefs_]
    slots = tuner.slots()
    rng = np.random.default_rng(1)
    batches = batch_rows(n, batch, rng)
    sgd = dict(optimizer="sgd", learning_rate=float(model.learning_rate), momentum=float(model.momentum), n_jobs=n_jobs)

    def kernel_loop():
        for step, rows in enumerate(batches):
            _core.mlp_train_step(
                X, Y, model.coefs_, model.intercepts_, tuner.activations, tuner.loss, slots, rows=rows,
                weight_decay=model._finetune_weight_decay(), seed=0, step=step, **sgd,
            )  # fmt: skip

    params = tuner.params()
    grads = [np.zeros_like(p) for p in params]
    update_slots = [[np.zeros_like(p)] for p in params]

    def update():
        for _ in batches:
            for p, g, s in zip(params, grads, update_slots):
                _core.optimizer_step(p, g, s, **sgd)

    step, flop = chain_products(sizes, batch, n)
    products = products_timer(step, n_jobs, n // batch)
    return {
        "epoch": lambda: tuner.run(X, Y, n_epochs=1, seed=0),
        "kernel loop": kernel_loop,
        "update": update,
        "products": products,
    }, flop


def dbn_finetune_case(X, y, n_jobs, batch=100):
    sizes = (500, 500, 2000)
    clf = DBNClassifier(
        sizes, pretrain=False, finetune_iter=1, optimizer="sgd", learning_rate=0.1, momentum=0.9, batch_size=batch,
        random_state=0, n_jobs=n_jobs,
    ).fit(X[: 2 * batch], y[: 2 * batch])  # fmt: skip
    Y = np.zeros((len(y), 10), np.float32)
    Y[np.arange(len(y)), y] = 1
    return mlp_case(clf, FineTuner(clf, clf._hidden_activations(), clf._loss), X, Y, n_jobs, batch)


def autoencoder_case(X, y, n_jobs, batch=100):
    ae = DeepAutoencoder(
        (1000, 500, 250), 30, pretrain=False, finetune_iter=1, optimizer="sgd", learning_rate=0.01, momentum=0.9,
        batch_size=batch, random_state=0, n_jobs=n_jobs,
    ).fit(X[: 2 * batch])  # fmt: skip
    return mlp_case(ae, ae._tuner(), X, X, n_jobs, batch)


CASES = {
    "rbm": ("RBM CD-1 784-500, batch 100", rbm_case),
    "vae": ("VAE 784-400-20, batch 128", vae_case),
    "dbn-finetune": ("DBN fine-tuning 784-500-500-2000-10, batch 100", dbn_finetune_case),
    "autoencoder": ("Autoencoder fine-tuning 784-1000-500-250-30, batch 100", autoencoder_case),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--n-images", type=int, default=10000)
    parser.add_argument("--models", nargs="+", choices=list(CASES), default=["rbm", "vae"])
    args = parser.parse_args()
    X, y = load_mnist()
    X, y = np.ascontiguousarray(X[: args.n_images], dtype=np.float32), y[: args.n_images]
    rng = np.random.default_rng(0)
    pa, pb = rng.random(PEAK[:2], dtype=np.float32), rng.random(PEAK[1:], dtype=np.float32)
    pc = np.empty((PEAK[0], PEAK[2]), np.float32)
    cases = {}
    for t in args.threads:
        for name, make in (CASES[m] for m in args.models):
            parts, flop = make(X, y, t)
            parts["peak"] = lambda t=t: _core.gemm(pa, pb, pc, n_jobs=t)
            cases[(name, t)] = (parts, flop, {k: [] for k in parts})
    for fn in (c[0] for c in cases.values()):  # warm-up
        for f in fn.values():
            f()
    for _ in range(args.repeats):
        for parts, _, times in cases.values():
            for key, fn in parts.items():
                times[key].append(median_time(fn, 5 if key == "peak" else 1))
    peak_flop = 2 * PEAK[0] * PEAK[1] * PEAK[2]
    for name in dict.fromkeys(k[0] for k in cases):
        print(f"\n### {name}, {args.n_images} images (medians of {args.repeats} interleaved rounds)\n")
        print(
            "| threads | peak GFLOP/s | work / peak ms | products ms | update ms | kernel loop ms | epoch ms | monitor ms | epoch % of peak |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for t in args.threads:
            parts, flop, times = cases[(name, t)]
            med = {k: float(np.median(v)) for k, v in times.items()}
            peak = peak_flop / med["peak"]
            bound = flop / peak
            mon = f"{1e3 * med['monitor']:.1f}" if "monitor" in med else "-"
            upd = f"{1e3 * med['update']:.1f}" if "update" in med else "-"
            print(
                f"| {t} | {peak / 1e9:.0f} | {1e3 * bound:.1f} | {1e3 * med['products']:.1f} | {upd} | {1e3 * med['kernel loop']:.1f} "
                f"| {1e3 * med['epoch']:.1f} | {mon} | {100 * bound / med['epoch']:.0f}% |"
            )


if __name__ == "__main__":
    main()
