"""Distances between samples and prototypes: the nearest-prototype hot path.

Similarities, larger = more similar:

- ``"cosine"``: ``x.p / (||x|| ||p||)``; a zero vector has similarity 0.
- ``"euclidean"``: the negative squared distance ``-||x - p||^2``, computed as
  ``-(||x||^2 - 2 x.p + ||p||^2)`` and clamped at 0.
- ``"dot"``: ``x.p``.
"""

import numpy as np

from ._checks import (
    _check_real_finite,
    as_float_array,
    as_float_matrix,
    as_float_pair,
    check_integer,
    check_metric,
)
from ._dispatch import kernels, working_memory


def _distances():
    return kernels("distances")


def l2_normalize(X, *, check_input=True):
    """Rows of X scaled to unit L2 norm, whatever their scale; zero rows stay zero.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    X_normalized : ndarray of shape (n_samples, n_features)
        In X's floating dtype (float64 for other dtypes).

    Examples
    --------
    >>> from skproto.backend import l2_normalize
    >>> l2_normalize([[3.0, 4.0], [0.0, 0.0]])
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    return _distances().l2_normalize(as_float_matrix(X, check=check_input), working_memory())


def similarity(X, P, metric="cosine", *, check_input=True):
    """Similarity of every row of X to every prototype.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    P : array-like of shape (n_prototypes, n_features)
    metric : {"cosine", "euclidean", "dot"}, default="cosine"
        See the module docstring; ``"euclidean"`` is the negative squared distance.
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

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
    check_metric(metric)
    X, P = as_float_pair(X, P, check=check_input)
    return _distances().similarity(X, P, metric, working_memory())


def assign(X, P, metric="cosine", *, return_score=True, check_input=True):
    """Most similar prototype of each row, without building the full matrix.

    Rows go through in cache-sized blocks: the GEMM writes a block of scores and the
    shift and argmax read it while it is still in cache.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    P : array-like of shape (n_prototypes, n_features)
    metric : {"cosine", "euclidean", "dot"}, default="cosine"
    return_score : bool, default=True
        Also return the similarity to the chosen prototype. False skips its
        computation (for ``predict``, which needs the index only) and returns the
        index alone, as ``kneighbors(return_distance=False)`` does.
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    index : ndarray of shape (n_samples,), dtype intp
        ``argmax`` of the row's similarities (the first one on ties).
    score : ndarray of shape (n_samples,)
        The similarity to that prototype (only with ``return_score=True``).

    Examples
    --------
    >>> from skproto.backend import assign
    >>> index, score = assign([[3.0, 4.0], [1.0, 0.1]], [[1.0, 0.0], [0.0, 2.0]])
    >>> index
    array([1, 0])
    """
    check_metric(metric)
    X, P = as_float_pair(X, P, check=check_input)
    index, score = _distances().assign(
        X, P, metric, working_memory(), return_score=bool(return_score)
    )
    return (index, score) if return_score else index


