"""Tests for deepgm.datasets: IDX reading, MNIST loading and downloading.

The download tests run a real HTTP server on 127.0.0.1; nothing here
contacts any other address.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from deepgm import datasets
from deepgm.datasets import fetch_mnist, load_mnist, read_idx

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DIR = REPO_ROOT / "python" / "deepgm" / "data"
SHARED_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"

TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
GZ_NAMES = [TRAIN_IMAGES + ".gz", TRAIN_LABELS + ".gz", TEST_IMAGES + ".gz", TEST_LABELS + ".gz"]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

_TYPE_CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX, written by hand (independent of read_idx)."""
    array = np.asarray(array)
    stored = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, _TYPE_CODES[stored], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(stored).tobytes(order="C")


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images (n, 28, 28) and labels 0..9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    return images, labels


def mnist_source_dir() -> Path:
    """Folder holding the real MNIST test set .gz files."""
    if (SHARED_DIR / (TEST_IMAGES + ".gz")).is_file():
        return SHARED_DIR
    return EMBEDDED_DIR


def decode_gz_directly(path: Path, header_size: int) -> np.ndarray:
    """Raw uint8 payload of a gzipped IDX file, without read_idx."""
    return np.frombuffer(gzip.decompress(path.read_bytes())[header_size:], dtype=np.uint8)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftover_temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in GZ_NAMES)


# --------------------------------------------------------------------------
# load_mnist() on the embedded test set
# --------------------------------------------------------------------------


def test_load_mnist_embedded_shapes_and_ranges():
    X, y = load_mnist()
    assert X.shape == (10000, 784)
    assert X.dtype == np.float32
    assert X.flags.c_contiguous
    assert X.min() == 0.0 and X.max() == 1.0
    assert y.shape == (10000,)
    assert y.dtype == np.int64
    assert y.min() == 0 and y.max() == 9
    assert set(np.unique(y).tolist()) == set(range(10))
    # Known class counts of the MNIST test set.
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_load_mnist_embedded_matches_raw_bytes():
    raw_images = decode_gz_directly(EMBEDDED_DIR / (TEST_IMAGES + ".gz"), 16).reshape(10000, 784)
    raw_labels = decode_gz_directly(EMBEDDED_DIR / (TEST_LABELS + ".gz"), 8)
    X, y = load_mnist()
    rows = [0, 1, 2, 1234, 5678, 9999]
    expected = raw_images[rows].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(X[rows], expected)
    np.testing.assert_array_equal(y, raw_labels.astype(np.int64))
    # Every pixel is an exact multiple of 1/255.
    np.testing.assert_array_equal(np.rint(X * 255).astype(np.uint8), raw_images)
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_load_mnist_embedded_subset_test_equals_default():
    X1, y1 = load_mnist()
    X2, y2 = load_mnist(subset="test")
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("dtype", ["float64", np.float64, np.dtype("float64")])
def test_load_mnist_float64(dtype):
    X32, _ = load_mnist()
    X64, y = load_mnist(dtype=dtype)
    assert X64.dtype == np.float64
    assert X64.flags.c_contiguous
    assert y.dtype == np.int64
    raw = decode_gz_directly(EMBEDDED_DIR / (TEST_IMAGES + ".gz"), 16)[: 784 * 3]
    np.testing.assert_array_equal(X64[:3].ravel(), raw.astype(np.float64) / 255.0)
    np.testing.assert_allclose(X64, X32, rtol=0, atol=1e-7)


def test_load_mnist_np_float32_accepted():
    X, _ = load_mnist(dtype=np.float32)
    assert X.dtype == np.float32


def test_load_mnist_returns_fresh_arrays():
    X1, y1 = load_mnist()
    X1[:] = -1.0
    y1[:] = 42
    X2, y2 = load_mnist()
    assert X2.min() == 0.0 and X2.max() == 1.0
    assert y2.max() == 9
    assert not np.shares_memory(X1, X2)
    assert not np.shares_memory(y1, y2)
    assert X2.flags.writeable and y2.flags.writeable


@pytest.mark.parametrize("subset", ["train", "all"])
def test_load_mnist_embedded_train_raises(subset):
    with pytest.raises(ValueError, match="fetch_mnist"):
        load_mnist(subset=subset)


