"""Benchmark of deepgm.distributed on this machine: one epoch's worth of data trained by parameter
averaging on a LocalCluster of 1 worker x 2 threads against 2 workers x 1 thread, beside the plain
single-process fit, and the averaging overhead per round (a round's wall time minus its longest
replica's training time: scatter, scheduling, gathering and the row-weighted mean).

    python benches/distributed.py [--rows 8000] [--repeats 3] [--local-steps 10 40] [--out FILE]

It also measures the time of one minibatch step of the networks of the cost model in
docs/distributed.md (DBN 784-500-500-2000-10 fine-tuning, VAE 784-400-20) on 1 and 2 threads.
Figures name the CPU and the load average: the machine may be shared, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

# This file is benches/distributed.py: with its folder first on sys.path, "import distributed" (Dask's
# package) would import this script instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def _models():
    from deepgm import RBM, VAE

    return {
        "RBM CD-1 784-500, batch 100": lambda n_jobs=None: RBM(500, batch_size=100, n_iter=1, random_state=0, n_jobs=n_jobs),
        "VAE 784-400-20, Adam, batch 128": lambda n_jobs=None: VAE(20, batch_size=128, n_iter=1, random_state=0, n_jobs=n_jobs),
    }


def payload_bytes(est) -> int:
    """Bytes of parameters and optimiser state that travel each round, each way, per replica."""
    from deepgm.distributed._phases import RBMPhase, VAEPhase

    phase = RBMPhase(est) if hasattr(est, "components_") else VAEPhase(est)
    total = 0
    for name in phase.averaged:
        stack = [getattr(est, name)]
        while stack:
            value = stack.pop()
            if isinstance(value, np.ndarray):
                total += value.nbytes
            else:
                stack.extend(value)
    return total


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def compare_layouts(make, X, local_steps, repeats, data_dir):
    """One epoch of ``make()`` in this process (2 and 1 threads) and by fit_distributed on a cluster of
    1 worker x 2 threads and one of 2 workers x 1 thread, interleaved repeat by repeat (both clusters
    stay up; the idle one costs nothing), so that load from other processes spreads over all rows.
    Returns medians: fit seconds, and per layout and local_steps the rounds, the step time (the
    replicas' compute time / local_steps) and the overhead per round (time - compute_time)."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from deepgm.distributed import fit_distributed

    layouts = {"1x2": (1, 2), "2x1": (2, 1)}
    with contextlib.ExitStack() as stack:
        clients = {}
        for name, (n_workers, threads) in layouts.items():
            cluster = stack.enter_context(
                LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=True, dashboard_address=":0", silence_logs=50)
            )
            clients[name] = stack.enter_context(Client(cluster, set_as_default=False))
        # X as it would live on a cluster: blocks read from .npy files, then persisted on the workers.
        Xd = {name: da.from_npy_stack(data_dir).persist() for name in clients}
        for name, client in clients.items():  # warm-up: imports, thread pools
            fit_distributed(make(), Xd[name][: len(X) // 4], client=client, local_steps=2)
        for n_jobs in (2, 1):
            make(n_jobs).fit(X[:500])
        raw = {"single": {2: [], 1: []}}
        raw.update({name: {H: [] for H in local_steps} for name in clients})
        for _ in range(repeats):
            for n_jobs in (2, 1):
                raw["single"][n_jobs].append(timed(lambda: make(n_jobs).fit(X))[0])
            for name, client in clients.items():
                for H in local_steps:
                    raw[name][H].append(timed(lambda: fit_distributed(make(), Xd[name], client=client, local_steps=H)))
    out = {"single": {n: statistics.median(t) for n, t in raw["single"].items()}}
    for name in clients:
        out[name] = {}
        for H, runs in raw[name].items():
            hists = [est.history_ for _, est in runs]
            out[name][H] = {
                "fit_s": statistics.median(t for t, _ in runs),
                "rounds": len(hists[0]["round"]),
                "step_ms": 1e3 * statistics.median(c / H for h in hists for c in h["compute_time"]),
                "overhead_per_round_ms": 1e3 * statistics.median(t - c for h in hists for t, c in zip(h["time"], h["compute_time"])),
                # Per fit, outside the rounds: the driver's sample, the shard layout, the phase's scatter.
                "setup_s": statistics.median(t - sum(est.history_["time"]) for t, est in runs),
                "payload_mb": payload_bytes(runs[0][1]) / 1e6,
            }
    return out


def step_times(repeats):
    """ms per minibatch step of the cost model's networks, in this process, on 2 and 1 threads."""
    from deepgm import VAE, DBNClassifier
    from deepgm.datasets import load_mnist

    X, y = load_mnist()
    X, y = X[:2000], y[:2000]
    nets = {
        "DBN 784-500-500-2000-10 fine-tuning, SGD, batch 100": (
            lambda n: DBNClassifier((500, 500, 2000), pretrain=False, finetune_iter=1, random_state=0, n_jobs=n),
            2000 / 100,
        ),
        "VAE 784-400-20, Adam, batch 128": (lambda n: VAE(20, n_iter=1, random_state=0, n_jobs=n), np.ceil(2000 / 128)),
    }
    out = {}
    for name, (make, steps) in nets.items():
        out[name] = {}
        for n_jobs in (2, 1):
            make(n_jobs).fit(X[:300], y[:300]) if "DBN" in name else make(n_jobs).fit(X[:300])
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                make(n_jobs).fit(X, y) if "DBN" in name else make(n_jobs).fit(X)
                times.append(time.perf_counter() - start)
            out[name][n_jobs] = 1e3 * statistics.median(times) / steps
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000, help="MNIST images in the epoch (default 8000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--local-steps", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--out", default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)

    from deepgm.bench.machine import cpu_model
    from deepgm.datasets import load_mnist

    X, _ = load_mnist()
    X = np.ascontiguousarray(X[: args.rows])
    report = {"cpu": cpu_model(), "cores": os.cpu_count(), "rows": args.rows, "load_before": os.getloadavg(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        import dask
        import dask.array as da

        with dask.config.set(scheduler="sync"):
            da.to_npy_stack(tmp, da.from_array(X, chunks=(len(X) // 4, X.shape[1])), axis=0)
        for name, make in _models().items():
            report["models"][name] = compare_layouts(make, X, args.local_steps, args.repeats, tmp)
    report["step_ms"] = step_times(args.repeats)
    report["load_after"] = os.getloadavg()

    print(
        f"Machine: {report['cpu']}, {report['cores']} cores; load average before/after: "
        f"{report['load_before'][0]:.1f} / {report['load_after'][0]:.1f}; {args.rows} MNIST images; medians of {args.repeats}."
    )
    print()
    print("| model | layout | local_steps | rounds | fit (one epoch) | setup per fit | step | overhead per round | bytes per round |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, entry in report["models"].items():
        for n_jobs, seconds in entry["single"].items():
            print(f"| {name} | single process, {n_jobs} thread(s) | - | - | {seconds:.3f} s | - | - | - | - |")
        for layout, label, n_workers in (("1x2", "1 worker x 2 threads", 1), ("2x1", "2 workers x 1 thread", 2)):
            for H, row in entry[layout].items():
                moved = 2 * n_workers * row["payload_mb"]
                print(
                    f"| {name} | {label} | {H} | {row['rounds']} | {row['fit_s']:.3f} s | {row['setup_s']:.2f} s | "
                    f"{row['step_ms']:.2f} ms | "
                    f"{row['overhead_per_round_ms']:.1f} ms | {moved:.1f} MB |"
                )
    print()
    print("| network | step on 2 threads | step on 1 thread |")
    print("|---|---:|---:|")
    for name, times in report["step_ms"].items():
        print(f"| {name} | {times[2]:.2f} ms | {times[1]:.2f} ms |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
