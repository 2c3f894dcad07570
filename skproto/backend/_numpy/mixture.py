"""NumPy mixture-model kernels (SemiSupervisedGMM): E-step, M-step, EM, k-means, prediction.

The E-step kernels work in cache-sized row blocks (:func:`skproto.backend._dispatch.
cache_block_rows`, a power of two): a block's GEMMs write a score block of a few MiB
that the passes after them (the clamp, the log-sum-exp, the normalisation) read while
it is still in cache, instead of streaming hundreds of MiB from main memory once per
pass. The per-component constants are folded into the GEMMs: the factor 1/2 and the
means into the weights, the offsets into a second GEMM on ``[x^2, 1]`` (or
``[||x||^2, 1]``), the shifts of full covariances into one GEMM on ``[x, 1]``; what is
left per block is one addition, one clamp and the log-sum-exp. Blocks run in worker
threads, BLAS on one thread each (:func:`_run_blocks`). The EM and k-means loops
(:func:`mixture_em`, :func:`semi_supervised_kmeans`) are the estimator's former host
loops, moved here; their torch twins run the same maths on the device.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import linalg
from threadpoolctl import ThreadpoolController

from .._dispatch import cache_block_rows, row_chunks
from .._numerics import MIXTURE_NONFINITE_ERROR, MIXTURE_PRECISION_ERROR
from ._common import row_norms_sq
from .distances import assign as _assign
from .statistics import group_sum as _group_sum

_LOG_2PI = float(np.log(2 * np.pi))
# An empty component stays finite: its count is never exactly 0 in a division.
_EPS_COUNT = 10 * np.finfo(np.float64).eps
# Past this many rows a block only costs memory. A power of two: blocks then start at
# the same rows whatever multiple of it the data is cut into (Dask blocks of 8192 rows
# round their float32 partial sums as the in-memory fit does).
MAX_BLOCK_ROWS = 8192


# ---------------------------------------------------------------------------------
# Row blocks
# ---------------------------------------------------------------------------------


def _aux_columns(covariance_type, n_components, n_features):
    """Columns of the block's helper copy: ``[x^2, 1]`` (diag), ``[||x||^2, 1]``
    (spherical) or ``[x, 1]`` (full), and of its scratch block besides the scores
    (the log-sum-exp's; for full the ``K * D`` projections ``[x, 1] @ [L_k; -m_k L_k]``)."""
    return {
        "diag": (n_features + 1, n_components),
        "spherical": (2, n_components),
        "full": (n_features + 1, n_components * n_features),
    }[covariance_type]


def _gemm_add(out, A, B, scratch):
    """``out += A @ B``, the product written to ``scratch`` first.

    Not BLAS's own ``beta = 1`` through scipy's wrappers: those hold the GIL, which
    serialises the worker threads of :func:`_run_blocks` (measured: no speed-up with
    two threads, against 1.9x for numpy's matmul).
    """
    np.matmul(A, B, out=scratch)
    out += scratch


def block_rows(row_bytes, budget_row_bytes, n_rows, working_memory):
    """Row slices: cache-sized (a power of two) and within ``working_memory``.

    ``row_bytes`` are what a block reads more than once, which should stay in cache;
    ``budget_row_bytes`` all the temporaries of a row, which ``working_memory`` bounds.
    """
    rows = min(MAX_BLOCK_ROWS, cache_block_rows(row_bytes))
    rows = 1 << (int(rows).bit_length() - 1)  # the power of two at or below
    return row_chunks(n_rows, budget_row_bytes, working_memory, max_rows=rows)


def _mixture_blocks(X, n_components, covariance_type, working_memory, n_workers=1):
    """Blocks of an E-step kernel and the size of the largest one.

    ``n_workers`` blocks are in flight at once, each with its own buffers: together
    they stay within ``working_memory``.
    """
    n_rows, n_features = X.shape
    aux, scratch = _aux_columns(covariance_type, n_components, n_features)
    # What a block reads more than once: its rows of X (the helper pass, the score
    # GEMM, the moments GEMM), the helper copy, the scores and the scratch block.
    cached = X.itemsize * (n_features + aux + scratch + n_components)
    # The block of X itself (a copy when X is not contiguous), the helper copy, the
    # scratch block and up to three (rows x components) blocks.
    budget = X.itemsize * (n_features + aux + scratch + 3 * n_components) * n_workers
    blocks = block_rows(cached, budget, n_rows, working_memory)
    return blocks, max((b.stop - b.start for b in blocks), default=0)


# ---------------------------------------------------------------------------------
# Threads: blocks in parallel, BLAS on one thread each
# ---------------------------------------------------------------------------------

_THREADPOOLS = []


def _threadpools():
    """threadpoolctl's controller of the loaded BLAS libraries, built once (building it
    costs milliseconds)."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0]


def _one_blas_thread():
    """BLAS limited to one thread for the calls inside, as scikit-learn's KMeans does."""
    return _threadpools().limit(limits=1, user_api="blas")


def _blas_threads():
    """How many threads BLAS would use now (the user's limit, or the default)."""
    libraries = _threadpools().select(user_api="blas").lib_controllers
    return max([lib.num_threads for lib in libraries] + [1])


def _run_blocks(blocks, work, n_workers):
    """``work(rows, worker)`` for every block: in ``n_workers`` threads, each taking a
    contiguous share of the blocks, with BLAS on one thread meanwhile.

    A block is a GEMM followed by element-wise passes (the clamp, the log-sum-exp):
    with BLAS's own threads, the passes run on one core while BLAS's workers spin on
    the others, and on a machine where another process is busy that spinning costs
    more than the GEMM gains (measured: 3-7x the bare GEMM instead of 1.3x). numpy
    releases the GIL in BLAS and in its ufuncs, so threads of whole blocks use every
    core for the GEMMs and the passes alike, as scikit-learn's KMeans does with
    OpenMP. Contiguous shares keep each worker's float64 sums in a fixed order, so a
    result does not depend on the threads' timing.
    """
    n_workers = min(n_workers, len(blocks))
    if n_workers <= 1:
        for rows in blocks:
            work(rows, 0)
        return
    shares = np.array_split(np.arange(len(blocks)), n_workers)

    def run(worker):
        for i in shares[worker]:
            work(blocks[i], worker)

    with _one_blas_thread(), ThreadPoolExecutor(n_workers) as pool:
        list(pool.map(run, range(n_workers)))  # list(): re-raises a worker's error


# ---------------------------------------------------------------------------------
# The Gaussians of one call
# ---------------------------------------------------------------------------------


def gaussian_constants(means, precisions_chol, log_weights, covariance_type):
    """Float64 constants of a mixture, folded so that a row block costs its GEMMs and
    one clamp.

    ``log w_k + log N(x | m_k, P_k^-1)`` is ``const_k - q_k(x) / 2``, ``q_k`` the
    quadratic form, with ``const_k = log w_k + log det L_k - D/2 log(2 pi)``.
    Spherical and diagonal precisions expand ``const_k - q_k / 2`` into
    ``x . (m_k p_k) - x^2 . p_k / 2 + (const_k - m_k^2 . p_k / 2)``: two GEMMs,
    ``x @ W`` plus ``[x^2, 1] @ W_sq`` (diag) or ``[||x||^2, 1] @ W_sq``
    (spherical), the last row of ``W_sq`` being the offset. The expansion
    can round ``-q_k / 2`` above 0 where it is ~0, so the scores are clamped at
    ``const``, as the distance kernels clamp at 0. Full precisions stack the Cholesky factors side
    by side with their shifts, ``chol = [L_1 .. L_K; -m_1 L_1 .. -m_K L_K]``
    (``(D + 1, K * D)``: one GEMM on ``[x, 1]`` gives every ``L_k^T (x - m_k)``).
    """
    n_components, n_features = means.shape
    means = np.asarray(means, dtype=np.float64)
    pc = np.asarray(precisions_chol, dtype=np.float64)
    constants = {}
    if covariance_type == "full":
        log_det = np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)
        # Columns k * D .. (k + 1) * D hold L_k: ([x, 1] @ chol)[k * D + e] is
        # ((x - m_k) L_k)[e].
        shift = np.einsum("kd,kde->ke", means, pc).reshape(1, -1)
        constants["chol"] = np.concatenate(
            [pc.transpose(1, 0, 2).reshape(n_features, -1), -shift]
        )
    else:
        prec = pc**2
        if covariance_type == "diag":
            log_det = np.log(pc).sum(axis=1)
            half_quad = 0.5 * (means**2 * prec).sum(axis=1)
            constants["W"] = (means * prec).T
            W_sq = (-0.5 * prec).T
        else:
            log_det = n_features * np.log(pc)
            half_quad = 0.5 * (means**2).sum(axis=1) * prec
            constants["W"] = (means * prec[:, None]).T
            W_sq = -0.5 * prec[None, :]
    const = np.asarray(log_weights, dtype=np.float64) + log_det - 0.5 * n_features * _LOG_2PI
    constants["const"] = const
    if covariance_type != "full":
        constants["W_sq"] = np.concatenate([W_sq, (const - half_quad)[None, :]])
    return constants


