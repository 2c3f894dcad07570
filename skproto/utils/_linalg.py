"""Small linear-algebra helpers shared by the Mahalanobis estimators (FeCAM, OOD)."""

import numpy as np


def correlation_from_covariance(S):
    """``D^{-1/2} S D^{-1/2}`` (official ``normalize_cov``), per matrix of a stack.

    A feature of zero variance (a class of one sample, a constant feature) gets unit
    variance and no correlation instead of a division by zero.
    """
    sd = np.sqrt(np.maximum(np.diagonal(S, axis1=-2, axis2=-1), 0))
    degenerate = sd <= 1e-300
    sd = np.where(degenerate, 1.0, sd)
    C = S / (sd[..., :, None] * sd[..., None, :])
    if degenerate.any():
        C = np.where(degenerate[..., :, None] | degenerate[..., None, :], 0.0, C)
        diagonal = np.diagonal(C, axis1=-2, axis2=-1).copy()
        diagonal[degenerate] = 1.0
        idx = np.arange(S.shape[-1])
        C[..., idx, idx] = diagonal
    return C


def pinv_whitening(S):
    """``W`` (n_features, n_features) with ``W @ W.T = pinv(S)`` for a symmetric PSD S.

    The official code uses ``pinv``; eigenvalues below ``n_features * eps`` times the
    largest are dropped as :func:`scipy.linalg.pinvh` does, and their columns of ``W``
    are zero (so stacks of whitenings keep one shape).
    """
    eigval, eigvec = np.linalg.eigh(S)
    cutoff = S.shape[-1] * np.finfo(np.float64).eps * max(np.abs(eigval).max(), 1e-300)
    keep = eigval > cutoff
    W = np.zeros_like(eigvec)
    W[:, keep] = eigvec[:, keep] / np.sqrt(eigval[keep])
    return W
