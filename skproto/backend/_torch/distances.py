"""Torch distance kernels, same signatures and results as the numpy ones."""

import numpy as np
import torch

from .._dispatch import cache_block_rows, row_chunks
from .._dispatch import distance_chunks as _chunks
from .._numerics import euclidean_scale
from ._common import (
    l2_normalize,
    normalize_rows,
    resolve_device,
    row_norms_sq,
    row_scale_and_norm,
    to_device,
    to_numpy,
)

__all__ = [
    "assign",
    "kth_similarity",
    "l2_normalize",
    "mahalanobis_sq_distances",
    "nearest_mahalanobis",
    "similarity",
    "topk",
    "whitened_sq_distance",
]


class _PreparedPrototypes:
    """Torch twin of ``_numpy._PreparedPrototypes``."""

    def __init__(self, P, metric, device):
        self.metric = metric
        self.scale = euclidean_scale(P) if metric == "euclidean" else None
        if self.scale is not None:
            P = P / self.scale
        P = to_device(P, device)
        if metric == "cosine":
            self.Pt = normalize_rows(P).T.contiguous()
        elif metric == "euclidean":
            self.Pt = (2 * P).T.contiguous()
            self.p_sq = row_norms_sq(P)
        else:
            self.Pt = P.T.contiguous()

    def rows(self, Xc):
        """The chunk as ``raw_scores`` and ``finish`` take it (rescaled if needed).

        Cosine keeps the norms of the (rescaled) rows for :meth:`finish`.
        """
        self.norms = None
        if self.metric == "cosine":
            scale, self.norms = row_scale_and_norm(Xc)
            return Xc if bool(torch.all(scale == 1)) else Xc / scale[:, None]
        return Xc if self.scale is None else Xc / float(self.scale)

    def raw_scores(self, Xc):
        S = Xc @ self.Pt
        if self.metric == "euclidean":
            S -= self.p_sq
        return S

    def finish(self, S, Xc):
        shape = (-1,) + (1,) * (S.ndim - 1)
        if self.metric == "cosine":
            norms = torch.where(self.norms > 0, self.norms, torch.ones_like(self.norms))
            S /= norms.reshape(shape)
        elif self.metric == "euclidean":
            S -= row_norms_sq(Xc).reshape(shape)
            S.clamp_(max=0)
            if self.scale is not None:
                S *= float(self.scale)
                S *= float(self.scale)
        return S


def _cache_blocked(device):
    # On a CPU, cache-sized blocks keep the reductions in cache; a GPU wants each
    # chunk as large as working_memory allows (fewer launches and transfers).
    return device.type == "cpu"


def _chunked(X, P, working_memory, device, col_bytes=None):
    # A row of X on the device and its rescaled copy, then the score block.
    return _chunks(X.shape[0], P.shape[0], 2 * X.shape[1], X.itemsize, working_memory,
                   col_bytes, cache_blocked=_cache_blocked(device))


@torch.inference_mode()
def similarity(X, P, metric, working_memory):
    device = resolve_device()
    prepared = _PreparedPrototypes(P, metric, device)
    out = np.empty((X.shape[0], P.shape[0]), dtype=X.dtype)
    for rows in _chunked(X, P, working_memory, device):
        Xc = prepared.rows(to_device(X[rows], device))
        out[rows] = to_numpy(prepared.finish(prepared.raw_scores(Xc), Xc))
    return out


@torch.inference_mode()
def assign(X, P, metric, working_memory, return_score=True):
    device = resolve_device()
    prepared = _PreparedPrototypes(P, metric, device)
    best_index = np.empty(X.shape[0], dtype=np.intp)
    best_score = np.empty(X.shape[0], dtype=X.dtype) if return_score else None
    for rows in _chunked(X, P, working_memory, device):
        Xc = prepared.rows(to_device(X[rows], device))
        S = prepared.raw_scores(Xc)
        # torch.max returns the first maximal index, as np.argmax does.
        score, idx = torch.max(S, dim=1)
        best_index[rows] = to_numpy(idx)
        if return_score:
            best_score[rows] = to_numpy(prepared.finish(score[:, None], Xc)[:, 0])
    return best_index, best_score


