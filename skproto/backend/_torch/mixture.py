"""Torch mixture-model kernels (SemiSupervisedGMM): E-step, EM statistics, prediction."""

import numpy as np
import torch

from .._dispatch import row_chunks
from ._common import resolve_device, row_norms_sq, to_device, to_numpy


class _PreparedGaussians:
    """Torch twin of the numpy ``_PreparedGaussians``: the same constants, on the device."""

    def __init__(self, constants, dtype, device):
        # Float64 constants from skproto.backend._mixture.gaussian_constants.
        self.covariance_type = constants["covariance_type"]
        for name, value in constants.items():
            if name != "covariance_type":
                setattr(self, name, to_device(value.astype(dtype), device))

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
            out -= torch.outer(row_norms_sq(Xc), self.prec)
        out -= self.quad_const
        out.clamp_(max=0)
        out *= 0.5
        out += self.const
        return out


def _mixture_chunks(X, n_components, covariance_type, working_memory):
    if covariance_type == "full":
        # The batched GEMM holds (K, rows, D), then the shifted copy and the
        # products of the moments: about three such blocks (measured).
        row_bytes = X.itemsize * X.shape[1] * (3 * n_components + 2)
        return row_chunks(X.shape[0], row_bytes, working_memory)
    # X, X**2 and [X, X**2] (diag), then about six (rows x components) blocks: the
    # log-probabilities, their normalised and exponentiated copies (measured).
    extra = 3 * X.shape[1] if covariance_type == "diag" else 0
    row_bytes = X.itemsize * (X.shape[1] + extra + 6 * n_components)
    return row_chunks(X.shape[0], row_bytes, working_memory, max_rows=8192)


@torch.inference_mode()
def log_responsibilities(X, constants, working_memory):
    device = resolve_device()
    prepared = _PreparedGaussians(constants, X.dtype, device)
    n_components = constants["const"].shape[0]
    log_resp = np.empty((X.shape[0], n_components), dtype=X.dtype)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _mixture_chunks(X, n_components, prepared.covariance_type, working_memory):
        wlp = prepared.weighted_log_prob(to_device(X[rows], device))
        norm = torch.logsumexp(wlp, dim=1)
        log_resp[rows] = to_numpy(wlp - norm[:, None])
        log_norm[rows] = to_numpy(norm)
    return log_resp, log_norm


@torch.inference_mode()
def mixture_assign(X, constants, working_memory):
    device = resolve_device()
    prepared = _PreparedGaussians(constants, X.dtype, device)
    n_components = constants["const"].shape[0]
    index = np.empty(X.shape[0], dtype=np.int64)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _mixture_chunks(X, n_components, prepared.covariance_type, working_memory):
        wlp = prepared.weighted_log_prob(to_device(X[rows], device))
        # torch.argmax returns the first maximal index, as numpy's does.
        index[rows] = to_numpy(torch.argmax(wlp, dim=1))
        log_norm[rows] = to_numpy(torch.logsumexp(wlp, dim=1))
    return index, log_norm


@torch.inference_mode()
def mixture_em_statistics(X, constants, fixed, working_memory):
    device = resolve_device()
    prepared = _PreparedGaussians(constants, X.dtype, device)
    covariance_type = prepared.covariance_type
    n_components, n_features = constants["const"].shape[0], X.shape[1]
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
        Xc = to_device(X[rows], device)
        wlp = prepared.weighted_log_prob(Xc)
        norm = torch.logsumexp(wlp, dim=1)
        resp = torch.exp(wlp - norm[:, None])
        fixed_c = to_device(fixed[rows], device)
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
                sq_sums += resp.T @ row_norms_sq(Xc)
            else:
                sq_sums += torch.einsum("rk,rd,re->kde", resp, Xc, Xc)
    return (
        float(log_likelihood),
        to_numpy(nk),
        to_numpy(sums),
        to_numpy(sq_sums),
    )

