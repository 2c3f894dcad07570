"""Balanced soft assignment (MixturePrototypeOODDetector): Sinkhorn-Knopp, PALM's step,
and PALM's whole prototype fit."""

from numbers import Real

import numpy as np

from ._checks import (
    as_float_matrix,
    as_float_pair,
    check_codes,
    check_integer,
    check_positive,
)
from ._dispatch import kernels

# Below this many multiply-adds (x 2) a mini-batch GEMM takes about a millisecond on
# one core: splitting it over BLAS threads gains little on an idle machine and, when
# another process holds a core, makes every GEMM wait for a descheduled thread (the
# issue measured a PALM fit 5.8x slower with two threads than with one). The PALM fit
# then runs on one BLAS thread, as scikit-learn's KMeans does.
SMALL_GEMM_FLOPS = 2**31


def linear_range_limit(dtype, n_rows, n_cols):
    """Largest score range over epsilon for which Sinkhorn in the linear domain is exact.

    With the scores centred so that every entry of ``E = exp(S / epsilon)`` lies in
    ``[exp(-R/2), exp(R/2)]``, the gauge of the numpy and torch kernels keeps every
    row sum, column sum and scaling factor within ``[exp(-R) / B, K B exp(R)]``
    (B rows, K columns); these are sums of positive terms, so below overflow and
    above the smallest normal number each is exact to rounding (an underflowing term
    is negligible in its sum). One more unit of margin for rounding. float32: about
    75 for 512 x 60 (PALM's ``2 / 0.05 = 40`` fits); float64: about 697.
    """
    info = np.finfo(dtype)
    room = min(-np.log(float(info.tiny)), np.log(float(info.max)))
    return room - np.log(float(n_rows) * float(n_cols)) - 1.0


def sinkhorn(scores, epsilon=0.05, n_iter=3):
    """Balanced soft assignment of samples to prototypes by Sinkhorn-Knopp, as PALM.

    Transcribes ``PALM.sinkhorn`` of the official PALM code (``util/loss_functions.py``):
    ``Q = exp(scores / epsilon)`` divided by its total, then ``n_iter`` times: scale
    every prototype's column to total ``1 / K``, then every sample's row to total
    ``1 / B``; finally multiply by ``B``, so that each row sums to 1 (a distribution
    of the sample over the prototypes) while the prototypes share the batch about
    equally. Computed in the linear domain (one ``exp``, then matrix-vector
    products) when the range of ``scores / epsilon`` makes that exact to rounding
    (``linear_range_limit`` in this module: cosine scores of a 512 x 60 batch with
    ``epsilon`` down to about 0.03 in float32), in the log domain otherwise (same
    numbers, no overflow of ``exp`` for a small ``epsilon``).

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_prototypes)
        Similarities (PALM: cosine of unit-norm features and prototypes).
    epsilon : float, default=0.05
        Entropic regularisation: smaller is closer to a hard assignment.
    n_iter : int, default=3
        Sinkhorn-Knopp iterations (PALM uses 3).

    Returns
    -------
    Q : ndarray of shape (n_samples, n_prototypes)
        Non-negative; with ``n_iter >= 1`` each row sums to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import sinkhorn
    >>> Q = sinkhorn(np.array([[0.9, 0.8], [0.9, 0.1]]), epsilon=0.5, n_iter=50)
    >>> np.round(Q.sum(axis=1), 6), np.round(Q.sum(axis=0), 3)
    (array([1., 1.]), array([1., 1.]))
    """
    S = as_float_matrix(scores, "scores")
    if S.shape[0] == 0:
        raise ValueError(f"scores must be a non-empty 2-D array, got shape {S.shape}.")
    epsilon = check_positive(epsilon, "epsilon")
    n_iter = check_integer(n_iter, "n_iter", 0)
    return kernels("transport").sinkhorn(
        S, epsilon, n_iter, linear_range_limit(S.dtype, *S.shape)
    )