class _Gaussians:
    """A mixture's constants in X's dtype, and ``log w_k + log N(x | k)`` of a block."""

    def __init__(self, means, precisions_chol, log_weights, covariance_type, dtype):
        self.covariance_type = covariance_type
        self.n_components, self.n_features = means.shape
        # The means in X's dtype, as the public kernels take them (the loops pass the
        # float64 M-step means).
        means = np.asarray(means).astype(dtype)
        constants = gaussian_constants(means, precisions_chol, log_weights, covariance_type)
        for name, value in constants.items():
            setattr(self, name, np.ascontiguousarray(value.astype(dtype)))

    def buffers(self, n_rows, dtype):
        """Per-call buffers (reused by every block: fresh ones cost page faults).

        ``tmp`` is flat, so that :func:`_rows_view` gives a contiguous block of any
        width: the scores' scratch copy, or the ``K * D`` projections (full).
        """
        aux, scratch = _aux_columns(self.covariance_type, self.n_components, self.n_features)
        buffers = {
            "wlp": np.empty((n_rows, self.n_components), dtype=dtype),
            "tmp": np.empty(n_rows * scratch, dtype=dtype),
            "aux": np.empty((n_rows, aux), dtype=dtype),
        }
        buffers["aux"][:, -1] = 1  # the constant column, written once
        return buffers

    def features(self, Xc, buffers):
        """The block's helper copy (see :func:`_aux_columns`)."""
        aux = buffers["aux"][: Xc.shape[0]]
        if self.covariance_type == "diag":
            np.multiply(Xc, Xc, out=aux[:, :-1])
        elif self.covariance_type == "spherical":
            aux[:, 0] = row_norms_sq(Xc)
        else:
            aux[:, :-1] = Xc
        return aux

    def weighted_log_prob(self, Xc, buffers, out=None):
        """``log w_k + log N(x | k)`` of the block's rows, in ``out`` (or a buffer), and
        the block's helper copy (which the moments reuse)."""
        n_rows = Xc.shape[0]
        out = buffers["wlp"][:n_rows] if out is None else out
        if self.covariance_type == "full":
            aux = self.features(Xc, buffers)
            Y = _rows_view(buffers["tmp"], n_rows, self.chol.shape[1])
            np.matmul(aux, self.chol, out=Y)
            np.multiply(Y, Y, out=Y)
            np.sum(Y.reshape(n_rows, self.n_components, self.n_features), axis=2, out=out)
            out *= -0.5
            out += self.const
            return out, aux
        # The GEMM first: it brings the block of X into cache for the helper pass.
        np.matmul(Xc, self.W, out=out)
        aux = self.features(Xc, buffers)
        _gemm_add(out, aux, self.W_sq, _rows_view(buffers["tmp"], n_rows, self.n_components))
        # -q_k / 2 <= 0: the expansion's rounding above it is clamped.
        np.minimum(out, self.const, out=out)
        return out, aux


