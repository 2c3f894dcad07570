"""NumPy transport kernels (MixturePrototypeOODDetector): Sinkhorn, balanced assignment,
and PALM's whole prototype fit (:func:`balanced_prototypes`)."""

from contextlib import nullcontext

import numpy as np
from threadpoolctl import threadpool_limits

# -- Sinkhorn-Knopp -------------------------------------------------------------------


def _logsumexp(A, axis):
    """log(sum(exp(A), axis)) with the max subtracted; all -inf stays -inf."""
    m = np.max(A, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(A - m), axis=axis))


def _sinkhorn_log(scores, epsilon, n_iter):
    """PALM's Sinkhorn-Knopp in the log domain: no overflow or underflow of exp."""
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


def _sinkhorn_column_scaling(E, n_iter):
    """Column factors ``v`` of the linear-domain Sinkhorn-Knopp of ``E`` (B x K, > 0).

    PALM's ``Q`` (``n_iter >= 1``) is ``E * v`` with each row scaled to sum 1: the
    row factors of the iteration only fix each row's total, which that last scaling
    does anyway. Every constant factor is left out (``v = 1 / colsum``, ``u =
    min(r) / r``, so ``max(u) = 1``): ``Q`` does not depend on them, and this gauge
    keeps every intermediate within ``[exp(-R) / B, K B exp(R)]`` when the entries of
    ``E`` lie in ``[exp(-R/2), exp(R/2)]`` (the ratio of two row sums is at most
    ``exp(R)``), so nothing overflows or underflows (see ``linear_range_limit`` in
    :mod:`skproto.backend._transport`).
    """
    v = 1 / E.sum(axis=0)
    for _ in range(n_iter - 1):
        r = E @ v
        u = r.min() / r
        v = 1 / (u @ E)
    return v


def sinkhorn(scores, epsilon, n_iter, linear_limit):
    """PALM's Sinkhorn-Knopp balanced assignment.

    Same result as ``Q = exp(scores / eps)`` scaled to total 1, then ``n_iter`` times
    [every prototype (column) to total 1/K, every sample (row) to total 1/B], then
    times B. In the linear domain (one ``exp``, then matrix-vector products) when the
    score range over ``epsilon`` is at most ``linear_limit``, where that is exact to
    rounding; in the log domain otherwise.
    """
    B = scores.shape[0]
    hi, lo = float(scores.max()), float(scores.min())
    if (hi - lo) / epsilon > linear_limit:
        return _sinkhorn_log(scores, epsilon, n_iter)
    # Centred: every entry of E lies in [exp(-R/2), exp(R/2)], R = (hi - lo) / eps.
    E = np.exp((scores - scores.dtype.type((hi + lo) / 2)) / scores.dtype.type(epsilon))
    if n_iter == 0:  # PALM's first division by sum(Q), then times B
        return E * (E.dtype.type(B) / E.sum())
    E *= _sinkhorn_column_scaling(E, n_iter)
    E /= E.sum(axis=1, keepdims=True)
    return E


# -- one mini-batch ---------------------------------------------------------------------


def _normalize_l1(A, axis):
    """A with its slices along ``axis`` scaled to sum 1; all-zero slices stay zero."""
    sums = A.sum(axis=axis, keepdims=True)
    out = np.zeros_like(A)
    np.divide(A, sums, out=out, where=sums > 0)
    return out


def _topk_mask(A, k):
    """Boolean mask of the k largest entries of each row (ties: the lower column first).

    The k-th largest value of each row by a partition (no sort of the indices); every
    entry above it is kept, and entries equal to it from the left until the row has k.
    """
    kth = -np.partition(-A, k - 1, axis=1)[:, k - 1 : k]
    keep = A >= kth
    if np.all(np.count_nonzero(keep, axis=1) == k):  # no tie at the k-th value
        return keep
    above = A > kth
    tied = A == kth
    room = k - np.count_nonzero(above, axis=1)[:, None]
    return above | (tied & (np.cumsum(tied, axis=1) <= room))


