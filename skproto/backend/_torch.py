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


class _PreparedGaussians:
    """Torch twin of ``_numpy._PreparedGaussians`` (constants from the numpy one)."""

    def __init__(self, means, precisions_chol, log_weights, covariance_type, dtype, device):
        from ._numpy import _PreparedGaussians as _NumpyPrepared

        prepared = _NumpyPrepared(means, precisions_chol, log_weights, covariance_type, dtype)
        self.covariance_type = covariance_type
        self.const = _to_device(prepared.const, device)
        self.quad_const = _to_device(prepared.quad_const, device)
        if covariance_type == "full":
            self.chol = _to_device(prepared.chol, device)
            self.shift = _to_device(prepared.shift, device)
        else:
            self.W = _to_device(prepared.W, device)
            if covariance_type == "spherical":
                self.prec = _to_device(prepared.prec, device)

    def weighted_log_prob(self, Xc):
        if self.covariance_type == "full":
            # (K, rows, D): one batched GEMM over the components.
            Y = torch.matmul(Xc.unsqueeze(0), self.chol) - self.shift[:, None, :]
            out = -0.5 * torch.einsum("krd,krd->rk", Y, Y)
            return out + self.const
        if self.covariance_type == "diag":
            out = torch.cat([Xc, Xc * Xc], dim=1) @ self.W
        else:
            out = Xc @ self.W
            out -= torch.outer(_row_norms_sq(Xc), self.prec)
        out -= self.quad_const
        out.clamp_(max=0)
        out *= 0.5
        out += self.const
        return out


def _mixture_chunks(X, n_components, covariance_type, working_memory):
    from ._numpy import _mixture_chunks as _numpy_chunks
    from ._numpy import row_slices

    if covariance_type == "full":
        # The batched GEMM holds (K, rows, D): size the chunks for it.
        row_bytes = X.itemsize * X.shape[1] * (n_components + 2)
        return row_slices(X.shape[0], int(working_memory * 2**20 // row_bytes))
    return _numpy_chunks(X, n_components, covariance_type, working_memory)


@torch.inference_mode()
def log_responsibilities(X, means, precisions_chol, log_weights, covariance_type, working_memory):
    device = resolve_device()
    prepared = _PreparedGaussians(
        means, precisions_chol, log_weights, covariance_type, X.dtype, device
    )
    log_resp = np.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _mixture_chunks(X, means.shape[0], covariance_type, working_memory):
        wlp = prepared.weighted_log_prob(_to_device(X[rows], device))
        norm = torch.logsumexp(wlp, dim=1)
        log_resp[rows] = _to_numpy(wlp - norm[:, None])
        log_norm[rows] = _to_numpy(norm)
    return log_resp, log_norm


@torch.inference_mode()
def mixture_em_statistics(
    X, means, precisions_chol, log_weights, covariance_type, fixed, working_memory
):
    device = resolve_device()
    n_components, n_features = means.shape
    prepared = _PreparedGaussians(
        means, precisions_chol, log_weights, covariance_type, X.dtype, device
    )
    # Accumulate across chunks in float64 (the per-chunk GEMMs stay in X's dtype).
    acc = dict(dtype=torch.float64, device=device)
    nk = torch.zeros(n_components, **acc)
    sums = torch.zeros((n_components, n_features), **acc)
    if covariance_type == "full":
        sq_sums = torch.zeros((n_components, n_features, n_features), **acc)
    elif covariance_type == "diag":
        sq_sums = torch.zeros((n_components, n_features), **acc)
    else:
        sq_sums = torch.zeros(n_components, **acc)
    log_likelihood = torch.zeros((), **acc)
    for rows in _mixture_chunks(X, n_components, covariance_type, working_memory):
        Xc = _to_device(X[rows], device)
        wlp = prepared.weighted_log_prob(Xc)
        norm = torch.logsumexp(wlp, dim=1)
        resp = torch.exp(wlp - norm[:, None])
        fixed_c = _to_device(fixed[rows], device)
        idx = torch.nonzero(fixed_c >= 0).flatten()
        if idx.numel():
            comp = fixed_c[idx]
            norm[idx] = wlp[idx, comp]
            resp[idx] = 0
            resp[idx, comp] = 1
        log_likelihood += norm.sum(dtype=torch.float64)
        nk += resp.sum(dim=0, dtype=torch.float64)
        if covariance_type == "diag":
            moments = resp.T @ torch.cat([Xc, Xc * Xc], dim=1)
            sums += moments[:, :n_features]
            sq_sums += moments[:, n_features:]
        else:
            sums += resp.T @ Xc
            if covariance_type == "spherical":
                sq_sums += resp.T @ _row_norms_sq(Xc)
            else:
                sq_sums += torch.einsum("rk,rd,re->kde", resp, Xc, Xc)
    return (
        float(log_likelihood),
        _to_numpy(nk),
        _to_numpy(sums),
        _to_numpy(sq_sums),
    )


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
