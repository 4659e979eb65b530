"""The ``deepgm`` command: ``demo``, ``train``, ``sample`` and ``bench``.

Errors in options or files are reported as one line on stderr with a non-zero exit status, never as
a traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from scipy import sparse

from . import __version__, _registry

__all__ = ["main"]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# -- hyperparameters as options --------------------------------------------------------------------


def _parse_value(text: str, default):
    """Parses an option's text the way its default suggests (ints, floats, bools, tuples, None/auto)."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if isinstance(default, bool):
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if isinstance(default, str) or default is None:
        # Settings such as early_stopping="auto" also take True or False (no string option is a
        # yes or a no); "1" and "0" stay numbers there.
        if low in ("true", "yes", "on"):
            return True
        if low in ("false", "no", "off"):
            return False
    if text.startswith(("[", "{")):
        return json.loads(text)
    if isinstance(default, tuple) or "," in text:
        parts = [v for v in text.replace(" ", "").strip("()").split(",") if v]
        if isinstance(default, tuple) or all(v.lstrip("-").isdigit() for v in parts):
            return tuple(int(v) for v in parts)  # layer sizes, also where the default is "auto"
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            return int(text)
        except ValueError:
            return _number_or_text(text)
    return _number_or_text(text)


def _number_or_text(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _add_hyperparameter_options(parser, cls):
    defaults = cls().get_params(deep=False)
    group = parser.add_argument_group(f"{cls.__name__} hyperparameters (the estimator's names and defaults)")
    for name, default in defaults.items():
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        group.add_argument(*flags, dest=f"hp_{name}", metavar="VALUE", default=None, help=f"default: {shown}")
    return defaults


def _hyperparameters(args, defaults):
    params = {}
    for name, default in defaults.items():
        text = getattr(args, f"hp_{name}")
        if text is None:
            continue
        try:
            params[name] = _parse_value(text, default)
        except (ValueError, json.JSONDecodeError) as err:
            raise CLIError(f"--{name.replace('_', '-')}: {err}") from None
    return params


# -- data ------------------------------------------------------------------------------------------


def load_data(path, labels=None, label_column=None, supervised=False, header="auto", images=True):
    """(X, y) from the embedded MNIST (path None), an MNIST IDX folder or file, a .npy/.npz (dense, or a
    scipy sparse matrix saved with ``scipy.sparse.save_npz``), an svmlight file, or a CSV. 8-bit data
    are scaled to [0, 1] when ``images`` (pixels), read as they are otherwise (ratings, counts)."""
    if path is None:
        from .datasets import load_mnist

        return load_mnist()
    path = Path(path)
    if not path.exists():
        raise CLIError(f"--data: no such file or folder: {path}")
    try:
        X, y = _read_data(path, label_column, supervised and labels is None, header)
    except CLIError:
        raise
    except Exception as err:  # numpy's readers raise EOFError, ValueError, OSError, ... on bad files
        raise CLIError(f"--data: cannot read {path}: {_first_line(err)}") from None
    if images and not sparse.issparse(X) and X.dtype == np.uint8:
        X = X.astype(np.float32) / 255.0
    if labels is not None:
        y = load_labels(labels, header)
    if y is not None and np.asarray(y).dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
        y = np.asarray(y).astype(np.int64)
    return X, y


def _first_line(err):
    return str(err).splitlines()[0] if str(err) else type(err).__name__


#: File suffixes read as svmlight / libsvm (sparse rows of index:value pairs).
SVMLIGHT_SUFFIXES = (".svmlight", ".svm", ".libsvm")


def _read_data(path, label_column, labels_in_file, header="auto"):
    from .datasets import load_mnist, read_idx

    y = None
    if path.is_dir():
        try:
            X, y = load_mnist(path)
        except (OSError, ValueError) as err:
            raise CLIError(f"--data: {err}") from None
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.keys())
            if {"format", "shape", "data", "indices", "indptr"} <= set(keys) or {"format", "shape", "row", "col"} <= set(keys):
                return sparse.load_npz(path).tocsr(), None  # scipy.sparse.save_npz's layout
            xkey = next((k for k in ("X", "x", "data", "images") if k in data), keys[0] if keys else None)
            if xkey is None:
                raise CLIError(f"--data: {path} holds no arrays")
            X = data[xkey]
            ykey = next((k for k in ("y", "labels", "target", "targets") if k in data), None)
            y = data[ykey] if ykey else None
    elif path.suffix == ".npy":
        X = np.load(path, allow_pickle=False)
    elif path.suffix.lower() in SVMLIGHT_SUFFIXES:
        return _read_svmlight(path, labels_in_file)
    elif path.suffix.lower() in (".csv", ".txt"):
        first = _first_data_line(path)
        if _looks_like_svmlight(first):  # libsvm's data sets often come as .txt
            return _read_svmlight(path, labels_in_file)
        X, y = _read_csv(path, label_column, labels_in_file, header, _delimiter(first))
    else:
        try:
            X = read_idx(path)
        except (OSError, ValueError) as err:
            # svmlight files go by many suffixes (.feat, .dat, ...): try one before giving up.
            try:
                return _read_svmlight(path, labels_in_file)
            except (OSError, ValueError):
                raise CLIError(
                    f"--data: {path}: not an IDX, .npy, .npz, svmlight ({', '.join(SVMLIGHT_SUFFIXES)}) or .csv file ({err})"
                ) from None
    X = np.asarray(X)
    if X.ndim > 2:
        X = X.reshape(X.shape[0], -1)
    return X, y