def balanced_assignment(
    X, P, epsilon=0.05, n_iter=3, top_k=None, x_groups=None, p_groups=None, *,
    check_input=True,
):
    """PALM's prototype assignment of one mini-batch, and the prototypes' targets.

    With ``X`` and ``P`` unit-norm rows, this is the update step of ``PALM.mle_loss``
    (official code, ``util/loss_functions.py``): ``Q = sinkhorn(X @ P.T)`` over *all*
    prototypes; ``Q`` masked to the prototypes of each sample's own group (class);
    only the ``top_k`` largest entries of each row kept; rows then columns
    normalised to sum 1 (L1). ``targets = W.T @ X`` is then, for each prototype, the
    weighted mean of the samples assigned to it (zero for a prototype that got no
    weight).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The batch (PALM: L2-normalised features).
    P : array-like of shape (n_prototypes, n_features)
        Prototypes (PALM: unit norm).
    epsilon : float, default=0.05
    n_iter : int, default=3
        See :func:`sinkhorn`.
    top_k : int or None, default=None
        Keep the ``top_k`` largest assignments per sample (PALM's ``k``; ties go to
        the lower prototype index). None keeps all (PALM's ``k=0``).
    x_groups, p_groups : array-like of int of shape (n_samples,) and (n_prototypes,)
        Group (class) of each sample and prototype; a sample is assigned only to
        prototypes of its own group. Both None: no mask (unsupervised PALM).
    check_input : bool, default=True
        Validate X and P (real, finite, at least one feature). Estimators that
        validated them already pass False.

    Returns
    -------
    weights : ndarray of shape (n_samples, n_prototypes)
        ``W``: every non-zero column sums to 1.
    targets : ndarray of shape (n_prototypes, n_features)
        ``W.T @ X``.

    Notes
    -----
    ``torch.nn.functional.normalize(p=1)`` in the official code divides by
    ``max(sum, 1e-12)``, so a row whose mass is below ``1e-12`` is not quite scaled to
    1 there; here every row and column with positive mass is normalised exactly and
    empty ones stay zero.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import balanced_assignment
    >>> X = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    >>> P = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> W, targets = balanced_assignment(X, P, x_groups=[0, 0, 1], p_groups=[0, 1])
    >>> W.sum(axis=0)
    array([1., 1.])
    >>> targets[1]
    array([0., 1.])
    """
    X, P = as_float_pair(X, P, check=check_input)
    epsilon = check_positive(epsilon, "epsilon")
    n_iter = check_integer(n_iter, "n_iter", 0)
    if top_k is not None:
        top_k = check_integer(top_k, "top_k", 1)
    if (x_groups is None) != (p_groups is None):
        raise ValueError("x_groups and p_groups must be given together.")
    if x_groups is not None:
        x_groups = np.asarray(x_groups)
        p_groups = np.asarray(p_groups)
        if x_groups.shape != (X.shape[0],) or p_groups.shape != (P.shape[0],):
            raise ValueError(
                "x_groups must have one entry per row of X and p_groups one per row of P."
            )
        x_groups = x_groups.astype(np.int64, copy=False)
        p_groups = p_groups.astype(np.int64, copy=False)
    if X.shape[0] == 0:
        raise ValueError("X must hold at least one sample.")
    return kernels("transport").balanced_assignment(
        X, P, epsilon, n_iter, top_k, x_groups, p_groups,
        linear_range_limit(X.dtype, X.shape[0], P.shape[0]),
    )



