"""NumPy kernels for the distance / assignment hot path.

Every kernel is one GEMM per row chunk plus a cheap reduction. Chunks are sized so
that the temporaries of one chunk stay under ``working_memory`` MiB; nothing of size
``n_samples x n_prototypes`` is built unless the caller asks for the full matrix
(:func:`similarity`). Inputs arrive validated from :mod:`skproto.backend` (same
floating dtype for ``X`` and ``P``), and results keep that dtype.
"""

import numpy as np
import scipy.sparse as sp

# Norms below this are treated as zero: a zero vector has cosine 0 with everything,
# as sklearn.preprocessing.normalize leaves zero rows at zero.
_TINY = 1e-12


def row_norms_sq(X):
    """Squared L2 norm of each row, in X's dtype."""
    return np.einsum("ij,ij->i", X, X)


def _safe_inverse_norms(X):
    norms = np.sqrt(row_norms_sq(X))
    inverse = np.zeros_like(norms)
    np.divide(1.0, norms, out=inverse, where=norms > _TINY)
    return inverse


def l2_normalize(X):
    """Rows of X scaled to unit L2 norm; zero rows stay zero."""
    return X * _safe_inverse_norms(X)[:, None]


def _chunks(n_rows, n_cols, n_features, itemsize, working_memory, col_bytes=None):
    """Row slices whose temporaries stay under ``working_memory`` MiB.

    A chunk holds a slice of X (``n_features`` values a row) and, per column of the
    score block, ``col_bytes`` bytes (default: two blocks of X's dtype, the scores and
    one temporary of the reduction).
    """
    col_bytes = 2 * itemsize if col_bytes is None else col_bytes
    row_bytes = itemsize * n_features + col_bytes * n_cols
    chunk = max(int(working_memory * 2**20 // row_bytes), 1)
    return [slice(start, min(start + chunk, n_rows)) for start in range(0, n_rows, chunk)]


class _PreparedPrototypes:
    """Per-call constants of ``P`` for one metric, so the loop body is one GEMM.

    ``raw_scores(Xc)`` returns scores whose row-wise order equals that of the true
    similarity; ``finish(S, Xc)`` turns raw scores into the true similarity. For
    argmax / top-k only the few selected entries need ``finish``.
    """

    def __init__(self, P, metric):
        self.metric = metric
        if metric == "cosine":
            self.Pt = np.ascontiguousarray(l2_normalize(P).T)
        elif metric == "euclidean":
            # -||x - p||^2 = 2 x.p - ||p||^2 - ||x||^2; the last term is constant per row.
            self.Pt = np.ascontiguousarray(2 * P.T)
            self.p_sq = row_norms_sq(P)
        else:  # dot
            self.Pt = np.ascontiguousarray(P.T)

    def raw_scores(self, Xc):
        S = Xc @ self.Pt
        if self.metric == "euclidean":
            S -= self.p_sq
        return S

    def finish(self, S, Xc):
        """True similarity from raw scores S (any trailing shape per row); in place."""
        if self.metric == "cosine":
            S *= _safe_inverse_norms(Xc).reshape((-1,) + (1,) * (S.ndim - 1))
        elif self.metric == "euclidean":
            S -= row_norms_sq(Xc).reshape((-1,) + (1,) * (S.ndim - 1))
            # Rounding can make a squared distance slightly negative: clamp it at 0.
            np.minimum(S, 0, out=S)
        return S


def similarity(X, P, metric, working_memory):
    """Full (n_samples, n_prototypes) similarity matrix."""
    prepared = _PreparedPrototypes(P, metric)
    out = np.empty((X.shape[0], P.shape[0]), dtype=X.dtype)
    for rows in _chunks(X.shape[0], P.shape[0], X.shape[1], X.itemsize, working_memory):
        Xc = X[rows]
        out[rows] = prepared.finish(prepared.raw_scores(Xc), Xc)
    return out


def assign(X, P, metric, working_memory):
    """Index of the most similar prototype for each row, and that similarity."""
    prepared = _PreparedPrototypes(P, metric)
    n = X.shape[0]
    best_index = np.empty(n, dtype=np.intp)
    best_score = np.empty(n, dtype=X.dtype)
    for rows in _chunks(n, P.shape[0], X.shape[1], X.itemsize, working_memory):
        Xc = X[rows]
        S = prepared.raw_scores(Xc)
        idx = np.argmax(S, axis=1)
        best_index[rows] = idx
        best_score[rows] = prepared.finish(np.take_along_axis(S, idx[:, None], 1), Xc)[:, 0]
    return best_index, best_score


def topk(X, P, k, metric, working_memory):
    """Indices and similarities of the k most similar prototypes, most similar first."""
    prepared = _PreparedPrototypes(P, metric)
    n, n_prototypes = X.shape[0], P.shape[0]
    indices = np.empty((n, k), dtype=np.intp)
    scores = np.empty((n, k), dtype=X.dtype)
    # Per column: the score block, argpartition's intp index block and its internal
    # copies (measured with tracemalloc: about one more score and index block).
    col_bytes = 2 * (X.itemsize + np.dtype(np.intp).itemsize)
    for rows in _chunks(n, n_prototypes, X.shape[1], X.itemsize, working_memory, col_bytes):
        Xc = X[rows]
        S = prepared.raw_scores(Xc)
        if k < n_prototypes:
            part = np.argpartition(S, n_prototypes - k, axis=1)[:, n_prototypes - k :]
        else:
            part = np.broadcast_to(np.arange(n_prototypes), S.shape)
        part_scores = np.take_along_axis(S, part, 1)
        # Stable descending order, ties broken by the lower prototype index.
        order = np.lexsort((part, -part_scores), axis=1)
        idx = np.take_along_axis(part, order, 1)
        indices[rows] = idx
        scores[rows] = prepared.finish(np.take_along_axis(S, idx, 1), Xc)
    return indices, scores


def kth_similarity(X, P, k, metric, working_memory):
    """The k-th largest similarity of each row (k = 1 is the best), values only.

    Cheaper than :func:`topk` when only that value is needed (the KNN score):
    ``np.partition`` moves values, with no index array and no sort.
    """
    prepared = _PreparedPrototypes(P, metric)
    n, n_prototypes = X.shape[0], P.shape[0]
    out = np.empty(n, dtype=X.dtype)
    for rows in _chunks(n, n_prototypes, X.shape[1], X.itemsize, working_memory):
        Xc = X[rows]
        S = prepared.raw_scores(Xc)
        S.partition(n_prototypes - k, axis=1)
        out[rows] = prepared.finish(S[:, n_prototypes - k].copy(), Xc)
    return out


def group_sum(X, codes, n_groups, squares, working_memory):
    """Per-group sums of rows (and of squared rows) and group sizes, in one pass."""
    n = X.shape[0]
    counts = np.bincount(codes, minlength=n_groups).astype(np.int64)
    # A sparse (n_groups, n) indicator times X: one sparse GEMM, no Python loop.
    indicator = sp.csr_matrix(
        (np.ones(n, dtype=X.dtype), (codes, np.arange(n))), shape=(n_groups, n)
    )
    sums = np.asarray(indicator @ X)
    if not squares:
        return sums, counts
    sq_sums = np.zeros_like(sums)
    for rows in _chunks(n, 0, X.shape[1], X.itemsize, working_memory):
        Xc = X[rows]
        sq_sums += np.asarray(indicator[:, rows] @ (Xc * Xc))
    return sums, counts, sq_sums


# ---------------------------------------------------------------------------------
# Mixture-model kernels (SemiSupervisedGMM): log_responsibilities, logsumexp, ...
# Add them in this section.
# ---------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------
# end of the mixture-model section
# ---------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------
# Balanced soft assignment (MixturePrototypeOODDetector): sinkhorn, ...
# Add them in this section.
# ---------------------------------------------------------------------------------


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


def whitened_sq_distance(X, center, W, working_memory):
    """``||(x / ||x|| - center) @ W||^2`` for every row x, chunked."""
    out = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _chunks(X.shape[0], W.shape[1], X.shape[1], X.itemsize, working_memory):
        Z = l2_normalize(X[rows]) - center
        Z = Z @ W
        out[rows] = row_norms_sq(Z)
    return out


# ---------------------------------------------------------------------------------
# end of the balanced-assignment section
# ---------------------------------------------------------------------------------
