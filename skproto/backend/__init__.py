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

__all__ = [
    "METRICS",
    "assign",
    "balanced_assignment",
    "group_sum",
    "kth_similarity",
    "similarity",
    "sinkhorn",
    "topk",
    "whitened_sq_distance",
]


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

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    P : array-like of shape (n_prototypes, n_features)
    metric : {"cosine", "euclidean", "dot"}, default="cosine"

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

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    P : array-like of shape (n_prototypes, n_features)
    k : int
        Number of prototypes to return, in ``[1, n_prototypes]``.
    metric : {"cosine", "euclidean", "dot"}, default="cosine"

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


def kth_similarity(X, P, k, metric="cosine"):
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

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Examples
    --------
    >>> from skproto.backend import kth_similarity
    >>> kth_similarity([[1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], k=2)
    array([0.70710678])
    """
    _check_metric(metric)
    X, P = _as_float_pair(X, P)
    if not 1 <= int(k) <= P.shape[0]:
        raise ValueError(f"k must be in [1, {P.shape[0]}] (the number of prototypes), got {k}.")
    return _kernels().kth_similarity(X, P, int(k), metric, _working_memory())


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

__all__ += ["COVARIANCE_TYPES", "log_responsibilities", "mixture_em_statistics"]

COVARIANCE_TYPES = ("spherical", "diag", "full")


def _check_mixture(X, means, precisions_chol, log_weights, covariance_type):
    """Validate a Gaussian mixture's arrays; X and means in one floating dtype."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}."
        )
    X, means = _as_float_pair(X, means)
    n_components, n_features = means.shape
    precisions_chol = np.asarray(precisions_chol, dtype=np.float64)
    expected = {
        "spherical": (n_components,),
        "diag": (n_components, n_features),
        "full": (n_components, n_features, n_features),
    }[covariance_type]
    if precisions_chol.shape != expected:
        raise ValueError(
            f"precisions_chol must have shape {expected} for covariance_type="
            f"{covariance_type!r}, got {precisions_chol.shape}."
        )
    log_weights = np.asarray(log_weights, dtype=np.float64)
    if log_weights.shape != (n_components,):
        raise ValueError(
            f"log_weights must have shape ({n_components},), got {log_weights.shape}."
        )
    return X, means, precisions_chol, log_weights


def log_responsibilities(X, means, precisions_chol, log_weights, covariance_type):
    """E-step of a Gaussian mixture: log posteriors and per-row log-likelihoods.

    With ``P_k = L_k L_k^T`` the precision of component ``k`` (``precisions_chol`` holds
    ``L_k``, as in scikit-learn's ``GaussianMixture.precisions_cholesky_``)::

        log p(x, k) = log w_k - D/2 log(2 pi) + log det L_k - ||L_k^T (x - m_k)||^2 / 2

    Spherical and diagonal precisions expand the quadratic form into one GEMM per row
    chunk; full precisions apply each ``L_k`` (one GEMM per component and chunk).
    Chunks follow ``working_memory``; the result is computed in X's floating dtype.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    means : array-like of shape (n_components, n_features)
    precisions_chol : array-like
        Shape ``(n_components,)`` (spherical: ``1 / sigma_k``), ``(n_components,
        n_features)`` (diag) or ``(n_components, n_features, n_features)`` (full,
        lower-triangular).
    log_weights : array-like of shape (n_components,)
    covariance_type : {"spherical", "diag", "full"}

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
        ``log p(k | x)``.
    log_prob_norm : ndarray of shape (n_samples,)
        ``log p(x) = logsumexp_k log p(x, k)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import log_responsibilities
    >>> log_resp, log_norm = log_responsibilities(
    ...     [[0.0], [4.0]], [[0.0], [4.0]], [1.0, 1.0], np.log([0.5, 0.5]), "spherical")
    >>> np.exp(log_resp).round(3)
    array([[1., 0.],
           [0., 1.]])
    """
    X, means, precisions_chol, log_weights = _check_mixture(
        X, means, precisions_chol, log_weights, covariance_type
    )
    return _kernels().log_responsibilities(
        X, means, precisions_chol, log_weights, covariance_type, _working_memory()
    )


