"""Input checks shared by the public kernels (library-independent)."""

import numpy as np

METRICS = ("cosine", "euclidean", "dot")
FLOAT_DTYPES = (np.float32, np.float64)


def as_float_matrix(X, name="X"):
    """X as a 2-D array of its floating dtype (float64 for other dtypes)."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {name}.ndim={X.ndim}.")
    dtype = X.dtype if X.dtype in FLOAT_DTYPES else np.float64
    return X.astype(dtype, copy=False)


def as_float_pair(X, P):
    """X and P as 2-D arrays of one floating dtype (X's when floating, else float64)."""
    X = np.asarray(X)
    P = np.asarray(P)
    if X.ndim != 2 or P.ndim != 2:
        raise ValueError(
            f"X and P must be 2-D arrays, got X.ndim={X.ndim} and P.ndim={P.ndim}."
        )
    if X.shape[1] != P.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features but P has {P.shape[1]}; they must match."
        )
    if P.shape[0] == 0:
        raise ValueError("P must hold at least one prototype.")
    dtype = X.dtype if X.dtype in FLOAT_DTYPES else np.float64
    return X.astype(dtype, copy=False), P.astype(dtype, copy=False)


def check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")


def check_codes(codes, n_rows, n_groups, name="codes", low=0):
    """``codes`` as int64, one per row, each in ``[low, n_groups)``."""
    codes = np.asarray(codes)
    if codes.shape != (n_rows,) or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array with one entry per row of X.")
    if codes.size and (codes.min() < low or codes.max() >= n_groups):
        raise ValueError(f"{name} must lie in [{low}, {n_groups}).")
    return codes.astype(np.int64, copy=False)
