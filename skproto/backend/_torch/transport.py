"""Torch transport kernels (MixturePrototypeOODDetector): Sinkhorn, balanced assignment."""

import math

import torch

from ._common import resolve_device, to_device, to_numpy


def _sinkhorn(S, epsilon, n_iter):
    B, K = S.shape
    L = S / epsilon
    log_u = (-torch.logsumexp(L.reshape(-1), dim=0)).expand(B)
    log_v = torch.zeros(K, dtype=L.dtype, device=L.device)
    for _ in range(n_iter):
        log_v = -math.log(K) - torch.logsumexp(L + log_u[:, None], dim=0)
        log_u = -math.log(B) - torch.logsumexp(L + log_v[None, :], dim=1)
    return torch.exp(L + log_u[:, None] + log_v[None, :]) * B


@torch.inference_mode()
def sinkhorn(scores, epsilon, n_iter):
    S = to_device(scores, resolve_device())
    return to_numpy(_sinkhorn(S, epsilon, n_iter))


def _normalize_l1(A, dim):
    sums = A.sum(dim=dim, keepdim=True)
    return torch.where(sums > 0, A / torch.where(sums > 0, sums, torch.ones_like(sums)), 0)


@torch.inference_mode()
def balanced_assignment(X, P, epsilon, n_iter, top_k, x_groups, p_groups):
    device = resolve_device()
    Xt = to_device(X, device)
    Pt = to_device(P, device)
    Q = _sinkhorn(Xt @ Pt.T, epsilon, n_iter)
    if x_groups is not None:
        xg = to_device(x_groups, device)
        pg = to_device(p_groups, device)
        Q = Q * (xg[:, None] == pg[None, :])
    if top_k is not None and top_k < P.shape[0]:
        # A stable descending sort breaks ties by the lower column, as the numpy twin.
        order = torch.sort(Q, dim=1, descending=True, stable=True).indices[:, :top_k]
        mask = torch.zeros_like(Q).scatter_(1, order, 1.0)
        Q = Q * mask
    W = _normalize_l1(_normalize_l1(Q, dim=1), dim=0)
    return to_numpy(W), to_numpy(W.T @ Xt)

