"""Dataset loaders for deepgm: the MNIST handwritten digits, and a reader of MovieLens ratings.

The MNIST test set (10,000 images) ships inside the package, so
:func:`load_mnist` works offline out of the box. The 60,000 training images
are downloaded on request by :func:`fetch_mnist`, which verifies every file
against a SHA-256 checksum before it enters the local cache. :func:`read_idx`
decodes the IDX format the MNIST files are stored in.

Downloads go through pooch, which checks each file's SHA-256; with
``verbose=True`` they show a tqdm progress bar.

Examples
--------
>>> from deepgm.datasets import load_mnist
>>> X, y = load_mnist()
>>> X.shape, X.dtype, y.shape, y.dtype
((10000, 784), dtype('float32'), (10000,), dtype('int64'))
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import logging
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np
import pooch

__all__ = ["read_idx", "load_mnist", "fetch_mnist", "load_movielens"]

PathLike = Union[str, "os.PathLike[str]"]

# --------------------------------------------------------------------------
# IDX format
# --------------------------------------------------------------------------

# IDX type code -> dtype of the stored (big-endian) values.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _is_gzipped(path: Path) -> bool:
    """Whether ``path`` is to be read as gzip (by its name or first bytes)."""
    if path.name.lower().endswith(".gz"):
        return True
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _read_bytes(path: Path) -> bytes:
    """Read the whole file, decompressing it when it is gzipped."""
    if not _is_gzipped(path):
        with open(path, "rb") as fh:
            return fh.read()
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{str(path)!r} is not a valid gzip file or is truncated: {exc}") from exc


def _parse_idx(data: bytes, path: Path) -> np.ndarray:
    """Decode the bytes of one IDX file into a new native-endian array."""
    if len(data) < 4:
        raise ValueError(f"{str(path)!r} is not an IDX file: it holds only {len(data)} byte(s), fewer than the 4-byte magic number")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{str(path)!r} is not an IDX file: bad magic number "
            f"0x{data[:4].hex()} (an IDX file starts with two zero bytes, "
            "a type code and the number of dimensions)"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise ValueError(f"{str(path)!r} has an unknown IDX type code 0x{type_code:02X} (expected one of {known})")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"{str(path)!r} is truncated: its header announces {ndim} "
            f"dimension(s), which need {header_size} header bytes, but the "
            f"file holds only {len(data)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    stored = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * stored.itemsize
    actual = len(data) - header_size
    if actual != expected:
        problem = "truncated" if actual < expected else "longer than its header says"
        raise ValueError(
            f"{str(path)!r} is {problem}: shape {shape} of {stored.name} needs {expected} data bytes, but the file holds {actual}"
        )
    values = np.frombuffer(data, dtype=stored, offset=header_size)
    # astype copies: the result is writable, owns its memory, native order.
    return values.reshape(shape).astype(stored.newbyteorder("="))


def read_idx(path: PathLike) -> np.ndarray:
    """Read one file in the IDX format used by MNIST.

    An IDX file holds a 4-byte magic number (two zero bytes, a type code and
    the number of dimensions), the size of each dimension as a big-endian
    unsigned 32-bit integer, then the values in C order, big-endian.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read. It is decompressed with gzip when its name ends
        with ``.gz`` or when it starts with the gzip magic bytes
        ``0x1f 0x8b``; otherwise it is read as is.

    Returns
    -------
    array : numpy.ndarray
        A new, writable array with the shape stored in the header and the
        dtype given by the type code, in native byte order: ``uint8``
        (0x08), ``int8`` (0x09), ``int16`` (0x0B), ``int32`` (0x0C),
        ``float32`` (0x0D) or ``float64`` (0x0E).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not valid IDX: bad magic number, unknown type code,
        or a payload shorter or longer than the header's dimensions say
        (also for a corrupt or truncated gzip stream). The message names
        the file.

    See Also
    --------
    load_mnist : Load MNIST images and labels as ready-to-use arrays.

    Examples
    --------
    >>> from importlib.resources import files
    >>> from deepgm.datasets import read_idx
    >>> images = read_idx(files("deepgm") / "data" / "t10k-images-idx3-ubyte.gz")
    >>> images.shape, images.dtype
    ((10000, 28, 28), dtype('uint8'))
    """
    path = Path(os.fspath(path))
    return _parse_idx(_read_bytes(path), path)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """Decode an IDX file once per (path, modification time, size).

    The cached array is read-only; callers must copy before handing data
    out (``load_mnist`` always converts into new arrays).
    """
    array = read_idx(path)
    array.flags.writeable = False
    return array


def _read_idx_shared(path: Path) -> np.ndarray:
    """Read-only decoded IDX array, cached while the file is unchanged."""
    stat = path.stat()
    return _read_idx_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


# --------------------------------------------------------------------------
# MNIST loading
# --------------------------------------------------------------------------

_SUBSETS = (None, "train", "test", "all")

# Part -> (images file stem, labels file stem), as distributed.
_MNIST_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_PART_NAMES = {"train": "training", "test": "test"}


def _embedded_data_dir() -> Path:
    """The folder inside the package holding the MNIST test set."""
    return Path(__file__).resolve().parent / "data"


def _check_subset(subset: object) -> None:
    if not (subset is None or (isinstance(subset, str) and subset in _SUBSETS)):
        raise ValueError(f"subset must be one of None, 'train', 'test', 'all'; got {subset!r}")


def _check_dtype(dtype: object) -> np.dtype:
    """Validate ``dtype`` and return the matching native numpy dtype."""
    if isinstance(dtype, str):
        name = dtype
    elif dtype is np.float32 or dtype is np.float64:
        name = np.dtype(dtype).name
    elif isinstance(dtype, np.dtype):
        name = dtype.name
    else:
        name = None
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be one of 'float32', 'float64' (or np.float32, np.float64); got {dtype!r}")
    return np.dtype(name)


def _candidate_names(stem: str) -> list[str]:
    """File names under which one MNIST file may be stored, in preference order.

    Both the official hyphenated names and the dotted variant some mirrors
    use (``train-images.idx3-ubyte``) are accepted, plain or gzipped.
    """
    dotted = stem.replace("-idx", ".idx")
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in _candidate_names(stem):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _require_file(folder: Path, stem: str, what: str) -> Path:
    found = _find_file(folder, stem)
    if found is None:
        looked_for = ", ".join(_candidate_names(stem))
        raise FileNotFoundError(
            f"Could not find the MNIST {what} in {str(folder)!r}: looked for "
            f"{looked_for}. Use deepgm.datasets.fetch_mnist() to download "
            "the MNIST files."
        )
    return found


def _load_part(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and check one images/labels pair (read-only uint8 arrays)."""
    images = _read_idx_shared(images_path)
    labels = _read_idx_shared(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{str(images_path)!r} does not hold 28x28 uint8 MNIST images: got an array of shape {images.shape} and dtype {images.dtype}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{str(labels_path)!r} does not hold uint8 MNIST labels: got an array of shape {labels.shape} and dtype {labels.dtype}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"MNIST image/label count mismatch: {str(images_path)!r} holds "
            f"{images.shape[0]} images but {str(labels_path)!r} holds "
            f"{labels.shape[0]} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{str(labels_path)!r} holds labels outside 0..9 (maximum {int(labels.max())})")
    return images, labels


