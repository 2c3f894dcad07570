"""PyTorch kernels, same signatures and results as :mod:`skproto.backend._numpy`.

They take and return numpy arrays: each row chunk of ``X`` is moved to the configured
device once, the prototypes once per call, and only the (small) results come back.
This module is the only place in skproto that imports torch at run time.
"""

import numpy as np
import torch

from .._config import get_config
from ._numpy import _chunks

_TINY = 1e-12


def resolve_device(device=None):
    """The torch.device for a config value ("cpu", "cuda", "auto")."""
    device = get_config()["device"] if device is None else device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _to_device(array, device):
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)


def _to_numpy(tensor):
    return tensor.detach().cpu().numpy()


def _row_norms_sq(T):
    return torch.einsum("ij,ij->i", T, T)


def _safe_inverse_norms(T):
    norms = torch.sqrt(_row_norms_sq(T))
    return torch.where(norms > _TINY, 1.0 / norms.clamp_min(_TINY), torch.zeros_like(norms))


class _PreparedPrototypes:
    """Torch twin of ``_numpy._PreparedPrototypes``."""

    def __init__(self, P, metric, device):
        self.metric = metric
        P = _to_device(P, device)
        if metric == "cosine":
            self.Pt = (P * _safe_inverse_norms(P)[:, None]).T.contiguous()
        elif metric == "euclidean":
            self.Pt = (2 * P).T.contiguous()
            self.p_sq = _row_norms_sq(P)
        else:
            self.Pt = P.T.contiguous()

    def raw_scores(self, Xc):
        S = Xc @ self.Pt
        if self.metric == "euclidean":
            S -= self.p_sq
        return S

    def finish(self, S, Xc):
        shape = (-1,) + (1,) * (S.ndim - 1)
        if self.metric == "cosine":
            S *= _safe_inverse_norms(Xc).reshape(shape)
        elif self.metric == "euclidean":
            S -= _row_norms_sq(Xc).reshape(shape)
            S.clamp_(max=0)
        return S


def _chunked(X, P, working_memory):
    return _chunks(X.shape[0], P.shape[0], X.shape[1], X.itemsize, working_memory)


@torch.inference_mode()
def similarity(X, P, metric, working_memory):
    device = resolve_device()
    prepared = _PreparedPrototypes(P, metric, device)
    out = np.empty((X.shape[0], P.shape[0]), dtype=X.dtype)
    for rows in _chunked(X, P, working_memory):
        Xc = _to_device(X[rows], device)
        out[rows] = _to_numpy(prepared.finish(prepared.raw_scores(Xc), Xc))
    return out


@torch.inference_mode()
def assign(X, P, metric, working_memory):
    device = resolve_device()
    prepared = _PreparedPrototypes(P, metric, device)
    best_index = np.empty(X.shape[0], dtype=np.intp)
    best_score = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _chunked(X, P, working_memory):
        Xc = _to_device(X[rows], device)
        S = prepared.raw_scores(Xc)
        # torch.max returns the first maximal index, as np.argmax does.
        score, idx = torch.max(S, dim=1)
        best_index[rows] = _to_numpy(idx)
        best_score[rows] = _to_numpy(prepared.finish(score[:, None], Xc)[:, 0])
    return best_index, best_score


@torch.inference_mode()
def topk(X, P, k, metric, working_memory):
    device = resolve_device()
    prepared = _PreparedPrototypes(P, metric, device)
    indices = np.empty((X.shape[0], k), dtype=np.intp)
    scores = np.empty((X.shape[0], k), dtype=X.dtype)
    for rows in _chunked(X, P, working_memory):
        Xc = _to_device(X[rows], device)
        S = prepared.raw_scores(Xc)
        # torch.topk is much faster than a full sort on large K; exact ties between
        # scores may come out in another order than the numpy kernel's.
        top, idx = torch.topk(S, k, dim=1, largest=True, sorted=True)
        indices[rows] = _to_numpy(idx)
        scores[rows] = _to_numpy(prepared.finish(top, Xc))
    return indices, scores


@torch.inference_mode()
def kth_similarity(X, P, k, metric, working_memory):
    device = resolve_device()
    prepared = _PreparedPrototypes(P, metric, device)
    n_prototypes = P.shape[0]
    out = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _chunked(X, P, working_memory):
        Xc = _to_device(X[rows], device)
        S = prepared.raw_scores(Xc)
        # kthvalue counts from the smallest: the k-th largest is the (K - k + 1)-th smallest.
        value, _ = torch.kthvalue(S, n_prototypes - k + 1, dim=1)
        out[rows] = _to_numpy(prepared.finish(value, Xc))
    return out


@torch.inference_mode()
def group_sum(X, codes, n_groups, squares, working_memory):
    device = resolve_device()
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    sums = torch.zeros((n_groups, X.shape[1]), dtype=dtype, device=device)
    sq_sums = torch.zeros_like(sums) if squares else None
    for rows in _chunks(X.shape[0], 0, X.shape[1], X.itemsize, working_memory):
        Xc = _to_device(X[rows], device)
        codes_c = _to_device(codes[rows], device)
        sums.index_add_(0, codes_c, Xc)
        if squares:
            sq_sums.index_add_(0, codes_c, Xc * Xc)
    counts = np.bincount(codes, minlength=n_groups).astype(np.int64)
    if squares:
        return _to_numpy(sums), counts, _to_numpy(sq_sums)
    return _to_numpy(sums), counts


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


def _sinkhorn(S, epsilon, n_iter):
    import math

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
    S = _to_device(scores, resolve_device())
    return _to_numpy(_sinkhorn(S, epsilon, n_iter))


def _normalize_l1(A, dim):
    sums = A.sum(dim=dim, keepdim=True)
    return torch.where(sums > 0, A / torch.where(sums > 0, sums, torch.ones_like(sums)), 0)


@torch.inference_mode()
def balanced_assignment(X, P, epsilon, n_iter, top_k, x_groups, p_groups):
    device = resolve_device()
    Xt = _to_device(X, device)
    Pt = _to_device(P, device)
    Q = _sinkhorn(Xt @ Pt.T, epsilon, n_iter)
    if x_groups is not None:
        xg = _to_device(x_groups, device)
        pg = _to_device(p_groups, device)
        Q = Q * (xg[:, None] == pg[None, :])
    if top_k is not None and top_k < P.shape[0]:
        # A stable descending sort breaks ties by the lower column, as the numpy twin.
        order = torch.sort(Q, dim=1, descending=True, stable=True).indices[:, :top_k]
        mask = torch.zeros_like(Q).scatter_(1, order, 1.0)
        Q = Q * mask
    W = _normalize_l1(_normalize_l1(Q, dim=1), dim=0)
    return _to_numpy(W), _to_numpy(W.T @ Xt)


@torch.inference_mode()
def whitened_sq_distance(X, center, W, working_memory):
    device = resolve_device()
    center_t = _to_device(center, device)
    W_t = _to_device(W, device)
    out = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _chunks(X.shape[0], W.shape[1], X.shape[1], X.itemsize, working_memory):
        Xc = _to_device(X[rows], device)
        Z = Xc * _safe_inverse_norms(Xc)[:, None] - center_t
        Z = Z @ W_t
        out[rows] = _to_numpy(_row_norms_sq(Z))
    return out


# ---------------------------------------------------------------------------------
# end of the balanced-assignment section
# ---------------------------------------------------------------------------------
