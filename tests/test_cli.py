"""The `deepgm` command end to end, in a temporary folder, with small settings."""

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import deepgm
from deepgm.cli import main
from deepgm.demo import run_demo

TINY = {
    "rbm": dict(n_components=16, n_iter=1),
    "ais": dict(n_chains=8, n_betas=20),
    "dbn_generative": dict(hidden_layer_sizes=(8, 4), n_iter=1, layer_params=[{}, {"k": 2}]),
    "dbn": dict(hidden_layer_sizes=(16, 8), pretrain_iter=1, finetune_iter=1),
    "ae": dict(hidden_layer_sizes=(16,), n_components=4, pretrain_iter=1, finetune_iter=1),
    "vae": dict(n_components=4, hidden_layer_sizes=(16,), n_iter=1),
    "vae2d": dict(n_components=2, hidden_layer_sizes=(16,), n_iter=1),
    "cvae": dict(n_components=4, hidden_layer_sizes=(16,), n_iter=1),
    "n_importance": 4,
    "gibbs_steps": 5,
    "samples_per_class": 5,
}


def run_cli(*args, cwd):
    """Runs `python -m deepgm.cli ...` in a subprocess: exit status, stdout, stderr."""
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-m", "deepgm.cli", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


class _Sources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href"):
                self.sources.append(value)


def test_demo_report_references_only_files_that_exist(tmp_path):
    rows, index = run_demo(tmp_path / "report", settings=TINY, verbose=0, log=lambda *_: None)
    assert [r[0] for r in rows] == ["RBM", "DBNClassifier", "DBN with labels", "DeepAutoencoder", "VAE", "CVAE"]
    assert all(np.isfinite(r[3]) for r in rows)
    html = Path(index).read_text()
    parser = _Sources()
    parser.feed(html)
    images = [s for s in parser.sources if s.endswith(".png")]
    assert len(images) >= 10, "filters, samples, reconstructions, latent map, class samples, curves"
    for src in parser.sources:
        assert (Path(index).parent / src).is_file(), f"broken reference {src}"
    # Every figure has a caption; the page scales images to its width (no sideways scrolling).
    assert html.count("<figcaption>") == len(images)
    assert "max-width: 100%" in html and 'name="viewport"' in html
    for required in ("RBM filters", "CVAE samples", "PCA"):
        assert required in html


def test_train_then_sample_every_generative_model(tmp_path):
    for model, extra in [
        ("rbm", ["--n-components", "8", "--n-iter", "1"]),
        ("dbn", ["--hidden-layer-sizes", "8,4", "--n-iter", "1"]),
        ("vae", ["--n-components", "2", "--hidden-layer-sizes", "8", "--n-iter", "1"]),
        ("cvae", ["--n-components", "2", "--hidden-layer-sizes", "8", "--n-iter", "1"]),
    ]:
        out = tmp_path / f"{model}.safetensors"
        code, stdout, stderr = run_cli("train", model, *extra, "--random-state", "0", "--out", str(out), cwd=tmp_path)
        assert code == 0, stderr
        assert out.is_file() and "saved to" in stdout
        grid = tmp_path / f"{model}.png"
        args = ["sample", str(out), "-n", "12", "--out", str(grid)] + (["--steps", "5"] if model in ("rbm", "dbn") else [])
        code, stdout, stderr = run_cli(*args, cwd=tmp_path)
        assert code == 0, stderr
        assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, stderr = run_cli(
        "sample", str(tmp_path / "cvae.safetensors"), "-n", "6", "--label", "3", "--out", str(tmp_path / "threes.npy"), cwd=tmp_path
    )
    assert code == 0, stderr
    assert np.load(tmp_path / "threes.npy").shape == (6, 784)
    # Without --label, -n is still the number of samples (the classes in turn).
    code, stdout, stderr = run_cli(
        "sample", str(tmp_path / "cvae.safetensors"), "-n", "13", "--out", str(tmp_path / "mixed.npy"), cwd=tmp_path
    )
    assert code == 0, stderr
    assert np.load(tmp_path / "mixed.npy").shape == (13, 784) and "wrote 13 samples" in stdout


