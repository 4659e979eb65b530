"""Validation of the sparse matrices the softmax-unit models read: users x items ratings
(:class:`~deepgm.CollaborativeRBM`) and documents x words counts (:class:`~deepgm.ReplicatedSoftmax`).

Both become a canonical CSR matrix (sorted column indices, no duplicate entries) whose stored entries
are finite real numbers. The kernels take its three arrays, ``indptr`` and ``indices`` as int64.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array

from ._base import _named_errors, _refuse_non_numeric

__all__ = ["as_csr", "csr_arrays", "output_dtype"]


def output_dtype(X) -> type:
    """scikit-learn's convention: float32 input gives float32 output, anything else float64."""
    return np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64


#: What a dense ratings table's zeros are taken for (``as_csr``'s ``zeros_warning``): a table made with
#: ``.toarray()`` or ``fillna(0)`` marks its unrated items with 0.
ZEROS_READ_AS_RATINGS = (
    ", which are read as ratings of 0. Mark unrated items with NaN, or pass a scipy sparse matrix (its unstored entries are unrated)."
)


def as_csr(X, name: str, *, nan_is_missing: bool, duplicates: str, zeros_warning: str | None = None):
    """X as a canonical ``scipy.sparse.csr_matrix`` of float64, and the dtype of the outputs it asks for.

    Parameters
    ----------
    X : array-like or sparse matrix of shape (n_rows, n_columns)
        Sparse input: its stored entries. Dense input: with ``nan_is_missing``, its entries that are not
        NaN (a ratings table); otherwise its non-zero entries (a count table).
    name : str
        The argument's name, for error messages.
    nan_is_missing : bool
    duplicates : {"refuse", "sum"}
        What an entry stored twice means: an error (two ratings of one item by one user), or a sum
        (word counts).
    zeros_warning : str, optional
        With ``nan_is_missing``, when more than half of a dense X's entries are 0, a UserWarning
        "{name} is dense and N% of its entries are 0" followed by this text, which says what those
        zeros are taken for (e.g. ``ZEROS_READ_AS_RATINGS``). None: no warning.

    Returns
    -------
    (csr, out_dtype)
    """
    if X is None:
        raise ValueError(f"{name} must be a 2-D array or sparse matrix of shape (n_samples, n_features); got None")
    if hasattr(X, "sparse") and hasattr(X, "columns"):  # a pandas DataFrame
        try:
            X = X.sparse.to_coo()  # every column sparse: its stored entries, as scikit-learn reads it
        except (AttributeError, TypeError, ValueError):
            pass  # some columns dense: read as a dense table below
    if not hasattr(X, "shape"):
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{name} must be a 2-D array or sparse matrix; could not convert it ({err})") from None
    out_dtype = output_dtype(X)
    _refuse_non_numeric(X, name)
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be a 2-D array or sparse matrix of shape (n_samples, n_features); got shape {tuple(X.shape)}")
    if sp.issparse(X):
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers; got a sparse matrix of dtype {X.dtype}")
        with _named_errors(name):
            X = check_array(X, accept_sparse=["csr", "csc", "coo"], dtype=np.float64, ensure_all_finite=False, input_name=name)
        coo = sp.coo_matrix(X)
        if not np.all(np.isfinite(coo.data)):
            raise ValueError(f"{name} must hold finite values in its stored entries (no NaN or infinity; leave a missing entry unstored)")
        if duplicates == "refuse" and coo.nnz:
            keys = coo.row.astype(np.int64) * coo.shape[1] + coo.col
            if np.unique(keys).size != keys.size:
                raise ValueError(f"{name} stores some entries twice (the same row and column); store each entry once")
        csr = sp.csr_matrix(coo)  # sums duplicates, sorts the indices
    else:
        with _named_errors(name):
            X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan" if nan_is_missing else True, input_name=name)
        if nan_is_missing:
            if np.isinf(X).any():
                raise ValueError(f"{name} must hold finite values or NaN (missing); got infinity")
            present = ~np.isnan(X)
            zeros = np.count_nonzero(X == 0) if zeros_warning else 0
            if zeros > X.size / 2:
                warnings.warn(f"{name} is dense and {zeros / X.size:.0%} of its entries are 0{zeros_warning}", UserWarning, stacklevel=4)
            rows, cols = np.nonzero(present)
            csr = sp.csr_matrix((X[present], (rows, cols)), shape=X.shape)
        else:
            csr = sp.csr_matrix(X)
    if csr.shape[0] == 0 or csr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one feature; got shape {csr.shape}")
    csr.sort_indices()
    return csr, out_dtype


def csr_arrays(csr):
    """``(indptr, indices)`` of a CSR matrix as C-contiguous int64 arrays (the kernels' layout)."""
    return np.ascontiguousarray(csr.indptr, dtype=np.int64), np.ascontiguousarray(csr.indices, dtype=np.int64)
