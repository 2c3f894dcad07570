"""Input checks shared by the public kernels (library-independent).

Every public kernel validates its input unless called with ``check_input=False``,
which estimators use for data they validated already (no second pass over X).
Checks: 2-D, real numbers (complex is a TypeError, not a silent cast), finite, at
least one feature; integer arguments really integers.
"""

from numbers import Integral, Real

import numpy as np

METRICS = ("cosine", "euclidean", "dot")
FLOAT_DTYPES = (np.float32, np.float64)


def _check_real_finite(A, name):
    if A.dtype.kind == "c":
        raise TypeError(f"{name} must hold real numbers, got complex dtype {A.dtype}.")
    if A.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {A.dtype}.")
    # One cheap reduction first; the element-wise test only when it is not finite
    # (a sum of large finite values can overflow).
    with np.errstate(over="ignore", invalid="ignore"):
        total = A.sum()
    if not np.isfinite(total) and not np.isfinite(A).all():
        raise ValueError(f"{name} must be finite (it contains NaN or infinity).")


def as_float_matrix(X, name="X", *, check=True):
    """X as a 2-D array of its floating dtype (float64 for other dtypes)."""
    X = np.asarray(X)
    if check:
        _check_real_finite(X, name)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {name}.ndim={X.ndim}.")
    if check and X.shape[1] == 0:
        raise ValueError(f"{name} must have at least one feature, got shape {X.shape}.")
    dtype = X.dtype if X.dtype in FLOAT_DTYPES else np.float64
    return X.astype(dtype, copy=False)


def as_float_pair(X, P, *, check=True, names=("X", "P")):
    """X and P as 2-D arrays of one floating dtype (X's when floating, else float64)."""
    X = np.asarray(X)
    P = np.asarray(P)
    if check:
        _check_real_finite(X, names[0])
        _check_real_finite(P, names[1])
    if X.ndim != 2 or P.ndim != 2:
        raise ValueError(
            f"{names[0]} and {names[1]} must be 2-D arrays, got {names[0]}.ndim={X.ndim} "
            f"and {names[1]}.ndim={P.ndim}."
        )
    if X.shape[1] != P.shape[1]:
        raise ValueError(
            f"{names[0]} has {X.shape[1]} features but {names[1]} has {P.shape[1]}; they "
            "must match."
        )
    if check and X.shape[1] == 0:
        raise ValueError(f"{names[0]} and {names[1]} must have at least one feature.")
    if P.shape[0] == 0:
        raise ValueError(f"{names[1]} must hold at least one prototype (row).")
    dtype = X.dtype if X.dtype in FLOAT_DTYPES else np.float64
    return X.astype(dtype, copy=False), P.astype(dtype, copy=False)


def as_float_array(A, name, shape, dtype, *, check=True, context=""):
    """A as an array of ``dtype`` and the given shape (finite, real)."""
    A = np.asarray(A)
    if check:
        _check_real_finite(A, name)
    A = A.astype(dtype, copy=False)
    if A.shape != shape:
        raise ValueError(f"{name} must have shape {shape}{context}, got {A.shape}.")
    return A


def check_integer(value, name, low=None, high=None):
    """``value`` as an int in ``[low, high]``; a float such as 1.9 is refused."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bounds}, got {value}.")
    return value


def check_positive(value, name):
    """``value`` as a positive, finite float."""
    if isinstance(value, bool) or not isinstance(value, Real) or not (
        np.isfinite(value) and value > 0
    ):
        raise ValueError(f"{name} must be a positive, finite number, got {value!r}.")
    return float(value)


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