def test_train_then_sample_documents_from_a_topic_model(tmp_path):
    counts = np.random.default_rng(0).poisson(0.4, (150, 30))
    np.savetxt(tmp_path / "counts.csv", counts, fmt="%d", delimiter=",")
    code, _, stderr = run_cli(
        "train", "replicated-softmax", "--data", "counts.csv", "--n-components", "4", "--max-iter", "2", "--random-state", "0", cwd=tmp_path
    )
    assert code == 0, stderr
    args = ("sample", "replicated-softmax.safetensors", "-n", "7", "--steps", "3", "--seed", "1")
    code, stdout, stderr = run_cli(*args, "--length", "25", cwd=tmp_path)
    assert code == 0, stderr
    # Word counts go to a .npy by default (not a picture): one document of --length words per row.
    docs = np.load(tmp_path / "samples.npy")
    assert docs.shape == (7, 30) and docs.dtype == np.int64 and (docs >= 0).all()
    np.testing.assert_array_equal(docs.sum(axis=1), 25)
    code, _, stderr = run_cli(*args, "--out", "default.npy", cwd=tmp_path)
    assert code == 0, stderr
    np.testing.assert_array_equal(np.load(tmp_path / "default.npy").sum(axis=1), 100)
    # The same seed draws the same documents as the estimator's own sample().
    model = deepgm.load(tmp_path / "replicated-softmax.safetensors")
    model.set_params(random_state=1)
    model._fit_seed, model._sample_calls = deepgm._base.seed_from(1), 0
    np.testing.assert_array_equal(np.load(tmp_path / "default.npy"), model.sample(7, 100, n_steps=3))


def test_reads_the_csv_files_pandas_writes(tmp_path):
    """DataFrame.to_csv writes NaN as an empty field and, by default, the index as a first column under
    an empty header field; labels may be names. Each is read as pandas would read it back."""
    import pandas as pd

    from deepgm.cli import load_data

    rng = np.random.default_rng(0)
    ratings = rng.integers(1, 6, (30, 8)).astype(float)
    ratings[rng.random(ratings.shape) < 0.5] = np.nan
    frame = pd.DataFrame(ratings)
    frame.to_csv(tmp_path / "ratings.csv", index=False)
    frame.to_csv(tmp_path / "ratings_with_index.csv")
    for name in ("ratings.csv", "ratings_with_index.csv"):
        X, _ = load_data(tmp_path / name, images=False)
        np.testing.assert_array_equal(X, ratings)  # NaN where pandas wrote an empty field; no index column
    table = pd.DataFrame(rng.random((12, 3)), columns=["a", "b", "c"]).assign(kind=np.where(np.arange(12) % 2, "odd", "even"))
    table.to_csv(tmp_path / "named.csv")
    X, y = load_data(tmp_path / "named.csv", label_column="kind", supervised=True)
    np.testing.assert_allclose(X, table[["a", "b", "c"]].to_numpy())
    np.testing.assert_array_equal(y, table["kind"].to_numpy())
    X, y = load_data(tmp_path / "named.csv", label_column="-1", supervised=True)  # column numbers skip the index
    np.testing.assert_array_equal(y, table["kind"].to_numpy())
    code, stdout, stderr = run_cli("train", "collaborative-rbm", "--data", "ratings_with_index.csv", "--n-iter", "1", cwd=tmp_path)
    assert code == 0 and "30 samples x 8 features" in stdout, stderr
    code, stdout, stderr = run_cli(
        "train", "dbn-classifier", "--data", "named.csv", "--hidden-layer-sizes", "4", "--finetune-iter", "2", cwd=tmp_path
    )
    assert code == 0, stderr
    assert list(deepgm.load(tmp_path / "dbn-classifier.safetensors").classes_) == ["even", "odd"]
    # A field that is neither a number nor empty is still an error.
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n")
    code, _, stderr = run_cli("train", "rbm", "--data", "bad.csv", cwd=tmp_path)
    assert code != 0 and "cannot read" in stderr and "Traceback" not in stderr


def test_an_svmlight_file_is_read_whatever_its_suffix(tmp_path):
    from sklearn.datasets import dump_svmlight_file

    counts = np.random.default_rng(0).poisson(0.5, (20, 6)).astype(float)
    dump_svmlight_file(counts, np.zeros(20), str(tmp_path / "docs.feat"))
    from deepgm.cli import load_data

    X, _ = load_data(tmp_path / "docs.feat", images=False)
    np.testing.assert_array_equal(X.toarray(), counts)


def test_an_svmlight_file_named_txt_and_a_semicolon_csv_are_read_as_what_they_are(tmp_path):
    from sklearn.datasets import dump_svmlight_file

    from deepgm.cli import load_data

    rng = np.random.default_rng(0)
    X = np.round(rng.random((12, 4)), 3)
    y = rng.integers(0, 3, 12)
    dump_svmlight_file(X, y, str(tmp_path / "libsvm.txt"))  # how libsvm's data sets are named
    got, labels = load_data(tmp_path / "libsvm.txt", supervised=True, images=False)
    np.testing.assert_allclose(got.toarray(), X)
    np.testing.assert_array_equal(labels, y)
    with open(tmp_path / "semicolons.csv", "w") as f:  # a spreadsheet's export where "," is the decimal mark
        f.write("a;b;c;d;label\n" + "".join(";".join(map(str, row)) + f";{t}\n" for row, t in zip(X, y)))
    got, labels = load_data(tmp_path / "semicolons.csv", supervised=True, images=False)
    np.testing.assert_allclose(got, X)
    np.testing.assert_array_equal(labels, y)


