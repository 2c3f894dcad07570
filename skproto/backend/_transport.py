"""Balanced soft assignment (MixturePrototypeOODDetector): Sinkhorn-Knopp, PALM's step."""

import numpy as np

from ._checks import as_float_matrix, as_float_pair, check_integer, check_positive
from ._dispatch import kernels


def sinkhorn(scores, epsilon=0.05, n_iter=3):
    """Balanced soft assignment of samples to prototypes by Sinkhorn-Knopp, as PALM.

    Transcribes ``PALM.sinkhorn`` of the official PALM code (``util/loss_functions.py``):
    ``Q = exp(scores / epsilon)`` divided by its total, then ``n_iter`` times: scale
    every prototype's column to total ``1 / K``, then every sample's row to total
    ``1 / B``; finally multiply by ``B``, so that each row sums to 1 (a distribution
    of the sample over the prototypes) while the prototypes share the batch about
    equally. Computed in the log domain (same numbers, no overflow of ``exp`` for a
    small ``epsilon``).

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
    return kernels("transport").sinkhorn(S, epsilon, n_iter)


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
        X, P, epsilon, n_iter, top_k, x_groups, p_groups
    )