def _rows_view(flat, n_rows, n_cols):
    """A C-contiguous ``(n_rows, n_cols)`` view of the start of a flat buffer."""
    return flat[: n_rows * n_cols].reshape(n_rows, n_cols)


def _row_max(A, index=None):
    """Each row's largest value, as a column (0 where it is not finite); via argmax,
    which numpy runs faster than ``max`` along rows (and prediction needs anyway)."""
    if index is None:
        index = np.argmax(A, axis=1)
    top = np.take_along_axis(A, index[:, None], axis=1)
    return np.where(np.isfinite(top), top, 0)


def _logsumexp_rows(A, tmp, index=None):
    top = _row_max(A, index)
    E = np.subtract(A, top, out=_rows_view(tmp, *A.shape))
    np.exp(E, out=E)
    return (np.log(E.sum(axis=1, keepdims=True)) + top)[:, 0]


_EXP_FLOOR = {np.float32: np.float32(-80.0), np.float64: np.float64(-700.0)}


def _normalise_rows(wlp):
    """Responsibilities (in place of ``wlp``) and the rows' logsumexp, with one exp."""
    top = _row_max(wlp)
    np.subtract(wlp, top, out=wlp)
    # exp of anything below this is a denormal float (or 0), and denormals make exp
    # and the M-step GEMM many times slower; a responsibility under ~1e-35 (float32)
    # or ~1e-304 (float64) is rounding noise next to the row's largest, which is 1.
    np.maximum(wlp, _EXP_FLOOR[wlp.dtype.type], out=wlp)
    np.exp(wlp, out=wlp)
    total = wlp.sum(axis=1, keepdims=True)
    wlp /= total
    return wlp, (np.log(total) + top)[:, 0]