def mixture_em_statistics(X, means, precisions_chol, log_weights, covariance_type, fixed=None):
    """One EM pass: E-step responsibilities reduced straight into the M-step sums.

    Never builds the ``(n_samples, n_components)`` responsibility matrix: each row
    chunk computes its responsibilities (as :func:`log_responsibilities`) and adds
    their weighted moments to float64 accumulators.

    Parameters
    ----------
    X, means, precisions_chol, log_weights, covariance_type
        As in :func:`log_responsibilities`.
    fixed : array-like of int of shape (n_samples,), default=None
        Component each row is fixed to (its responsibility is one-hot there and its
        log-likelihood is ``log p(x, fixed)``), or -1 for a free row (responsibility
        ``p(k | x)``, log-likelihood ``log p(x)``). ``None``: all rows free.

    Returns
    -------
    log_likelihood : float
        Sum over rows of the log-likelihood above (at the given parameters).
    nk : ndarray of shape (n_components,)
        ``sum_i r_ik``.
    sums : ndarray of shape (n_components, n_features)
        ``sum_i r_ik x_i``.
    sq_sums : ndarray
        ``sum_i r_ik ||x_i||^2`` (spherical, shape ``(n_components,)``),
        ``sum_i r_ik x_i^2`` (diag, ``(n_components, n_features)``) or
        ``sum_i r_ik x_i x_i^T`` (full, ``(n_components, n_features, n_features)``).
        All four results are float64.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import mixture_em_statistics
    >>> ll, nk, sums, sq = mixture_em_statistics(
    ...     [[0.0], [4.0], [0.1]], [[0.0], [4.0]], [1.0, 1.0], np.log([0.5, 0.5]),
    ...     "spherical", fixed=[-1, -1, 1])
    >>> nk.round(3)
    array([1., 2.])
    """
    X, means, precisions_chol, log_weights = _check_mixture(
        X, means, precisions_chol, log_weights, covariance_type
    )
    n_components = means.shape[0]
    if fixed is None:
        fixed = np.full(X.shape[0], -1, dtype=np.int64)
    fixed = np.asarray(fixed)
    if fixed.shape != (X.shape[0],) or not np.issubdtype(fixed.dtype, np.integer):
        raise ValueError("fixed must be a 1-D integer array with one entry per row of X.")
    if fixed.size and (fixed.min() < -1 or fixed.max() >= n_components):
        raise ValueError(f"fixed must lie in [-1, {n_components}).")
    fixed = fixed.astype(np.int64, copy=False)
    return _kernels().mixture_em_statistics(
        X, means, precisions_chol, log_weights, covariance_type, fixed, _working_memory()
    )



# ---------------------------------------------------------------------------------
# end of the mixture-model section
# ---------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------
# Balanced soft assignment (MixturePrototypeOODDetector): public dispatchers here.
# ---------------------------------------------------------------------------------


def sinkhorn(scores, epsilon=0.05, n_iter=3):
    """Balanced soft assignment of samples to prototypes by Sinkhorn-Knopp, as PALM.

    Transcribes ``PALM.sinkhorn`` of the official PALM code (``util/loss_functions.py``):
    ``Q = exp(scores / epsilon)`` divided by its total, then ``n_iter`` times: scale
    every prototype's column to total ``1 / K``, then every sample's row to total
    ``1 / B``; finally multiply by ``B``, so that each row sums to 1 (a distribution
    of the sample over the prototypes) while the prototypes share the batch about
    equally. Computed in the log domain (same numbers, no overflow of ``exp`` for a
    small ``epsilon``).

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_prototypes)
        Similarities (PALM: cosine of unit-norm features and prototypes).
    epsilon : float, default=0.05
        Entropic regularisation: smaller is closer to a hard assignment.
    n_iter : int, default=3
        Sinkhorn-Knopp iterations (PALM uses 3).

    Returns
    -------
    Q : ndarray of shape (n_samples, n_prototypes)
        Non-negative; with ``n_iter >= 1`` each row sums to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import sinkhorn
    >>> Q = sinkhorn(np.array([[0.9, 0.8], [0.9, 0.1]]), epsilon=0.5, n_iter=50)
    >>> np.round(Q.sum(axis=1), 6), np.round(Q.sum(axis=0), 3)
    (array([1., 1.]), array([1., 1.]))
    """
    S = np.asarray(scores)
    if S.ndim != 2 or S.shape[0] == 0 or S.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty 2-D array, got shape {S.shape}.")
    if S.dtype not in (np.float32, np.float64):
        S = S.astype(np.float64)
    if not np.all(np.isfinite(S)):
        raise ValueError("scores must be finite.")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}.")
    if int(n_iter) < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}.")
    return _kernels().sinkhorn(S, float(epsilon), int(n_iter))


