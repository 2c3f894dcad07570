"""The distance / assignment hot path, on numpy or torch.

Estimators call the functions here; which library runs them is chosen by
``skproto.set_config(backend=...)`` (``"numpy"`` by default, ``"torch"`` on
``device``). Both backends take numpy arrays and return numpy arrays, compute in the
input's floating dtype (float32 stays float32) and process ``X`` in row chunks of at
most ``working_memory`` MiB of temporaries.

Similarities, larger = more similar:

- ``"cosine"``: ``x.p / (||x|| ||p||)``; a zero vector has similarity 0.
- ``"euclidean"``: the negative squared distance ``-||x - p||^2``, computed as
  ``-(||x||^2 - 2 x.p + ||p||^2)`` and clamped at 0.
- ``"dot"``: ``x.p``.
"""

import numpy as np

from .._config import get_config

METRICS = ("cosine", "euclidean", "dot")

__all__ = ["METRICS", "assign", "group_sum", "similarity", "topk"]


def _kernels():
    if get_config()["backend"] == "torch":
        from . import _torch

        return _torch
    from . import _numpy

    return _numpy


def _working_memory():
    return get_config()["working_memory"]


def _as_float_pair(X, P):
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
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    return X.astype(dtype, copy=False), P.astype(dtype, copy=False)


def _check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")


def similarity(X, P, metric="cosine"):
    """Similarity of every row of X to every prototype.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    P : array-like of shape (n_prototypes, n_features)
    metric : {"cosine", "euclidean", "dot"}, default="cosine"
        See the module docstring; ``"euclidean"`` is the negative squared distance.

    Returns
    -------
    S : ndarray of shape (n_samples, n_prototypes)

    Examples
    --------
    >>> from skproto.backend import similarity
    >>> similarity([[3.0, 4.0]], [[1.0, 0.0], [0.0, 2.0]], metric="cosine")
    array([[0.6, 0.8]])
    >>> similarity([[3.0, 4.0]], [[1.0, 0.0]], metric="euclidean")
    array([[-20.]])
    """
    _check_metric(metric)
    X, P = _as_float_pair(X, P)
    return _kernels().similarity(X, P, metric, _working_memory())


def assign(X, P, metric="cosine"):
    """Most similar prototype of each row, without building the full matrix.

    Returns
    -------
    index : ndarray of shape (n_samples,), dtype intp
        ``argmax`` of the row's similarities (the first one on ties).
    score : ndarray of shape (n_samples,)
        The similarity to that prototype.

    Examples
    --------
    >>> from skproto.backend import assign
    >>> index, score = assign([[3.0, 4.0], [1.0, 0.1]], [[1.0, 0.0], [0.0, 2.0]])
    >>> index
    array([1, 0])
    """
    _check_metric(metric)
    X, P = _as_float_pair(X, P)
    return _kernels().assign(X, P, metric, _working_memory())


def topk(X, P, k, metric="cosine"):
    """The ``k`` most similar prototypes of each row, most similar first.

    Returns
    -------
    indices : ndarray of shape (n_samples, k), dtype intp
    scores : ndarray of shape (n_samples, k)

    Examples
    --------
    >>> from skproto.backend import topk
    >>> indices, scores = topk([[1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], k=2)
    >>> indices
    array([[1, 2]])
    """
    _check_metric(metric)
    X, P = _as_float_pair(X, P)
    if not 1 <= int(k) <= P.shape[0]:
        raise ValueError(f"k must be in [1, {P.shape[0]}] (the number of prototypes), got {k}.")
    return _kernels().topk(X, P, int(k), metric, _working_memory())


def group_sum(X, codes, n_groups, squares=False):
    """Per-group sums of the rows of X (and of their squares) and group sizes.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    codes : array-like of int of shape (n_samples,)
        Group of each row, in ``[0, n_groups)``.
    n_groups : int
    squares : bool, default=False
        Also return the per-group sums of ``X ** 2`` (for variances).

    Returns
    -------
    sums : ndarray of shape (n_groups, n_features)
    counts : ndarray of shape (n_groups,), dtype int64
    sq_sums : ndarray of shape (n_groups, n_features)
        Only when ``squares=True``.

    Examples
    --------
    >>> from skproto.backend import group_sum
    >>> sums, counts = group_sum([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [0, 1, 0], 2)
    >>> sums
    array([[6., 8.],
           [3., 4.]])
    >>> counts
    array([2, 1])
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array, got X.ndim={X.ndim}.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    codes = np.asarray(codes)
    if codes.shape != (X.shape[0],) or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError("codes must be a 1-D integer array with one entry per row of X.")
    if codes.size and (codes.min() < 0 or codes.max() >= n_groups):
        raise ValueError(f"codes must lie in [0, {n_groups}).")
    codes = codes.astype(np.int64, copy=False)
    return _kernels().group_sum(X, codes, int(n_groups), bool(squares), _working_memory())


# ---------------------------------------------------------------------------------
# Mixture-model kernels (SemiSupervisedGMM): public dispatchers go in this section.
# ---------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------
# end of the mixture-model section
# ---------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------
# Balanced soft assignment (MixturePrototypeOODDetector): public dispatchers here.
# ---------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------
# end of the balanced-assignment section
# ---------------------------------------------------------------------------------