def _read_svmlight(path, labels_in_file):
    """(X as CSR, y or None) from an svmlight / libsvm file."""
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(str(path))
    return X.tocsr(), (y if labels_in_file else None)


def _first_data_line(path) -> str:
    with open(path) as f:
        return next((line for line in f if line.strip() and not line.lstrip().startswith("#")), "")


def _looks_like_svmlight(line: str) -> bool:
    """Whether a text line reads as svmlight's ``label index:value ...`` (no commas, pairs after the
    label)."""
    fields = line.split()
    if "," in line or len(fields) < 2 or not _is_number(fields[0]):
        return False
    pairs = [f for f in fields[1:] if not f.startswith("qid:") and not f.startswith("#")]
    return bool(pairs) and all(":" in f and f.split(":", 1)[0].isdigit() and _is_number(f.split(":", 1)[1]) for f in pairs)


def _delimiter(line: str) -> str:
    """The field separator of a CSV: a comma, else a semicolon (spreadsheets in locales whose decimal
    mark is a comma) or a tab, whichever the first line holds."""
    if "," in line:
        return ","
    return next((d for d in (";", "\t") if d in line), ",")


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path, label_column, labels_in_file, header, delimiter=","):
    """(X, y) from a table whose fields ``delimiter`` separates. ``header``: "yes", "no", or "auto":
    the first line is a header when one of its fields is not a number, or when it reads 0, 1, ...,
    n-1 (the header pandas writes for unnamed columns: ``pd.DataFrame(X).to_csv(path,
    index=False)``). A header whose first field is empty, as ``DataFrame.to_csv`` writes above its
    index, marks that column as the row index: it is not read. Empty fields are missing values (NaN,
    as pandas writes them); the label column may hold numbers or names."""
    with open(path, newline="") as f:
        first = next(csv.reader(f, delimiter=delimiter), None)
    if not first:
        raise CLIError(f"--data: {path} is empty")
    names = [field.strip() for field in first]
    if header == "auto":
        counting = len(names) >= 3 and names == [str(i) for i in range(len(names))]
        has_header = counting or not all(_is_number(name) for name in names)
    else:
        has_header = header == "yes"
    skip = 1 if has_header else 0
    # The file's columns that hold data: all but pandas' index column.
    columns = list(range(len(names)))
    if has_header and len(names) > 1 and names[0] == "" and all(names[1:]):
        columns, names = columns[1:], names[1:]
    if label_column is None and labels_in_file:
        label_column = "-1"
    label = None if label_column is None else _column_index(label_column, names if has_header else None, len(columns), path)
    features = [c for i, c in enumerate(columns) if i != label]
    try:
        X = np.loadtxt(path, delimiter=delimiter, ndmin=2, skiprows=skip, usecols=features)
    except ValueError:
        # Slower, field by field: empty fields (missing values) become NaN; any other text still fails.
        X = np.loadtxt(path, delimiter=delimiter, ndmin=2, skiprows=skip, usecols=features, converters=_number_or_nan)
    if label is None:
        return X, None
    y = np.char.strip(np.loadtxt(path, delimiter=delimiter, ndmin=1, skiprows=skip, usecols=columns[label], dtype=str))
    return X, (y.astype(np.float64) if all(_is_number(value) for value in y) else y)


