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


def _chunks(n_rows, n_cols, n_features, itemsize, working_memory):
    # One chunk holds a slice of X (n_features) and its score block (n_cols), plus a
    # second block for sorting / masking in the reductions.
    row_bytes = itemsize * (n_features + 2 * n_cols)
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
    for rows in _chunks(n, n_prototypes, X.shape[1], X.itemsize, working_memory):
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


# ---------------------------------------------------------------------------------
# end of the balanced-assignment section
# ---------------------------------------------------------------------------------