@pytest.mark.parametrize("subset", ["foo", "Train", "", 1, ["train"]])
def test_load_mnist_bad_subset(subset):
    with pytest.raises(ValueError) as excinfo:
        load_mnist(subset=subset)
    message = str(excinfo.value)
    assert message.startswith("subset must be one of None, 'train', 'test', 'all'")
    assert repr(subset) in message


@pytest.mark.parametrize("dtype", ["float16", "int32", "f4", float, np.int64, None])
def test_load_mnist_bad_dtype(dtype):
    with pytest.raises(ValueError) as excinfo:
        load_mnist(dtype=dtype)
    message = str(excinfo.value)
    assert message.startswith("dtype must be one of 'float32', 'float64'")
    assert repr(dtype) in message


def test_bad_subset_with_folder(tmp_path):
    with pytest.raises(ValueError, match="subset must be"):
        load_mnist(tmp_path, subset="validation")


# --------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------


def test_read_idx_ubyte_1d(tmp_path):
    data = np.array([0, 1, 2, 255, 7], dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / "a.idx", data))
    assert out.dtype == np.uint8
    assert out.shape == (5,)
    np.testing.assert_array_equal(out, data)
    out[0] = 9  # writable
    assert out[0] == 9


def test_read_idx_ubyte_3d_handwritten_bytes(tmp_path):
    # Bytes typed out by hand: ubyte, 3 dims (2, 2, 3).
    raw = bytes([0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12))
    path = tmp_path / "b"
    path.write_bytes(raw)
    out = read_idx(path)
    assert out.shape == (2, 2, 3)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.arange(12, dtype=np.uint8).reshape(2, 2, 3))


def test_read_idx_sbyte(tmp_path):
    data = np.array([[-128, -1], [0, 127]], dtype=np.int8)
    out = read_idx(write_idx(tmp_path / "s", data))
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, data)


def test_read_idx_int32_big_endian(tmp_path):
    # int32 values 1 and -2, big-endian, shape (2,): written by hand.
    raw = bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + bytes([0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFE])
    path = tmp_path / "i32"
    path.write_bytes(raw)
    out = read_idx(path)
    assert out.dtype == np.dtype("int32")
    assert out.dtype.isnative
    assert out.tolist() == [1, -2]


def test_read_idx_int16_and_float64(tmp_path):
    a = np.array([[-300, 2], [3, 32000]], dtype=np.int16)
    b = np.array([1.5, -2.25, np.pi], dtype=np.float64)
    out_a = read_idx(write_idx(tmp_path / "i16", a))
    out_b = read_idx(write_idx(tmp_path / "f64", b))
    assert out_a.dtype == np.int16 and out_a.dtype.isnative
    assert out_b.dtype == np.float64 and out_b.dtype.isnative
    np.testing.assert_array_equal(out_a, a)
    np.testing.assert_array_equal(out_b, b)


def test_read_idx_float32(tmp_path):
    data = np.array([[0.5, -1.25, 3.0e-8], [1e10, -0.0, 7.0]], dtype=np.float32)
    out = read_idx(write_idx(tmp_path / "f32.idx", data))
    assert out.dtype == np.float32 and out.dtype.isnative
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out, data)
    # Sanity: the file really holds big-endian floats.
    assert (tmp_path / "f32.idx").read_bytes()[12:16] == struct.pack(">f", 0.5)


@pytest.mark.parametrize("name", ["x.idx.gz", "x.idx"])
def test_read_idx_gzipped_by_name_or_magic(tmp_path, name):
    data = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    out = read_idx(write_idx(tmp_path / name, data, gz=True))
    np.testing.assert_array_equal(out, data)


def test_read_idx_plain_and_gz_agree(tmp_path):
    data = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    plain = read_idx(write_idx(tmp_path / "p", data))
    gz = read_idx(write_idx(tmp_path / "p.gz", data, gz=True))
    np.testing.assert_array_equal(plain, data)
    np.testing.assert_array_equal(gz, data)


def test_read_idx_accepts_str_path(tmp_path):
    data = np.array([3, 4], dtype=np.uint8)
    out = read_idx(str(write_idx(tmp_path / "s", data)))
    np.testing.assert_array_equal(out, data)


def test_read_idx_embedded_test_images():
    images = read_idx(EMBEDDED_DIR / (TEST_IMAGES + ".gz"))
    assert images.shape == (10000, 28, 28)
    assert images.dtype == np.uint8
    raw = decode_gz_directly(EMBEDDED_DIR / (TEST_IMAGES + ".gz"), 16)
    np.testing.assert_array_equal(images.ravel(), raw)


