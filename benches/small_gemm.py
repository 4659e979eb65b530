"""The two-thread minibatch products call by call: does ``n_jobs`` or the gap before a call matter?

    python benches/small_gemm.py [--calls N]

Times single ``_core.gemm`` calls of 100x784x500 and 1000x784x500 (float32) with ``n_jobs`` None,
2 and 1, interleaved call by call in a random order, after gaps of 0 (back to back), 0.2 ms, 2 ms and
20 ms of the calling thread busy in Python (a training loop's work between steps) or asleep. Prints,
per shape, gap and ``n_jobs``, the 10th, 50th and 90th percentiles of GFLOP/s, and the share of "slow"
two-thread calls: no faster than the median one-thread call (the second thread did not take its half).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepgm import _core

SHAPES = ((100, 784, 500), (1000, 784, 500))
GAPS_MS = (0.0, 0.2, 2.0, 20.0)


def busy(ms):
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60, help="calls per (shape, gap, n_jobs, wait)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print("| shape | gap | wait | n_jobs | p10 GFLOP/s | median | p90 | slow calls |")
    print("|---|---:|---|---|---:|---:|---:|---:|")
    for m, k, n in SHAPES:
        a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
        c = np.empty((m, n), np.float32)
        flop = 2 * m * k * n
        for _ in range(20):
            _core.gemm(a, b, c)
        configs = [(gap, wait, nj) for gap in GAPS_MS for wait in ("busy", "sleep") for nj in (None, 2, 1) if gap or wait == "busy"]
        times = {cfg: [] for cfg in configs}
        order = [cfg for cfg in configs for _ in range(args.calls)]
        rng.shuffle(order)
        for gap, wait, nj in order:
            if gap:
                busy(gap) if wait == "busy" else time.sleep(gap / 1e3)
            t0 = time.perf_counter()
            _core.gemm(a, b, c, n_jobs=nj)
            times[(gap, wait, nj)].append(time.perf_counter() - t0)
        one = np.median([flop / t for cfg, ts in times.items() if cfg[2] == 1 for t in ts])
        for gap, wait, nj in configs:
            rate = flop / np.array(times[(gap, wait, nj)]) / 1e9
            p10, p50, p90 = np.percentile(rate, [10, 50, 90])
            slow = np.mean(rate < one / 1e9) if nj != 1 else float("nan")
            print(f"| {m}x{k}x{n} | {gap} ms | {wait} | {nj} | {p10:.0f} | {p50:.0f} | {p90:.0f} | {100 * slow:.0f}% |")


if __name__ == "__main__":
    main()