@pytest.mark.parametrize(
    "lines, expected",
    [
        (["setosa", "versicolor", "setosa", "virginica"], ["setosa", "versicolor", "setosa", "virginica"]),
        (["species", "setosa", "versicolor", "setosa"], ["setosa", "versicolor", "setosa"]),
        (["label", "1", "0", "2"], [1, 0, 2]),
        (["3", "1", "3"], [3, 1, 3]),
        (["0,cat", "1,dog", "2,cat"], ["cat", "dog", "cat"]),
    ],
)
def test_labels_files_hold_numbers_or_names_with_or_without_a_header(tmp_path, lines, expected):
    from deepgm.cli import load_labels

    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    got = load_labels(tmp_path / "labels.csv")
    assert list(got) == expected


def test_auto_settings_take_true_false_and_layer_lists_on_the_command_line(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", X[:, 0] + 0.1 * rng.standard_normal(60))
    code, _, stderr = run_cli(
        "train", "dbn-regressor", "--data", "X.npy", "--labels", "y.npy", "--early-stopping", "false", "--pretrain", "no",
        "--hidden-layer-sizes", "6,3", "--finetune-iter", "2", "--out", "reg.safetensors", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, stderr
    reg = deepgm.load(tmp_path / "reg.safetensors")
    assert reg.early_stopping is False and reg.pretrain is False and [c.shape[1] for c in reg.coefs_] == [6, 3, 1]
    code, _, stderr = run_cli(
        "train", "autoencoder", "--data", "X.npy", "--hidden-layer-sizes", "8,4", "--n-components", "2",
        "--linear-path", "true", "--finetune-iter", "2", "--out", "ae.safetensors", cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, stderr
    ae = deepgm.load(tmp_path / "ae.safetensors")
    assert ae.hidden_layer_sizes == (8, 4) and ae.linear_path is True and ae.transform(X).shape == (60, 2)


def test_a_dbn_trained_with_labels_samples_a_chosen_class(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    X = (rng.random((80, 16)) < np.where(y[:, None] == 1, 0.8, 0.2)).astype(np.float32)  # two classes of 4x4 pictures
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    args = [
        "train",
        "dbn",
        "--data",
        "X.npy",
        "--labels",
        "y.npy",
        "--hidden-layer-sizes",
        "8",
        "--n-iter",
        "2",
        "--out",
        "dbn.safetensors",
    ]
    code, stdout, stderr = run_cli(*args, cwd=tmp_path)
    assert code == 0, stderr
    assert "label_error=" in stdout and "nan" not in stdout  # the top layer logs no pseudo-likelihood
    assert list(deepgm.load(tmp_path / "dbn.safetensors").classes_) == [0, 1]
    code, stdout, stderr = run_cli("sample", "dbn.safetensors", "--label", "1", "-n", "4", "--steps", "5", "--out", "s.npy", cwd=tmp_path)
    assert code == 0, stderr
    assert np.load(tmp_path / "s.npy").shape == (4, 16)
    # Without --labels the DBN has no label units, and --label says so.
    args[args.index("--labels") : args.index("--labels") + 2] = []
    assert run_cli(*args, cwd=tmp_path)[0] == 0
    code, _, stderr = run_cli("sample", "dbn.safetensors", "--label", "1", cwd=tmp_path)
    assert code != 0 and "a DBN fitted with labels; dbn.safetensors holds a DBN fitted without labels" in stderr


def test_train_supervised_models_on_user_data(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((120, 10)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    np.savetxt(tmp_path / "data.csv", np.column_stack([X, y]), delimiter=",")
    for data in ("data.npz", "data.csv"):
        out = tmp_path / f"clf-{data}.safetensors"
        code, stdout, stderr = run_cli(
            "train",
            "dbn-classifier",
            "--data",
            data,
            "--hidden-layer-sizes",
            "8",
            "--pretrain-iter",
            "1",
            "--finetune-iter",
            "2",
            "--out",
            str(out),
            cwd=tmp_path,
        )
        assert code == 0, stderr
        clf = deepgm.load(out)
        assert clf.n_features_in_ == 10 and set(clf.classes_) == {0, 1}


def test_help_lists_each_models_hyperparameters(tmp_path):
    code, stdout, _ = run_cli("train", "vae", "--help", cwd=tmp_path)
    assert code == 0
    for option in ("--n-components", "--hidden-layer-sizes", "--learning-rate", "--likelihood", "--out", "--data"):
        assert option in stdout
    for command in ("demo", "train", "sample", "bench"):
        assert command in run_cli("--help", cwd=tmp_path)[1]
    code, stdout, _ = run_cli("bench", "--help", cwd=tmp_path)  # the suite ships in the package
    assert code == 0 and stdout.startswith("usage: deepgm bench")


def test_version(tmp_path):
    code, stdout, _ = run_cli("--version", cwd=tmp_path)
    assert code == 0 and stdout.strip() == f"deepgm {deepgm.__version__}"
    from importlib.metadata import version

    assert deepgm.__version__ == version("deepgm") == deepgm._core.__version__


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "rbm", "--n-components", "0"], "n_components"),
        (["train", "rbm", "--visible", "poisson"], "visible"),
        (["train", "rbm", "--data", "missing-folder"], "no such file"),
        (["train", "cvae", "--data", "x.npy"], "labels"),
        (["sample", "missing.safetensors"], "no such model file"),
        (["sample", "corrupt.safetensors"], "not a valid deepgm model"),
        (["train", "rbm", "--persistent", "maybe"], "persistent"),
        (["train", "vae", "--data", "empty.npy"], "--data: cannot read"),
        (["train", "vae", "--data", "x.npy", "--labels", "empty.npy"], "--labels: cannot read"),
        (["train", "cvae", "--data", "table.csv", "--label-column", "99"], "--label-column 99 is out of range"),
        (["train", "vae", "--data", "x.npy", "--out", "nowhere/m.safetensors"], "nowhere.*does not exist"),
        (["train", "vae", "--data", "x.npy", "--out", "."], "is a folder"),
        (["sample", "vae.safetensors", "--label", "3"], "--label applies to conditional models"),
        (["sample", "vae.safetensors", "--out", "nowhere/s.png"], "nowhere.*does not exist"),
        (["sample", "vae.safetensors", "--length", "30"], "--length applies to document models"),
        (["sample", "topics.safetensors", "--out", "s.png"], "word counts.*--out must name a .npy file"),
        (["sample", "topics.safetensors", "--length", "-1"], "--length must be >= 0"),
        (["demo", "--n-jobs", "0", "--out", "report"], "n_jobs"),
    ],
)
def test_bad_options_and_files_are_one_clear_line(tmp_path, args, message):
    X = np.random.default_rng(0).random((20, 5))
    np.save(tmp_path / "x.npy", X)
    (tmp_path / "empty.npy").write_bytes(b"")
    np.savetxt(tmp_path / "table.csv", X, delimiter=",")
    (tmp_path / "corrupt.safetensors").write_bytes(b"not a model")
    deepgm.VAE(2, hidden_layer_sizes=(4,), n_iter=1, random_state=0).fit(X).save(tmp_path / "vae.safetensors")
    counts = np.random.default_rng(0).poisson(0.5, (20, 6))
    deepgm.ReplicatedSoftmax(2, max_iter=1, random_state=0).fit(counts).save(tmp_path / "topics.safetensors")
    code, stdout, stderr = run_cli(*args, cwd=tmp_path)
    assert code != 0
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if line]
    assert len(lines) == 1, stderr
    assert re.search(message, lines[0], re.IGNORECASE), lines[0]


def test_unknown_option_is_an_argparse_error(tmp_path):
    code, _, stderr = run_cli("train", "rbm", "--no-such-option", "1", cwd=tmp_path)
    assert code == 2 and "unrecognized arguments: --no-such-option 1" in stderr and "Traceback" not in stderr
    assert stderr.startswith("usage: deepgm train"), "the usage of the command given, not the top level's"


def test_main_returns_status_without_exiting(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "nothing.safetensors")]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_an_option_prefix_is_not_taken_for_another_option(tmp_path):
    """`--n-iter` is a prefix of `--n-iter-no-change`: DBNClassifier has no n_iter, so argparse's
    abbreviations silently set the wrong parameter; the command refuses it instead."""
    X = np.random.default_rng(0).random((30, 4))
    np.savez(tmp_path / "data.npz", X=X, y=(X[:, 0] > 0.5).astype(int))
    code, _, stderr = run_cli("train", "dbn-classifier", "--data", "data.npz", "--n-iter", "2", cwd=tmp_path)
    assert code == 2 and "unrecognized arguments: --n-iter" in stderr
    assert not (tmp_path / "dbn-classifier.safetensors").exists()
    code, _, stderr = run_cli("train", "vae", "--data", "data.npz", "--n-comp", "3", cwd=tmp_path)
    assert code == 2 and "unrecognized arguments: --n-comp" in stderr