def balanced_prototypes(
    X, P, x_groups=None, n_groups=1, *, epsilon=0.05, n_iter=3, top_k=None,
    momentum=0.99, batch_size=512, max_iter=50, tol=0.0, seed=0, check_input=True,
):
    """PALM's prototype fit: passes of mini-batch balanced assignments and EMA updates.

    The whole loop of :class:`~skproto.MixturePrototypeOODDetector`'s fit in one
    kernel, so that on the torch backend ``X`` and the prototypes go to the device
    once and stay there through every pass, batch and Sinkhorn iteration. Each pass
    shuffles the rows (a keyed hash of the row index, the same on every library, so
    no permutation is copied to the device), cuts them into batches of
    ``batch_size`` and, for each batch ``Xb``, computes PALM's targets ``U`` as
    :func:`balanced_assignment` does (the group mask is each sample's own block of
    prototypes) and updates ``P <- normalize(momentum * P + (1 - momentum) * U)``.

    **Stopping rule.** With ``delta_t`` the movement of the prototypes over pass
    ``t`` and ``rate = 1 - momentum ** n_batches`` the fraction of the way to its
    target that the EMA covers in one pass, the pass's *drift* is

    ``d_t = sqrt(max(0, mean_j <delta_t[j], delta_{t-1}[j]>)) / rate``

    (``delta_0 = delta_1``): the part of a pass's movement that continues the
    previous pass's, root-mean-square over the prototypes, divided by the rate, an
    estimate of the distance left to the fixed point. Mini-batch noise moves a
    prototype back and forth (consecutive movements are nearly uncorrelated, as every
    pass visits each sample once) while a drift moves it on, so ``d_t`` falls to the
    drift where the raw movement stays at the noise floor. The fit stops after the
    first pass with ``d_t <= tol``, or after ``max_iter`` passes.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data (PALM: L2-normalised features).
    P : array-like of shape (n_groups * n_prototypes, n_features)
        Initial prototypes, group-major: rows ``g * M ... (g + 1) * M - 1`` belong to
        group ``g`` (``M = P.shape[0] // n_groups``).
    x_groups : array-like of int of shape (n_samples,), default=None
        Group (class) of each sample, in ``[0, n_groups)``: a sample is assigned only
        to its group's prototypes. None: no mask (``n_groups`` must be 1).
    n_groups : int, default=1
        Number of groups; it divides ``P.shape[0]``.
    epsilon, n_iter : float and int
        Sinkhorn's regularisation and iterations (see :func:`sinkhorn`).
    top_k : int or None, default=None
        Keep the ``top_k`` largest assignments per sample (ties go to the lower
        prototype index); values of at least ``M`` (the prototypes a sample can
        reach) and None keep all.
    momentum : float, default=0.99
        EMA momentum, in [0, 1).
    batch_size : int, default=512
    max_iter : int, default=50
        Maximum number of passes.
    tol : float, default=0.0
        Stop after the first pass whose drift is at most ``tol`` (0: run
        ``max_iter`` passes unless the prototypes stop exactly).
    seed : int, default=0
        Seeds the shuffles, in ``[0, 2**32)``.
    check_input : bool, default=True
        Validate X and P (real, finite, at least one feature).

    Returns
    -------
    prototypes : ndarray of shape (n_groups * n_prototypes, n_features)
        Unit rows (a row of ``P`` that is zero stays zero), X's dtype.
    n_passes : int
        Passes run.
    drift : float
        The last pass's drift ``d_t``.
    converged : bool
        Whether the fit stopped on ``tol`` (``drift <= tol``; with ``tol=0``, the
        prototypes did not move at all in the last pass) rather than ``max_iter``.

    Notes
    -----
    Memory: X (on the torch backend, X on the device), the prototypes, and one batch
    of rows and scores; ``working_memory`` does not apply (X is used whole every
    pass). The numpy kernel runs the batch GEMMs on one BLAS thread when they are small
    (``2 * batch_size * n_prototypes * n_features`` below ``SMALL_GEMM_FLOPS``,
    2**31), scoped to the call; the torch kernel does the same with ``torch.set_num_threads``
    on a CPU device. Sinkhorn runs in the linear domain when ``2 max|x| max|p| /
    epsilon`` is within ``linear_range_limit`` (always for unit rows and
    PALM's ``epsilon``), in the log domain otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.backend import balanced_prototypes
    >>> rng = np.random.RandomState(0)
    >>> X = np.r_[rng.randn(40, 3) * 0.1 + [1, 0, 0], rng.randn(40, 3) * 0.1 + [0, 1, 0]]
    >>> X /= np.linalg.norm(X, axis=1, keepdims=True)
    >>> P0 = np.eye(3)[[0, 2]]
    >>> P, n_passes, drift, converged = balanced_prototypes(
    ...     X, P0, momentum=0.5, batch_size=16, max_iter=100, tol=1e-3)
    >>> P.argmax(axis=1)        # one prototype on each cluster
    array([0, 1])
    >>> converged, n_passes < 100
    (True, True)
    """
    X, P = as_float_pair(X, P, check=check_input)
    if X.shape[0] == 0:
        raise ValueError("X must hold at least one sample.")
    n_groups = check_integer(n_groups, "n_groups", 1)
    if P.shape[0] % n_groups:
        raise ValueError(
            f"P must hold n_groups blocks of equal size, got {P.shape[0]} rows for "
            f"n_groups={n_groups}."
        )
    if x_groups is None:
        if n_groups != 1:
            raise ValueError("x_groups is required when n_groups > 1.")
    else:
        x_groups = check_codes(x_groups, X.shape[0], n_groups, name="x_groups")
    epsilon = check_positive(epsilon, "epsilon")
    n_iter = check_integer(n_iter, "n_iter", 0)
    n_protos = P.shape[0] // n_groups
    if top_k is not None:
        top_k = check_integer(top_k, "top_k", 1)
        if top_k >= n_protos:
            top_k = None
    if isinstance(momentum, bool) or not isinstance(momentum, Real) or not (
        0 <= momentum < 1
    ):
        raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}.")
    batch_size = check_integer(batch_size, "batch_size", 1)
    max_iter = check_integer(max_iter, "max_iter", 1)
    if isinstance(tol, bool) or not isinstance(tol, Real) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number, got {tol!r}.")
    seed = check_integer(seed, "seed", 0, 2**32 - 1)
    if X.shape[0] >= 2**32:
        raise ValueError("balanced_prototypes shuffles at most 2**32 rows.")
    # Two 32-bit keys per pass; each library hashes the row index with them.
    pass_keys = np.random.RandomState(seed).randint(
        0, 2**32, size=(max_iter, 2), dtype=np.int64
    )
    # |x . p| <= max|x| max|p| (the EMA keeps |p| = 1): a bound on the score range
    # of every batch, so the linear domain is decided once, with no per-batch check.
    x_norm = float(np.sqrt(np.einsum("ij,ij->i", X, X).max()))
    p_norm = max(float(np.sqrt(np.einsum("ij,ij->i", P, P).max())), 1.0)
    batch = min(batch_size, X.shape[0])
    linear = 2 * x_norm * p_norm * (1 + 1e-3) / epsilon <= linear_range_limit(
        X.dtype, batch, P.shape[0]
    )
    small_gemm = 2.0 * batch * P.shape[0] * X.shape[1] < SMALL_GEMM_FLOPS
    prototypes, n_passes, drift, converged = kernels("transport").balanced_prototypes(
        X, P, x_groups, n_groups, epsilon, n_iter, top_k, float(momentum), batch_size,
        max_iter, float(tol), pass_keys, linear, small_gemm,
    )
    return prototypes, int(n_passes), float(drift), bool(converged)
