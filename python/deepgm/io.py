"""Saving and loading fitted estimators: the arrays in a safetensors file, the hyperparameters, scalar
state and library version as JSON in its metadata.

A file written by :func:`save` and read by :func:`load` gives an estimator whose outputs equal the
original's exactly (including the random streams of ``sample``/``gibbs``). Writes are atomic: the
file is written under a temporary name in the same folder and renamed into place, so a crash never
leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["save", "load", "FORMAT_VERSION"]

#: Version of the file layout; files from a newer layout are refused with a clear error.
FORMAT_VERSION = 1

_META_KEY = "deepgm"


class UnknownEstimatorClass(KeyError):
    """A model file names an estimator class this deepgm does not have (``args[0]``: the name)."""


class _Writer:
    """Flattens an estimator's state into named tensors and a JSON-able description."""

    def __init__(self):
        self.tensors: dict[str, np.ndarray] = {}

    def encode(self, value, name: str):
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "biuf":
                # safetensors stores little-endian: store (and checksum) what will be read back.
                self.tensors[name] = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
                return {"tensor": name}
            return {"array": value.tolist(), "dtype": value.dtype.str if value.dtype.kind != "O" else "object"}
        if isinstance(value, (list, tuple)):
            return {"list" if isinstance(value, list) else "tuple": [self.encode(v, f"{name}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, dict):
            return {"dict": {str(k): self.encode(v, f"{name}.{k}") for k, v in value.items()}}
        if hasattr(value, "get_params") and hasattr(value, "__dict__"):
            return {"estimator": self.encode_estimator(value, name)}
        if isinstance(value, (np.integer,)):
            return {"value": int(value)}
        if isinstance(value, (np.floating,)):
            return {"value": float(value)}
        if isinstance(value, (np.bool_,)):
            return {"value": bool(value)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"value": value}
        if isinstance(value, np.random.Generator):
            # Its bit generator's state, so that the loaded estimator draws what the saved one would.
            return {"generator": _jsonable(value.bit_generator.state)}
        if isinstance(value, np.random.RandomState):
            return {"random_state": _jsonable(value.get_state(legacy=False))}
        raise TypeError(f"cannot save a value of type {type(value).__name__} ({name})")

    def encode_estimator(self, est, prefix: str):
        from sklearn.preprocessing import LabelEncoder

        params = {k: self.encode(v, f"{prefix}param.{k}") for k, v in est.get_params(deep=False).items()}
        state = {}
        for key, value in vars(est).items():
            if key in params:
                continue
            if isinstance(value, LabelEncoder):
                state[key] = {"label_encoder": self.encode(value.classes_, f"{prefix}{key}.classes_")}
                continue
            state[key] = self.encode(value, f"{prefix}{key}")
        return {"class": type(est).__name__, "params": params, "state": state}


def _jsonable(value):
    """A bit generator's state (dicts of ints, strings and integer arrays) as JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


class _Reader:
    def __init__(self, tensors):
        self.tensors = tensors

    def decode(self, node):
        if "tensor" in node:
            return self.tensors[node["tensor"]]
        if "array" in node:
            dtype = None if node["dtype"] == "object" else np.dtype(node["dtype"])
            return np.array(node["array"], dtype=dtype if dtype is not None else object)
        if "list" in node:
            return [self.decode(v) for v in node["list"]]
        if "tuple" in node:
            return tuple(self.decode(v) for v in node["tuple"])
        if "dict" in node:
            return {k: self.decode(v) for k, v in node["dict"].items()}
        if "estimator" in node:
            return self.decode_estimator(node["estimator"])
        if "generator" in node:
            state = node["generator"]
            bit_generator = getattr(np.random, state["bit_generator"])()
            bit_generator.state = state
            return np.random.Generator(bit_generator)
        if "random_state" in node:
            state = dict(node["random_state"])
            state["state"] = dict(state["state"], key=np.asarray(state["state"]["key"], dtype=np.uint32))
            rs = np.random.RandomState()
            rs.set_state(state)
            return rs
        if "label_encoder" in node:
            from sklearn.preprocessing import LabelEncoder

            enc = LabelEncoder()
            enc.classes_ = self.decode(node["label_encoder"])
            return enc
        return node["value"]

    def decode_estimator(self, desc):
        from ._registry import by_class_name

        entry = by_class_name(desc["class"])
        if entry is None:
            raise UnknownEstimatorClass(desc["class"])
        cls = entry.cls
        params = {k: self.decode(v) for k, v in desc["params"].items()}
        est = cls(**params)
        for key, node in desc["state"].items():
            setattr(est, key, self.decode(node))
        return est


def save(estimator, path) -> Path:
    """Writes a fitted deepgm estimator to ``path`` (conventionally ``*.safetensors``), atomically.

    Parameters
    ----------
    estimator : a fitted deepgm estimator
    path : str or os.PathLike

    Returns
    -------
    path : pathlib.Path
    """
    from safetensors.numpy import save_file
    from sklearn.utils.validation import check_is_fitted

    from . import __version__
    from ._registry import by_class_name

    if by_class_name(type(estimator).__name__) is None:
        raise TypeError(f"save expects a deepgm estimator; got {type(estimator).__name__}")
    check_is_fitted(estimator)
    writer = _Writer()
    desc = writer.encode_estimator(estimator, "")
    metadata = {
        _META_KEY: json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "library_version": __version__,
                "estimator": desc,
                "sha256": _digest(desc, writer.tensors),
            }
        ),
    }
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a folder; give a file name")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: the folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:  # name the file asked for, not the temporary one beside it
        raise type(err)(err.errno, f"cannot save to {path}: {err.strerror}") from None
    os.close(fd)
    try:
        try:
            save_file(writer.tensors, tmp, metadata=metadata)
        except MemoryError:
            raise
        except Exception as err:  # safetensors' own error type, its message naming the temporary file
            raise OSError(f"cannot save to {path}: {str(err).replace(tmp, str(path))}") from None
        # mkstemp makes the file private (0600); a saved model gets a normal file's mode (0666 less
        # the umask), as open() would give it.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Nothing half-written stays behind, whatever interrupted the write.
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux's /proc): setting it
    to read it back would briefly change it for every thread."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _digest(desc, tensors) -> str:
    """SHA-256 of the estimator description and every tensor (name, dtype, shape and bytes), so that
    a flipped bit anywhere in a saved model is detected on load."""
    h = hashlib.sha256(json.dumps(desc, sort_keys=True).encode())
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"\0{name}\0{t.dtype.str}\0{t.shape}\0".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def load(path):
    """Reads an estimator written by :func:`save` (or ``estimator.save``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a valid deepgm model file (truncated, corrupted, not safetensors, or
        written by a newer deepgm with a format this version cannot read).
    """
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"cannot load {path}: it is a folder; give the model file's name")
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
            # Own, writable copies: a loaded model can be trained further in place.
            tensors = {k: np.array(f.get_tensor(k), copy=True) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for malformed files
        raise ValueError(f"{path} is not a valid deepgm model file (truncated or corrupted?): {err}") from None
    if _META_KEY not in metadata:
        raise ValueError(f"{path} is a safetensors file but not a deepgm model (no '{_META_KEY}' metadata)")
    try:
        info = json.loads(metadata[_META_KEY])
        version = int(info["format_version"])
        desc = info["estimator"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: corrupted deepgm metadata ({err})") from None
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written in model format version {version} by deepgm {info.get('library_version', '?')}; "
            f"this deepgm reads format versions up to {FORMAT_VERSION}: upgrade deepgm to load it"
        )
    # Files from before checksums were written have none; every newer file must match its own.
    if "sha256" in info and info["sha256"] != _digest(desc, tensors):
        raise ValueError(f"{path} is corrupted: its contents do not match the checksum written with them")
    try:
        return _Reader(tensors).decode_estimator(desc)
    except UnknownEstimatorClass as err:
        raise ValueError(
            f"{path} holds a {err.args[0]!r} estimator, which this deepgm does not know (written by a newer version?)"
        ) from None
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: incomplete deepgm model file ({err})") from None
