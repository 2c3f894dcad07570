"""Gaussian-mixture kernels (SemiSupervisedGMM): the E-step, the M-step, whole EM and
semi-supervised k-means runs, and prediction.

Each library computes the per-call constants of the mixture itself, from the float64
parameters (on the device, for torch), so that :func:`mixture_em` and
:func:`semi_supervised_kmeans` keep X and the model on the device for a whole run.
"""

from numbers import Real

import numpy as np

from ._checks import as_float_array, as_float_matrix, as_float_pair, check_codes, check_integer
from ._dispatch import kernels, working_memory

COVARIANCE_TYPES = ("spherical", "diag", "full")


def _check_non_negative(value, name):
    if isinstance(value, bool) or not isinstance(value, Real) or not (
        np.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{name} must be a non-negative, finite number, got {value!r}.")
    return float(value)


def _check_covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}."
        )


def _check_fixed(fixed, n_rows, n_components):
    if fixed is None:
        return np.full(n_rows, -1, dtype=np.int64)
    return check_codes(fixed, n_rows, n_components, name="fixed", low=-1)


def _parameter_shape(covariance_type, n_components, n_features):
    """Shape of the per-component precisions (or second moments) of a covariance type."""
    return {
        "spherical": (n_components,),
        "diag": (n_components, n_features),
        "full": (n_components, n_features, n_features),
    }[covariance_type]


def _check_mixture(X, means, precisions_chol, log_weights, covariance_type, check):
    """Validate a Gaussian mixture's arrays; X and means in one floating dtype."""
    _check_covariance_type(covariance_type)
    X, means = as_float_pair(X, means, check=check, names=("X", "means"))
    n_components, n_features = means.shape
    expected = _parameter_shape(covariance_type, n_components, n_features)
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
    block; full precisions apply all the ``L_k`` in one GEMM (the factors side by
    side). On a CPU the blocks are cache-sized (a few MiB of scores, so that the
    log-sum-exp reads them from cache), on a GPU as large as ``working_memory``
    allows, and never larger; the result is computed in X's floating dtype.

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
    return kernels("mixture").log_responsibilities(
        X, means, precisions_chol, log_weights, covariance_type, working_memory()
    )


def mixture_assign(X, means, precisions_chol, log_weights, covariance_type, fixed=None, *,
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
    fixed : array-like of int of shape (n_samples,), default=None
        As in :func:`mixture_em_statistics`: a row fixed to component ``k`` gets
        index ``k`` and ``log p(x, k)`` (the semi-supervised objective of a
        labelled sample); -1 (or ``None``: all rows) for the most probable one.
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature). Estimators that
        validated X already pass False, to skip a second pass over it.

    Returns
    -------
    index : ndarray of int64 of shape (n_samples,)
        Component of largest posterior (the first one on ties), or the fixed one.
    log_prob_norm : ndarray of shape (n_samples,)
        ``log p(x)`` (``log p(x, fixed)`` for a fixed row), in X's floating dtype.

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
    if fixed is not None:
        fixed = _check_fixed(fixed, X.shape[0], means.shape[0])
    return kernels("mixture").mixture_assign(
        X, means, precisions_chol, log_weights, covariance_type, fixed, working_memory()
    )


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
    fixed = _check_fixed(fixed, X.shape[0], means.shape[0])
    return kernels("mixture").mixture_em_statistics(
        X, means, precisions_chol, log_weights, covariance_type, fixed, working_memory()
    )


