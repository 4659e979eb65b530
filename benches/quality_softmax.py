"""Quality of the softmax-unit models against the classic baselines, computed in the same run.

    python benches/quality_softmax.py [--only movielens|20news] [--seed N] [--out FILE.json]

MovieLens (``../shared/data/movielens-small`` or ``--movielens PATH``, any format
``deepgm.datasets.load_movielens`` reads): 20% of the users are held out, and 20% of their ratings are
hidden; every model trains on all the other ratings and predicts the hidden ones from each held-out user's
remaining ratings. Reported: RMSE of

- the global mean;
- the user+item bias baseline, ``mu + b_u + b_i`` fitted by alternating least squares with an L2 penalty;
- biased matrix factorisation by alternating least squares (``mu + b_u + b_i + p_u . q_i``);
- ``CollaborativeRBM()`` and ``CollaborativeRBM(conditional=True)`` at their defaults (on MovieLens
  the default picks the items orientation: the RBM trained with the items as cases, each user folded in from their ratings);
- the users orientation (the paper's layout) at its own best settings, ``CollaborativeRBM(30,
  orientation="users", weight_decay=0.05)`` with the offsets, its conditional twin, its expected rating
  without the offsets (``offsets=False``), and the paper's model exactly (``shared_weights=False,
  offsets=False``).

The baselines' penalties (and the factorisation's rank) are chosen on a validation split of the training
ratings made the same way (20% of the other users' ratings), then refitted on all training ratings; the
RBMs run at their defaults. Beside each test RMSE the validation RMSE is printed for the baselines at
their chosen settings and for ``CollaborativeRBM()`` and ``CollaborativeRBM(conditional=True)`` fitted
on the validation split's training part: settings are chosen on it, and the test split is read once.
The bar: the RBMs below the bias baseline; the goal, matrix factorisation.

20 Newsgroups (``../shared/data/20news/docs.feat``, svmlight, 2,000 words): a random 80/20 split of the
documents. Reported: the test per-word perplexity of ``ReplicatedSoftmax(50)`` (log Z by AIS per document
length) and of scikit-learn's ``LatentDirichletAllocation(50)`` trained and scored on the same split (its
own ``perplexity``, from its variational bound), and the newsgroup accuracy of a logistic regression on
the 50 hidden probabilities against one on LDA's topic proportions. The bars: perplexity below LDA's,
accuracy at least LDA's.
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
from deepgm.datasets import load_movielens

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# ---------------------------------------------------------------------------------------------
# MovieLens
# ---------------------------------------------------------------------------------------------


def hold_out(R, users_fraction, ratings_fraction, rng, among=None):
    """(train, test): ``ratings_fraction`` of the ratings of ``users_fraction`` of the users (drawn from
    ``among``, default all) moved from train to test."""
    R = sp.csr_matrix(R)
    candidates = np.arange(R.shape[0]) if among is None else np.asarray(among)
    chosen = rng.choice(candidates, size=int(round(users_fraction * candidates.size)), replace=False)
    hidden = np.zeros(R.nnz, dtype=bool)
    for u in chosen:
        lo, hi = R.indptr[u], R.indptr[u + 1]
        if hi - lo >= 2:
            hidden[lo + rng.choice(hi - lo, size=max(1, int(round(ratings_fraction * (hi - lo)))), replace=False)] = True
    coo = R.tocoo()
    keep = ~hidden
    train = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=R.shape)
    test = sp.csr_matrix((coo.data[hidden], (coo.row[hidden], coo.col[hidden])), shape=R.shape)
    return train, test, chosen


def rmse(pred, truth):
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2)))


def fit_biases(train, lam, n_sweeps=20):
    """User and item biases minimising sum (r - mu - b_u - b_i)^2 + lam (|b_u|^2 + |b_i|^2), by
    alternating exact minimisation over the item and the user biases."""
    coo = train.tocoo()
    mu = coo.data.mean()
    n_u = np.bincount(coo.row, minlength=train.shape[0])
    n_i = np.bincount(coo.col, minlength=train.shape[1])
    b_u, b_i = np.zeros(train.shape[0]), np.zeros(train.shape[1])
    for _ in range(n_sweeps):
        b_i = np.bincount(coo.col, coo.data - mu - b_u[coo.row], train.shape[1]) / (lam + n_i)
        b_u = np.bincount(coo.row, coo.data - mu - b_i[coo.col], train.shape[0]) / (lam + n_u)
    return mu, b_u, b_i


def predict_biases(model, rows, cols):
    mu, b_u, b_i = model
    return mu + b_u[rows] + b_i[cols]


def fit_matrix_factorisation(train, rank, lam, bias_lam, rng, n_sweeps=15):
    """Biased matrix factorisation r ~ mu + b_u + b_i + p_u . q_i by alternating least squares: each
    user's (b_u, p_u) is a ridge regression on the residuals of their ratings given the items' (b_i,
    q_i), and the other way round. The factors' penalty is lam times the user's or item's number of
    ratings (the weighted-lambda regularisation of Zhou et al. 2008, ALS-WR): one penalty for all let
    the many items with a few ratings fit their factors to noise. The biases' penalty is bias_lam, that
    of the bias baseline."""
    csr, csc = sp.csr_matrix(train), sp.csc_matrix(train)
    mu = csr.data.mean()
    P = 0.1 * rng.standard_normal((train.shape[0], rank))
    Q = 0.1 * rng.standard_normal((train.shape[1], rank))
    b_u, b_i = np.zeros(train.shape[0]), np.zeros(train.shape[1])

    def solve(matrix, own_bias, own_factors, other_bias, other_factors):
        # Row j of a CSR matrix is user j; of a CSC matrix, column j is item j.
        for j in range(matrix.indptr.size - 1):
            lo, hi = matrix.indptr[j], matrix.indptr[j + 1]
            if lo == hi:
                own_bias[j], own_factors[j] = 0.0, 0.0
                continue
            others = matrix.indices[lo:hi]
            features = np.hstack([np.ones((hi - lo, 1)), other_factors[others]])
            target = matrix.data[lo:hi] - mu - other_bias[others]
            penalty = np.diag([bias_lam] + [lam * (hi - lo)] * rank)
            solution = np.linalg.solve(features.T @ features + penalty, features.T @ target)
            own_bias[j], own_factors[j] = solution[0], solution[1:]

    for _ in range(n_sweeps):
        solve(csr, b_u, P, b_i, Q)
        solve(csc, b_i, Q, b_u, P)
    return mu, b_u, b_i, P, Q


def predict_factorisation(model, rows, cols):
    mu, b_u, b_i, P, Q = model
    return mu + b_u[rows] + b_i[cols] + np.einsum("nf,nf->n", P[rows], Q[cols])


def movielens(path, seed, log):
    R, _, _ = load_movielens(path)
    rng = np.random.default_rng(seed)
    train, test, test_users = hold_out(R, 0.2, 0.2, rng)
    te = test.tocoo()
    log(f"MovieLens {path}: {R.shape[0]} users, {R.shape[1]} items, {R.nnz} ratings; {train.nnz} to train, {test.nnz} held out")
    # Validation split of the training ratings, among the users not held out.
    others = np.setdiff1d(np.arange(R.shape[0]), test_users)
    fit_part, valid, _ = hold_out(train, 0.25, 0.2, rng, among=others)  # 25% of 80% = 20% of the users
    va = valid.tocoo()
    rows = {}

    def record(name, seconds, pred, **extra):
        rows[name] = dict(rmse=rmse(pred, te.data), fit_seconds=round(seconds, 1), **extra)
        validation = f"  validation {extra['validation_rmse']:.4f}" if "validation_rmse" in extra else ""
        log(f"  {name:<45} RMSE {rows[name]['rmse']:.4f}{validation}   ({seconds:.1f} s)")

    record("global mean", 0.0, np.full(te.nnz, train.data.mean()))

    lams = [1, 2, 5, 10, 25]
    scores = {lam: rmse(predict_biases(fit_biases(fit_part, lam), va.row, va.col), va.data) for lam in lams}
    lam = min(scores, key=scores.get)
    t = time.perf_counter()
    biases = fit_biases(train, lam)
    record(
        f"user+item biases (ALS, lambda={lam})",
        time.perf_counter() - t,
        predict_biases(biases, te.row, te.col),
        lam=lam,
        validation_rmse=scores[lam],
    )

    bias_lam = lam
    grid = [(rank, lam) for rank in (5, 10, 20) for lam in (0.1, 0.2, 0.5, 1.0)]
    scores = {}
    for rank, lam in grid:
        model = fit_matrix_factorisation(fit_part, rank, lam, bias_lam, np.random.default_rng(seed))
        scores[(rank, lam)] = rmse(predict_factorisation(model, va.row, va.col), va.data)
    rank, lam = min(scores, key=scores.get)
    t = time.perf_counter()
    mf = fit_matrix_factorisation(train, rank, lam, bias_lam, np.random.default_rng(seed))
    name = f"biased MF (ALS, rank {rank}, lambda={lam}, biases' lambda={bias_lam})"
    record(
        name,
        time.perf_counter() - t,
        predict_factorisation(mf, te.row, te.col),
        rank=rank,
        lam=lam,
        bias_lam=bias_lam,
        validation_rmse=scores[(rank, lam)],
    )

    # The RBMs' validation figures (fitted on the validation split's training part) are what their
    # defaults may be chosen on; the test figures are read once.
    # n_iter=30: the length these settings were chosen with (n_iter="auto" gives 149 epochs here).
    users = {"orientation": "users", "n_components": 30, "weight_decay": 0.05, "n_iter": 30}
    validated = {"CollaborativeRBM()", "CollaborativeRBM(conditional=True)", "users orientation (30, decay 0.05)", "users, conditional"}
    for name, params in [
        ("CollaborativeRBM()", {}),
        ("CollaborativeRBM(conditional=True)", {"conditional": True}),
        ("users orientation (30, decay 0.05)", users),
        ("users, conditional", users | {"conditional": True}),
        ("users, offsets=False", users | {"offsets": False}),
        ("users, shared_weights=False, offsets=False [paper]", users | {"shared_weights": False, "offsets": False}),
    ]:
        t = time.perf_counter()
        model = CollaborativeRBM(random_state=seed, **params).fit(train)
        seconds = time.perf_counter() - t
        extra = {}
        if name in validated:
            on_part = CollaborativeRBM(random_state=seed, **params).fit(fit_part)
            extra["validation_rmse"] = rmse(on_part.predict(fit_part, valid).tocoo().data, va.data)
        t = time.perf_counter()
        predicted = model.predict(train, test).tocoo().data
        extra["predict_seconds"] = round(time.perf_counter() - t, 1)
        record(name, seconds, predicted, **extra)

    return rows


# ---------------------------------------------------------------------------------------------
# 20 Newsgroups
# ---------------------------------------------------------------------------------------------


def newsgroups(path, seed, log):
    from sklearn.datasets import load_svmlight_file
    from sklearn.decomposition import LatentDirichletAllocation
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_svmlight_file(str(path), n_features=2000, zero_based=False)
    X = sp.csr_matrix(X.astype(np.int64))
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed)
    log(f"20 Newsgroups {path}: {X.shape[0]} documents, {X.shape[1]} words; {X_train.shape[0]} to train, {X_test.shape[0]} to test")
    rows = {}
    classifier = lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))

    t = time.perf_counter()
    lda = LatentDirichletAllocation(50, random_state=seed).fit(X_train)
    lda_seconds = time.perf_counter() - t
    lda_features = lda.transform(X_train), lda.transform(X_test)
    rows["LatentDirichletAllocation(50)"] = dict(
        perplexity=float(lda.perplexity(X_test)),
        fit_seconds=round(lda_seconds, 1),
        accuracy=float(classifier().fit(lda_features[0], y_train).score(lda_features[1], y_test)),
    )

    t = time.perf_counter()
    rsm = ReplicatedSoftmax(50, random_state=seed).fit(X_train)
    rsm_seconds = time.perf_counter() - t
    t = time.perf_counter()
    log_prob = rsm.score_samples(X_test)
    score_seconds = time.perf_counter() - t
    lengths = np.asarray(X_test.sum(axis=1)).ravel()
    errors = [rsm.log_partition(int(d)).std_error for d in np.unique(lengths)]
    rsm_features = rsm.transform(X_train), rsm.transform(X_test)
    rows["ReplicatedSoftmax(50)"] = dict(
        perplexity=float(np.exp(-log_prob.sum() / lengths.sum())),
        fit_seconds=round(rsm_seconds, 1),
        score_seconds=round(score_seconds, 1),
        ais_std_error_max=float(np.max(errors)),
        ais_std_error_median=float(np.median(errors)),
        accuracy=float(classifier().fit(rsm_features[0], y_train).score(rsm_features[1], y_test)),
    )
    unigram = (np.asarray(X_train.sum(axis=0)).ravel() + 0.5) / (X_train.sum() + 0.5 * X.shape[1])
    rows["unigram"] = dict(perplexity=float(np.exp(-X_test.multiply(np.log(unigram)).sum() / X_test.sum())))
    for name, row in rows.items():
        log(f"  {name:<32} " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("movielens", "20news"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--movielens", default=str(DATA / "movielens-small"))
    parser.add_argument("--newsgroups", default=str(DATA / "20news" / "docs.feat"))
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    log = lambda msg: print(msg, flush=True)
    log(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs; seed {args.seed}")
    results = {"machine": cpu_model(), "seed": args.seed}
    if args.only in (None, "movielens"):
        results["movielens"] = movielens(args.movielens, args.seed, log)
    if args.only in (None, "20news"):
        results["20news"] = newsgroups(args.newsgroups, args.seed, log)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
