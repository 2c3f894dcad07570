"""Torch mixture-model kernels: the numpy twin's maths, on the device.

The prediction and single-pass kernels (:func:`log_responsibilities`,
:func:`mixture_assign`, :func:`mixture_em_statistics`) move each row block of X to the
device once and its (small) results back. The loops (:func:`mixture_em`,
:func:`semi_supervised_kmeans`) move X, the fixed components and the starting model
to the device once, keep everything there through all iterations (E-step, M-step
with the Cholesky factors, convergence test) and copy the results back once at the
end. Between iterations only the scalars of the convergence test cross, in one read
per iteration (:func:`_read_scalars`). X then lives on the device for the whole run
(``n_samples x n_features``); the temporaries stay within ``working_memory``.
"""

import numpy as np
import torch

from .._dispatch import cache_block_rows, distance_chunks, row_chunks
from .._numerics import MIXTURE_NONFINITE_ERROR, MIXTURE_PRECISION_ERROR, euclidean_scale
from ._common import resolve_device, row_norms_sq, to_device, to_numpy

_LOG_2PI = float(np.log(2 * np.pi))
_EPS_COUNT = 10 * float(np.finfo(np.float64).eps)
# As the numpy twin's (a power of two: blocks start at the same rows as there).
MAX_BLOCK_ROWS = 8192
_F64 = torch.float64


def _read_scalars(tensor):
    """Python numbers of a few-element tensor: the one device sync of an iteration.

    Not an array transfer (those go through ``to_device`` / ``to_numpy``): the
    lower bound and the M-step's failure flags, read together.
    """
    return tensor.detach().cpu().tolist()


def _torch_dtype(X):
    return torch.float64 if X.dtype == np.float64 else torch.float32


# ---------------------------------------------------------------------------------
# Row blocks
# ---------------------------------------------------------------------------------


def _mixture_blocks(X, n_components, covariance_type, working_memory, device):
    """Row blocks of an E-step: cache-sized on a CPU, as large as allowed on a GPU."""
    n_rows, n_features = X.shape
    K, D, size = n_components, n_features, X.itemsize
    if covariance_type == "full":
        # The K * D projections (then the weighted rows of the moments), in place.
        cached = size * (K * D + 2 * K)
        budget = size * (D + 2 * K * D + 6 * K)
    else:
        # [x, x^2] (diag), then about six (rows x components) blocks: the
        # log-probabilities, their normalised and exponentiated copies (measured).
        extra = 3 * D if covariance_type == "diag" else 0
        cached = size * (2 * D + 2 * K) if covariance_type == "diag" else size * 2 * K
        budget = size * (D + extra + 6 * K)
    if device.type != "cpu":  # a GPU wants the largest chunk working_memory allows
        return row_chunks(n_rows, budget, working_memory)
    rows = min(MAX_BLOCK_ROWS, cache_block_rows(cached))
    return row_chunks(n_rows, budget, working_memory,
                      max_rows=1 << (int(rows).bit_length() - 1))


def _blocks_with_fixed(blocks, fixed):
    """Each block with whether it holds a fixed row (known on the host: no sync)."""
    if fixed is None:
        return [(rows, False) for rows in blocks]
    return [(rows, bool((fixed[rows] >= 0).any())) for rows in blocks]


# ---------------------------------------------------------------------------------
# The Gaussians of one call (float64 parameters on the device)
# ---------------------------------------------------------------------------------


def _upload_parameters(means, precisions_chol, log_weights, device):
    return tuple(
        to_device(np.asarray(a, dtype=np.float64), device)
        for a in (means, precisions_chol, log_weights)
    )