def test_csv_header_rows_named_counted_or_forced(tmp_path):
    from deepgm.cli import load_data

    X = np.random.default_rng(0).random((6, 4))
    body = "\n".join(",".join(f"{v:.6f}" for v in row) for row in X)
    cases = {
        "pandas.csv": ("0,1,2,3\n" + body, "auto", 6),  # pd.DataFrame(X).to_csv(index=False)
        "named.csv": ("a,b,c,d\n" + body, "auto", 6),
        "plain.csv": (body, "auto", 6),
        "kept.csv": ("0,1,2,3\n" + body, "no", 7),
        "forced.csv": (body, "yes", 5),
    }
    for name, (text, header, rows) in cases.items():
        (tmp_path / name).write_text(text + "\n")
        got, y = load_data(tmp_path / name, header=header)
        assert got.shape == (rows, 4) and y is None, name
        np.testing.assert_allclose(got[-5:], X[-5:], atol=1e-6, err_msg=name)


def test_label_column_by_header_name(tmp_path):
    from deepgm.cli import CLIError, load_data

    X = np.random.default_rng(0).random((8, 3))
    y = np.arange(8) % 2
    rows = "\n".join(f"{a:.6f},{label},{b:.6f},{c:.6f}" for (a, b, c), label in zip(X, y))
    (tmp_path / "t.csv").write_text("pixel_a,digit,pixel_b,pixel_c\n" + rows + "\n")
    got, labels = load_data(tmp_path / "t.csv", label_column="digit", supervised=True)
    np.testing.assert_allclose(got, X, atol=1e-6)
    np.testing.assert_array_equal(labels, y)
    got, labels = load_data(tmp_path / "t.csv", label_column="1", supervised=True)  # the same column by number
    np.testing.assert_array_equal(labels, y)
    with pytest.raises(CLIError, match="no such column.*pixel_a, digit, pixel_b, pixel_c"):
        load_data(tmp_path / "t.csv", label_column="label", supervised=True)
    (tmp_path / "bare.csv").write_text(rows + "\n")
    with pytest.raises(CLIError, match="no header row"):
        load_data(tmp_path / "bare.csv", label_column="digit", supervised=True)