def _number_or_nan(field):
    return float(field) if field.strip() else np.nan


def _column_index(label_column, names, n_columns, path):
    """The index of ``--label-column``: a column number (negative counts from the end) or a header name."""
    text = str(label_column).strip()
    try:
        index = int(text)
    except ValueError:
        if names is None:
            raise CLIError(f"--label-column {text!r}: {path} has no header row to name columns (give a column number)") from None
        if text not in names:
            raise CLIError(f"--label-column {text!r}: no such column in {path}; its columns are {', '.join(names)}") from None
        return names.index(text)
    if not -n_columns <= index < n_columns:
        raise CLIError(f"--label-column {index} is out of range: {path} has {n_columns} columns")
    return index % n_columns


def load_labels(path, header="auto"):
    from .datasets import read_idx

    path = Path(path)
    if not path.exists():
        raise CLIError(f"--labels: no such file: {path}")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix.lower() in (".csv", ".txt"):
            return _read_label_lines(path, header)
        return read_idx(path)
    except Exception as err:
        raise CLIError(f"--labels: cannot read {path}: {_first_line(err)}") from None


def _read_label_lines(path, header):
    """One label per line (the line's last comma-separated field, so "index,label" lines work too):
    numbers, or class names. ``header`` "auto": the first line is a header when it is not a number
    and the rest are, or when it names no class that occurs again below while some class does
    (a column title above repeated class names)."""
    with open(path, newline="") as f:
        values = [row[-1].strip() for row in csv.reader(f) if row and any(field.strip() for field in row)]
    if not values:
        raise ValueError("it holds no labels")
    first, rest = values[0], values[1:]
    if header == "auto":
        numeric_rest = bool(rest) and all(_is_number(v) for v in rest)
        title = not numeric_rest and first not in rest and len(set(rest)) < len(rest)
        has_header = not _is_number(first) and (numeric_rest or title)
    else:
        has_header = header == "yes"
    labels = np.asarray(rest if has_header else values)
    return labels.astype(np.float64) if all(_is_number(v) for v in labels) else labels


# -- commands --------------------------------------------------------------------------------------


def cmd_train(args, defaults):
    model = args.model
    entry = _registry.by_command(model)
    cls = entry.cls
    params = _hyperparameters(args, defaults)
    out = Path(args.out or f"{model}.safetensors")
    _check_writable(out, "--out")  # before training, not after
    X, y = load_data(args.data, args.labels, args.label_column, supervised=entry.supervised, header=args.header, images=entry.images)
    if entry.supervised and y is None:
        raise CLIError(f"{model} needs labels: use the embedded data, an MNIST folder, a .npz with 'y', --labels, or a CSV label column")
    try:
        est = cls(**params)
    except TypeError as err:
        raise CLIError(str(err)) from None
    import time

    start = time.perf_counter()
    # A DBN given labels explicitly trains label units in its top RBM, as DBN.fit(X, y) does.
    labelled = entry.sampler is not None and entry.sampler.conditional_if_labelled and y is not None
    labelled = labelled and (args.labels is not None or args.label_column is not None)
    est.fit(X, y) if entry.supervised or labelled else est.fit(X)
    elapsed = time.perf_counter() - start
    est.save(out)
    metric = ""
    if hasattr(est, "history_") and est.history_:
        last = {k: v[-1] for k, v in est.history_.items() if v and k not in ("epoch", "time", "layer")}
        # NaN marks a metric the last layer of a DBN does not record (pseudo_likelihood beside labels).
        metric = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, (int, float)) and np.isfinite(v))
    print(f"trained {cls.__name__} on {X.shape[0]} samples x {X.shape[1]} features in {elapsed:.1f} s" + (f" ({metric})" if metric else ""))
    print(f"saved to {out}")
    return 0


