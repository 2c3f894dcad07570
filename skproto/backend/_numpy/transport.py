"""NumPy transport kernels (MixturePrototypeOODDetector): Sinkhorn, balanced assignment."""

import numpy as np


def _logsumexp(A, axis):
    """log(sum(exp(A), axis)) with the max subtracted; all -inf stays -inf."""
    m = np.max(A, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(A - m), axis=axis))


def sinkhorn(scores, epsilon, n_iter):
    """PALM's Sinkhorn-Knopp balanced assignment, in the log domain.

    Same result as ``Q = exp(scores / eps)`` scaled to total 1, then ``n_iter`` times
    [every prototype (column) to total 1/K, every sample (row) to total 1/B], then
    times B, but without overflow or underflow of ``exp(scores / eps)``.
    """
    B, K = scores.shape
    L = scores / scores.dtype.type(epsilon)
    # The first division by sum(Q) is a global constant: it cancels in the first
    # column normalisation, and only matters when n_iter == 0.
    log_u = np.full(B, -_logsumexp(L.ravel(), axis=0), dtype=L.dtype)
    log_v = np.zeros(K, dtype=L.dtype)
    for _ in range(n_iter):
        log_v = -np.log(L.dtype.type(K)) - _logsumexp(L + log_u[:, None], axis=0)
        log_u = -np.log(L.dtype.type(B)) - _logsumexp(L + log_v[None, :], axis=1)
    return np.exp(L + log_u[:, None] + log_v[None, :]) * L.dtype.type(B)


def _normalize_l1(A, axis):
    """A with its slices along ``axis`` scaled to sum 1; all-zero slices stay zero."""
    sums = A.sum(axis=axis, keepdims=True)
    out = np.zeros_like(A)
    np.divide(A, sums, out=out, where=sums > 0)
    return out


def _topk_mask(A, k):
    """0/1 mask of the k largest entries of each row (ties: the lower column first)."""
    order = np.argsort(-A, axis=1, kind="stable")[:, :k]
    mask = np.zeros_like(A)
    np.put_along_axis(mask, order, 1, axis=1)
    return mask


def balanced_assignment(X, P, epsilon, n_iter, top_k, x_groups, p_groups):
    """PALM's soft assignment of a mini-batch to prototypes, and the update targets."""
    Q = sinkhorn(X @ P.T, epsilon, n_iter)
    if x_groups is not None:
        Q = Q * (x_groups[:, None] == p_groups[None, :])
    if top_k is not None and top_k < P.shape[0]:
        Q = Q * _topk_mask(Q, top_k)
    W = _normalize_l1(_normalize_l1(Q, axis=1), axis=0)
    return W, W.T @ X

