"""Row norms and L2 normalisation, the numpy building blocks of every family."""

import numpy as np


def row_norms_sq(X):
    """Squared L2 norm of each row, in X's dtype (may overflow or underflow)."""
    return np.einsum("ij,ij->i", X, X)


def row_scale_and_norm(X):
    """``(scale, norm)`` per row with ``x / ||x|| = (x / scale) / norm``, overflow-free.

    Squaring overflows for rows beyond ~1e19 (float32) and underflows below ~1e-19,
    which made cosine similarity depend on the scale of the data. Rows whose squared
    norm is a normal, finite number keep ``scale = 1`` (the fast path, one pass);
    the others are divided by their largest absolute value first, so that the norm of
    ``x / scale`` lies in ``[1, sqrt(n_features)]``. A zero row has ``norm = 0``.
    """
    sq = row_norms_sq(X)
    scale = np.ones_like(sq)
    norm = np.sqrt(sq)
    bad = ~(np.isfinite(sq) & (sq >= np.finfo(X.dtype).tiny))
    if bad.any():
        Xb = X[bad]
        big = np.maximum(Xb.max(axis=1), -Xb.min(axis=1)) if X.shape[1] else sq[bad]
        nonzero = big > 0
        scale[bad] = np.where(nonzero, big, 1)
        norm[bad] = np.where(
            nonzero, np.sqrt(row_norms_sq(Xb / scale[bad][:, None])), 0
        )
    return scale, norm


def divide_by_row_norms(S, X):
    """``S[i] / ||X[i]||`` in place (0 where X[i] is zero), any trailing shape of S."""
    scale, norm = row_scale_and_norm(X)
    shape = (-1,) + (1,) * (S.ndim - 1)
    # Two divisions, not one by scale * norm, which could overflow.
    S /= scale.reshape(shape)
    S /= np.where(norm > 0, norm, 1).reshape(shape)
    return S


def l2_normalize(X, working_memory=None):
    """Rows of X scaled to unit L2 norm, whatever their scale; zero rows stay zero.

    Its temporaries are a few rows' norms (``working_memory`` is not needed).
    """
    return divide_by_row_norms(np.array(X, dtype=X.dtype, copy=True), X)