def cmd_sample(args):
    import deepgm

    from . import plotting

    path = Path(args.model_file)
    try:
        est = deepgm.load(path)
    except FileNotFoundError:
        raise CLIError(f"no such model file: {path}") from None
    name = type(est).__name__
    if args.seed is not None:
        est.random_state = args.seed
        est._fit_seed = deepgm._base.seed_from(args.seed)
        est._sample_calls = 0
    n = args.n
    if n < 1:
        raise CLIError(f"-n must be >= 1; got {n}")
    entry = _registry.by_class_name(name)
    sampler = entry.sampler if entry is not None else None
    conditional = sampler is not None and (sampler.conditional or (sampler.conditional_if_labelled and hasattr(est, "classes_")))
    if args.label is not None and not conditional:
        raise CLIError(
            f"--label applies to conditional models ({_commands(conditional=True)}) and to a DBN fitted with labels; "
            f"{path} holds a {name}{' fitted without labels' if sampler is not None and sampler.conditional_if_labelled else ''}"
        )
    if sampler is None:
        raise CLIError(f"{name} is not a generative model with a sampler; deepgm sample works with {_commands()} models")
    if args.length is not None and not sampler.documents:
        raise CLIError(f"--length applies to document models ({_commands(documents=True)}); {path} holds a {name}")
    doc_length = 100 if args.length is None else args.length
    if doc_length < 0:
        raise CLIError(f"--length must be >= 0; got {doc_length}")
    out = Path(args.out if args.out is not None else "samples.npy" if sampler.documents else "samples.png")
    if out.suffix != ".npy" and sampler.documents:
        raise CLIError(f"{name} samples are word counts, not pictures: --out must name a .npy file; got {out}")
    _check_writable(out, "--out")
    y = None
    if conditional and args.label is None:
        # n samples, the classes in turn: one column of the picture per class.
        y = np.asarray(est.classes_)[np.arange(n) % len(est.classes_)]
    elif conditional:
        y = _parse_label(args.label, est.classes_)
    samples = sampler.draw(est, n, args.steps, y, doc_length)
    if out.suffix == ".npy":
        np.save(out, samples)
    else:
        side = int(round(np.sqrt(samples.shape[1])))
        if side * side != samples.shape[1]:
            raise CLIError(f"samples have {samples.shape[1]} features, not a square image: use --out FILE.npy")
        n_cols = min(n, len(est.classes_)) if conditional and args.label is None else None
        fig = plotting.plot_samples(np.clip(samples, 0, 1) if samples.min() >= -0.01 else samples, n_cols=n_cols, title=f"{name} samples")
        fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {samples.shape[0]} samples to {out}")
    return 0


def _commands(conditional=None, documents=None):
    """The command-line names of the models that sample (conditionally, or documents, if asked), for
    messages."""
    names = [
        e.command
        for e in _registry.ESTIMATORS
        if e.sampler is not None and conditional in (None, e.sampler.conditional) and documents in (None, e.sampler.documents)
    ]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def _check_writable(path, option):
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise CLIError(f"{option} {path} is a folder; give a file name")
    if not folder.is_dir():
        raise CLIError(f"{option} {path}: the folder {folder} does not exist")


def _parse_label(text, classes):
    for value in (text, _number_or_text(text)):
        if value in list(classes):
            return value
    raise CLIError(f"--label {text!r} is not a class of this model; classes: {np.asarray(classes).tolist()}")


def cmd_demo(args):
    from .demo import main_demo

    return main_demo(args.out, args.full, args.seed, args.n_jobs, 0 if args.quiet else 1)


def cmd_bench(extra):
    """``deepgm bench [options]``: the benchmark suite shipped in the package (deepgm.bench)."""
    from .bench import main as bench_main

    try:
        return int(bench_main(extra) or 0)
    except SystemExit as exit_:  # --help, or an option argparse refused (it has printed why)
        return exit_.code if isinstance(exit_.code, int) else 2


