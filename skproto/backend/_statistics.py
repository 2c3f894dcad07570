"""Per-group sums and second moments: what class statistics are made of."""

import numpy as np

from ._checks import as_float_matrix, check_codes, check_integer
from ._dispatch import kernels, working_memory

MOMENTS = (None, "diag", "full")


def group_sum(X, codes, n_groups, squares=False, *, check_input=True):
    """Per-group sums of the rows of X (and of their squares) and group sizes.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    codes : array-like of int of shape (n_samples,)
        Group of each row, in ``[0, n_groups)``.
    n_groups : int
    squares : bool, default=False
        Also return the per-group sums of ``X ** 2`` (for variances).
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature, integer codes in
        range). Estimators that validated X already pass False.

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
    X = as_float_matrix(X, check=check_input)
    n_groups = check_integer(n_groups, "n_groups", 1)
    codes = check_codes(codes, X.shape[0], n_groups)
    return kernels("statistics").group_sum(X, codes, n_groups, bool(squares), working_memory())



def class_moments(X, codes, n_groups, sample_weight=None, moments=None, *,
                  check_input=True):
    """Per-group weights, sums and centred second moments, all in float64.

    The building block of :class:`skproto.statistics.ClassStatistics`: for each group
    ``g``, ``counts[g] = sum w_i``, ``sums[g] = sum w_i x_i`` and the scatter around
    the group's own mean ``m_g``: ``sum w_i (x_i - m_g)^2`` per feature
    (``moments="diag"``) or ``sum w_i (x_i - m_g)(x_i - m_g)^T`` (``"full"``).
    Accumulated in float64 whatever X's dtype, chunked by ``working_memory``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    codes : array-like of int of shape (n_samples,)
        Group of each row, in ``[0, n_groups)``.
    n_groups : int
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weights; None weighs every row 1.
    moments : {None, "diag", "full"}, default=None
        Which second moments to compute; None: none.
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature, integer codes in
        range). Estimators that validated X already pass False.

    Returns
    -------
    counts : ndarray of shape (n_groups,), float64
    sums : ndarray of shape (n_groups, n_features), float64
    scatter : ndarray or None
        ``(n_groups, n_features)`` for ``"diag"``, ``(n_groups, n_features,
        n_features)`` for ``"full"``, None for ``moments=None``.

    Examples
    --------
    >>> from skproto.backend import class_moments
    >>> counts, sums, scatter = class_moments(
    ...     [[1.0, 2.0], [3.0, 6.0], [5.0, 0.0]], [0, 0, 1], 2, moments="diag")
    >>> counts
    array([2., 1.])
    >>> scatter                      # (1-2)^2 + (3-2)^2, (2-4)^2 + (6-4)^2
    array([[2., 8.],
           [0., 0.]])
    """
    X = as_float_matrix(X, check=check_input)
    n_groups = check_integer(n_groups, "n_groups", 1)
    codes = check_codes(codes, X.shape[0], n_groups)
    if moments not in MOMENTS:
        raise ValueError(f"moments must be one of {MOMENTS}, got {moments!r}.")
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight)
        if check_input and (
            sample_weight.dtype.kind not in "biuf"
            or not np.all(np.isfinite(sample_weight))
            or np.any(sample_weight < 0)
        ):
            raise ValueError("sample_weight must be finite, non-negative real numbers.")
        sample_weight = sample_weight.astype(np.float64, copy=False)
        if sample_weight.shape != (X.shape[0],):
            raise ValueError("sample_weight must have one entry per row of X.")
    return kernels("statistics").class_moments(
        X, codes, n_groups, sample_weight, moments, working_memory()
    )