def _overflowed_rows(X, log_norm):
    """float32 rows whose log-densities overflowed (-inf or NaN), else None.

    Far from every component, the quadratic forms of float32 data can exceed the
    float32 range: every log-probability of the row is then -inf and its
    responsibilities NaN. Those rows (rare) are recomputed in float64: their
    responsibilities and most probable component are then right, and ``log p(x)``
    rounds to -inf in float32 only where it is below the float32 range.
    """
    if X.dtype != np.float32:
        return None
    bad = ~np.isfinite(log_norm)
    return bad if bad.any() else None


# ---------------------------------------------------------------------------------
# E-step kernels
# ---------------------------------------------------------------------------------


def _block_plan(X, g, covariance_type, working_memory):
    """Worker threads, row blocks, and one set of block buffers per worker used."""
    n_workers = _blas_threads()
    blocks, max_rows = _mixture_blocks(X, g.n_components, covariance_type, working_memory,
                                       n_workers)
    n_used = max(min(n_workers, len(blocks)), 1)
    return n_workers, blocks, [g.buffers(max_rows, X.dtype) for _ in range(n_used)]


def log_responsibilities(X, means, precisions_chol, log_weights, covariance_type,
                         working_memory):
    """Log posterior of each component per row, and the row's log-likelihood."""
    g = _Gaussians(means, precisions_chol, log_weights, covariance_type, X.dtype)
    log_resp = np.empty((X.shape[0], g.n_components), dtype=X.dtype)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    n_workers, blocks, buffers = _block_plan(X, g, covariance_type, working_memory)

    def work(rows, worker):
        Xc, buf = X[rows], buffers[worker]
        wlp, _ = g.weighted_log_prob(Xc, buf, out=log_resp[rows])
        norm = _logsumexp_rows(wlp, buf["tmp"])
        wlp -= norm[:, None]
        log_norm[rows] = norm

    _run_blocks(blocks, work, n_workers)
    bad = _overflowed_rows(X, log_norm)
    if bad is not None:
        log_resp[bad], log_norm[bad] = log_responsibilities(
            X[bad].astype(np.float64), means, precisions_chol, log_weights,
            covariance_type, working_memory,
        )
    return log_resp, log_norm


def mixture_assign(X, means, precisions_chol, log_weights, covariance_type, fixed,
                   working_memory):
    """Most probable (or fixed) component and log-likelihood per row, block by block."""
    g = _Gaussians(means, precisions_chol, log_weights, covariance_type, X.dtype)
    index = np.empty(X.shape[0], dtype=np.int64)
    log_norm = np.empty(X.shape[0], dtype=X.dtype)
    n_workers, blocks, buffers = _block_plan(X, g, covariance_type, working_memory)

    def work(rows, worker):
        Xc, buf = X[rows], buffers[worker]
        wlp, _ = g.weighted_log_prob(Xc, buf)
        best = np.argmax(wlp, axis=1)
        index[rows] = best
        log_norm[rows] = _logsumexp_rows(wlp, buf["tmp"], best)
        if fixed is not None:
            local = np.flatnonzero(fixed[rows] >= 0)
            if local.size:
                component = fixed[rows][local]
                index[rows.start + local] = component
                log_norm[rows.start + local] = wlp[local, component]

    _run_blocks(blocks, work, n_workers)
    bad = _overflowed_rows(X, log_norm)
    if bad is not None:
        index[bad], log_norm[bad] = mixture_assign(
            X[bad].astype(np.float64), means, precisions_chol, log_weights,
            covariance_type, None if fixed is None else fixed[bad], working_memory,
        )
    return index, log_norm


