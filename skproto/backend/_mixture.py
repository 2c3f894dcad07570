"""Gaussian-mixture kernels (SemiSupervisedGMM): the E-step, EM statistics and prediction."""

import numpy as np

from ._checks import as_float_array, as_float_pair, check_codes
from ._dispatch import kernels, working_memory

COVARIANCE_TYPES = ("spherical", "diag", "full")

_LOG_2PI = float(np.log(2 * np.pi))


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


def gaussian_constants(means, precisions_chol, log_weights, covariance_type):
    """Per-call float64 constants of a mixture, so that each row chunk costs one GEMM.

    ``log w_k + log N(x | m_k, P_k^-1)`` is ``const_k - q_k(x) / 2`` with ``q_k`` the
    quadratic form. Spherical and diagonal precisions expand ``q_k`` into
    ``x^2 . p_k - 2 x . (m_k p_k) + m_k^2 . p_k`` (one GEMM on ``[x, x^2]`` with
    ``W``); full precisions apply each Cholesky factor (``chol``, ``shift``). The
    numpy and torch kernels cast these to X's dtype and device.
    """
    n_components, n_features = means.shape
    means64 = means.astype(np.float64)
    pc = precisions_chol.astype(np.float64)
    constants = {"covariance_type": covariance_type}
    if covariance_type == "full":
        log_det = np.log(np.diagonal(pc, axis1=1, axis2=2)).sum(axis=1)
        constants["chol"] = pc
        constants["shift"] = np.einsum("kd,kde->ke", means64, pc)
        quad_const = np.zeros(n_components)
    elif covariance_type == "diag":
        prec = pc**2
        log_det = np.log(pc).sum(axis=1)
        # [x, x^2] @ W gives x . (2 m p) - x^2 . p
        constants["W"] = np.concatenate([2 * means64 * prec, -prec], axis=1).T
        quad_const = (means64**2 * prec).sum(axis=1)
    else:  # spherical
        prec = pc**2
        log_det = n_features * np.log(pc)
        constants["W"] = (2 * means64 * prec[:, None]).T
        constants["prec"] = prec
        quad_const = (means64**2).sum(axis=1) * prec
    # log w_k + log det(L_k) - D/2 log(2 pi); the quadratic form is added per row.
    constants["const"] = (
        np.asarray(log_weights, dtype=np.float64) + log_det - 0.5 * n_features * _LOG_2PI
    )
    constants["quad_const"] = np.asarray(quad_const, dtype=np.float64)
    return constants


