"""deepgm's default estimators on data they were not tuned on, against the scikit-learn estimator a
user would otherwise pick (the tables of docs/own-data.md).

    python benches/own_data.py [--part classification,regression,autoencoder] [--data NAME ...]
                               [--scaler StandardScaler|MinMaxScaler] [--n-jobs 1] [--out DIR]

- Classification: ``DBNClassifier()`` against ``MLPClassifier()``, 3-fold stratified cross-validation
  (shuffled, seed 0) after the scaler, mean accuracy. Bar: at least MLP's minus 0.02.
- Regression: ``DBNRegressor()`` against ``MLPRegressor()``, 3-fold cross-validation, mean R^2. Bar:
  at least MLP's minus 0.02.
- Autoencoder: ``DeepAutoencoder(n_components=code)`` against ``PCA(code)``, 70/30 split (seed 0),
  held-out squared reconstruction error per row. Bar: no worse than PCA.

Every estimator is at its defaults (``random_state=0``; deepgm's ``n_jobs`` from --n-jobs). Writes
``own_data.md`` and ``own_data.json`` into the output folder (default benches/results).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate, train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from deepgm import DBNClassifier, DBNRegressor, DeepAutoencoder
from deepgm.bench.machine import cpu_model

HERE = Path(__file__).resolve().parent

CLASSIFICATION = {
    "iris": lambda: datasets.load_iris(return_X_y=True),
    "wine": lambda: datasets.load_wine(return_X_y=True),
    "breast_cancer": lambda: datasets.load_breast_cancer(return_X_y=True),
    "digits": lambda: datasets.load_digits(return_X_y=True),
    "make_classification 300x20, 3 classes": lambda: datasets.make_classification(300, 20, n_informative=8, n_classes=3, random_state=0),
    "make_classification 200x20, 2 classes": lambda: datasets.make_classification(200, 20, n_informative=4, n_classes=2, random_state=0),
    "make_classification 1000x20, 4 classes": lambda: datasets.make_classification(1000, 20, n_informative=10, n_classes=4, random_state=0),
    "make_classification 200x50, 4 classes": lambda: datasets.make_classification(200, 50, n_informative=10, n_classes=4, random_state=0),
    "make_classification 1000x50, 2 classes": lambda: datasets.make_classification(1000, 50, n_informative=5, n_classes=2, random_state=0),
}

REGRESSION = {
    "diabetes": lambda: datasets.load_diabetes(return_X_y=True),
    "make_regression 300x20": lambda: datasets.make_regression(300, 20, n_informative=10, noise=10, random_state=0),
    "make_regression 200x50": lambda: datasets.make_regression(200, 50, n_informative=10, noise=20, random_state=0),
    "make_regression 1000x20": lambda: datasets.make_regression(1000, 20, n_informative=5, noise=5, random_state=0),
    "make_friedman1 300x10": lambda: datasets.make_friedman1(300, 10, noise=0.5, random_state=0),
}

#: part -> (data sets, deepgm estimator, scikit-learn estimator, cross-validation splitter)
SUPERVISED = {
    "classification": (CLASSIFICATION, DBNClassifier, MLPClassifier, StratifiedKFold),
    "regression": (REGRESSION, DBNRegressor, MLPRegressor, KFold),
}

#: (features, standardise, code size)
AUTOENCODING = {
    "iris": (lambda: datasets.load_iris(return_X_y=True)[0], True, 2),
    "wine": (lambda: datasets.load_wine(return_X_y=True)[0], True, 5),
    "breast_cancer": (lambda: datasets.load_breast_cancer(return_X_y=True)[0], True, 5),
    "digits / 16": (lambda: datasets.load_digits(return_X_y=True)[0] / 16.0, False, 10),
    "diabetes": (lambda: datasets.load_diabetes(return_X_y=True)[0], True, 5),
}


def cross_validated(estimator, X, y, scaler, cv):
    """Mean test score and mean fit time of ``make_pipeline(scaler(), estimator)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the MLP's max_iter on small data
        result = cross_validate(make_pipeline(scaler(), estimator), X, y, cv=cv, error_score="raise")
    return float(result["test_score"].mean()), float(result["fit_time"].mean())


def supervised(table, ours, theirs, cv, names, scaler, log):
    rows = []
    for name in names:
        X, y = table[name]()
        score, fit_s = cross_validated(ours(), X, y, scaler, cv)
        reference, reference_s = cross_validated(theirs(), X, y, scaler, cv)
        rows.append({"data": name, "deepgm": score, "deepgm_fit_s": fit_s, "sklearn": reference, "sklearn_fit_s": reference_s})
        log(f"  {name}: deepgm {score:.3f} ({fit_s:.1f} s per fold), scikit-learn {reference:.3f} ({reference_s:.1f} s)")
    return rows