class _Gaussians:
    """Torch twin of the numpy ``_Gaussians``: the same constants, from device tensors."""

    def __init__(self, means, precisions_chol, log_weights, covariance_type, dtype):
        self.covariance_type = covariance_type
        K, D = means.shape
        self.n_components, self.n_features = K, D
        pc = precisions_chol
        # The means in X's dtype, as the public kernels take them (the loops pass the
        # float64 M-step means).
        means = means.to(dtype).to(_F64)
        if covariance_type == "full":
            log_det = torch.log(torch.diagonal(pc, dim1=1, dim2=2)).sum(dim=1)
            self.chol = pc.permute(1, 0, 2).reshape(D, K * D)
            self.shift = torch.einsum("kd,kde->ke", means, pc).reshape(-1)
        elif covariance_type == "diag":
            prec = pc**2
            log_det = torch.log(pc).sum(dim=1)
            self.W = torch.cat([means * prec, -0.5 * prec], dim=1).T
            self.half_quad = 0.5 * (means**2 * prec).sum(dim=1)
        else:
            prec = pc**2
            log_det = D * torch.log(pc)
            self.W = (means * prec[:, None]).T
            self.half_prec = 0.5 * prec
            self.half_quad = 0.5 * (means**2).sum(dim=1) * prec
        self.const = log_weights + log_det - 0.5 * D * _LOG_2PI
        for name in ("chol", "shift", "W", "half_prec", "half_quad", "const"):
            if hasattr(self, name):
                setattr(self, name, getattr(self, name).to(dtype).contiguous())

    def features(self, Xc):
        if self.covariance_type != "diag":
            return Xc
        return torch.cat([Xc, Xc * Xc], dim=1)

    def weighted_log_prob(self, Xc, F):
        if self.covariance_type == "full":
            Y = Xc @ self.chol
            Y -= self.shift
            Y.square_()
            out = Y.view(Xc.shape[0], self.n_components, self.n_features).sum(dim=2)
            del Y
            out *= -0.5
            out += self.const
            return out
        out = F @ self.W
        if self.covariance_type == "spherical":
            out.addr_(row_norms_sq(Xc), self.half_prec, alpha=-1)
        out -= self.half_quad
        out.clamp_(max=0)
        out += self.const
        return out


def _assign_block(g, Xc, fixed_c):
    """Most probable (or fixed) component and log-likelihood of a block's rows."""
    wlp = g.weighted_log_prob(Xc, g.features(Xc))
    # torch.argmax returns the first maximal index, as numpy's does.
    index = torch.argmax(wlp, dim=1)
    log_norm = torch.logsumexp(wlp, dim=1)
    if fixed_c is not None:
        is_fixed = fixed_c >= 0
        component = fixed_c.clamp(min=0)
        index = torch.where(is_fixed, component, index)
        log_norm = torch.where(is_fixed, wlp.gather(1, component[:, None])[:, 0], log_norm)
    return index, log_norm


