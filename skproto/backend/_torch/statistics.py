"""Torch statistics kernels: per-group sums, counts and centred second moments."""

import numpy as np
import torch

from .._dispatch import distance_chunks as _chunks
from .._dispatch import row_chunks
from ._common import resolve_device, to_device, to_numpy


@torch.inference_mode()
def group_sum(X, codes, n_groups, squares, working_memory):
    device = resolve_device()
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    sums = torch.zeros((n_groups, X.shape[1]), dtype=dtype, device=device)
    sq_sums = torch.zeros_like(sums) if squares else None
    for rows in _chunks(X.shape[0], 0, X.shape[1], X.itemsize, working_memory):
        Xc = to_device(X[rows], device)
        codes_c = to_device(codes[rows], device)
        sums.index_add_(0, codes_c, Xc)
        if squares:
            sq_sums.index_add_(0, codes_c, Xc * Xc)
    counts = np.bincount(codes, minlength=n_groups).astype(np.int64)
    if squares:
        return to_numpy(sums), counts, to_numpy(sq_sums)
    return to_numpy(sums), counts



@torch.inference_mode()
def class_moments(X, codes, n_groups, weights, moments, working_memory):
    """Float64 per-group weights, sums and centred second moments (numpy twin's maths)."""
    device = resolve_device()
    n, n_features = X.shape
    totals = np.bincount(codes, weights=weights, minlength=n_groups).astype(np.float64)
    acc = dict(dtype=torch.float64, device=device)
    # Float64 rows: the upcast chunk, the gathered means, the centred and weighted
    # copies and the squares (measured: about six such rows).
    chunks = row_chunks(n, 6 * 8 * n_features, working_memory, max_rows=8192)
    sums = torch.zeros((n_groups, n_features), **acc)
    w_all = None if weights is None else to_device(weights.astype(np.float64), device)
    codes_all = to_device(codes, device)
    for rows in chunks:
        Xc = to_device(X[rows], device).to(torch.float64)
        if w_all is not None:
            Xc = Xc * w_all[rows, None]
        sums.index_add_(0, codes_all[rows], Xc)
    if moments is None:
        return totals, to_numpy(sums), None
    totals_t = to_device(totals, device)
    means = torch.where(
        totals_t[:, None] > 0, sums / torch.where(totals_t > 0, totals_t, 1)[:, None], 0
    )
    if moments == "diag":
        scatter = torch.zeros((n_groups, n_features), **acc)
    else:
        scatter = torch.zeros((n_groups, n_features, n_features), **acc)
    for rows in chunks:
        codes_c = codes_all[rows]
        Z = to_device(X[rows], device).to(torch.float64) - means[codes_c]
        Zw = Z if w_all is None else Z * w_all[rows, None]
        if moments == "diag":
            scatter.index_add_(0, codes_c, Zw * Z)
        else:
            # (rows, D, D) outer products would not fit: one GEMM per group present.
            for g in torch.unique(codes_c).tolist():
                mask = codes_c == g
                scatter[g] += Zw[mask].T @ Z[mask]
    return totals, to_numpy(sums), to_numpy(scatter)


# ------------------------------------------------------------------ random features


def _relu_projection(Xc, W_t):
    return torch.clamp_min(Xc @ W_t, 0)


@torch.inference_mode()
def random_features(X, W, working_memory):
    """``max(X @ W, 0)`` on the device, row chunk by row chunk (numpy twin's maths)."""
    device = resolve_device()
    W_t = to_device(W, device)
    out = np.empty((X.shape[0], W.shape[1]), dtype=X.dtype)
    for rows in row_chunks(X.shape[0], X.itemsize * (X.shape[1] + W.shape[1]),
                           working_memory, max_rows=8192):
        out[rows] = to_numpy(_relu_projection(to_device(X[rows], device), W_t))
    return out


@torch.inference_mode()
def random_feature_gram(X, W, codes, n_groups, working_memory):
    """Float64 ``G = H^T H`` and ``Q = H^T Y`` accumulated on the device."""
    device = resolve_device()
    n_components = W.shape[1]
    W_t = to_device(W, device)
    codes_all = to_device(codes, device)
    gram = torch.zeros((n_components, n_components), dtype=torch.float64, device=device)
    targets_t = torch.zeros((n_groups, n_components), dtype=torch.float64, device=device)
    row_bytes = n_components * (X.itemsize + 8)
    for rows in row_chunks(X.shape[0], row_bytes, working_memory, max_rows=4096):
        H = _relu_projection(to_device(X[rows], device), W_t).to(torch.float64)
        gram += H.T @ H
        targets_t.index_add_(0, codes_all[rows], H)
    return to_numpy(gram), to_numpy(targets_t.T.contiguous())


@torch.inference_mode()
def random_feature_scores(X, W, coef, working_memory):
    """``max(X @ W, 0) @ coef.T`` on the device, chunked."""
    device = resolve_device()
    W_t = to_device(W, device)
    coef_t = to_device(np.ascontiguousarray(coef.T), device)
    out = np.empty((X.shape[0], coef.shape[0]), dtype=X.dtype)
    row_bytes = X.itemsize * (W.shape[1] + coef.shape[0])
    for rows in row_chunks(X.shape[0], row_bytes, working_memory, max_rows=8192):
        out[rows] = to_numpy(_relu_projection(to_device(X[rows], device), W_t) @ coef_t)
    return out