def _parts_for(folder: Path, subset: str | None) -> list[str]:
    """Which parts (train, test) to load from ``folder`` for ``subset``."""
    if subset == "all":
        return ["train", "test"]
    if subset is not None:
        return [subset]
    present = [part for part, stems in _MNIST_STEMS.items() if any(_find_file(folder, stem) is not None for stem in stems)]
    if not present:
        looked_for = ", ".join(name for stems in _MNIST_STEMS.values() for stem in stems for name in _candidate_names(stem))
        raise FileNotFoundError(
            f"No MNIST files found in {str(folder)!r}: looked for {looked_for}. "
            "Use deepgm.datasets.fetch_mnist() to download the MNIST files."
        )
    return present


def _mnist_files(path: PathLike | None, subset: str | None) -> list[tuple[Path, Path]]:
    """The (images, labels) file pairs to load, in output order."""
    if path is None:
        if subset not in (None, "test"):
            raise ValueError(
                f"subset={subset!r} is not available without a path: only the "
                "MNIST test set is embedded in deepgm. Download the full "
                "dataset with deepgm.datasets.fetch_mnist() and pass the folder "
                "it returns: load_mnist(fetch_mnist(), subset=...)"
            )
        folder = _embedded_data_dir()
        return [
            (
                _require_file(folder, "t10k-images-idx3-ubyte", "embedded test images"),
                _require_file(folder, "t10k-labels-idx1-ubyte", "embedded test labels"),
            )
        ]

    folder = Path(os.fspath(path)).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"MNIST folder not found: {str(folder)!r}")
    if not folder.is_dir():
        raise NotADirectoryError(f"path must be a folder holding the MNIST files; {str(folder)!r} is not a directory")
    pairs = []
    for part in _parts_for(folder, subset):
        images_stem, labels_stem = _MNIST_STEMS[part]
        pairs.append(
            (
                _require_file(folder, images_stem, f"{_PART_NAMES[part]} images"),
                _require_file(folder, labels_stem, f"{_PART_NAMES[part]} labels"),
            )
        )
    return pairs


