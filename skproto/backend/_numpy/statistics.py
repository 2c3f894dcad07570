"""NumPy statistics kernels: per-group sums, counts and centred second moments."""

import numpy as np
import scipy.sparse as sp

from .._dispatch import distance_chunks, row_chunks


def _indicator(codes, n_groups, n_rows, weights, dtype):
    """Sparse (n_groups, n_rows) matrix with ``weights[i]`` at (codes[i], i)."""
    values = np.ones(n_rows, dtype=dtype) if weights is None else weights.astype(dtype)
    return sp.csr_matrix((values, (codes, np.arange(n_rows))), shape=(n_groups, n_rows))


def group_sum(X, codes, n_groups, squares, working_memory):
    """Per-group sums of rows (and of squared rows) and group sizes, in one pass."""
    n = X.shape[0]
    counts = np.bincount(codes, minlength=n_groups).astype(np.int64)
    # A sparse (n_groups, n) indicator times X: one sparse GEMM, no Python loop.
    indicator = _indicator(codes, n_groups, n, None, X.dtype)
    sums = np.asarray(indicator @ X)
    if not squares:
        return sums, counts
    sq_sums = np.zeros_like(sums)
    for rows in distance_chunks(n, 0, X.shape[1], X.itemsize, working_memory):
        Xc = X[rows]
        sq_sums += np.asarray(indicator[:, rows] @ (Xc * Xc))
    return sums, counts, sq_sums


def class_moments(X, codes, n_groups, weights, moments, working_memory):
    """Float64 per-group weights, sums and centred second moments, chunked.

    Two passes over X: the sums (hence the group means), then the scatter of each
    row around its own group's mean, ``sum_i w_i (x_i - m_g)(x_i - m_g)^T`` (its
    diagonal for ``moments="diag"``). Centring before squaring is what keeps the
    scatter accurate for data far from the origin; merging batches then uses
    Chan's update (:meth:`skproto.statistics.ClassStatistics.merge`).
    """
    n, n_features = X.shape
    totals = np.bincount(codes, weights=weights, minlength=n_groups).astype(np.float64)
    # A float64 row of X, its centred copy and the float64 product: 3 rows a chunk.
    chunks = row_chunks(n, 3 * 8 * n_features, working_memory, max_rows=8192)
    sums = np.zeros((n_groups, n_features))
    for rows in chunks:
        w = None if weights is None else weights[rows]
        indicator = _indicator(codes[rows], n_groups, rows.stop - rows.start, w, np.float64)
        sums += np.asarray(indicator @ X[rows].astype(np.float64))
    if moments is None:
        return totals, sums, None
    means = np.zeros_like(sums)
    np.divide(sums, totals[:, None], out=means, where=totals[:, None] > 0)
    if moments == "diag":
        scatter = np.zeros((n_groups, n_features))
        for rows in chunks:
            Z = X[rows].astype(np.float64) - means[codes[rows]]
            Z *= Z
            w = None if weights is None else weights[rows]
            scatter += np.asarray(
                _indicator(codes[rows], n_groups, rows.stop - rows.start, w, np.float64) @ Z
            )
        return totals, sums, scatter
    # Full scatter: rows grouped by code, one GEMM per group and chunk.
    scatter = np.zeros((n_groups, n_features, n_features))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_groups + 1))
    chunk = max(chunks[0].stop - chunks[0].start, 1) if chunks else 1
    for g in range(n_groups):
        for start in range(bounds[g], bounds[g + 1], chunk):
            idx = order[start:min(start + chunk, bounds[g + 1])]
            Z = X[idx].astype(np.float64) - means[g]
            Zw = Z if weights is None else Z * weights[idx, None]
            scatter[g] += Zw.T @ Z
    return totals, sums, scatter


# ------------------------------------------------------------------ random features
# RanPAC's head: H = max(X @ W, 0) for a fixed random W (n_features, n_components).


def _relu_projection(Xc, W):
    H = Xc @ W
    np.maximum(H, 0, out=H)
    return H


def random_features(X, W, working_memory):
    """``max(X @ W, 0)`` in X's dtype (the whole matrix: the caller asked for it)."""
    return _relu_projection(X, W)


def random_feature_gram(X, W, codes, n_groups, working_memory):
    """Float64 ``G = H^T H`` and ``Q = H^T Y`` (Y one-hot of ``codes``), chunked.

    H is computed in X's dtype, chunk by chunk, and each chunk is cast to float64
    before its products are accumulated, so that the sums over many rows keep float64
    precision (the ridge solve amplifies rounding in G when the ridge is small).
    """
    n, n_components = X.shape[0], W.shape[1]
    gram = np.zeros((n_components, n_components))
    targets_t = np.zeros((n_groups, n_components))
    # A row of H in X's dtype, its float64 copy.
    row_bytes = n_components * (X.itemsize + 8)
    for rows in row_chunks(n, row_bytes, working_memory, max_rows=4096):
        H = _relu_projection(X[rows], W).astype(np.float64)
        # numpy sends ``A.T @ A`` to BLAS syrk (half the flops of a GEMM).
        gram += H.T @ H
        indicator = _indicator(codes[rows], n_groups, rows.stop - rows.start, None, np.float64)
        targets_t += np.asarray(indicator @ H)
    return gram, targets_t.T.copy()


def random_feature_scores(X, W, coef, working_memory):
    """``max(X @ W, 0) @ coef.T`` in X's dtype, without holding H for all rows."""
    n, n_components = X.shape[0], W.shape[1]
    coef_t = np.ascontiguousarray(coef.T)
    out = np.empty((n, coef.shape[0]), dtype=X.dtype)
    row_bytes = X.itemsize * (n_components + coef.shape[0])
    for rows in row_chunks(n, row_bytes, working_memory, max_rows=8192):
        out[rows] = _relu_projection(X[rows], W) @ coef_t
    return out