def balanced_assignment(X, P, epsilon, n_iter, top_k, x_groups, p_groups, linear_limit):
    """PALM's soft assignment of a mini-batch to prototypes, and the update targets."""
    Q = sinkhorn(X @ P.T, epsilon, n_iter, linear_limit)
    if x_groups is not None:
        Q = Q * (x_groups[:, None] == p_groups[None, :])
    if top_k is not None and top_k < P.shape[0]:
        Q = Q * _topk_mask(Q, top_k)
    W = _normalize_l1(_normalize_l1(Q, axis=1), axis=0)
    return W, W.T @ X


# -- PALM's whole fit -------------------------------------------------------------------


def _mul32(x, c):
    """``x * c mod 2**32`` for int64 ``x`` in [0, 2**32): two 16-bit halves of c, so
    that no product leaves int64 (the torch twin computes the very same integers)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & 0xFFFFFFFF


def _mix32(x):
    """A bijection of [0, 2**32) with good avalanche (lowbias32, C. Wellons)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _pass_order(index, keys, batch_size, codes, n_groups):
    """The sample order of one pass: a keyed shuffle, each batch sorted by group.

    The sort keys are a bijection of the sample index (two keyed rounds of
    :func:`_mix32`), so they are distinct and every library sorts them the same way.
    Sorting each batch by group (stable) changes nothing but the order of the sums:
    the batch's update does not depend on the order of its rows.
    """
    order = np.argsort(_mix32(_mix32(index ^ keys[0]) ^ keys[1]))
    if codes is not None:
        batch_of = np.arange(order.shape[0]) // batch_size
        order = order[np.argsort(batch_of * n_groups + codes[order], kind="stable")]
    return order


def _own_block_weights(Q, codes_b, n_groups, n_protos, top_k):
    """Each sample's row of ``W`` over its own group's prototypes, rows scaled to 1.

    ``Q`` is the Sinkhorn matrix up to a positive factor per row, which the row
    normalisation removes (and the top-k of a row does not depend on). Returns the
    (B, M) weights and each prototype's column total (K,), for the column
    normalisation, which the caller applies to the targets.
    """
    B = Q.shape[0]
    own = Q.reshape(B, n_groups, n_protos)[np.arange(B), codes_b]
    if top_k is not None:
        own *= _topk_mask(own, top_k)
    rows = own.sum(axis=1, keepdims=True)
    np.divide(own, rows, out=own, where=rows > 0)
    slots = (codes_b[:, None] * n_protos + np.arange(n_protos)).ravel()
    cols = np.bincount(slots, weights=own.ravel(), minlength=n_groups * n_protos)
    return own, cols


def _targets_grouped(own, Xb, codes_b, n_groups, n_protos, out):
    """``W.T @ Xb`` from the own-group weights of a batch sorted by group.

    One small GEMM per group on its contiguous rows: ``M B D`` multiply-adds instead
    of the dense ``K B D`` (W has at most ``M`` non-zeros a row).
    """
    bounds = np.searchsorted(codes_b, np.arange(n_groups + 1))
    for g in range(n_groups):
        lo, hi = bounds[g], bounds[g + 1]
        block = out[g * n_protos : (g + 1) * n_protos]
        if hi > lo:
            np.matmul(own[lo:hi].T, Xb[lo:hi], out=block)
        else:
            block[...] = 0
    return out


