"""Per-group sums and second moments, and the Gram statistics of random ReLU features:
what class statistics (and RanPAC's ridge statistics) are made of."""

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


def _check_projection(X, W, check=True):
    """X as a float matrix and W as a (n_features, n_components) matrix of X's dtype."""
    X = as_float_matrix(X, check=check)
    W = as_float_matrix(W, name="W", check=check).astype(X.dtype, copy=False)
    if W.shape[0] != X.shape[1]:
        raise ValueError(
            f"W must have shape (n_features, n_components) = ({X.shape[1]}, ...), got "
            f"{W.shape}."
        )
    return X, W


def random_features(X, W, *, check_input=True):
    """Random ReLU features ``H = max(X @ W, 0)`` (RanPAC's projection).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    W : array-like of shape (n_features, n_components)
        The projection (RanPAC: a fixed standard Gaussian matrix).
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    H : ndarray of shape (n_samples, n_components)
        In X's floating dtype.

    Examples
    --------
    >>> from skproto.backend import random_features
    >>> random_features([[1.0, 2.0]], [[1.0, -1.0], [1.0, -1.0]])
    array([[3., 0.]])
    """
    X, W = _check_projection(X, W, check_input)
    return kernels("statistics").random_features(X, W, working_memory())


def random_feature_gram(X, W, codes, n_groups, *, check_input=True):
    """Gram and target statistics of random ReLU features, in float64.

    With ``H = max(X @ W, 0)`` and ``Y`` the one-hot matrix of ``codes``, returns
    ``G = H^T H`` and ``Q = H^T Y``: the sufficient statistics of a ridge regression
    of ``Y`` on ``H`` (RanPAC's ``G`` and ``Q``). H is computed in X's dtype, in row
    chunks of ``working_memory``, and accumulated in float64; ``H`` is never held for
    all rows. ``G`` has ``n_components ** 2`` entries (800 MB for 10,000 components).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    W : array-like of shape (n_features, n_components)
    codes : array-like of int of shape (n_samples,)
        Class of each row, in ``[0, n_groups)``.
    n_groups : int
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    gram : ndarray of shape (n_components, n_components), float64
    targets : ndarray of shape (n_components, n_groups), float64
        Column ``g`` is the sum of the rows of H of group ``g``.

    Examples
    --------
    >>> from skproto.backend import random_feature_gram
    >>> G, Q = random_feature_gram([[1.0], [2.0]], [[1.0, -1.0]], [0, 1], 2)
    >>> G
    array([[5., 0.],
           [0., 0.]])
    >>> Q
    array([[1., 2.],
           [0., 0.]])
    """
    X, W = _check_projection(X, W, check_input)
    n_groups = check_integer(n_groups, "n_groups", 1)
    codes = check_codes(codes, X.shape[0], n_groups)
    return kernels("statistics").random_feature_gram(
        X, W, codes, n_groups, working_memory()
    )


def random_feature_scores(X, W, coef, *, check_input=True):
    """Linear scores of random ReLU features, ``max(X @ W, 0) @ coef.T``, chunked.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    W : array-like of shape (n_features, n_components)
    coef : array-like of shape (n_outputs, n_components)
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    scores : ndarray of shape (n_samples, n_outputs)
        In X's floating dtype.

    Examples
    --------
    >>> from skproto.backend import random_feature_scores
    >>> random_feature_scores([[1.0, 2.0]], [[1.0, -1.0], [1.0, -1.0]], [[2.0, 5.0]])
    array([[6.]])
    """
    X, W = _check_projection(X, W, check_input)
    coef = as_float_matrix(coef, name="coef", check=check_input).astype(X.dtype, copy=False)
    if coef.shape[1] != W.shape[1]:
        raise ValueError(
            f"coef must have shape (n_outputs, n_components) = (..., {W.shape[1]}), got "
            f"{coef.shape}."
        )
    return kernels("statistics").random_feature_scores(X, W, coef, working_memory())