def test_read_idx_missing_file(tmp_path):
    missing = tmp_path / "nope.idx"
    with pytest.raises(FileNotFoundError) as excinfo:
        read_idx(missing)
    assert "nope.idx" in str(excinfo.value)


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "badmagic"
    path.write_bytes(bytes([1, 0, 0x08, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(ValueError, match="magic") as excinfo:
        read_idx(path)
    assert "badmagic" in str(excinfo.value)


def test_read_idx_bad_type_code(tmp_path):
    path = tmp_path / "badtype"
    path.write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(ValueError, match="type code") as excinfo:
        read_idx(path)
    assert "badtype" in str(excinfo.value)
    assert "0x0A" in str(excinfo.value)


def test_read_idx_truncated_payload(tmp_path):
    data = idx_bytes(np.zeros((4, 5), dtype=np.uint8))
    path = tmp_path / "short"
    path.write_bytes(data[:-1])
    with pytest.raises(ValueError, match="truncated") as excinfo:
        read_idx(path)
    assert "short" in str(excinfo.value)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "shorthdr"
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0, 0, 2]))  # 3 dims announced, 1 given
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="tiny"):
        read_idx(tiny)


def test_read_idx_extra_bytes(tmp_path):
    data = idx_bytes(np.zeros((3,), dtype=np.float32))
    path = tmp_path / "long"
    path.write_bytes(data + b"\x00")
    with pytest.raises(ValueError, match="longer") as excinfo:
        read_idx(path)
    assert "long" in str(excinfo.value)