def balanced_assignment(
    X, P, epsilon=0.05, n_iter=3, top_k=None, x_groups=None, p_groups=None
):
    """PALM's prototype assignment of one mini-batch, and the prototypes' targets.

    With ``X`` and ``P`` unit-norm rows, this is the update step of ``PALM.mle_loss``
    (official code, ``util/loss_functions.py``): ``Q = sinkhorn(X @ P.T)`` over *all*
    prototypes; ``Q`` masked to the prototypes of each sample's own group (class);
    only the ``top_k`` largest entries of each row kept; rows then columns
    normalised to sum 1 (L1). ``targets = W.T @ X`` is then, for each prototype, the
    weighted mean of the samples assigned to it (zero for a prototype that got no
    weight).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The batch (PALM: L2-normalised features).
    P : array-like of shape (n_prototypes, n_features)
        Prototypes (PALM: unit norm).
    epsilon : float, default=0.05
    n_iter : int, default=3
        See :func:`sinkhorn`.
    top_k : int or None, default=None
        Keep the ``top_k`` largest assignments per sample (PALM's ``k``; ties go to
        the lower prototype index). None keeps all (PALM's ``k=0``).
    x_groups, p_groups : array-like of int of shape (n_samples,) and (n_prototypes,)
        Group (class) of each sample and prototype; a sample is assigned only to
        prototypes of its own group. Both None: no mask (unsupervised PALM).

    Returns
    -------
    weights : ndarray of shape (n_samples, n_prototypes)
        ``W``: every non-zero column sums to 1.
    targets : ndarray of shape (n_prototypes, n_features)
        ``W.T @ X``.

    Notes
    -----
    ``torch.nn.functional.normalize(p=1)`` in the official code divides by
    ``max(sum, 1e-12)``, so a row whose mass is below ``1e-12`` is not quite scaled to
    1 there; here every row and column with positive mass is normalised exactly and
    empty ones stay zero.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import balanced_assignment
    >>> X = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    >>> P = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> W, targets = balanced_assignment(X, P, x_groups=[0, 0, 1], p_groups=[0, 1])
    >>> W.sum(axis=0)
    array([1., 1.])
    >>> targets[1]
    array([0., 1.])
    """
    X, P = _as_float_pair(X, P)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}.")
    if int(n_iter) < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}.")
    if top_k is not None and int(top_k) < 1:
        raise ValueError(f"top_k must be None or >= 1, got {top_k}.")
    if (x_groups is None) != (p_groups is None):
        raise ValueError("x_groups and p_groups must be given together.")
    if x_groups is not None:
        x_groups = np.asarray(x_groups)
        p_groups = np.asarray(p_groups)
        if x_groups.shape != (X.shape[0],) or p_groups.shape != (P.shape[0],):
            raise ValueError(
                "x_groups must have one entry per row of X and p_groups one per row of P."
            )
        x_groups = x_groups.astype(np.int64, copy=False)
        p_groups = p_groups.astype(np.int64, copy=False)
    if X.shape[0] == 0:
        raise ValueError("X must hold at least one sample.")
    return _kernels().balanced_assignment(
        X, P, float(epsilon), int(n_iter), None if top_k is None else int(top_k),
        x_groups, p_groups,
    )


def whitened_sq_distance(X, center, W):
    """Squared Mahalanobis-type distance of the L2-normalised rows of X.

    Returns ``||(x / ||x|| - center) @ W||^2`` for every row ``x``: with
    ``W @ W.T`` a precision matrix this is the Mahalanobis distance of the normalised
    sample to ``center``. Chunked by ``working_memory``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    center : array-like of shape (n_features,)
    W : array-like of shape (n_features, n_components)

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
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array, got X.ndim={X.ndim}.")
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    X = X.astype(dtype, copy=False)
    center = np.asarray(center, dtype=dtype)
    W = np.asarray(W, dtype=dtype)
    if center.shape != (X.shape[1],) or W.ndim != 2 or W.shape[0] != X.shape[1]:
        raise ValueError(
            "center must have shape (n_features,) and W shape (n_features, n_components)."
        )
    return _kernels().whitened_sq_distance(X, center, W, _working_memory())



# ---------------------------------------------------------------------------------
# end of the balanced-assignment section
# ---------------------------------------------------------------------------------
