"""NumPy distance kernels: similarity, assign, topk, kth_similarity, whitened distance."""

import numpy as np

from .._dispatch import cache_block_rows, row_chunks
from .._dispatch import distance_chunks as _chunks
from .._numerics import euclidean_scale
from ._common import l2_normalize, row_norms_sq, row_scale_and_norm


class _PreparedPrototypes:
    """Per-call constants of ``P`` for one metric, so the loop body is one GEMM.

    ``raw_scores(Xc)`` returns scores whose row-wise order equals that of the true
    similarity; ``finish(S, Xc)`` turns raw scores into the true similarity. For
    argmax / top-k only the few selected entries need ``finish``.
    """

    def __init__(self, P, metric):
        self.metric = metric
        self.scale = None
        self.fold = False
        self.n_features = P.shape[1]
        if metric == "cosine":
            self.Pt = np.ascontiguousarray(l2_normalize(P).T)
        elif metric == "euclidean":
            self.scale = euclidean_scale(P)
            if self.scale is not None:
                P = P / self.scale
            # -||x - p||^2 = 2 x.p - ||p||^2 - ||x||^2; the last term is constant per row.
            self.p_sq = row_norms_sq(P)
            # The shift by -||p||^2 goes into the GEMM (a row of -||p||^2 under 2 P^T,
            # a column of ones beside the rows) when the pass over the score block it
            # saves (K values a row) is longer than the copy of the rows it costs
            # (D + 1 values a row).
            self.fold = P.shape[0] > P.shape[1]
            if self.fold:
                self.Pt = np.ascontiguousarray(np.vstack([2 * P.T, -self.p_sq[None, :]]))
            else:
                self.Pt = np.ascontiguousarray(2 * P.T)
        else:  # dot
            self.Pt = np.ascontiguousarray(P.T)

    @property
    def row_copy(self):
        """Values a row that :meth:`rows` may copy (for the chunk planner)."""
        return self.n_features + 1 if self.metric != "dot" else 0

    def rows(self, Xc):
        """The chunk as ``raw_scores`` and ``finish`` take it (rescaled if needed).

        Cosine: rows whose squared norm over- or underflows are divided by their
        largest absolute value, so that the GEMM keeps its digits (denormal rows
        have almost none left); the similarity does not depend on a row's scale.
        The norms of the (rescaled) rows are kept for :meth:`finish`, so a chunk
        is read for its norms once.
        """
        self.norms = None
        if self.metric == "cosine":
            scale, self.norms = row_scale_and_norm(Xc)
            return Xc if np.all(scale == 1) else Xc / scale[:, None]
        if self.fold:
            A = np.empty((Xc.shape[0], self.n_features + 1), dtype=Xc.dtype)
            if self.scale is None:
                A[:, :-1] = Xc
            else:
                np.divide(Xc, self.scale, out=A[:, :-1])
            A[:, -1] = 1
            return A
        return Xc if self.scale is None else Xc / self.scale

    def features(self, Xc):
        """The rows as given to :meth:`rows`, without the column of ones of the fold."""
        return Xc[:, : self.n_features] if self.fold else Xc

    def raw_scores(self, Xc):
        S = Xc @ self.Pt
        if self.metric == "euclidean" and not self.fold:
            # The per-prototype shift, on the block while it is still in cache.
            S -= self.p_sq
        return S

    def finish(self, S, Xc):
        """True similarity from raw scores S (any trailing shape per row); in place."""
        shape = (-1,) + (1,) * (S.ndim - 1)
        if self.metric == "cosine":
            S /= np.where(self.norms > 0, self.norms, 1).reshape(shape)
        elif self.metric == "euclidean":
            S -= row_norms_sq(self.features(Xc)).reshape(shape)
            # Rounding can make a squared distance slightly negative: clamp it at 0.
            np.minimum(S, 0, out=S)
            if self.scale is not None:
                # Back to the data's units; beyond the type's range that is -inf,
                # the true value rounded (assign / topk only use the order).
                with np.errstate(over="ignore"):
                    S *= self.scale
                    S *= self.scale
        return S


def similarity(X, P, metric, working_memory):
    """Full (n_samples, n_prototypes) similarity matrix."""
    prepared = _PreparedPrototypes(P, metric)
    out = np.empty((X.shape[0], P.shape[0]), dtype=X.dtype)
    for rows in _chunks(X.shape[0], P.shape[0], X.shape[1] + prepared.row_copy, X.itemsize,
                        working_memory):
        Xc = prepared.rows(X[rows])
        out[rows] = prepared.finish(prepared.raw_scores(Xc), Xc)
    return out


def assign(X, P, metric, working_memory, return_score=True):
    """Index of the most similar prototype for each row, and that similarity.

    Without ``return_score`` the score is not finished (no pass over the chunk's
    norms for euclidean) and None is returned in its place.
    """
    prepared = _PreparedPrototypes(P, metric)
    n = X.shape[0]
    best_index = np.empty(n, dtype=np.intp)
    best_score = np.empty(n, dtype=X.dtype) if return_score else None
    for rows in _chunks(n, P.shape[0], X.shape[1] + prepared.row_copy, X.itemsize,
                        working_memory):
        if metric == "cosine" and not return_score:
            best_index[rows] = _cosine_index(prepared, X[rows])
            continue
        Xc = prepared.rows(X[rows])
        S = prepared.raw_scores(Xc)
        idx = np.argmax(S, axis=1)
        best_index[rows] = idx
        if return_score:
            best = np.take_along_axis(S, idx[:, None], 1)
            best_score[rows] = prepared.finish(best, Xc)[:, 0]
    return best_index, best_score