def mixture_m_step(counts, sums, second_moments, covariance_type, *, centred=False,
                   reg_covar=1e-6, n_samples=None, empty_means=None, empty_covariance=None,
                   check_input=True):
    """M-step of a Gaussian mixture: its parameters from (weighted) statistics.

    The other half of :func:`mixture_em_statistics`: the E-step statistics of any
    number of row blocks, summed, give the next parameters (what a distributed EM
    iteration does). Maximum likelihood, as scikit-learn's ``GaussianMixture``::

        w_k = n_k / n,   m_k = s_k / n_k,   C_k = S_k / n_k + reg_covar I

    with ``S_k`` the scatter around ``m_k`` (``sum_i r_ik x_i x_i^T - s_k s_k^T /
    n_k`` from raw second moments), its diagonal (diag) or the mean of its diagonal
    (spherical); ``n_k`` is offset by ``10 eps`` so that an empty component stays
    finite. Computed in float64.

    Parameters
    ----------
    counts : array-like of shape (n_components,)
        ``n_k = sum_i r_ik``.
    sums : array-like of shape (n_components, n_features)
        ``s_k = sum_i r_ik x_i``.
    second_moments : array-like
        Raw second moments as :func:`mixture_em_statistics` returns them, or (with
        ``centred=True``) the scatters around the means: ``(n_components,)``
        (spherical: the trace), ``(n_components, n_features)`` (diag) or
        ``(n_components, n_features, n_features)`` (full).
    covariance_type : {"spherical", "diag", "full"}
    centred : bool, default=False
        Whether ``second_moments`` are centred already (accurate far from the
        origin, as class statistics of a hard partition are).
    reg_covar : float, default=1e-6
        Added to the diagonal of the covariances.
    n_samples : float, default=None
        Divides the counts into weights; ``None``: the sum of the counts.
    empty_means : array-like of shape (n_components, n_features), default=None
        Means given to the components of zero count (instead of 0), for example the
        centres a run started from.
    empty_covariance : array-like, default=None
        Covariance given, as is, to the components of zero count: the shape of one
        component's covariance (a scalar for spherical).
    check_input : bool, default=True
        Validate the input (real, finite, shapes).

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        Shaped like ``second_moments``.
    precisions_cholesky : ndarray
        Cholesky factors of the precisions (``1 / sigma`` for spherical and diag), as
        scikit-learn's ``precisions_cholesky_``.

    Raises
    ------
    ValueError
        When a covariance is not finite (the squares of the data overflowed) or not
        positive definite (increase ``reg_covar``).

    Examples
    --------
    >>> from skproto.backend import mixture_m_step
    >>> weights, means, covariances, prec_chol = mixture_m_step(
    ...     [2.0, 1.0], [[2.0], [4.0]], [[4.0], [16.0]], "diag", reg_covar=0.0)
    >>> means[:, 0].round(3), covariances[:, 0].round(3)
    (array([1., 4.]), array([1., 0.]))
    """
    _check_covariance_type(covariance_type)
    sums = as_float_matrix(sums, "sums", check=check_input).astype(np.float64, copy=False)
    n_components, n_features = sums.shape
    counts = as_float_array(counts, "counts", (n_components,), np.float64, check=check_input)
    shape = _parameter_shape(covariance_type, n_components, n_features)
    second_moments = as_float_array(
        second_moments, "second_moments", shape, np.float64, check=check_input,
        context=f" for covariance_type={covariance_type!r}",
    )
    if check_input and np.any(counts < 0):
        raise ValueError("counts must be non-negative.")
    reg_covar = _check_non_negative(reg_covar, "reg_covar")
    n_samples = float(counts.sum()) if n_samples is None else n_samples
    if not (isinstance(n_samples, Real) and np.isfinite(n_samples) and n_samples > 0):
        raise ValueError(f"n_samples must be a positive, finite number, got {n_samples!r}.")
    if empty_means is not None:
        empty_means = as_float_array(
            empty_means, "empty_means", sums.shape, np.float64, check=check_input
        )
    if empty_covariance is not None:
        empty_covariance = as_float_array(
            empty_covariance, "empty_covariance", shape[1:], np.float64, check=check_input
        )
    return kernels("mixture").mixture_m_step(
        counts, sums, second_moments, covariance_type, bool(centred), reg_covar,
        float(n_samples), empty_means, empty_covariance,
    )