def _batch_targets(Xb, S, codes_b, n_groups, n_protos, eps, n_iter, top_k, linear, weight,
                   out):
    """``weight`` times PALM's targets ``W.T @ Xb`` of one batch, from ``S = Xb @ P.T``.

    ``S`` is overwritten. ``linear``: the caller checked that ``exp(S / eps)`` is in
    the linear-domain range (:func:`sinkhorn`); otherwise the log-domain Sinkhorn.
    W's column normalisation and ``weight`` scale the (K, D) targets rather than W.
    """
    if linear:
        S *= 1 / eps
        E = np.exp(S, out=S)
        if n_iter:
            E *= _sinkhorn_column_scaling(E, n_iter)
    else:
        E = _sinkhorn_log(S, eps, n_iter)
    # E is now PALM's Q up to a positive factor per row.
    if codes_b is not None:
        own, cols = _own_block_weights(E, codes_b, n_groups, n_protos, top_k)
        _targets_grouped(own, Xb, codes_b, n_groups, n_protos, out)
    else:
        if top_k is not None:
            E *= _topk_mask(E, top_k)
        W = _normalize_l1(E, axis=1)
        cols = W.sum(axis=0)
        np.matmul(W.T, Xb, out=out)
    # A prototype with no weight has a zero target row: its scale does not matter.
    scale = np.zeros(cols.shape, dtype=out.dtype)
    np.divide(weight, cols, out=scale, where=cols > 0, casting="unsafe")
    out *= scale[:, None]
    return out


def _converged(drift, tol, delta):
    """``drift <= tol``; with ``tol == 0``, only once the prototypes stop exactly."""
    return drift <= tol if tol > 0 else not delta.any()


def balanced_prototypes(
    X, P, x_groups, n_groups, epsilon, n_iter, top_k, momentum, batch_size, max_iter,
    tol, pass_keys, linear, small_gemm,
):
    """PALM's prototype fit: passes of balanced assignments and EMA updates."""
    n_samples, n_features = X.shape
    K = P.shape[0]
    M = K // n_groups
    dtype = X.dtype.type
    m = dtype(momentum)
    # normalize(m P + (1 - m) U) = normalize(P + (1 - m) / m U): the EMA is one
    # scaled addition (m = 0: P = normalize(U)).
    weight = (1 - m) / m if m > 0 else dtype(1)
    grouped = x_groups is not None
    n_batches = -(-n_samples // batch_size)
    rate = 1.0 - float(momentum) ** n_batches
    eps = dtype(epsilon)
    P = np.array(P, dtype=X.dtype, order="C", copy=True)
    index = np.arange(n_samples, dtype=np.int64)
    B0 = min(batch_size, n_samples)
    xbuf = np.empty((B0, n_features), dtype=X.dtype)
    sbuf = np.empty((B0, K), dtype=X.dtype)
    U = np.empty_like(P)
    prev, drift, n_done, converged = None, np.inf, 0, False
    # Many small GEMMs: more BLAS threads than cores free makes them wait on each other
    # (scikit-learn's KMeans limits BLAS the same way).
    limits = threadpool_limits(limits=1, user_api="blas") if small_gemm else nullcontext()
    with limits:
        for t in range(max_iter):
            order = _pass_order(index, pass_keys[t], batch_size, x_groups if grouped else None,
                                n_groups)
            P_start = P.copy()
            for start in range(0, n_samples, batch_size):
                idx = order[start : start + batch_size]
                nb = idx.shape[0]
                # mode="clip": an unbuffered gather (3x faster than "raise" with out=).
                Xb = np.take(X, idx, axis=0, out=xbuf[:nb], mode="clip")
                S = np.matmul(Xb, P.T, out=sbuf[:nb])
                codes_b = x_groups[idx] if grouped else None
                _batch_targets(Xb, S, codes_b, n_groups, M, eps, n_iter, top_k, linear,
                               weight, U)
                # EMA, then back to the sphere (a row that got no weight keeps its
                # direction; a zero row stays zero).
                if m > 0:
                    P += U
                else:
                    P[...] = U
                norms = np.sqrt(np.einsum("ij,ij->i", P, P))
                np.divide(P, norms[:, None], out=P, where=norms[:, None] > 0)
            n_done = t + 1
            delta = P - P_start
            # The part of this pass's movement that continues the previous pass's:
            # mini-batch noise is nearly uncorrelated from pass to pass, a drift is not.
            other = delta if prev is None else prev
            sq = float(np.einsum("ij,ij->", delta, other, dtype=np.float64)) / K
            drift = np.sqrt(max(sq, 0.0)) / rate
            prev = delta
            if _converged(drift, tol, delta):
                converged = True
                break
    return P, n_done, drift, converged
