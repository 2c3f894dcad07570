"""NumPy mixture-model kernels (SemiSupervisedGMM): E-step, EM statistics, prediction."""

import numpy as np

from .._dispatch import row_chunks
from ._common import row_norms_sq


def _mixture_chunks(X, n_components, covariance_type, working_memory):
    # One chunk holds X, X**2 (diag) and about four (rows x components) blocks; the
    # full-covariance loop adds one (rows x features) block per component.
    extra = X.shape[1] if covariance_type in ("diag", "full") else 0
    row_bytes = X.itemsize * (X.shape[1] + extra + 4 * n_components)
    # Past a few thousand rows a bigger chunk only costs memory, not GEMM speed.
    return row_chunks(X.shape[0], row_bytes, working_memory, max_rows=8192)


class _PreparedGaussians:
    """Per-call constants of a Gaussian mixture, so each row chunk costs one GEMM.

    ``weighted_log_prob(Xc)`` is ``log w_k + log N(x | mean_k, cov_k)`` for the rows of
    ``Xc``; spherical and diagonal covariances expand the quadratic form into
    ``x^2 . p_k - 2 x . (m_k p_k) + m_k^2 . p_k`` (one GEMM on ``[x, x^2]``), full
    covariances apply each component's Cholesky factor of the precision.
    """

    def __init__(self, constants, dtype):
        # The constants are float64 arrays computed once by the dispatcher
        # (skproto.backend._mixture.gaussian_constants); the loop runs in X's dtype.
        self.covariance_type = constants["covariance_type"]
        for name, value in constants.items():
            if name != "covariance_type":
                setattr(self, name, np.ascontiguousarray(value.astype(dtype)))

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


def log_responsibilities(X, constants, working_memory):
    """Log posterior of each component per row, and the row's log-likelihood."""
    prepared = _PreparedGaussians(constants, X.dtype)
    n_components = constants["const"].shape[0]
    log_resp = np.empty((X.shape[0], n_components), dtype=X.dtype)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    for rows in _mixture_chunks(X, n_components, prepared.covariance_type, working_memory):
        wlp = prepared.weighted_log_prob(X[rows], out=log_resp[rows])  # in place
        norm = _logsumexp_rows(wlp)
        wlp -= norm[:, None]
        log_norm[rows] = norm
    return log_resp, log_norm


def mixture_assign(X, constants, working_memory):
    """Argmax component and log-likelihood per row; one (rows x components) block at a time."""
    prepared = _PreparedGaussians(constants, X.dtype)
    n_components = constants["const"].shape[0]
    index = np.empty(X.shape[0], dtype=np.int64)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    chunks = _mixture_chunks(X, n_components, prepared.covariance_type, working_memory)
    max_rows = max((c.stop - c.start for c in chunks), default=0)
    # One buffer for every chunk's scores (and [x, x^2] for diag), as in the EM pass.
    wlp_buffer = np.empty((max_rows, n_components), dtype=X.dtype)
    feats_buffer = (
        np.empty((max_rows, 2 * X.shape[1]), dtype=X.dtype)
        if prepared.covariance_type == "diag"
        else None
    )
    for rows in chunks:
        Xc = X[rows]
        wlp = prepared.weighted_log_prob(Xc, prepared.features(Xc, feats_buffer), wlp_buffer)
        index[rows] = np.argmax(wlp, axis=1)
        log_norm[rows] = _logsumexp_rows(wlp)
    return index, log_norm


def mixture_em_statistics(X, constants, fixed, working_memory):
    """One pass of EM: E-step responsibilities folded into the M-step's sums."""
    prepared = _PreparedGaussians(constants, X.dtype)
    covariance_type = prepared.covariance_type
    n_components, n_features = constants["const"].shape[0], X.shape[1]
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