def _check_mixture(X, means, precisions_chol, log_weights, covariance_type, check):
    """Validate a Gaussian mixture's arrays; X and means in one floating dtype."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}."
        )
    X, means = as_float_pair(X, means, check=check, names=("X", "means"))
    n_components, n_features = means.shape
    expected = {
        "spherical": (n_components,),
        "diag": (n_components, n_features),
        "full": (n_components, n_features, n_features),
    }[covariance_type]
    precisions_chol = as_float_array(
        precisions_chol, "precisions_chol", expected, np.float64, check=check,
        context=f" for covariance_type={covariance_type!r}",
    )
    log_weights = as_float_array(
        log_weights, "log_weights", (n_components,), np.float64, check=check
    )
    return X, means, precisions_chol, log_weights


def log_responsibilities(X, means, precisions_chol, log_weights, covariance_type, *,
                         check_input=True):
    """E-step of a Gaussian mixture: log posteriors and per-row log-likelihoods.

    With ``P_k = L_k L_k^T`` the precision of component ``k`` (``precisions_chol`` holds
    ``L_k``, as in scikit-learn's ``GaussianMixture.precisions_cholesky_``)::

        log p(x, k) = log w_k - D/2 log(2 pi) + log det L_k - ||L_k^T (x - m_k)||^2 / 2

    Spherical and diagonal precisions expand the quadratic form into one GEMM per row
    chunk; full precisions apply each ``L_k`` (one GEMM per component and chunk).
    Chunks follow ``working_memory``; the result is computed in X's floating dtype.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    means : array-like of shape (n_components, n_features)
    precisions_chol : array-like
        Shape ``(n_components,)`` (spherical: ``1 / sigma_k``), ``(n_components,
        n_features)`` (diag) or ``(n_components, n_features, n_features)`` (full,
        lower-triangular).
    log_weights : array-like of shape (n_components,)
    covariance_type : {"spherical", "diag", "full"}
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
        ``log p(k | x)``.
    log_prob_norm : ndarray of shape (n_samples,)
        ``log p(x) = logsumexp_k log p(x, k)``; ``-inf`` only where it is below the
        range of X's dtype (float32 rows that overflow are recomputed in float64).

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import log_responsibilities
    >>> log_resp, log_norm = log_responsibilities(
    ...     [[0.0], [4.0]], [[0.0], [4.0]], [1.0, 1.0], np.log([0.5, 0.5]), "spherical")
    >>> np.exp(log_resp).round(3)
    array([[1., 0.],
           [0., 1.]])
    """
    X, means, precisions_chol, log_weights = _check_mixture(
        X, means, precisions_chol, log_weights, covariance_type, check_input
    )
    constants = gaussian_constants(means, precisions_chol, log_weights, covariance_type)
    log_resp, log_norm = kernels("mixture").log_responsibilities(X, constants, working_memory())
    bad = _overflowed_rows(X, log_norm)
    if bad is not None:
        log_resp[bad], log_norm[bad] = kernels("mixture").log_responsibilities(
            X[bad].astype(np.float64), constants, working_memory()
        )
    return log_resp, log_norm


def mixture_assign(X, means, precisions_chol, log_weights, covariance_type, *,
                   check_input=True):
    """Most probable component and log-likelihood of each row, in row chunks.

    What prediction needs from a Gaussian mixture: ``argmax_k log p(x, k)`` (the
    label) and ``log p(x) = logsumexp_k log p(x, k)`` (the score). Unlike
    :func:`log_responsibilities`, nothing of shape ``(n_samples, n_components)`` is
    built: each chunk of at most ``working_memory`` MiB of temporaries is reduced to
    its two per-row results before the next one is computed.

    Parameters
    ----------
    X, means, precisions_chol, log_weights, covariance_type
        As in :func:`log_responsibilities`.
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    index : ndarray of int64 of shape (n_samples,)
        Component of largest posterior (the first one on ties).
    log_prob_norm : ndarray of shape (n_samples,)
        ``log p(x)``, in X's floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import mixture_assign
    >>> index, log_norm = mixture_assign(
    ...     [[0.0], [3.5]], [[0.0], [4.0]], [1.0, 1.0], np.log([0.5, 0.5]), "spherical")
    >>> index
    array([0, 1])
    """
    X, means, precisions_chol, log_weights = _check_mixture(
        X, means, precisions_chol, log_weights, covariance_type, check_input
    )
    constants = gaussian_constants(means, precisions_chol, log_weights, covariance_type)
    index, log_norm = kernels("mixture").mixture_assign(X, constants, working_memory())
    bad = _overflowed_rows(X, log_norm)
    if bad is not None:
        index[bad], log_norm[bad] = kernels("mixture").mixture_assign(
            X[bad].astype(np.float64), constants, working_memory()
        )
    return index, log_norm


def mixture_em_statistics(X, means, precisions_chol, log_weights, covariance_type, fixed=None,
                          *, check_input=True):
    """One EM pass: E-step responsibilities reduced straight into the M-step sums.

    Never builds the ``(n_samples, n_components)`` responsibility matrix: each row
    chunk computes its responsibilities (as :func:`log_responsibilities`) and adds
    their weighted moments to float64 accumulators.

    Parameters
    ----------
    X, means, precisions_chol, log_weights, covariance_type
        As in :func:`log_responsibilities`.
    fixed : array-like of int of shape (n_samples,), default=None
        Component each row is fixed to (its responsibility is one-hot there and its
        log-likelihood is ``log p(x, fixed)``), or -1 for a free row (responsibility
        ``p(k | x)``, log-likelihood ``log p(x)``). ``None``: all rows free.

    Returns
    -------
    log_likelihood : float
        Sum over rows of the log-likelihood above (at the given parameters).
    nk : ndarray of shape (n_components,)
        ``sum_i r_ik``.
    sums : ndarray of shape (n_components, n_features)
        ``sum_i r_ik x_i``.
    sq_sums : ndarray
        ``sum_i r_ik ||x_i||^2`` (spherical, shape ``(n_components,)``),
        ``sum_i r_ik x_i^2`` (diag, ``(n_components, n_features)``) or
        ``sum_i r_ik x_i x_i^T`` (full, ``(n_components, n_features, n_features)``).
        All four results are float64.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import mixture_em_statistics
    >>> ll, nk, sums, sq = mixture_em_statistics(
    ...     [[0.0], [4.0], [0.1]], [[0.0], [4.0]], [1.0, 1.0], np.log([0.5, 0.5]),
    ...     "spherical", fixed=[-1, -1, 1])
    >>> nk.round(3)
    array([1., 2.])
    """
    X, means, precisions_chol, log_weights = _check_mixture(
        X, means, precisions_chol, log_weights, covariance_type, check_input
    )
    if fixed is None:
        fixed = np.full(X.shape[0], -1, dtype=np.int64)
    fixed = check_codes(fixed, X.shape[0], means.shape[0], name="fixed", low=-1)
    constants = gaussian_constants(means, precisions_chol, log_weights, covariance_type)
    return kernels("mixture").mixture_em_statistics(X, constants, fixed, working_memory())