def topk(X, P, k, metric="cosine", *, check_input=True):
    """The ``k`` most similar prototypes of each row, most similar first.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    P : array-like of shape (n_prototypes, n_features)
    k : int
        Number of prototypes to return, in ``[1, n_prototypes]``.
    metric : {"cosine", "euclidean", "dot"}, default="cosine"
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

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
    check_metric(metric)
    X, P = as_float_pair(X, P, check=check_input)
    k = check_integer(k, "k", 1, P.shape[0])
    return _distances().topk(X, P, k, metric, working_memory())


def kth_similarity(X, P, k, metric="cosine", *, check_input=True):
    """The ``k``-th largest similarity of each row to the prototypes (``k=1``: the best).

    Equals ``topk(X, P, k, metric)[1][:, k - 1]``, without building indices or sorting:
    what a k-nearest-neighbour score needs.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    P : array-like of shape (n_prototypes, n_features)
    k : int
        Rank of the similarity to return, in ``[1, n_prototypes]``.
    metric : {"cosine", "euclidean", "dot"}, default="cosine"
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Examples
    --------
    >>> from skproto.backend import kth_similarity
    >>> kth_similarity([[1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], k=2)
    array([0.70710678])
    """
    check_metric(metric)
    X, P = as_float_pair(X, P, check=check_input)
    k = check_integer(k, "k", 1, P.shape[0])
    return _distances().kth_similarity(X, P, k, metric, working_memory())



def whitened_sq_distance(X, center, W, *, check_input=True):
    """Squared Mahalanobis-type distance of the L2-normalised rows of X.

    Returns ``||(x / ||x|| - center) @ W||^2`` for every row ``x``: with
    ``W @ W.T`` a precision matrix this is the Mahalanobis distance of the normalised
    sample to ``center``. Chunked by ``working_memory``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    center : array-like of shape (n_features,)
    W : array-like of shape (n_features, n_components)
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    d2 : ndarray of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import whitened_sq_distance
    >>> whitened_sq_distance([[3.0, 4.0]], [0.0, 0.0], np.diag([2.0, 1.0]))
    array([2.08])
    """
    X = as_float_matrix(X, check=check_input)
    center = as_float_array(center, "center", (X.shape[1],), X.dtype, check=check_input)
    W = np.asarray(W)
    if W.ndim != 2 or W.shape[0] != X.shape[1]:
        raise ValueError(
            f"W must have shape (n_features, n_components) = ({X.shape[1]}, ...), got "
            f"{W.shape}."
        )
    W = as_float_array(W, "W", W.shape, X.dtype, check=check_input)
    return _distances().whitened_sq_distance(X, center, W, working_memory())




def _check_mahalanobis(X, means, W, check):
    X = as_float_matrix(X, check=check)
    means = as_float_matrix(means, name="means", check=check).astype(X.dtype, copy=False)
    W = np.asarray(W)
    if check:
        _check_real_finite(W, "whitening")
    W = W.astype(X.dtype, copy=False)
    n_features = X.shape[1]
    if means.shape[1] != n_features or means.shape[0] == 0:
        raise ValueError(
            f"means must have shape (n_means, {n_features}) with n_means >= 1, got "
            f"{means.shape}."
        )
    if not (
        (W.ndim == 2 and W.shape[0] == n_features)
        or (W.ndim == 3 and W.shape[:2] == (means.shape[0], n_features))
    ):
        raise ValueError(
            "whitening must have shape (n_features, n_components) (shared) or "
            f"(n_means, n_features, n_components) (one per mean), got {W.shape} for "
            f"{means.shape[0]} means of {n_features} features."
        )
    return X, means, W


def mahalanobis_sq_distances(X, means, whitening, *, check_input=True):
    """Squared Mahalanobis distance of every row of X to every mean.

    ``d[i, k] = ||(x_i - m_k) @ W_k||^2``: with ``W_k @ W_k.T`` a precision matrix
    this is ``(x - m_k)^T P_k (x - m_k)``. A 2-D ``whitening`` is shared by all means
    (one GEMM per row chunk, as :func:`similarity`); a 3-D one holds one whitening per
    mean (one GEMM per mean and chunk). Rows are processed in chunks of
    ``working_memory``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    means : array-like of shape (n_means, n_features)
    whitening : array-like of shape (n_features, n_components) or (n_means, n_features, n_components)
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    d2 : ndarray of shape (n_samples, n_means)
        In X's floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import mahalanobis_sq_distances
    >>> mahalanobis_sq_distances([[1.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]], np.diag([2.0, 1.0]))
    array([[5., 1.]])
    """
    X, means, W = _check_mahalanobis(X, means, whitening, check_input)
    return _distances().mahalanobis_sq_distances(X, means, W, working_memory())


def nearest_mahalanobis(X, means, whitening, *, check_input=True):
    """The nearest mean of every row of X in Mahalanobis distance, and that distance.

    Equals ``argmin`` / ``min`` over the rows of :func:`mahalanobis_sq_distances`,
    without building the ``(n_samples, n_means)`` matrix for all rows.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    means : array-like of shape (n_means, n_features)
    whitening : array-like of shape (n_features, n_components) or (n_means, n_features, n_components)
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    index : ndarray of shape (n_samples,), dtype intp
        The nearest mean (the first one on ties).
    d2 : ndarray of shape (n_samples,)
        The squared distance to it.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import nearest_mahalanobis
    >>> index, d2 = nearest_mahalanobis([[1.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]], np.eye(2))
    >>> index, d2
    (array([1]), array([1.]))
    """
    X, means, W = _check_mahalanobis(X, means, whitening, check_input)
    return _distances().nearest_mahalanobis(X, means, W, working_memory())