def _zero_statistics(covariance_type, n_components, n_features):
    sq_shape = {
        "full": (n_components, n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]
    return [0.0, np.zeros(n_components), np.zeros((n_components, n_features)),
            np.zeros(sq_shape)]


def _add_block_statistics(stats, g, Xc, fixed_c, buffers):
    """E-step of one block, its responsibilities reduced into ``stats`` (float64)."""
    ll, nk, sums, sq_sums = stats
    n_rows, n_features = Xc.shape
    wlp, aux = g.weighted_log_prob(Xc, buffers)
    idx = np.flatnonzero(fixed_c >= 0)
    fixed_ll = wlp[idx, fixed_c[idx]] if idx.size else None
    resp, norm = _normalise_rows(wlp)
    if idx.size:
        norm[idx] = fixed_ll
        resp[idx] = 0
        resp[idx, fixed_c[idx]] = 1
    stats[0] = ll + float(norm.sum(dtype=np.float64))
    nk += resp.sum(axis=0, dtype=np.float64)
    # (X^T R)^T: BLAS handles this layout faster than R^T X.
    sums += (Xc.T @ resp).T
    if g.covariance_type == "diag":
        sq_sums += (aux.T @ resp)[:-1].T  # sum_i r_ik x_i^2 (the ones column: dropped)
    elif g.covariance_type == "spherical":
        sq_sums += aux[:, 0] @ resp  # sum_i r_ik ||x_i||^2
    else:
        # sum_i r_ik x_i x_i^T for all k in one GEMM: rows r_ik x_i, side by side per k.
        K = g.n_components
        Z = _rows_view(buffers["tmp"], n_rows, K * n_features)
        np.multiply(resp[:, :, None], Xc[:, None, :], out=Z.reshape(n_rows, K, n_features))
        sq_sums += (Z.T @ Xc).reshape(K, n_features, n_features)


def mixture_em_statistics(X, means, precisions_chol, log_weights, covariance_type, fixed,
                          working_memory):
    """One pass of EM: E-step responsibilities folded into the M-step's sums."""
    g = _Gaussians(means, precisions_chol, log_weights, covariance_type, X.dtype)
    n_workers, blocks, buffers = _block_plan(X, g, covariance_type, working_memory)
    n_used = len(buffers)
    # One set of float64 sums per worker, added in worker order at the end.
    stats = [_zero_statistics(covariance_type, g.n_components, X.shape[1])
             for _ in range(n_used)]

    def work(rows, worker):
        Xc, buf = X[rows], buffers[worker]
        _add_block_statistics(stats[worker], g, Xc, fixed[rows], buf)

    _run_blocks(blocks, work, n_workers)
    total = stats[0]
    for other in stats[1:]:
        total = [a + b for a, b in zip(total, other)]
    return tuple(total)


# ---------------------------------------------------------------------------------
# M-step: the covariance-specific maths, one small function each
# ---------------------------------------------------------------------------------


def centred_scatters(nk, sums, sq_sums, covariance_type):
    """Raw second moments of an EM pass -> scatters around the component means."""
    nk = nk + _EPS_COUNT
    if covariance_type == "full":
        return sq_sums - np.einsum("kd,ke->kde", sums, sums) / nk[:, None, None]
    if covariance_type == "diag":
        return sq_sums - sums**2 / nk[:, None]
    return sq_sums - (sums**2).sum(axis=1) / nk


def estimate_gaussian_parameters(nk, sums, scatters, reg_covar, covariance_type):
    """ML counts, means and covariances from counts, sums and centred scatters.

    ``scatters`` are the (responsibility-weighted) second moments around each
    component's mean: ``(K, D, D)`` (full), ``(K, D)`` (diag) or ``(K,)``, the trace
    (spherical).
    """
    n_features = sums.shape[1]
    nk = nk + _EPS_COUNT
    means = sums / nk[:, None]
    if covariance_type == "full":
        covariances = scatters / nk[:, None, None]
        covariances = 0.5 * (covariances + covariances.transpose(0, 2, 1))
        covariances += reg_covar * np.eye(n_features)
    elif covariance_type == "diag":
        covariances = np.maximum(scatters / nk[:, None], 0) + reg_covar
    else:  # spherical: the mean of the diagonal variances
        covariances = np.maximum(scatters / nk / n_features, 0) + reg_covar
    return nk, means, covariances


def precision_cholesky(covariances, covariance_type):
    """Cholesky factor ``L`` of each precision (``P = L L^T``), as scikit-learn stores it."""
    if not np.all(np.isfinite(covariances)):
        # Checked here, before scipy's Cholesky reports it in its own words.
        raise ValueError(MIXTURE_NONFINITE_ERROR)
    if covariance_type == "full":
        n_components, n_features, _ = covariances.shape
        precisions_chol = np.empty_like(covariances)
        # One small factorisation per component: BLAS threads only cost here
        # (measured on 2 cores, one busy: D = 12 to 512, 1.5x-6x slower with 2).
        with _one_blas_thread():
            for k in range(n_components):
                try:
                    cov_chol = linalg.cholesky(covariances[k], lower=True)
                except linalg.LinAlgError:
                    raise ValueError(MIXTURE_PRECISION_ERROR) from None
                precisions_chol[k] = linalg.solve_triangular(
                    cov_chol, np.eye(n_features), lower=True
                ).T
        return precisions_chol
    if np.any(covariances <= 0.0):
        raise ValueError(MIXTURE_PRECISION_ERROR)
    return 1.0 / np.sqrt(covariances)


def mixture_m_step(counts, sums, second_moments, covariance_type, centred, reg_covar,
                   n_samples, empty_means, empty_covariance):
    """Weights, means, covariances and precision Cholesky factors (float64)."""
    scatters = second_moments if centred else centred_scatters(
        counts, sums, second_moments, covariance_type
    )
    nk, means, covariances = estimate_gaussian_parameters(
        counts, sums, scatters, reg_covar, covariance_type
    )
    empty = counts == 0
    if empty.any():
        if empty_means is not None:
            means[empty] = empty_means[empty]
        if empty_covariance is not None:
            covariances[empty] = empty_covariance
    return nk / n_samples, means, covariances, precision_cholesky(covariances, covariance_type)


# ---------------------------------------------------------------------------------
# The loops
# ---------------------------------------------------------------------------------


def mixture_em(X, means, precisions_chol, log_weights, covariance_type, fixed, reg_covar,
               max_iter, tol, working_memory):
    """EM iterations (E-step statistics, M-step) until the objective stops improving."""
    n_samples = X.shape[0]
    lower_bounds, previous, converged, n_iter = [], -np.inf, False, 0
    weights = covariances = None
    for n_iter in range(1, max_iter + 1):
        # E-step at the current parameters, reduced straight into the M-step sums.
        log_likelihood, nk, sums, sq_sums = mixture_em_statistics(
            X, means, precisions_chol, log_weights, covariance_type, fixed, working_memory
        )
        lower_bound = log_likelihood / n_samples
        lower_bounds.append(lower_bound)
        weights, means, covariances, precisions_chol = mixture_m_step(
            nk, sums, sq_sums, covariance_type, False, reg_covar, n_samples, None, None
        )
        log_weights = np.log(weights)
        if abs(lower_bound - previous) < tol:
            converged = True
            break
        previous = lower_bound
    labels, per_sample = mixture_assign(
        X, means, precisions_chol, log_weights, covariance_type, fixed, working_memory
    )
    lower_bound = float(per_sample.astype(np.float64).mean())
    lower_bounds.append(lower_bound)
    return dict(
        weights=weights, means=means, covariances=covariances,
        precisions_chol=precisions_chol, labels=labels, lower_bound=lower_bound,
        lower_bounds=lower_bounds, n_iter=n_iter, converged=converged,
    )


def _nearest(X, fixed, means, working_memory):
    """Nearest centre (squared Euclidean) for free rows; fixed rows keep their component."""
    index, _ = _assign(X, means.astype(X.dtype), "euclidean", working_memory)
    index = index.astype(np.int64)
    is_fixed = fixed >= 0
    index[is_fixed] = fixed[is_fixed]
    return index


def _inertia(X, labels, means, working_memory):
    """``sum_i ||x_i - m_(labels_i)||^2`` in float64, in row chunks."""
    total = 0.0
    # The float64 rows, their centres and the differences.
    for rows in row_chunks(X.shape[0], 3 * 8 * X.shape[1], working_memory,
                           max_rows=MAX_BLOCK_ROWS):
        diff = X[rows].astype(np.float64)
        diff -= means[labels[rows]]
        np.multiply(diff, diff, out=diff)
        total += float(diff.sum())
    return total


def semi_supervised_kmeans(X, means, fixed, max_iter, working_memory):
    """Lloyd iterations with fixed rows, until no assignment changes."""
    n_components = means.shape[0]
    labels, converged, n_iter = None, False, 0
    for n_iter in range(1, max_iter + 1):
        new_labels = _nearest(X, fixed, means, working_memory)
        if labels is not None and np.array_equal(new_labels, labels):
            converged = True
            break
        labels = new_labels
        sums, counts = _group_sum(X, labels, n_components, False, working_memory)
        # An empty component keeps its centre.
        means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], means)
    if not converged:
        labels = _nearest(X, fixed, means, working_memory)
    return labels, means, _inertia(X, labels, means, working_memory), n_iter, converged
