"""Cost of the label units' CD step (Python on the Rust GEMM and sampling kernels, NumPy for the
10-wide label group) against Rust's fused ``rbm_cd_step`` on a top RBM of the same shape without a
softmax group: the most a Rust kernel for the label group could save.

    python benches/label_step.py [--batch 100] [--visible 500] [--classes 10] [--hidden 2000] [--pairs 15]

Alternates the two steps (A/B pairs in one process) and prints the median of each and of the ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepgm import RBM, _core, _label_units


def top_rbm(n_visible, n_hidden, batch, seed=0):
    rng = np.random.default_rng(seed)
    rbm = RBM(n_hidden, batch_size=batch)
    rbm.components_ = rng.normal(0, 0.01, (n_hidden, n_visible)).astype(np.float32)
    rbm.intercept_visible_ = np.zeros(n_visible, np.float32)
    rbm.intercept_hidden_ = np.zeros(n_hidden, np.float32)
    rbm.components_velocity_ = np.zeros_like(rbm.components_)
    rbm.intercept_visible_velocity_ = np.zeros_like(rbm.intercept_visible_)
    rbm.intercept_hidden_velocity_ = np.zeros_like(rbm.intercept_hidden_)
    rbm.h_samples_ = np.zeros((batch, n_hidden), np.float32)
    return rbm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--visible", type=int, default=500)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    nv = args.visible + args.classes
    V = np.concatenate(
        [(rng.random((args.batch, args.visible)) < 0.3), np.eye(args.classes)[rng.integers(0, args.classes, args.batch)]], axis=1
    ).astype(np.float32)
    labelled, plain = top_rbm(nv, args.hidden, args.batch), top_rbm(nv, args.hidden, args.batch)

    def label_step(step):
        _label_units.label_cd_step(labelled, V, n_features=args.visible, learning_rate=0.01, momentum=0.5, seed=0, step=step, n_jobs=None)

    def rust_step(step):
        _core.rbm_cd_step(
            V,
            plain.components_,
            plain.intercept_visible_,
            plain.intercept_hidden_,
            plain.components_velocity_,
            plain.intercept_visible_velocity_,
            plain.intercept_hidden_velocity_,
            visible="bernoulli",
            hidden="bernoulli",
            k=1,
            learning_rate=0.01,
            momentum=0.5,
            weight_decay=2e-4,
            seed=0,
            step=step,
        )

    def timed(fn, reps=10):
        start = time.perf_counter()
        for i in range(reps):
            fn(i)
        return (time.perf_counter() - start) / reps

    timed(label_step, 2), timed(rust_step, 2)
    pairs = [(timed(label_step), timed(rust_step)) for _ in range(args.pairs)]
    a, b = np.array(pairs).T
    print(f"batch {args.batch}, {args.visible}+{args.classes} visible, {args.hidden} hidden, {_core.effective_n_jobs(None)} threads")
    print(
        f"label step (Python + Rust kernels) {1e3 * np.median(a):.2f} ms; Rust rbm_cd_step {1e3 * np.median(b):.2f} ms; "
        f"ratio {np.median(a / b):.2f} (pairs {np.min(a / b):.2f}-{np.max(a / b):.2f})"
    )


if __name__ == "__main__":
    main()