def _zero_statistics(covariance_type, n_components, n_features, device):
    sq_shape = {
        "full": (n_components, n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]
    acc = dict(dtype=_F64, device=device)
    # Accumulated across blocks in float64 (each block's GEMMs stay in X's dtype).
    return [torch.zeros((), **acc), torch.zeros(n_components, **acc),
            torch.zeros((n_components, n_features), **acc), torch.zeros(sq_shape, **acc)]


def _add_block_statistics(stats, g, Xc, fixed_c):
    """E-step of one block, its responsibilities reduced into ``stats`` (float64)."""
    ll, nk, sums, sq_sums = stats
    n_rows, n_features = Xc.shape
    F = g.features(Xc)
    wlp = g.weighted_log_prob(Xc, F)
    norm = torch.logsumexp(wlp, dim=1)
    resp = torch.exp(wlp - norm[:, None])
    if fixed_c is not None:
        is_fixed = fixed_c >= 0
        component = fixed_c.clamp(min=0)
        norm = torch.where(is_fixed, wlp.gather(1, component[:, None])[:, 0], norm)
        # scatter_, not one_hot: one_hot checks its values, a device sync on a GPU.
        one_hot = torch.zeros_like(resp).scatter_(1, component[:, None], 1.0)
        resp = torch.where(is_fixed[:, None], one_hot, resp)
    ll += norm.sum(dtype=_F64)
    nk += resp.sum(dim=0, dtype=_F64)
    if g.covariance_type == "diag":
        moments = resp.T @ F
        sums += moments[:, :n_features]
        sq_sums += moments[:, n_features:]
        return
    sums += resp.T @ Xc
    if g.covariance_type == "spherical":
        sq_sums += resp.T @ row_norms_sq(Xc)
        return
    # sum_i r_ik x_i x_i^T for all k in one GEMM, as in the numpy twin.
    K = g.n_components
    Z = (resp[:, :, None] * Xc[:, None, :]).reshape(n_rows, K * n_features)
    sq_sums += (Z.T @ Xc).view(K, n_features, n_features)


# ---------------------------------------------------------------------------------
# M-step (float64, on the device)
# ---------------------------------------------------------------------------------


def _centred_scatters(nk, sums, sq_sums, covariance_type):
    nk = nk + _EPS_COUNT
    if covariance_type == "full":
        return sq_sums - torch.einsum("kd,ke->kde", sums, sums) / nk[:, None, None]
    if covariance_type == "diag":
        return sq_sums - sums**2 / nk[:, None]
    return sq_sums - (sums**2).sum(dim=1) / nk


def _estimate_gaussian_parameters(nk, sums, scatters, reg_covar, covariance_type):
    n_features = sums.shape[1]
    nk = nk + _EPS_COUNT
    means = sums / nk[:, None]
    if covariance_type == "full":
        covariances = scatters / nk[:, None, None]
        covariances = 0.5 * (covariances + covariances.transpose(1, 2))
        covariances += reg_covar * torch.eye(n_features, dtype=_F64, device=sums.device)
    elif covariance_type == "diag":
        covariances = torch.clamp(scatters / nk[:, None], min=0) + reg_covar
    else:
        covariances = torch.clamp(scatters / nk / n_features, min=0) + reg_covar
    return nk, means, covariances


def _precision_cholesky(covariances, covariance_type):
    """Cholesky factors of the precisions, and (not read here: no sync) two failure
    flags, non-finite covariances and an ill-defined one."""
    nonfinite = ~torch.isfinite(covariances).all()
    if covariance_type == "full":
        n_components, n_features, _ = covariances.shape
        cov_chol, info = torch.linalg.cholesky_ex(covariances)
        failed = (info != 0).any()
        eye = torch.eye(n_features, dtype=_F64, device=covariances.device)
        precisions_chol = torch.linalg.solve_triangular(
            cov_chol, eye.expand(n_components, n_features, n_features), upper=False
        ).transpose(1, 2)
        return precisions_chol, nonfinite, failed
    failed = (covariances <= 0).any()
    return 1.0 / torch.sqrt(covariances), nonfinite, failed


def _raise_for(nonfinite, failed):
    if nonfinite:
        raise ValueError(MIXTURE_NONFINITE_ERROR)
    if failed:
        raise ValueError(MIXTURE_PRECISION_ERROR)


def _m_step(nk, sums, second_moments, covariance_type, centred, reg_covar, n_samples):
    scatters = second_moments if centred else _centred_scatters(
        nk, sums, second_moments, covariance_type
    )
    nk_eps, means, covariances = _estimate_gaussian_parameters(
        nk, sums, scatters, reg_covar, covariance_type
    )
    return nk_eps / n_samples, means, covariances


# ---------------------------------------------------------------------------------
# Kernels: numpy in, numpy out, one block of X at a time
# ---------------------------------------------------------------------------------


def _overflowed_rows(X, log_norm):
    """As the numpy twin's: float32 rows whose log-densities overflowed, else None."""
    if X.dtype != np.float32:
        return None
    bad = ~np.isfinite(log_norm)
    return bad if bad.any() else None


def _device_gaussians(X, means, precisions_chol, log_weights, covariance_type):
    """The configured device and the mixture's parameters on it, in X's dtype."""
    device = resolve_device()
    g = _Gaussians(*_upload_parameters(means, precisions_chol, log_weights, device),
                   covariance_type, _torch_dtype(X))
    return device, g


@torch.inference_mode()
def log_responsibilities(X, means, precisions_chol, log_weights, covariance_type,
                         working_memory):
    device, g = _device_gaussians(X, means, precisions_chol, log_weights, covariance_type)
    log_resp = np.empty((X.shape[0], g.n_components), dtype=X.dtype)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _mixture_blocks(X, g.n_components, covariance_type, working_memory, device):
        Xc = to_device(X[rows], device)
        wlp = g.weighted_log_prob(Xc, g.features(Xc))
        norm = torch.logsumexp(wlp, dim=1)
        log_resp[rows] = to_numpy(wlp - norm[:, None])
        log_norm[rows] = to_numpy(norm)
    bad = _overflowed_rows(X, log_norm)
    if bad is not None:
        log_resp[bad], log_norm[bad] = log_responsibilities(
            X[bad].astype(np.float64), means, precisions_chol, log_weights,
            covariance_type, working_memory,
        )
    return log_resp, log_norm


@torch.inference_mode()
def mixture_assign(X, means, precisions_chol, log_weights, covariance_type, fixed,
                   working_memory):
    device, g = _device_gaussians(X, means, precisions_chol, log_weights, covariance_type)
    index = np.empty(X.shape[0], dtype=np.int64)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    blocks = _mixture_blocks(X, g.n_components, covariance_type, working_memory, device)
    fixed_t = None if fixed is None else to_device(fixed, device)
    for rows, has_fixed in _blocks_with_fixed(blocks, fixed):
        idx, norm = _assign_block(
            g, to_device(X[rows], device), fixed_t[rows] if has_fixed else None
        )
        index[rows] = to_numpy(idx)
        log_norm[rows] = to_numpy(norm)
    bad = _overflowed_rows(X, log_norm)
    if bad is not None:
        index[bad], log_norm[bad] = mixture_assign(
            X[bad].astype(np.float64), means, precisions_chol, log_weights,
            covariance_type, None if fixed is None else fixed[bad], working_memory,
        )
    return index, log_norm


@torch.inference_mode()
def mixture_em_statistics(X, means, precisions_chol, log_weights, covariance_type, fixed,
                          working_memory):
    device, g = _device_gaussians(X, means, precisions_chol, log_weights, covariance_type)
    stats = _zero_statistics(covariance_type, g.n_components, X.shape[1], device)
    blocks = _mixture_blocks(X, g.n_components, covariance_type, working_memory, device)
    fixed_t = to_device(fixed, device)
    for rows, has_fixed in _blocks_with_fixed(blocks, fixed):
        _add_block_statistics(
            stats, g, to_device(X[rows], device), fixed_t[rows] if has_fixed else None
        )
    return (_read_scalars(stats[0]),) + tuple(to_numpy(s) for s in stats[1:])


@torch.inference_mode()
def mixture_m_step(counts, sums, second_moments, covariance_type, centred, reg_covar,
                   n_samples, empty_means, empty_covariance):
    device = resolve_device()
    nk, sums_t, moments_t = (to_device(a, device) for a in (counts, sums, second_moments))
    weights, means, covariances = _m_step(
        nk, sums_t, moments_t, covariance_type, centred, reg_covar, n_samples
    )
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        empty_t = to_device(empty, device)
        if empty_means is not None:
            means[empty_t] = to_device(empty_means[empty], device)
        if empty_covariance is not None:
            covariances[empty_t] = to_device(empty_covariance, device)
    precisions_chol, nonfinite, failed = _precision_cholesky(covariances, covariance_type)
    _raise_for(*_read_scalars(torch.stack([nonfinite, failed])))
    return tuple(to_numpy(a) for a in (weights, means, covariances, precisions_chol))


# ---------------------------------------------------------------------------------
# The loops: X and the model stay on the device
# ---------------------------------------------------------------------------------


def _final_assignment(g64, g, X_t, fixed_t, blocks):
    """Labels and per-row objective of a run's last parameters, on the device."""
    n_rows = X_t.shape[0]
    labels = torch.empty(n_rows, dtype=torch.int64, device=X_t.device)
    per_sample = torch.empty(n_rows, dtype=X_t.dtype, device=X_t.device)
    for rows, has_fixed in blocks:
        labels[rows], per_sample[rows] = _assign_block(
            g, X_t[rows], fixed_t[rows] if has_fixed else None
        )
    if X_t.dtype == torch.float32:
        # As the numpy twin: rows whose float32 log-densities overflow, in float64.
        bad = ~torch.isfinite(per_sample)
        if _read_scalars(bad.any()):
            labels[bad], lp = _assign_block(g64(), X_t[bad].to(_F64), fixed_t[bad])
            per_sample[bad] = lp.to(X_t.dtype)
    return labels, per_sample


@torch.inference_mode()
def mixture_em(X, means, precisions_chol, log_weights, covariance_type, fixed, reg_covar,
               max_iter, tol, working_memory):
    device = resolve_device()
    dtype = _torch_dtype(X)
    n_samples = X.shape[0]
    # The only host -> device copies of the run.
    X_t = to_device(X, device)
    fixed_t = to_device(fixed, device)
    means_t, pc_t, log_w_t = _upload_parameters(means, precisions_chol, log_weights, device)
    blocks = _blocks_with_fixed(
        _mixture_blocks(X, means.shape[0], covariance_type, working_memory, device), fixed
    )
    lower_bounds, previous, converged, n_iter = [], -np.inf, False, 0
    weights_t = cov_t = None
    for n_iter in range(1, max_iter + 1):
        g = _Gaussians(means_t, pc_t, log_w_t, covariance_type, dtype)
        stats = _zero_statistics(covariance_type, means.shape[0], X.shape[1], device)
        for rows, has_fixed in blocks:
            _add_block_statistics(stats, g, X_t[rows], fixed_t[rows] if has_fixed else None)
        weights_t, means_t, cov_t = _m_step(
            *stats[1:], covariance_type, False, reg_covar, n_samples
        )
        pc_t, nonfinite, failed = _precision_cholesky(cov_t, covariance_type)
        log_w_t = torch.log(weights_t)
        lower_bound, nonfinite, failed = _read_scalars(
            torch.stack([stats[0] / n_samples, nonfinite.to(_F64), failed.to(_F64)])
        )
        _raise_for(nonfinite, failed)
        lower_bounds.append(lower_bound)
        if abs(lower_bound - previous) < tol:
            converged = True
            break
        previous = lower_bound
    g = _Gaussians(means_t, pc_t, log_w_t, covariance_type, dtype)
    labels, per_sample = _final_assignment(
        lambda: _Gaussians(means_t, pc_t, log_w_t, covariance_type, _F64),
        g, X_t, fixed_t, blocks,
    )
    lower_bound = _read_scalars(per_sample.to(_F64).mean())
    lower_bounds.append(lower_bound)
    # The only device -> host copies of the run.
    weights, means, covariances, precisions_chol, labels = (
        to_numpy(a) for a in (weights_t, means_t, cov_t, pc_t, labels)
    )
    return dict(
        weights=weights, means=means, covariances=covariances,
        precisions_chol=precisions_chol, labels=labels, lower_bound=lower_bound,
        lower_bounds=lower_bounds, n_iter=n_iter, converged=converged,
    )


@torch.inference_mode()
def semi_supervised_kmeans(X, means, fixed, max_iter, working_memory):
    device = resolve_device()
    n_components = means.shape[0]
    # Squared distances of extreme data over- or underflow: divide X and the centres
    # once by a power of two (exact; the numpy twin's assign does it per call).
    scale = euclidean_scale(np.asarray(means).astype(X.dtype))
    X_t = to_device(X, device)
    centres = to_device(np.asarray(means, dtype=np.float64), device)
    if scale is not None:
        X_t, centres = X_t / float(scale), centres / float(scale)
    fixed_t = to_device(fixed, device)
    is_fixed = fixed_t >= 0
    ones = torch.ones(X.shape[0], dtype=torch.int64, device=device)
    blocks = distance_chunks(X.shape[0], n_components, X.shape[1], X.itemsize,
                             working_memory, cache_blocked=device.type == "cpu")

    def nearest(centres):
        P = centres.to(X_t.dtype)
        Pt, p_sq = (2 * P).T.contiguous(), row_norms_sq(P)
        labels = torch.empty(X.shape[0], dtype=torch.int64, device=device)
        for rows in blocks:
            S = X_t[rows] @ Pt
            S -= p_sq
            labels[rows] = torch.argmax(S, dim=1)
        return torch.where(is_fixed, fixed_t, labels)

    labels, converged, n_iter = None, False, 0
    for n_iter in range(1, max_iter + 1):
        new_labels = nearest(centres)
        if labels is not None and not _read_scalars((new_labels != labels).any()):
            converged = True
            break
        labels = new_labels
        # Sums in X's dtype, as the numpy twin's group_sum.
        sums = torch.zeros((n_components, X.shape[1]), dtype=X_t.dtype, device=device)
        sums.index_add_(0, labels, X_t)
        # index_add_, not bincount: bincount sizes its output from the data (a sync).
        counts = torch.zeros(n_components, dtype=torch.int64, device=device)
        counts.index_add_(0, labels, ones)
        # An empty component keeps its centre.
        centres = torch.where(
            counts[:, None] > 0, sums.to(_F64) / counts.clamp(min=1)[:, None], centres
        )
    if not converged:
        labels = nearest(centres)
    inertia = torch.zeros((), dtype=_F64, device=device)
    for rows in row_chunks(X.shape[0], 3 * 8 * X.shape[1], working_memory,
                           max_rows=MAX_BLOCK_ROWS):
        # A copy even for float64 X: on a CPU, X_t shares the caller's memory.
        diff = X_t[rows].to(_F64, copy=True)
        diff -= centres[labels[rows]]
        inertia += diff.square_().sum()
    inertia = _read_scalars(inertia)
    if scale is not None:
        centres = centres * float(scale)
        inertia = inertia * float(scale) ** 2
    return to_numpy(labels), to_numpy(centres), inertia, n_iter, converged