def _cosine_index(prepared, Xc):
    """Most similar prototype by cosine, without the rows' norms where they are not needed.

    The argmax does not depend on a row's norm, so the raw rows go straight into the
    GEMM. Their scores keep every digit the comparison needs unless the row is so
    small that products fall below the normal range (best score under
    ``tiny / eps``) or so large that a dot product overflows: only those rows are
    redone rescaled, as :meth:`_PreparedPrototypes.rows` does for every row.
    """
    S = Xc @ prepared.Pt
    idx = np.argmax(S, axis=1)
    best = np.abs(S[np.arange(idx.shape[0]), idx])
    info = np.finfo(Xc.dtype)
    redo = ~(np.isfinite(best) & (best >= info.tiny / info.eps))
    if redo.any():
        Xr = prepared.rows(Xc[redo])
        idx[redo] = np.argmax(prepared.raw_scores(Xr), axis=1)
    return idx


def topk(X, P, k, metric, working_memory):
    """Indices and similarities of the k most similar prototypes, most similar first."""
    prepared = _PreparedPrototypes(P, metric)
    n, n_prototypes = X.shape[0], P.shape[0]
    indices = np.empty((n, k), dtype=np.intp)
    scores = np.empty((n, k), dtype=X.dtype)
    # Per column: the score block, argpartition's intp index block and its internal
    # copies (measured with tracemalloc: about one more score and index block).
    col_bytes = 2 * (X.itemsize + np.dtype(np.intp).itemsize)
    for rows in _chunks(n, n_prototypes, X.shape[1] + prepared.row_copy, X.itemsize,
                        working_memory, col_bytes):
        Xc = prepared.rows(X[rows])
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
    for rows in _chunks(n, n_prototypes, X.shape[1] + prepared.row_copy, X.itemsize,
                        working_memory):
        Xc = prepared.rows(X[rows])
        S = prepared.raw_scores(Xc)
        S.partition(n_prototypes - k, axis=1)
        out[rows] = prepared.finish(S[:, n_prototypes - k].copy(), Xc)
    return out


def whitened_sq_distance(X, center, W, working_memory):
    """``||(x / ||x|| - center) @ W||^2`` for every row x, chunked."""
    out = np.empty(X.shape[0], dtype=X.dtype)
    # The row, its normalised and centred copies, then the projection; cache-sized
    # so that the copies and the projection of a block stay in cache.
    row_bytes = X.itemsize * (3 * X.shape[1] + 2 * W.shape[1])
    max_rows = cache_block_rows(X.itemsize * (2 * X.shape[1] + W.shape[1]))
    for rows in row_chunks(X.shape[0], row_bytes, working_memory, max_rows=max_rows):
        Z = l2_normalize(X[rows]) - center
        Z = Z @ W
        out[rows] = row_norms_sq(Z)
    return out



def _mahalanobis_block(Xc, means, W, means_w):
    """Squared distances of the rows of Xc to every mean, ``(rows, n_means)``.

    Shared whitening ``W`` (2-D): ``||x W - m W||^2`` expanded as one GEMM. One
    whitening per mean (3-D ``W``): ``||(x - m_k) W_k||^2``, one GEMM per mean.
    """
    if W.ndim == 2:
        Z = Xc @ W
        D = Z @ (-2 * means_w.T)
        D += row_norms_sq(means_w)
        D += row_norms_sq(Z)[:, None]
        # Rounding can make a squared distance slightly negative: clamp it at 0.
        np.maximum(D, 0, out=D)
        return D
    D = np.empty((Xc.shape[0], means.shape[0]), dtype=Xc.dtype)
    for k in range(means.shape[0]):
        D[:, k] = row_norms_sq((Xc - means[k]) @ W[k])
    return D


def _mahalanobis_chunks(X, means, W, working_memory):
    # A chunk holds a row of X, its whitened copy and two blocks of one distance per
    # mean. Cache-sized: the whitened block and the distances stay in cache between
    # the two GEMMs and the passes after them (a single background mean would
    # otherwise make one chunk of the whole of X).
    n_means, n_whitened = means.shape[0], W.shape[-1]
    row_bytes = X.itemsize * (X.shape[1] + n_whitened + 2 * n_means)
    max_rows = cache_block_rows(X.itemsize * (n_whitened + n_means))
    return row_chunks(X.shape[0], row_bytes, working_memory, max_rows=max_rows)


def mahalanobis_sq_distances(X, means, W, working_memory):
    """(n_samples, n_means) squared Mahalanobis distances, chunked."""
    means_w = means @ W if W.ndim == 2 else None
    out = np.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    for rows in _mahalanobis_chunks(X, means, W, working_memory):
        out[rows] = _mahalanobis_block(X[rows], means, W, means_w)
    return out


def nearest_mahalanobis(X, means, W, working_memory):
    """Index of the nearest mean and that squared distance, without the full matrix."""
    means_w = means @ W if W.ndim == 2 else None
    index = np.empty(X.shape[0], dtype=np.intp)
    best = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _mahalanobis_chunks(X, means, W, working_memory):
        D = _mahalanobis_block(X[rows], means, W, means_w)
        idx = np.argmin(D, axis=1)
        index[rows] = idx
        best[rows] = np.take_along_axis(D, idx[:, None], 1)[:, 0]
    return index, best