def test_read_idx_truncated_gzip(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(ValueError, match="cut.gz"):
        read_idx(path)


def test_read_idx_truncated_payload_gzipped(tmp_path):
    data = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


# --------------------------------------------------------------------------
# load_mnist(folder)
# --------------------------------------------------------------------------


@pytest.fixture
def fake_train():
    return fake_mnist(50, seed=0)


@pytest.fixture
def fake_test():
    return fake_mnist(20, seed=1)


def make_folder(folder: Path, train=None, test=None, *, gz=False, dotted=False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for part, stems in ((train, (TRAIN_IMAGES, TRAIN_LABELS)), (test, (TEST_IMAGES, TEST_LABELS))):
        if part is None:
            continue
        for stem, array in zip(stems, part):
            name = stem.replace("-idx", ".idx") if dotted else stem
            write_idx(folder / (name + suffix), array, gz=gz)
    return folder


def expected_xy(*parts):
    images = np.concatenate([p[0] for p in parts]).reshape(-1, 784)
    labels = np.concatenate([p[1] for p in parts])
    return images.astype(np.float32) / np.float32(255), labels.astype(np.int64)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_load_mnist_folder_subsets(tmp_path, fake_train, fake_test, gz):
    folder = make_folder(tmp_path / "mnist", fake_train, fake_test, gz=gz)

    X, y = load_mnist(folder, subset="train")
    ex, ey = expected_xy(fake_train)
    assert X.shape == (50, 784) and X.dtype == np.float32 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, ex)
    np.testing.assert_array_equal(y, ey)
    assert y.dtype == np.int64

    X, y = load_mnist(folder, subset="test")
    ex, ey = expected_xy(fake_test)
    np.testing.assert_array_equal(X, ex)
    np.testing.assert_array_equal(y, ey)

    X, y = load_mnist(str(folder), subset="all")
    ex, ey = expected_xy(fake_train, fake_test)
    assert X.shape == (70, 784)
    np.testing.assert_array_equal(X, ex)
    np.testing.assert_array_equal(y, ey)

    X_none, y_none = load_mnist(folder)
    np.testing.assert_array_equal(X_none, X)
    np.testing.assert_array_equal(y_none, y)

    X64, _ = load_mnist(folder, subset="train", dtype="float64")
    assert X64.dtype == np.float64
    np.testing.assert_array_equal(X64, fake_train[0].reshape(-1, 784).astype(np.float64) / 255.0)


def test_load_mnist_folder_dotted_names(tmp_path, fake_train, fake_test):
    folder = make_folder(tmp_path, fake_train, fake_test, dotted=True, gz=True)
    X, y = load_mnist(folder, subset="all")
    ex, ey = expected_xy(fake_train, fake_test)
    np.testing.assert_array_equal(X, ex)
    np.testing.assert_array_equal(y, ey)


def test_load_mnist_folder_mixed_plain_and_gz(tmp_path, fake_train, fake_test):
    make_folder(tmp_path, fake_train, None, gz=False)
    make_folder(tmp_path, None, fake_test, gz=True)
    X, y = load_mnist(tmp_path)
    ex, ey = expected_xy(fake_train, fake_test)
    np.testing.assert_array_equal(X, ex)
    np.testing.assert_array_equal(y, ey)


def test_load_mnist_folder_none_uses_what_is_there(tmp_path, fake_train, fake_test):
    only_train = make_folder(tmp_path / "train_only", fake_train, None)
    only_test = make_folder(tmp_path / "test_only", None, fake_test, gz=True)
    X, y = load_mnist(only_train)
    np.testing.assert_array_equal(X, expected_xy(fake_train)[0])
    X, y = load_mnist(only_test)
    np.testing.assert_array_equal(y, expected_xy(fake_test)[1])


def test_load_mnist_folder_with_real_test_set(tmp_path):
    source = mnist_source_dir()
    for name in (TEST_IMAGES + ".gz", TEST_LABELS + ".gz"):
        (tmp_path / name).write_bytes((source / name).read_bytes())
    X, y = load_mnist(tmp_path, subset="test")
    X0, y0 = load_mnist()
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_load_mnist_folder_missing_files(tmp_path, fake_test):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_mnist(empty)
    assert TRAIN_IMAGES in str(excinfo.value) and TEST_IMAGES in str(excinfo.value)

    folder = make_folder(tmp_path / "test_only", None, fake_test)
    with pytest.raises(FileNotFoundError) as excinfo:
        load_mnist(folder, subset="train")
    message = str(excinfo.value)
    assert TRAIN_IMAGES in message and TRAIN_IMAGES + ".gz" in message
    assert "train-images.idx3-ubyte" in message
    with pytest.raises(FileNotFoundError, match=TRAIN_IMAGES):
        load_mnist(folder, subset="all")

    (folder / TEST_LABELS).unlink()
    with pytest.raises(FileNotFoundError, match=TEST_LABELS):
        load_mnist(folder)


def test_load_mnist_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        load_mnist(tmp_path / "does_not_exist")


def test_load_mnist_path_is_a_file(tmp_path):
    path = write_idx(tmp_path / TEST_IMAGES, np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(NotADirectoryError):
        load_mnist(path)


def test_load_mnist_count_mismatch(tmp_path):
    images, labels = fake_mnist(10, seed=2)
    write_idx(tmp_path / TEST_IMAGES, images)
    write_idx(tmp_path / TEST_LABELS, labels[:9])
    with pytest.raises(ValueError, match="mismatch"):
        load_mnist(tmp_path)


def test_load_mnist_wrong_image_size(tmp_path):
    write_idx(tmp_path / TEST_IMAGES, np.zeros((4, 28, 27), dtype=np.uint8))
    write_idx(tmp_path / TEST_LABELS, np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="28x28"):
        load_mnist(tmp_path)


def test_load_mnist_bad_labels(tmp_path):
    write_idx(tmp_path / TEST_IMAGES, np.zeros((2, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / TEST_LABELS, np.array([1, 10], dtype=np.uint8))
    with pytest.raises(ValueError, match="0..9"):
        load_mnist(tmp_path)


def test_load_mnist_folder_fresh_arrays(tmp_path, fake_test):
    folder = make_folder(tmp_path, None, fake_test)
    X1, y1 = load_mnist(folder)
    X1 += 5
    y1[:] = -1
    X2, y2 = load_mnist(folder)
    np.testing.assert_array_equal(X2, expected_xy(fake_test)[0])
    np.testing.assert_array_equal(y2, expected_xy(fake_test)[1])


def test_load_mnist_sees_rewritten_files(tmp_path):
    a = fake_mnist(5, seed=3)
    b = fake_mnist(7, seed=4)
    make_folder(tmp_path, None, a)
    assert load_mnist(tmp_path)[0].shape == (5, 784)
    make_folder(tmp_path, None, b)
    X, y = load_mnist(tmp_path)
    np.testing.assert_array_equal(X, expected_xy(b)[0])


# --------------------------------------------------------------------------
# fetch_mnist against a local HTTP server
# --------------------------------------------------------------------------


class Server:
    """A threaded HTTP server on 127.0.0.1 serving a folder, logging paths."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        self.release = threading.Event()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path.startswith("/slow/"):
                    server.release.wait(10)
                    return
                if self.path.startswith("/truncated/"):
                    body = (server.root / self.path.rsplit("/", 1)[-1]).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, format, *args):
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def files_requested(self) -> list[str]:
        return [path.rsplit("/", 1)[-1] for path in self.requests]


@pytest.fixture
def served(tmp_path):
    """Serve the real test set plus a small synthetic training set.

    Returns (server, checksums, good_bytes).
    """
    root = tmp_path / "www"
    root.mkdir()
    source = mnist_source_dir()
    good = {
        TEST_IMAGES + ".gz": (source / (TEST_IMAGES + ".gz")).read_bytes(),
        TEST_LABELS + ".gz": (source / (TEST_LABELS + ".gz")).read_bytes(),
    }
    train_images, train_labels = fake_mnist(50, seed=5)
    good[TRAIN_IMAGES + ".gz"] = gzip.compress(idx_bytes(train_images), mtime=0)
    good[TRAIN_LABELS + ".gz"] = gzip.compress(idx_bytes(train_labels), mtime=0)
    for name, data in good.items():
        (root / name).write_bytes(data)
    checksums = {name: sha256(data) for name, data in good.items()}

    server = Server(root)
    try:
        yield server, checksums, good
    finally:
        server.close()


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    # Guard: never fall back to the user's real cache or the real mirrors.
    monkeypatch.setenv("DEEPGM_DATA", str(tmp_path / "env_home_unused"))
    monkeypatch.setattr(datasets, "_MNIST_MIRRORS", ("http://127.0.0.1:9/unused/",))
    return tmp_path / "home"


def test_fetch_mnist_downloads_and_loads(served, data_home):
    server, checksums, good = served
    folder = fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    assert folder == data_home / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(GZ_NAMES)
    for name in GZ_NAMES:
        assert (folder / name).read_bytes() == good[name]
    assert sorted(server.files_requested()) == sorted(GZ_NAMES)

    X, y = load_mnist(folder, subset="test")
    X0, y0 = load_mnist()
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert X.dtype == X0.dtype and y.dtype == y0.dtype

    X_train, y_train = load_mnist(folder, subset="train")
    assert X_train.shape == (50, 784)
    X_all, y_all = load_mnist(folder)
    assert X_all.shape == (10050, 784)
    np.testing.assert_array_equal(X_all[50:], X0)


def test_fetch_mnist_second_call_makes_no_request(served, data_home):
    server, checksums, _ = served
    first = fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    assert len(server.requests) == 4
    mtimes = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    second = fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    assert second == first
    assert len(server.requests) == 4
    assert {p.name: p.stat().st_mtime_ns for p in second.iterdir()} == mtimes


def test_fetch_mnist_cached_needs_no_server(served, data_home):
    server, checksums, _ = served
    fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    # A base_url that cannot be reached: valid cached files need no network.
    folder = fetch_mnist(data_home, base_url="http://127.0.0.1:9/", checksums=checksums)
    assert sorted(p.name for p in folder.iterdir()) == sorted(GZ_NAMES)


def test_fetch_mnist_base_url_without_trailing_slash(served, data_home):
    server, checksums, _ = served
    folder = fetch_mnist(data_home, base_url=server.url.rstrip("/"), checksums=checksums)
    assert sorted(p.name for p in folder.iterdir()) == sorted(GZ_NAMES)
    assert all(path.startswith("/") and "//" not in path for path in server.requests)


def test_fetch_mnist_corrupt_download(served, data_home):
    server, checksums, good = served
    name = TEST_LABELS + ".gz"
    corrupt = bytearray(good[name])
    corrupt[100] ^= 0xFF
    (server.root / name).write_bytes(bytes(corrupt))

    with pytest.raises(ValueError) as excinfo:
        fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    message = str(excinfo.value)
    assert name in message
    assert checksums[name] in message
    assert sha256(bytes(corrupt)) in message
    assert server.url + name in message

    folder = data_home / "mnist"
    assert not (folder / name).exists()
    assert leftover_temp_files(folder) == []


def test_fetch_mnist_replaces_stale_corrupt_file(served, data_home):
    server, checksums, good = served
    folder = fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    name = TRAIN_IMAGES + ".gz"
    (folder / name).write_bytes(b"garbage")
    server.requests.clear()

    fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    assert server.files_requested() == [name]
    assert (folder / name).read_bytes() == good[name]
    assert leftover_temp_files(folder) == []
    assert load_mnist(folder, subset="train")[0].shape == (50, 784)


def test_fetch_mnist_mismatched_file_kept_when_redownload_fails(served, data_home):
    """A cached file with another SHA-256 may be a valid copy compressed another way (deepgm's own
    embedded test files are): a failed download must not delete it."""
    server, checksums, _ = served
    folder = fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    name = TEST_IMAGES + ".gz"
    recompressed = gzip.compress(gzip.decompress((folder / name).read_bytes()), mtime=1)
    (folder / name).write_bytes(recompressed)
    (server.root / name).unlink()
    with pytest.raises(OSError, match=f"{name}.*left as it was"):
        fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    assert (folder / name).read_bytes() == recompressed
    assert leftover_temp_files(folder) == []
    assert load_mnist(folder, subset="test")[0].shape[1] == 784


def test_fetch_mnist_force_redownloads(served, data_home):
    server, checksums, good = served
    fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    server.requests.clear()
    folder = fetch_mnist(data_home, base_url=server.url, checksums=checksums, force=True)
    assert sorted(server.files_requested()) == sorted(GZ_NAMES)
    for name in GZ_NAMES:
        assert (folder / name).read_bytes() == good[name]
    assert leftover_temp_files(folder) == []


def test_fetch_mnist_404_names_file(served, data_home):
    server, checksums, _ = served
    name = TRAIN_LABELS + ".gz"
    (server.root / name).unlink()
    with pytest.raises(OSError) as excinfo:
        fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    message = str(excinfo.value)
    assert name in message
    assert server.url + name in message
    assert "404" in message
    folder = data_home / "mnist"
    assert not (folder / name).exists()
    assert leftover_temp_files(folder) == []


def test_fetch_mnist_falls_back_to_next_mirror(served, data_home):
    server, checksums, good = served
    mirrors = [server.url + "missing/", server.url]
    folder = fetch_mnist(data_home, base_url=mirrors, checksums=checksums)
    for name in GZ_NAMES:
        assert (folder / name).read_bytes() == good[name]
    assert f"/missing/{TRAIN_IMAGES}.gz" in server.requests


def test_fetch_mnist_default_mirrors_tried_in_order(served, data_home, monkeypatch):
    server, checksums, good = served
    # The first mirror 404s; the second (no trailing slash) serves the files.
    monkeypatch.setattr(datasets, "_MNIST_MIRRORS", (server.url + "first/", server.url.rstrip("/")))
    folder = fetch_mnist(data_home, checksums=checksums)
    for name in GZ_NAMES:
        assert (folder / name).read_bytes() == good[name]
    assert server.requests[:2] == [f"/first/{TRAIN_IMAGES}.gz", f"/{TRAIN_IMAGES}.gz"]
    assert len(server.requests) == 8


def test_fetch_mnist_all_mirrors_fail(served, data_home):
    server, checksums, _ = served
    mirrors = [server.url + "a/", server.url + "b/"]
    with pytest.raises(OSError) as excinfo:
        fetch_mnist(data_home, base_url=mirrors, checksums=checksums)
    message = str(excinfo.value)
    assert TRAIN_IMAGES + ".gz" in message
    assert server.url + "a/" + TRAIN_IMAGES + ".gz" in message
    assert server.url + "b/" + TRAIN_IMAGES + ".gz" in message


def test_fetch_mnist_default_checksums_reject_other_bytes(served, data_home):
    # The synthetic training files are not the official ones.
    server, _, good = served
    with pytest.raises(ValueError) as excinfo:
        fetch_mnist(data_home, base_url=server.url)
    message = str(excinfo.value)
    assert TRAIN_IMAGES + ".gz" in message
    assert datasets._MNIST_SHA256[TRAIN_IMAGES + ".gz"] in message
    assert sha256(good[TRAIN_IMAGES + ".gz"]) in message
    assert leftover_temp_files(data_home / "mnist") == []


def test_fetch_mnist_partial_checksums_override(served, data_home):
    server, checksums, _ = served
    # Only the training files get new checksums; the default ones for the
    # test files stay in force.
    partial = {name: checksums[name] for name in (TRAIN_IMAGES + ".gz", TRAIN_LABELS + ".gz")}
    if sha256((server.root / (TEST_IMAGES + ".gz")).read_bytes()) == datasets._MNIST_SHA256[TEST_IMAGES + ".gz"]:
        # Served files are the official ones: everything must succeed.
        fetch_mnist(data_home, base_url=server.url, checksums=partial)
    else:
        with pytest.raises(ValueError, match=TEST_IMAGES):
            fetch_mnist(data_home, base_url=server.url, checksums=partial)
    folder = data_home / "mnist"
    assert (folder / (TRAIN_IMAGES + ".gz")).is_file()
    assert (folder / (TRAIN_LABELS + ".gz")).is_file()


def test_default_checksums_table():
    assert datasets._MNIST_SHA256 == {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }


def test_fetch_mnist_truncated_transfer(served, data_home):
    server, checksums, _ = served
    with pytest.raises(OSError) as excinfo:
        fetch_mnist(data_home, base_url=server.url + "truncated/", checksums=checksums)
    assert "incomplete" in str(excinfo.value)
    assert TRAIN_IMAGES + ".gz" in str(excinfo.value)
    assert list((data_home / "mnist").iterdir()) == []


def test_fetch_mnist_timeout(served, data_home):
    server, checksums, _ = served
    with pytest.raises(OSError, match=TRAIN_IMAGES):
        fetch_mnist(data_home, base_url=server.url + "slow/", checksums=checksums, timeout=0.3)
    assert list((data_home / "mnist").iterdir()) == []


def test_fetch_mnist_interrupted_leaves_nothing(served, data_home, monkeypatch):
    server, checksums, _ = served

    def interrupted(url, output_file, pooch):
        with open(output_file, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "_downloader", lambda timeout, verbose: interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    assert list((data_home / "mnist").iterdir()) == []


def test_fetch_mnist_env_var_sets_data_home(served, tmp_path, monkeypatch):
    server, checksums, _ = served
    home = tmp_path / "from_env"
    monkeypatch.setenv("DEEPGM_DATA", str(home))
    folder = fetch_mnist(base_url=server.url, checksums=checksums)
    assert folder == home / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(GZ_NAMES)


def test_fetch_mnist_default_home_without_env(served, tmp_path, monkeypatch):
    server, checksums, _ = served
    monkeypatch.delenv("DEEPGM_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    folder = fetch_mnist(base_url=server.url, checksums=checksums)
    assert folder == tmp_path / "user" / ".cache" / "deepgm" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(GZ_NAMES)


def test_fetch_mnist_verbose(served, data_home, capsys):
    server, checksums, _ = served
    fetch_mnist(data_home, base_url=server.url, checksums=checksums, verbose=True)
    err = capsys.readouterr().err
    assert server.url + TRAIN_IMAGES + ".gz" in err


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"checksums": {"mnist.npz": "0" * 64}}, "checksums keys"),
        ({"checksums": {TRAIN_IMAGES + ".gz": "xyz"}}, "SHA-256 hex digest"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "60"}, "timeout"),
        ({"base_url": []}, "base_url"),
    ],
)
def test_fetch_mnist_bad_arguments(tmp_path, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        fetch_mnist(tmp_path, **kwargs)
    assert not (tmp_path / "mnist").exists()


def test_fetch_mnist_writes_only_inside_mnist_folder(served, data_home):
    server, checksums, _ = served
    fetch_mnist(data_home, base_url=server.url, checksums=checksums)
    assert [p.name for p in data_home.iterdir()] == ["mnist"]
    assert sorted(p.name for p in (data_home / "mnist").iterdir()) == sorted(GZ_NAMES)


def test_submodules_are_attributes_after_a_plain_import():
    """``import deepgm`` is enough for ``deepgm.datasets.load_mnist()`` and ``deepgm.plotting``, and it
    does not import matplotlib (an optional extra, loaded when a picture is drawn)."""
    code = (
        "import sys, deepgm\n"
        "assert callable(deepgm.datasets.load_mnist) and callable(deepgm.plotting.plot_samples)\n"
        "assert 'matplotlib' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