def autoencoders(names, n_jobs, log):
    rows = []
    for name in names:
        load, standardise, code = AUTOENCODING[name]
        X_train, X_test = train_test_split(load(), test_size=0.3, random_state=0)
        if standardise:
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        start = time.perf_counter()
        ae = DeepAutoencoder(n_components=code, random_state=0, n_jobs=n_jobs).fit(X_train)
        fit_s = time.perf_counter() - start
        pca = PCA(code).fit(X_train)
        pca_error = float(np.mean(np.sum((X_test - pca.inverse_transform(pca.transform(X_test))) ** 2, axis=1)))
        error = ae.reconstruction_error(X_test)
        rows.append(
            {
                "data": name,
                "code": code,
                "layers": list(ae.hidden_layer_sizes_),
                "pretrained": ae.pretrained_,
                "deepgm": error,
                "deepgm_fit_s": fit_s,
                "pca": pca_error,
            }
        )
        log(f"  {name}, {code}-d code: DeepAutoencoder {ae.hidden_layer_sizes_} {error:.3f} ({fit_s:.1f} s), PCA {pca_error:.3f}")
    return rows


def markdown(results) -> str:
    lines = [f"{results['cpu']}, scaler {results['scaler']}, deepgm n_jobs={results['n_jobs']}", ""]
    for part, ours, theirs in (
        ("classification", "DBNClassifier()", "MLPClassifier()"),
        ("regression", "DBNRegressor() R^2", "MLPRegressor() R^2"),
    ):
        if part in results:
            lines += [f"| data | {ours} | fit | {theirs} | fit | bar met |", "|---|---|---|---|---|---|"]
            for r in results[part]:
                ok = r["deepgm"] >= r["sklearn"] - 0.02
                lines.append(
                    f"| {r['data']} | {r['deepgm']:.3f} | {r['deepgm_fit_s']:.1f} s | {r['sklearn']:.3f} | {r['sklearn_fit_s']:.1f} s | {'yes' if ok else 'NO'} |"
                )
            lines.append("")
    if "autoencoder" in results:
        lines += ["| data | code | DeepAutoencoder() layers | held-out error | fit | PCA | bar met |", "|---|---|---|---|---|---|---|"]
        for r in results["autoencoder"]:
            layers = f"{tuple(r['layers'])}{', pretrained' if r['pretrained'] else ''}"
            ok = r["deepgm"] <= r["pca"]
            lines.append(
                f"| {r['data']} | {r['code']} | {layers} | {r['deepgm']:.3f} | {r['deepgm_fit_s']:.1f} s | {r['pca']:.3f} | {'yes' if ok else 'NO'} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", default="classification,regression,autoencoder")
    # Names hold commas ("make_classification 300x20, 3 classes"): one argument per name.
    parser.add_argument("--data", nargs="+", default=None, help="data set names, each one argument (default: all of each part)")
    parser.add_argument("--scaler", default="StandardScaler", choices=("StandardScaler", "MinMaxScaler"))
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731
    scaler = {"StandardScaler": StandardScaler, "MinMaxScaler": MinMaxScaler}[args.scaler]
    chosen = args.data
    unknown = sorted(set(chosen or ()) - set(CLASSIFICATION) - set(REGRESSION) - set(AUTOENCODING))
    if unknown:
        parser.error(f"unknown data set names {unknown}")
    results = {"cpu": cpu_model(), "scaler": args.scaler, "n_jobs": args.n_jobs}
    parts = args.part.split(",")
    for part, (table, ours, theirs, folds) in SUPERVISED.items():
        if part in parts:
            log(part)
            names = [n for n in table if chosen is None or n in chosen]
            cv = folds(3, shuffle=True, random_state=0)
            make_ours = lambda: ours(random_state=0, n_jobs=args.n_jobs)  # noqa: E731
            results[part] = supervised(table, make_ours, lambda: theirs(random_state=0), cv, names, scaler, log)
    if "autoencoder" in parts:
        log("autoencoder")
        results["autoencoder"] = autoencoders([n for n in AUTOENCODING if chosen is None or n in chosen], args.n_jobs, log)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(results)
    (out / "own_data.md").write_text(md)
    (out / "own_data.json").write_text(json.dumps(results, indent=2))
    log("")
    log(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
