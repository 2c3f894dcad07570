"""Torch transport kernels (MixturePrototypeOODDetector): Sinkhorn, balanced assignment,
and PALM's whole prototype fit, the twins of the numpy ones."""

import math
from contextlib import contextmanager

import numpy as np
import torch

from ._common import resolve_device, to_device, to_numpy, to_scalars

# -- Sinkhorn-Knopp -------------------------------------------------------------------


def _sinkhorn_log(S, epsilon, n_iter):
    B, K = S.shape
    L = S / epsilon
    log_u = (-torch.logsumexp(L.reshape(-1), dim=0)).expand(B)
    log_v = torch.zeros(K, dtype=L.dtype, device=L.device)
    for _ in range(n_iter):
        log_v = -math.log(K) - torch.logsumexp(L + log_u[:, None], dim=0)
        log_u = -math.log(B) - torch.logsumexp(L + log_v[None, :], dim=1)
    return torch.exp(L + log_u[:, None] + log_v[None, :]) * B


def _sinkhorn_column_scaling(E, n_iter):
    """Twin of the numpy ``_sinkhorn_column_scaling`` (same gauge, same bounds)."""
    v = 1 / E.sum(dim=0)
    for _ in range(n_iter - 1):
        r = E @ v
        u = r.min() / r
        v = 1 / (u @ E)
    return v


def _sinkhorn(S, epsilon, n_iter, linear_limit):
    B = S.shape[0]
    lo, hi = to_scalars(torch.stack(torch.aminmax(S)).double())
    if (hi - lo) / epsilon > linear_limit:
        return _sinkhorn_log(S, epsilon, n_iter)
    E = torch.exp((S - (hi + lo) / 2) / epsilon)
    if n_iter == 0:
        return E * (B / E.sum())
    E *= _sinkhorn_column_scaling(E, n_iter)
    E /= E.sum(dim=1, keepdim=True)
    return E


@torch.inference_mode()
def sinkhorn(scores, epsilon, n_iter, linear_limit):
    S = to_device(scores, resolve_device())
    return to_numpy(_sinkhorn(S, epsilon, n_iter, linear_limit))


# -- one mini-batch ---------------------------------------------------------------------


def _normalize_l1(A, dim):
    sums = A.sum(dim=dim, keepdim=True)
    return torch.where(sums > 0, A / torch.where(sums > 0, sums, torch.ones_like(sums)), 0)


def _topk_mask(A, k):
    """Twin of the numpy ``_topk_mask``: the k-th value, then ties from the left."""
    kth = torch.topk(A, k, dim=1).values[:, k - 1 : k]
    above = A > kth
    tied = A == kth
    room = k - above.sum(dim=1, keepdim=True)
    return above | (tied & (torch.cumsum(tied, dim=1) <= room))


@torch.inference_mode()
def balanced_assignment(X, P, epsilon, n_iter, top_k, x_groups, p_groups, linear_limit):
    device = resolve_device()
    Xt = to_device(X, device)
    Pt = to_device(P, device)
    Q = _sinkhorn(Xt @ Pt.T, epsilon, n_iter, linear_limit)
    if x_groups is not None:
        xg = to_device(x_groups, device)
        pg = to_device(p_groups, device)
        Q = Q * (xg[:, None] == pg[None, :])
    if top_k is not None and top_k < P.shape[0]:
        Q = Q * _topk_mask(Q, top_k)
    W = _normalize_l1(_normalize_l1(Q, dim=1), dim=0)
    return to_numpy(W), to_numpy(W.T @ Xt)


# -- PALM's whole fit -------------------------------------------------------------------


def _mul32(x, c):
    """Twin of the numpy ``_mul32``: ``x * c mod 2**32`` without leaving int64."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & 0xFFFFFFFF


def _mix32(x):
    """Twin of the numpy ``_mix32`` (lowbias32): the same integers on every device."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _pass_order(index, keys, batch_size, codes, n_groups):
    """Twin of the numpy ``_pass_order``, computed on the device (keys are distinct)."""
    order = torch.argsort(_mix32(_mix32(index ^ int(keys[0])) ^ int(keys[1])))
    if codes is not None:
        batch_of = torch.div(index, batch_size, rounding_mode="floor")
        sub = batch_of * n_groups + codes[order]
        order = order[torch.sort(sub, stable=True).indices]
    return order


