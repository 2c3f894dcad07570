"""Row norms and L2 normalisation, the numpy building blocks of every family."""

import numpy as np

# Norms below this are treated as zero: a zero vector has cosine 0 with everything,
# as sklearn.preprocessing.normalize leaves zero rows at zero.
TINY = 1e-12


def row_norms_sq(X):
    """Squared L2 norm of each row, in X's dtype."""
    return np.einsum("ij,ij->i", X, X)


def safe_inverse_norms(X):
    norms = np.sqrt(row_norms_sq(X))
    inverse = np.zeros_like(norms)
    np.divide(1.0, norms, out=inverse, where=norms > TINY)
    return inverse


def l2_normalize(X):
    """Rows of X scaled to unit L2 norm; zero rows stay zero."""
    return X * safe_inverse_norms(X)[:, None]