@torch.inference_mode()
def topk(X, P, k, metric, working_memory):
    device = resolve_device()
    prepared = _PreparedPrototypes(P, metric, device)
    indices = np.empty((X.shape[0], k), dtype=np.intp)
    scores = np.empty((X.shape[0], k), dtype=X.dtype)
    for rows in _chunked(X, P, working_memory, device):
        Xc = prepared.rows(to_device(X[rows], device))
        S = prepared.raw_scores(Xc)
        # torch.topk is much faster than a full sort on large K; exact ties between
        # scores may come out in another order than the numpy kernel's.
        top, idx = torch.topk(S, k, dim=1, largest=True, sorted=True)
        indices[rows] = to_numpy(idx)
        scores[rows] = to_numpy(prepared.finish(top, Xc))
    return indices, scores


@torch.inference_mode()
def kth_similarity(X, P, k, metric, working_memory):
    device = resolve_device()
    prepared = _PreparedPrototypes(P, metric, device)
    n_prototypes = P.shape[0]
    out = np.empty(X.shape[0], dtype=X.dtype)
    # torch.kthvalue works on a copy of the scores (measured: scores, their copy and
    # int64 indices per column).
    col_bytes = 3 * X.itemsize + 8
    for rows in _chunked(X, P, working_memory, device, col_bytes):
        Xc = prepared.rows(to_device(X[rows], device))
        S = prepared.raw_scores(Xc)
        # kthvalue counts from the smallest: the k-th largest is the (K - k + 1)-th smallest.
        value, _ = torch.kthvalue(S, n_prototypes - k + 1, dim=1)
        out[rows] = to_numpy(prepared.finish(value, Xc))
    return out



@torch.inference_mode()
def whitened_sq_distance(X, center, W, working_memory):
    device = resolve_device()
    center_t = to_device(center, device)
    W_t = to_device(W, device)
    out = np.empty(X.shape[0], dtype=X.dtype)
    # The row, its normalised and centred copies, then the projection.
    row_bytes = X.itemsize * (3 * X.shape[1] + 2 * W.shape[1])
    max_rows = (cache_block_rows(X.itemsize * (2 * X.shape[1] + W.shape[1]))
                if _cache_blocked(device) else None)
    for rows in row_chunks(X.shape[0], row_bytes, working_memory, max_rows=max_rows):
        Xc = to_device(X[rows], device)
        Z = normalize_rows(Xc) - center_t
        Z = Z @ W_t
        out[rows] = to_numpy(row_norms_sq(Z))
    return out



def _mahalanobis_block(Xc, means_t, W_t, means_w):
    """Torch twin of the numpy ``_mahalanobis_block``."""
    if W_t.ndim == 2:
        Z = Xc @ W_t
        D = Z @ (-2 * means_w.T)
        D += row_norms_sq(means_w)
        D += row_norms_sq(Z)[:, None]
        return D.clamp_(min=0)
    D = torch.empty((Xc.shape[0], means_t.shape[0]), dtype=Xc.dtype, device=Xc.device)
    for k in range(means_t.shape[0]):
        D[:, k] = row_norms_sq((Xc - means_t[k]) @ W_t[k])
    return D


def _mahalanobis_setup(X, means, W, working_memory):
    device = resolve_device()
    means_t, W_t = to_device(means, device), to_device(W, device)
    means_w = means_t @ W_t if W.ndim == 2 else None
    # As the numpy kernel: a row, its whitened copy, two blocks of distances; cache-sized
    # on a CPU.
    n_means, n_whitened = means.shape[0], W.shape[-1]
    row_bytes = X.itemsize * (X.shape[1] + n_whitened + 2 * n_means)
    max_rows = (cache_block_rows(X.itemsize * (n_whitened + n_means))
                if _cache_blocked(device) else None)
    chunks = row_chunks(X.shape[0], row_bytes, working_memory, max_rows=max_rows)
    return device, means_t, W_t, means_w, chunks


@torch.inference_mode()
def mahalanobis_sq_distances(X, means, W, working_memory):
    device, means_t, W_t, means_w, chunks = _mahalanobis_setup(X, means, W, working_memory)
    out = np.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    for rows in chunks:
        out[rows] = to_numpy(
            _mahalanobis_block(to_device(X[rows], device), means_t, W_t, means_w)
        )
    return out


@torch.inference_mode()
def nearest_mahalanobis(X, means, W, working_memory):
    device, means_t, W_t, means_w, chunks = _mahalanobis_setup(X, means, W, working_memory)
    index = np.empty(X.shape[0], dtype=np.intp)
    best = np.empty(X.shape[0], dtype=X.dtype)
    for rows in chunks:
        D = _mahalanobis_block(to_device(X[rows], device), means_t, W_t, means_w)
        # torch.min returns the first minimal index, as np.argmin does.
        value, idx = torch.min(D, dim=1)
        index[rows] = to_numpy(idx)
        best[rows] = to_numpy(value)
    return index, best