def _batch_targets(Xb, S, codes_b, n_groups, n_protos, inv_eps, epsilon, n_iter, top_k,
                   linear):
    """Twin of the numpy ``_batch_targets``; the targets as one dense ``W.T @ Xb``."""
    B, K = S.shape
    if linear:
        E = torch.exp(S.mul_(inv_eps))
        if n_iter:
            E *= _sinkhorn_column_scaling(E, n_iter)
    else:
        E = _sinkhorn_log(S, epsilon, n_iter)
    if codes_b is not None:
        rows = torch.arange(B, device=S.device)
        own = E.view(B, n_groups, n_protos)[rows, codes_b]
        if top_k is not None:
            own = own * _topk_mask(own, top_k)
        own = _normalize_l1(own, dim=1)
        slots = (codes_b[:, None] * n_protos
                 + torch.arange(n_protos, device=S.device)).reshape(-1)
        col = torch.zeros(K, dtype=own.dtype, device=S.device).index_add_(
            0, slots, own.reshape(-1))
        col = col.view(n_groups, n_protos)[codes_b]
        own = torch.where(col > 0, own / torch.where(col > 0, col, torch.ones_like(col)), 0)
        # On a GPU the dense product is cheaper than one small GEMM per group.
        W = torch.zeros_like(E)
        W.view(B, n_groups, n_protos)[rows, codes_b] = own
    else:
        if top_k is not None:
            E = E * _topk_mask(E, top_k)
        W = _normalize_l1(_normalize_l1(E, dim=1), dim=0)
    return W.T @ Xb


@contextmanager
def _one_thread(enabled):
    """torch's intra-op threads at one for the call (restored after), when enabled."""
    if not enabled:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.inference_mode()
def balanced_prototypes(
    X, P, x_groups, n_groups, epsilon, n_iter, top_k, momentum, batch_size, max_iter,
    tol, pass_keys, linear, small_gemm,
):
    device = resolve_device()
    n_samples = X.shape[0]
    K = P.shape[0]
    M = K // n_groups
    dtype = X.dtype.type
    # The same rounded constants as the numpy kernel.
    m = float(dtype(momentum))
    one_minus_m = float(dtype(1) - dtype(momentum))
    inv_eps = float(1 / dtype(epsilon))
    n_batches = -(-n_samples // batch_size)
    rate = 1.0 - float(momentum) ** n_batches
    # One copy to the device for the whole fit; nothing else goes up.
    Xt = to_device(X, device)
    Pt = to_device(np.ascontiguousarray(P), device).clone()
    codes = None if x_groups is None else to_device(x_groups, device)
    index = torch.arange(n_samples, dtype=torch.int64, device=device)
    # One batch-sized buffer for the gathered rows (no copy of X a pass).
    xbuf = torch.empty((min(batch_size, n_samples), X.shape[1]), dtype=Xt.dtype,
                       device=device)
    prev, drift, n_done, converged = None, math.inf, 0, False
    with _one_thread(small_gemm and device.type == "cpu"):
        for t in range(max_iter):
            order = _pass_order(index, pass_keys[t], batch_size, codes, n_groups)
            codes_p = None if codes is None else codes[order]
            P_start = Pt.clone()
            for start in range(0, n_samples, batch_size):
                idx = order[start : start + batch_size]
                # index_select into the buffer: several times faster than advanced
                # indexing on a CPU, and no new allocation per batch.
                Xb = torch.index_select(Xt, 0, idx, out=xbuf[: idx.shape[0]])
                codes_b = None if codes_p is None else codes_p[start : start + batch_size]
                U = _batch_targets(Xb, Xb @ Pt.T, codes_b, n_groups, M, inv_eps, epsilon,
                                   n_iter, top_k, linear)
                Pt.mul_(m).add_(U, alpha=one_minus_m)
                norms = torch.linalg.vector_norm(Pt, dim=1, keepdim=True)
                Pt.div_(torch.where(norms > 0, norms, torch.ones_like(norms)))
            n_done = t + 1
            delta = Pt - P_start
            other = delta if prev is None else prev
            # The pass's one read from the device: <delta, previous delta> and max|delta|.
            sq, moved = to_scalars(torch.stack([
                torch.sum(delta * other, dtype=torch.float64),
                delta.abs().max().double(),
            ]))
            drift = math.sqrt(max(sq / K, 0.0)) / rate
            prev = delta
            # tol == 0: only once the prototypes stop exactly (as the numpy kernel).
            if drift <= tol if tol > 0 else not moved > 0:
                converged = True
                break
    return to_numpy(Pt), n_done, drift, converged