def test_eight_bit_files_are_pixels_only_for_image_models(tmp_path):
    from deepgm.cli import load_data

    counts = np.random.default_rng(0).integers(0, 6, size=(12, 7)).astype(np.uint8)
    np.save(tmp_path / "u8.npy", counts)
    pixels, _ = load_data(tmp_path / "u8.npy")
    np.testing.assert_allclose(pixels, counts / 255.0, rtol=1e-6)
    raw, _ = load_data(tmp_path / "u8.npy", images=False)
    np.testing.assert_array_equal(raw, counts)
    code, _, stderr = run_cli("train", "replicated-softmax", "--data", "u8.npy", "--n-components", "3", "--max-iter", "1", cwd=tmp_path)
    assert code == 0, stderr
    assert deepgm.load(tmp_path / "replicated-softmax.safetensors").n_features_in_ == 7


def test_sparse_npz_and_svmlight_data(tmp_path):
    from scipy import sparse
    from sklearn.datasets import dump_svmlight_file

    from deepgm.cli import load_data

    counts = sparse.random(20, 9, density=0.4, format="csr", random_state=0, data_rvs=lambda n: np.arange(1, n + 1) % 4 + 1)
    sparse.save_npz(tmp_path / "counts.npz", counts)
    got, y = load_data(tmp_path / "counts.npz", images=False)
    assert sparse.issparse(got) and y is None
    np.testing.assert_array_equal(got.toarray(), counts.toarray())
    dump_svmlight_file(counts, np.arange(20) % 3, str(tmp_path / "counts.svmlight"))
    got, y = load_data(tmp_path / "counts.svmlight", images=False, supervised=True)
    assert sparse.issparse(got) and got.shape[0] == 20
    np.testing.assert_array_equal(got.toarray()[:, : counts.shape[1]], counts.toarray())
    np.testing.assert_array_equal(y, np.arange(20) % 3)
    code, _, stderr = run_cli("train", "replicated-softmax", "--data", "counts.npz", "--n-components", "3", "--max-iter", "1", cwd=tmp_path)
    assert code == 0, stderr