def load_mnist(
    path: PathLike | None = None,
    *,
    subset: str | None = None,
    dtype: object = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST handwritten digits as flat, scaled pixel vectors.

    Parameters
    ----------
    path : str, os.PathLike or None, default=None
        ``None`` loads the 10,000-image MNIST test set embedded in the
        package (no download needed). Otherwise a folder holding the
        standard MNIST files ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, each plain or gzipped (``.gz``); the
        dotted names some mirrors use (``train-images.idx3-ubyte``) are
        accepted too. :func:`fetch_mnist` returns such a folder.
    subset : {None, 'train', 'test', 'all'}, default=None
        Which part to load. ``'all'`` is the training set followed by the
        test set. ``None`` loads everything available: with a folder, the
        training set then the test set if both are present, otherwise
        whichever one is; without a folder, the embedded test set (only
        ``None`` and ``'test'`` are valid then).
    dtype : {'float32', 'float64'}, default='float32'
        Floating-point type of ``X``; ``np.float32`` and ``np.float64`` are
        accepted too.

    Returns
    -------
    X : numpy.ndarray of shape (n_samples, 784)
        C-contiguous pixel intensities scaled to [0, 1] (the stored bytes
        divided by 255), one flattened 28x28 image per row.
    y : numpy.ndarray of shape (n_samples,), dtype int64
        Digit labels in 0..9.

    Every call returns new arrays, so modifying them never affects later
    calls.

    Raises
    ------
    ValueError
        If ``subset`` or ``dtype`` is not one of the accepted values, if a
        subset other than the test set is requested without ``path``, or if
        the files are inconsistent (image and label counts differ, images
        are not 28x28, labels outside 0..9) or not valid IDX.
    FileNotFoundError
        If ``path`` does not exist or a needed file is missing from it; the
        message lists the file names looked for.
    NotADirectoryError
        If ``path`` exists but is not a folder.

    See Also
    --------
    fetch_mnist : Download the full MNIST dataset into a local cache.
    read_idx : Read a single IDX file.

    Examples
    --------
    >>> from deepgm.datasets import load_mnist
    >>> X, y = load_mnist()
    >>> X.shape, y.shape
    ((10000, 784), (10000,))
    >>> float(X.min()), float(X.max())
    (0.0, 1.0)

    The full dataset, once downloaded:

    >>> from deepgm.datasets import fetch_mnist
    >>> X_train, y_train = load_mnist(fetch_mnist(), subset="train")  # doctest: +SKIP
    >>> X_train.shape  # doctest: +SKIP
    (60000, 784)
    """
    _check_subset(subset)
    float_dtype = _check_dtype(dtype)
    parts = [_load_part(images, labels) for images, labels in _mnist_files(path, subset)]

    if len(parts) == 1:
        images, labels = parts[0]
    else:
        images = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])

    # astype always copies, so the (possibly cached) uint8 arrays are never
    # exposed and every call returns fresh, C-contiguous arrays.
    X = images.reshape(images.shape[0], -1).astype(float_dtype, order="C")
    X /= float_dtype.type(255)
    y = labels.astype(np.int64)
    return X, y


# --------------------------------------------------------------------------
# Downloading
# --------------------------------------------------------------------------

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# SHA-256 of the gzipped files as served by the mirrors above.
_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


class _ChecksumMismatch(ValueError):
    """A download completed but its SHA-256 is not the expected one."""


def _default_data_home() -> Path:
    env = os.environ.get("DEEPGM_DATA")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "deepgm"


def _normalize_mirrors(base_url: str | Sequence[str] | None) -> list[str]:
    if base_url is None:
        urls = list(_MNIST_MIRRORS)
    elif isinstance(base_url, str):
        urls = [base_url]
    else:
        urls = list(base_url)
    if not urls or not all(isinstance(url, str) and url for url in urls):
        raise ValueError(f"base_url must be None, a URL string or a non-empty sequence of URL strings; got {base_url!r}")
    return [url if url.endswith("/") else url + "/" for url in urls]


def _normalize_checksums(checksums: Mapping[str, str] | None) -> dict[str, str]:
    table = dict(_MNIST_SHA256)
    if checksums is None:
        return table
    for name, digest in dict(checksums).items():
        if name not in _MNIST_SHA256:
            raise ValueError(f"checksums keys must be among {sorted(_MNIST_SHA256)}; got {name!r}")
        valid = isinstance(digest, str) and len(digest) == 64
        if valid:
            try:
                bytes.fromhex(digest)
            except ValueError:
                valid = False
        if not valid:
            raise ValueError(f"checksums[{name!r}] must be a SHA-256 hex digest (64 hexadecimal characters); got {digest!r}")
        table[name] = digest.lower()
    return table


@contextlib.contextmanager
def _pooch_silenced():
    """pooch logs every download to stderr; fetch_mnist prints only when asked (verbose)."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _downloader(timeout: float, verbose: bool):
    """pooch's HTTP downloader: ``timeout`` for connecting and each read, a tqdm bar if ``verbose``."""
    return pooch.HTTPDownloader(progressbar=verbose, timeout=timeout)


def _download_one(url: str, dest: Path, expected: str, timeout: float, verbose: bool) -> None:
    """Download ``url`` to ``dest`` with pooch, verifying its SHA-256.

    pooch streams into a temporary file, checks its hash and deletes it on a mismatch; it does so
    in a private temporary folder beside ``dest``, and only the verified file is renamed to
    ``dest``. So ``dest`` is never partial, and an existing ``dest`` (a forced download, a cached
    file with another hash) is replaced only by a verified copy. The folder is removed whatever
    happens (mismatch, network error, interruption).
    """
    import requests  # pooch's HTTP client, imported on first download as pooch itself does

    if verbose:
        print(f"Downloading {url}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as private:
        try:
            with _pooch_silenced():
                fetched = pooch.retrieve(
                    url,
                    known_hash=f"sha256:{expected}",
                    fname=dest.name,
                    path=private,
                    downloader=_downloader(timeout, verbose),
                )
        except requests.exceptions.ChunkedEncodingError as exc:  # the connection broke mid-file
            raise OSError(f"incomplete download of {url}: {exc}") from None
        except ValueError as exc:  # pooch's hash check: the message names the file and both digests
            raise _ChecksumMismatch(f"{exc} (downloaded from {url})") from None
        os.replace(fetched, dest)


def _download(
    name: str,
    mirrors: list[str],
    dest: Path,
    expected: str,
    timeout: float,
    verbose: bool,
) -> None:
    """Download ``name`` from the first mirror that serves valid bytes."""
    failures = []
    mismatches = []
    for base in mirrors:
        url = base + name
        try:
            _download_one(url, dest, expected, timeout, verbose)
            return
        except _ChecksumMismatch as exc:
            mismatches.append(exc)
            failures.append(f"{url}: checksum mismatch")
        except OSError as exc:  # requests' errors are OSErrors too
            failures.append(f"{url}: {exc}")
        if verbose:
            print(f"  failed: {failures[-1]}", file=sys.stderr)

    if len(mirrors) == 1 and mismatches:
        raise mismatches[0]
    tried = "; ".join(failures)
    if mismatches:
        raise ValueError(
            f"Could not download a valid {name}: expected SHA-256 {expected}; tried {tried}. " + " ".join(str(exc) for exc in mismatches)
        )
    raise OSError(f"Could not download {name}; tried {tried}")


def fetch_mnist(
    data_home: PathLike | None = None,
    *,
    base_url: str | Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    force: bool = False,
    timeout: float = 60.0,
    verbose: bool = False,
) -> Path:
    """Download the full MNIST dataset (once) and return its local folder.

    The four gzipped MNIST files (training and test images and labels) are
    stored in ``<data_home>/mnist/``. Files already there whose SHA-256
    matches are kept, so once everything is cached no network access
    happens at all. Each download is streamed into a temporary file in the
    same folder and renamed into place only after its SHA-256 has been
    verified: nothing partial or corrupt is ever written to the cache, even
    when the download fails or is interrupted. A cached file whose SHA-256
    differs is replaced by a verified download, and left as it was if the
    download fails.

    Parameters
    ----------
    data_home : str, os.PathLike or None, default=None
        Root of the data cache. ``None`` means the ``DEEPGM_DATA``
        environment variable if it is set, otherwise ``~/.cache/deepgm``.
    base_url : str, sequence of str or None, default=None
        URL of the folder to download from (a trailing slash is optional);
        a sequence of URLs is tried in order. ``None`` tries
        ``https://ossci-datasets.s3.amazonaws.com/mnist/``, then
        ``https://storage.googleapis.com/cvdf-datasets/mnist/``.
    checksums : dict of str to str or None, default=None
        Expected SHA-256 hex digests by file name (e.g.
        ``"train-images-idx3-ubyte.gz"``), overriding the built-in ones for
        the files given.
    force : bool, default=False
        Download every file again even if a valid copy is cached.
    timeout : float, default=60.0
        Timeout in seconds for connecting and for each network read.
    verbose : bool, default=False
        Print what is downloaded to stderr, with a tqdm progress bar.

    Returns
    -------
    folder : pathlib.Path
        The folder holding the four files, ready for :func:`load_mnist`.

    Raises
    ------
    ValueError
        If a downloaded file does not have the expected SHA-256 (the message
        names the file, the expected and actual digests and the URL), or if
        an argument is invalid.
    OSError
        If a file could not be downloaded from any mirror (the message names
        the file and the URLs tried), or the cache folder cannot be written.

    See Also
    --------
    load_mnist : Load the downloaded files as arrays.

    Examples
    --------
    >>> from deepgm.datasets import fetch_mnist, load_mnist
    >>> folder = fetch_mnist()  # doctest: +SKIP
    >>> X_train, y_train = load_mnist(folder, subset="train")  # doctest: +SKIP
    >>> X_train.shape, y_train.shape  # doctest: +SKIP
    ((60000, 784), (60000,))
    """
    mirrors = _normalize_mirrors(base_url)
    expected_sha256 = _normalize_checksums(checksums)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")

    root = _default_data_home() if data_home is None else Path(os.fspath(data_home))
    folder = (root.expanduser() / "mnist").absolute()
    folder.mkdir(parents=True, exist_ok=True)

    for name, expected in expected_sha256.items():
        dest = folder / name
        mismatched = False
        if dest.is_file():
            if pooch.file_hash(str(dest)) == expected:
                if not force:
                    continue
            else:
                mismatched = True
                if verbose:
                    print(f"{dest} has a wrong SHA-256; downloading it again", file=sys.stderr)
        # The download replaces a mismatched file only once it is verified. If it fails, the
        # file is left as it was: it may be a valid copy compressed another way (deepgm's own
        # embedded test files are), and deleting it would lose it.
        try:
            _download(name, mirrors, dest, expected, timeout, verbose)
        except OSError as err:
            if mismatched:
                raise OSError(f"{err}; the cached {dest} (its SHA-256 does not match) was left as it was") from None
            raise
    return folder


# --------------------------------------------------------------------------
# MovieLens ratings
# --------------------------------------------------------------------------

# The rating files of GroupLens' MovieLens releases, in the order a folder is searched, with their
# field separator and whether a header line comes first. Every format's first three fields are
# user id, item id and rating.
_MOVIELENS_FORMATS = {
    "ratings.csv": (",", True),  # ml-latest, ml-latest-small, ml-20m, ml-25m
    "ratings.dat": ("::", False),  # ml-1m, ml-10m
    "u.data": ("\t", False),  # ml-100k
}


def _movielens_file(path: Path) -> Path:
    if path.is_dir():
        for name in _MOVIELENS_FORMATS:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"no MovieLens ratings file in {path}: looked for {', '.join(_MOVIELENS_FORMATS)}")
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.name not in _MOVIELENS_FORMATS:
        raise ValueError(f"{path.name} is not a MovieLens ratings file: expected one of {', '.join(_MOVIELENS_FORMATS)}")
    return path


def load_movielens(path: PathLike):
    """Load MovieLens ratings as a sparse users x items matrix.

    Reads the rating files of GroupLens' releases: ``ratings.csv`` (ml-latest, ml-latest-small, ml-20m,
    ml-25m; a header line, comma-separated), ``ratings.dat`` (ml-1m, ml-10m; ``::``-separated) and
    ``u.data`` (ml-100k; tab-separated). MovieLens is not shipped with deepgm: its licence allows research
    use only; download it from https://grouplens.org/datasets/movielens/.

    Parameters
    ----------
    path : str or os.PathLike
        The ratings file, or a folder holding one of them.

    Returns
    -------
    ratings : scipy.sparse.csr_matrix of shape (n_users, n_items), float64
        The rating of user u for item i at ``[u, i]``; unrated items are not stored.
    user_ids : numpy.ndarray of shape (n_users,), int64
        The MovieLens user id of each row, ascending.
    item_ids : numpy.ndarray of shape (n_items,), int64
        The MovieLens movie id of each column, ascending.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or a folder holds none of the files.
    ValueError
        If the file is not in the expected format, or rates one item twice by the same user.

    Examples
    --------
    >>> from deepgm.datasets import load_movielens
    >>> R, users, items = load_movielens("ml-latest-small")  # doctest: +SKIP
    >>> R.shape  # doctest: +SKIP
    (610, 9724)
    """
    import io
    import warnings

    import scipy.sparse as sp

    file = _movielens_file(Path(path).expanduser())
    separator, header = _MOVIELENS_FORMATS[file.name]
    text = file.read_bytes()
    if separator != ",":
        # One-character separators let numpy's C parser read the file.
        text = text.replace(separator.encode(), b",")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # numpy warns about an empty file; refused below
            table = np.loadtxt(io.BytesIO(text), delimiter=",", skiprows=1 if header else 0, usecols=(0, 1, 2), ndmin=2, encoding="latin-1")
    except ValueError as err:
        raise ValueError(f"{file} is not a MovieLens ratings file (user id, item id, rating, ...): {err}") from None
    if table.shape[0] == 0:
        raise ValueError(f"{file} holds no ratings")
    users, items, ratings = table[:, 0], table[:, 1], table[:, 2]
    if not (np.all(users == np.round(users)) and np.all(items == np.round(items))):
        raise ValueError(f"{file}: user and item ids must be integers")
    user_ids, rows = np.unique(users.astype(np.int64), return_inverse=True)
    item_ids, cols = np.unique(items.astype(np.int64), return_inverse=True)
    if np.unique(rows * item_ids.size + cols).size != rows.size:
        raise ValueError(f"{file} rates some item twice by the same user")
    matrix = sp.csr_matrix((ratings, (rows, cols)), shape=(user_ids.size, item_ids.size))
    matrix.sort_indices()
    return matrix, user_ids, item_ids
