"""Small data sets from scikit-learn's bundled ones, one for each kind of input deepgm's estimators take."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_digits, load_iris


def small_data() -> dict:
    """iris (real-valued, 150 x 4, 3 classes), 300 digits scaled to [0, 1] (64 features, 10 classes),
    the digits as integer word counts and as a sparse matrix of ratings 0-4 (stored entries only)."""
    X, y = load_iris(return_X_y=True)
    D, dy = load_digits(return_X_y=True)
    D, dy = D[:300] / 16, dy[:300]
    return dict(X=X, y=y, D=D, dy=dy, C=(D * 16).astype(np.int64), R=sp.csr_matrix(np.ceil(D * 4)))
