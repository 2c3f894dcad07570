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
    return row_slices(n_rows, int(working_memory * 2**20 // row_bytes))


def row_slices(n_rows, chunk):
    """Slices of at most ``chunk`` (at least 1) rows covering ``range(n_rows)``."""
    chunk = max(chunk, 1)
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

_LOG_2PI = float(np.log(2 * np.pi))


def _mixture_chunks(X, n_components, covariance_type, working_memory):
    # One chunk holds X, X**2 (diag) and about four (rows x components) blocks; the
    # full-covariance loop adds one (rows x features) block per component.
    extra = X.shape[1] if covariance_type in ("diag", "full") else 0
    row_bytes = X.itemsize * (X.shape[1] + extra + 4 * n_components)
    # Past a few thousand rows a bigger chunk only costs memory, not GEMM speed.
    chunk = min(int(working_memory * 2**20 // row_bytes), 8192)
    return row_slices(X.shape[0], chunk)


class _PreparedGaussians:
    """Per-call constants of a Gaussian mixture, so each row chunk costs one GEMM.

    ``weighted_log_prob(Xc)`` is ``log w_k + log N(x | mean_k, cov_k)`` for the rows of
    ``Xc``; spherical and diagonal covariances expand the quadratic form into
    ``x^2 . p_k - 2 x . (m_k p_k) + m_k^2 . p_k`` (one GEMM on ``[x, x^2]``), full
    covariances apply each component's Cholesky factor of the precision.
    """

    def __init__(self, means, precisions_chol, log_weights, covariance_type, dtype):
        self.covariance_type = covariance_type
        n_components, n_features = means.shape
        means64 = means.astype(np.float64)
        pc = precisions_chol.astype(np.float64)
        if covariance_type == "full":
            log_det = np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)
            self.chol = pc.astype(dtype)
            self.shift = np.einsum("kd,kde->ke", means64, pc).astype(dtype)
            quad_const = np.zeros(n_components)
        elif covariance_type == "diag":
            prec = pc**2
            log_det = np.log(pc).sum(axis=1)
            # [x, x^2] @ W gives x . (2 m p) - x^2 . p
            self.W = np.ascontiguousarray(
                np.concatenate([2 * means64 * prec, -prec], axis=1).T.astype(dtype)
            )
            quad_const = (means64**2 * prec).sum(axis=1)
        else:  # spherical
            prec = pc**2
            log_det = n_features * np.log(pc)
            self.W = np.ascontiguousarray((2 * means64 * prec[:, None]).T.astype(dtype))
            self.prec = prec.astype(dtype)
            quad_const = (means64**2).sum(axis=1) * prec
        # log w_k + log det(L_k) - D/2 log(2 pi); the quadratic form is added per row.
        self.const = (
            np.asarray(log_weights, dtype=np.float64) + log_det - 0.5 * n_features * _LOG_2PI
        ).astype(dtype)
        self.quad_const = np.asarray(quad_const, dtype=np.float64).astype(dtype)

    def features(self, Xc, buffer=None):
        """What the GEMM multiplies: ``[x, x^2]`` for diag, ``x`` otherwise.

        ``buffer`` (at least ``rows x 2 n_features``) is reused across chunks: fresh
        allocations of this size cost more in page faults than the copy itself.
        """
        if self.covariance_type != "diag":
            return Xc
        n_rows, n_features = Xc.shape
        if buffer is None:
            buffer = np.empty((n_rows, 2 * n_features), dtype=Xc.dtype)
        F = buffer[:n_rows]
        F[:, :n_features] = Xc
        np.multiply(Xc, Xc, out=F[:, n_features:])
        return F

    def weighted_log_prob(self, Xc, features=None, out=None):
        if features is None:
            features = self.features(Xc)
        if out is None:
            out = np.empty((Xc.shape[0], self.const.shape[0]), dtype=Xc.dtype)
        out = out[: Xc.shape[0]]
        if self.covariance_type == "full":
            for k in range(self.chol.shape[0]):
                Y = Xc @ self.chol[k]
                Y -= self.shift[k]
                out[:, k] = np.einsum("ij,ij->i", Y, Y)
            out *= -0.5
            out += self.const
            return out
        np.matmul(features, self.W, out=out)
        if self.covariance_type == "spherical":
            out -= np.outer(row_norms_sq(Xc), self.prec)
        # out = -(quadratic form); its expansion can round below 0 where the exact
        # value is ~0: clamp, as the distance kernels do.
        out -= self.quad_const
        np.minimum(out, 0, out=out)
        out *= 0.5
        out += self.const
        return out


def _logsumexp_rows(A):
    top = A.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    return (np.log(np.exp(A - top).sum(axis=1, keepdims=True)) + top)[:, 0]


_EXP_FLOOR = {np.float32: np.float32(-80.0), np.float64: np.float64(-700.0)}


def _normalise_rows(wlp):
    """Responsibilities (in place of ``wlp``) and the rows' logsumexp, with one exp."""
    top = wlp.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    np.subtract(wlp, top, out=wlp)
    # exp of anything below this is a denormal float (or 0), and denormals make exp
    # and the M-step GEMM many times slower; a responsibility under ~1e-35 (float32)
    # or ~1e-304 (float64) is rounding noise next to the row's largest, which is 1.
    np.maximum(wlp, _EXP_FLOOR[wlp.dtype.type], out=wlp)
    np.exp(wlp, out=wlp)
    total = wlp.sum(axis=1, keepdims=True)
    wlp /= total
    return wlp, (np.log(total) + top)[:, 0]


def log_responsibilities(X, means, precisions_chol, log_weights, covariance_type, working_memory):
    """Log posterior of each component per row, and the row's log-likelihood."""
    prepared = _PreparedGaussians(means, precisions_chol, log_weights, covariance_type, X.dtype)
    log_resp = np.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _mixture_chunks(X, means.shape[0], covariance_type, working_memory):
        wlp = prepared.weighted_log_prob(X[rows], out=log_resp[rows])  # in place
        norm = _logsumexp_rows(wlp)
        wlp -= norm[:, None]
        log_norm[rows] = norm
    return log_resp, log_norm


def mixture_em_statistics(
    X, means, precisions_chol, log_weights, covariance_type, fixed, working_memory
):
    """One pass of EM: E-step responsibilities folded into the M-step's sums."""
    n_components, n_features = means.shape
    prepared = _PreparedGaussians(means, precisions_chol, log_weights, covariance_type, X.dtype)
    nk = np.zeros(n_components)
    sums = np.zeros((n_components, n_features))
    if covariance_type == "full":
        sq_sums = np.zeros((n_components, n_features, n_features))
    elif covariance_type == "diag":
        sq_sums = np.zeros((n_components, n_features))
    else:
        sq_sums = np.zeros(n_components)
    log_likelihood = 0.0
    chunks = list(_mixture_chunks(X, n_components, covariance_type, working_memory))
    max_rows = max((c.stop - c.start for c in chunks), default=0)
    feats_buffer = (
        np.empty((max_rows, 2 * n_features), dtype=X.dtype) if covariance_type == "diag" else None
    )
    wlp_buffer = np.empty((max_rows, n_components), dtype=X.dtype)
    for rows in chunks:
        Xc = X[rows]
        feats = prepared.features(Xc, feats_buffer)
        wlp = prepared.weighted_log_prob(Xc, feats, wlp_buffer)
        fixed_c = fixed[rows]
        idx = np.flatnonzero(fixed_c >= 0)
        fixed_ll = wlp[idx, fixed_c[idx]] if idx.size else None
        resp, norm = _normalise_rows(wlp)
        if idx.size:
            norm[idx] = fixed_ll
            resp[idx] = 0
            resp[idx, fixed_c[idx]] = 1
        log_likelihood += float(norm.sum(dtype=np.float64))
        nk += resp.sum(axis=0, dtype=np.float64)
        # (F^T R)^T: BLAS handles this layout faster than R^T F.
        moments = (feats.T @ resp).T
        if covariance_type == "diag":
            sums += moments[:, :n_features]
            sq_sums += moments[:, n_features:]
        else:
            sums += moments
            if covariance_type == "spherical":
                sq_sums += row_norms_sq(Xc) @ resp
            else:
                for k in range(n_components):
                    sq_sums[k] += (Xc * resp[:, k : k + 1]).T @ Xc
    return log_likelihood, nk, sums, sq_sums


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