def build_parser(train_model=None):
    """The ``deepgm`` parser; with ``train_model`` (a command-line model name), ``train`` also takes that
    estimator's hyperparameters as options. Returns the parser and those hyperparameters' defaults."""
    # allow_abbrev=False: argparse would otherwise take a prefix of an option for the option, and
    # `--n-iter` is a prefix of `--n-iter-no-change` for the estimators without an `n_iter`.
    parser = argparse.ArgumentParser(
        prog="deepgm", description="Classic deep generative models on a fast parallel CPU core.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"deepgm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        allow_abbrev=False,
        help="train every model on the embedded MNIST data and write an HTML report",
        description="Trains an RBM, a DBNClassifier, a DeepAutoencoder, a VAE and a CVAE on the embedded MNIST test set "
        "(8,000 images to train, 2,000 to test), prints a summary and writes a report folder with index.html.",
    )
    demo.add_argument("--full", action="store_true", help="the larger settings of the quality bars (several minutes per model)")
    demo.add_argument("--out", default="deepgm-report", help="report folder (default: deepgm-report)")
    demo.add_argument("--seed", type=int, default=0, help="random_state of every model (default: 0)")
    demo.add_argument("--n-jobs", type=int, default=None, help="threads (default: all cores)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    train = sub.add_parser(
        "train",
        allow_abbrev=False,
        help="train a model and save it (safetensors)",
        description="Trains MODEL and saves it. "
        "Hyperparameters are options named after the estimator's parameters; see 'deepgm train MODEL --help'.",
    )
    commands = [entry.command for entry in _registry.ESTIMATORS]
    train.add_argument("model", choices=sorted(commands), metavar="MODEL", help="one of: " + ", ".join(commands))
    train.add_argument(
        "--data",
        default=None,
        help="an MNIST IDX folder or file, a .npy, a .npz (arrays, or a scipy sparse matrix from save_npz), an svmlight file "
        "(.svmlight, .svm, .libsvm) or a CSV (default: the embedded MNIST). 8-bit (uint8) data are pixels, scaled to [0, 1], "
        "except for collaborative-rbm and replicated-softmax. collaborative-rbm reads a users x items matrix: NaN (dense) "
        "(an empty CSV field is NaN) or a missing entry (sparse) marks an unrated item",
    )
    train.add_argument(
        "--labels", default=None, help="labels for --data (.npy, .csv or IDX), for supervised models and for a DBN with label units"
    )
    train.add_argument(
        "--label-column",
        default=None,
        help="CSV column holding the labels, by number (negative: from the end) or by its header name "
        "(default for supervised models: the last)",
    )
    train.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the CSV's first line is a header (default: auto, a header when a field is not a number "
        "or when it reads 0,1,...,n-1 as pandas writes for unnamed columns)",
    )
    train.add_argument("--out", default=None, help="model file to write (default: MODEL.safetensors)")

    sample = sub.add_parser(
        "sample",
        allow_abbrev=False,
        help="draw samples from a saved model into an image grid (or a .npy file)",
        description=f"Loads MODEL_FILE ({_commands()}) and writes samples as a PNG grid or a .npy array "
        "(documents of word counts: .npy only).",
    )
    sample.add_argument("model_file", metavar="MODEL_FILE")
    sample.add_argument("-n", type=int, default=64, help="number of samples (default: 64)")
    sample.add_argument("--out", default=None, help="output PNG (or .npy) file (default: samples.png; samples.npy for replicated-softmax)")
    sample.add_argument(
        "--label",
        default=None,
        help="class to generate (CVAE, or a DBN fitted with labels); default: the classes in turn, one column per class",
    )
    sample.add_argument("--steps", type=int, default=1000, help="Gibbs steps for RBM/DBN/replicated-softmax (default: 1000)")
    sample.add_argument("--length", type=int, default=None, help="words per document (replicated-softmax; default: 100)")
    sample.add_argument("--seed", type=int, default=None, help="random seed")

    sub.add_parser("bench", help="benchmark deepgm against NumPy, scikit-learn and PyTorch", add_help=False)
    # `deepgm train MODEL --help` lists that model's hyperparameters.
    defaults = _add_hyperparameter_options(train, _registry.by_command(train_model).cls) if train_model else {}
    parser.set_defaults(command_parsers={"demo": demo, "train": train, "sample": sample})
    return parser, defaults


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        try:
            return cmd_bench(argv[1:])
        except CLIError as err:
            print(f"deepgm bench: error: {err}", file=sys.stderr)
            return 2
    known = {entry.command for entry in _registry.ESTIMATORS}
    parser, defaults = build_parser(argv[1] if len(argv) >= 2 and argv[0] == "train" and argv[1] in known else None)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported with the usage of the command they were given to, not the top level's
        args.command_parsers.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "train":
            return cmd_train(args, defaults)
        if args.command == "sample":
            return cmd_sample(args)
    except CLIError as err:
        print(f"deepgm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # never a traceback: one line naming what went wrong
        print(f"deepgm {args.command}: error: {_first_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"deepgm {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