def mixture_em(X, means, precisions_chol, log_weights, covariance_type, fixed=None, *,
               reg_covar=1e-6, max_iter=100, tol=1e-3, check_input=True):
    """A whole EM run of a Gaussian mixture, some rows fixed to their component.

    Each iteration is one :func:`mixture_em_statistics` pass at the current
    parameters (its log-likelihood is the objective before the iteration) and one
    :func:`mixture_m_step`; the run stops when the mean objective improves by less
    than ``tol`` or after ``max_iter`` iterations. At the end, each row gets its most
    probable (or fixed) component and the objective is evaluated once more at the
    final parameters (:func:`mixture_assign`). The objective, ``sum_free log p(x) +
    sum_fixed log p(x, k)``, never decreases.

    With the torch backend, X, ``fixed`` and the model move to the device once and
    stay there through all iterations (E-step, M-step with the Cholesky factors,
    convergence test); the results come back once. X is then held on the device
    whole; the temporaries stay within ``working_memory``.

    Parameters
    ----------
    X, means, precisions_chol, log_weights, covariance_type
        The data and the starting parameters, as in :func:`log_responsibilities`.
    fixed : array-like of int of shape (n_samples,), default=None
        As in :func:`mixture_em_statistics`.
    reg_covar : float, default=1e-6
        Added to the diagonal of the covariances at each M-step.
    max_iter : int, default=100
        Iterations at most (at least 1).
    tol : float, default=1e-3
        Stop when the mean objective improves by less than this.
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature).

    Returns
    -------
    result : dict
        ``weights``, ``means``, ``covariances``, ``precisions_chol`` (float64, the
        parameters after the last M-step), ``labels`` (int64, per row),
        ``lower_bound`` (the mean objective at those parameters), ``lower_bounds``
        (the mean objective before each iteration, then ``lower_bound``),
        ``n_iter`` and ``converged``.

    Raises
    ------
    ValueError
        When an M-step gives a covariance that is not finite or not positive definite.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import mixture_em
    >>> X = np.array([[0.0], [0.2], [4.0], [4.2]])
    >>> result = mixture_em(X, [[1.0], [3.0]], [1.0, 1.0], np.log([0.5, 0.5]), "spherical")
    >>> result["labels"], result["means"][:, 0].round(2)
    (array([0, 0, 1, 1]), array([0.1, 4.1]))
    """
    X, means, precisions_chol, log_weights = _check_mixture(
        X, means, precisions_chol, log_weights, covariance_type, check_input
    )
    fixed = _check_fixed(fixed, X.shape[0], means.shape[0])
    reg_covar = _check_non_negative(reg_covar, "reg_covar")
    tol = _check_non_negative(tol, "tol")
    max_iter = check_integer(max_iter, "max_iter", 1)
    return kernels("mixture").mixture_em(
        X, means, precisions_chol, log_weights, covariance_type, fixed, reg_covar,
        max_iter, tol, working_memory(),
    )


def semi_supervised_kmeans(X, means, fixed=None, *, max_iter=100, check_input=True):
    """Lloyd's k-means from given centres, some rows fixed to their centre.

    Each iteration assigns every free row to its nearest centre (squared Euclidean
    distance; the first on ties) and moves each centre to the mean of its rows (a
    centre without rows stays); the run stops when no assignment changes or after
    ``max_iter`` iterations (the rows are then assigned once more, to the last
    centres). Fixed rows always belong to their centre: GPC's semi-supervised
    k-means (``K_Means.fit_mix``).

    With the torch backend, X, ``fixed``, the centres and the labels stay on the
    device through all iterations; the results come back once.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    means : array-like of shape (n_components, n_features)
        Starting centres.
    fixed : array-like of int of shape (n_samples,), default=None
        Centre each row is fixed to, or -1 for a free row. ``None``: all rows free.
    max_iter : int, default=100
        Iterations at most (at least 1).
    check_input : bool, default=True
        Validate the input (real, finite, at least one feature).

    Returns
    -------
    labels : ndarray of int64 of shape (n_samples,)
    means : ndarray of shape (n_components, n_features)
        The final centres, float64.
    inertia : float
        ``sum_i ||x_i - means[labels_i]||^2``, in float64.
    n_iter : int
    converged : bool
        Whether an iteration left every assignment unchanged.

    Examples
    --------
    >>> from skproto.backend import semi_supervised_kmeans
    >>> labels, means, inertia, n_iter, converged = semi_supervised_kmeans(
    ...     [[0.0], [0.2], [4.0], [4.2]], [[0.0], [1.0]], fixed=[-1, -1, -1, 1])
    >>> labels, means[:, 0].round(2), converged
    (array([0, 0, 1, 1]), array([0.1, 4.1]), True)
    """
    X = as_float_matrix(X, check=check_input)
    means = as_float_matrix(means, "means", check=check_input).astype(np.float64, copy=False)
    if means.shape[1] != X.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features but means has {means.shape[1]}; they must match."
        )
    if means.shape[0] == 0:
        raise ValueError("means must hold at least one centre (row).")
    fixed = _check_fixed(fixed, X.shape[0], means.shape[0])
    max_iter = check_integer(max_iter, "max_iter", 1)
    return kernels("mixture").semi_supervised_kmeans(
        X, means, fixed, max_iter, working_memory()
    )


