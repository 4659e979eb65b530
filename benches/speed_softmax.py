"""One training epoch of the softmax-unit models: deepgm against plain NumPy, same data, same run.

    python benches/speed_softmax.py [--repeats N] [--threads N] [--out FILE.json]

- ``CollaborativeRBM`` (100 hidden units, CD-1, batches of 20 users, float32) on MovieLens
  (``../shared/data/movielens-small``), against ``NumpyCollaborativeRBM`` of
  ``deepgm.bench.softmax_reference``: the same algorithm as a careful NumPy user writes it, on dense
  (users x items x rating values) one-hot minibatches whose unrated items are masked out, with BLAS
  products and dense momentum updates.
- ``ReplicatedSoftmax`` (50 hidden units, CD-1, batches of 128 documents, float32) on 20 Newsgroups
  (``../shared/data/20news/docs.feat``, 2,000 words), against ``NumpyReplicatedSoftmax``: dense count
  minibatches, BLAS products, and ``Generator.multinomial`` for the reconstructed documents.

deepgm is timed through ``fit`` with one epoch (so its time includes initialisation and the per-epoch
monitoring; NumPy's is the epoch alone). Each figure is the median of ``--repeats`` runs; the ratio is
NumPy's time over deepgm's (> 1: deepgm is faster). Both use ``--threads`` threads (rayon; OpenBLAS, through
threadpoolctl), by default every core. On a loaded machine prefer ``--threads 1``: OpenBLAS's threads
wait for each other by spinning, and a descheduled one can make a product tens of times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from deepgm import CollaborativeRBM, ReplicatedSoftmax
from deepgm.bench.machine import cpu_model
from deepgm.bench.softmax_reference import NumpyCollaborativeRBM, NumpyReplicatedSoftmax
from deepgm.datasets import load_movielens

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def median_seconds(run, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--movielens", default=str(DATA / "movielens-small"))
    parser.add_argument("--newsgroups", default=str(DATA / "20news" / "docs.feat"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from sklearn.datasets import load_svmlight_file
    from threadpoolctl import threadpool_limits

    results = {"machine": cpu_model(), "logical_cpus": os.cpu_count(), "threads": args.threads, "rows": {}}
    print(f"machine: {results['machine']}, {os.cpu_count()} logical CPUs; {args.threads} threads; median of {args.repeats}", flush=True)

    R, _, _ = load_movielens(args.movielens)
    values = np.unique(R.data)
    R_codes = sp.csr_matrix((np.searchsorted(values, R.data) + 1.0, R.indices, R.indptr), shape=R.shape)
    reference = NumpyCollaborativeRBM(R.shape[1], values.size)
    # The items orientation (which the default picks on MovieLens) trains the same RBM on the transposed matrix: its reference
    # masks dense items x users x values minibatches.
    items_codes = R_codes.T.tocsr()
    reference_items = NumpyCollaborativeRBM(R.shape[0], values.size)
    settings = dict(k=1, n_iter=1, weight_decay=0.01, offsets=False, random_state=0, n_jobs=args.threads)
    rows = {
        "CollaborativeRBM epoch, users orientation (MovieLens, 100 hidden, CD-1)": (
            lambda: CollaborativeRBM(100, orientation="users", **settings).fit(R),
            lambda: reference.fit_epoch(R_codes),
        ),
        "CollaborativeRBM epoch, items orientation (MovieLens, 100 hidden, CD-1)": (
            lambda: CollaborativeRBM(100, orientation="items", **settings).fit(R),
            lambda: reference_items.fit_epoch(items_codes),
        ),
    }
    X, _ = load_svmlight_file(args.newsgroups, n_features=2000, zero_based=False)
    C = sp.csr_matrix(X.astype(np.float32))
    reference_rs = NumpyReplicatedSoftmax(C.shape[1])
    rows["ReplicatedSoftmax epoch (20news, 50 hidden, CD-1)"] = (
        lambda: ReplicatedSoftmax(50, max_iter=1, random_state=0, n_jobs=args.threads).fit(C),
        lambda: reference_rs.fit_epoch(C),
    )
    for name, (deepgm_run, numpy_run) in rows.items():
        with threadpool_limits(args.threads):
            deepgm_run(), numpy_run()  # warm-up: page in the data, start the thread pools
        t_deepgm = median_seconds(deepgm_run, args.repeats)
        with threadpool_limits(args.threads):
            t_numpy = median_seconds(numpy_run, args.repeats)
        results["rows"][name] = dict(deepgm_seconds=t_deepgm, numpy_seconds=t_numpy, numpy_over_deepgm=t_numpy / t_deepgm)
        print(f"  {name:<72} deepgm {t_deepgm:7.3f} s   NumPy {t_numpy:7.3f} s   NumPy/deepgm {t_numpy / t_deepgm:5.1f}x", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
