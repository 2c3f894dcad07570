"""Library-independent numerical helpers shared by the numpy and torch kernels."""

import numpy as np


def euclidean_scale(P):
    """A power of two to divide X and P by before squaring, or None when not needed.

    Squared distances of prototypes far above 1 (float32: beyond 2^50) overflow and
    far below underflow into denormals that have no digits left. Dividing by a power
    of two is exact, so argmax and top-k are unchanged and the similarities are
    multiplied back at the end.
    """
    limit = 50.0 if P.dtype == np.float32 else 400.0
    big = float(np.max(np.abs(P))) if P.size else 0.0
    if big == 0.0 or abs(np.log2(big)) < limit:
        return None
    return P.dtype.type(2.0 ** np.floor(np.log2(big)))


# The M-step's failure messages, raised by the mixture kernels of both libraries.
MIXTURE_PRECISION_ERROR = (
    "Fitting the mixture model failed because some components have ill-defined "
    "empirical covariance (for instance caused by singleton or collapsed samples). "
    "Increase reg_covar, decrease n_components, or scale the input data."
)
MIXTURE_NONFINITE_ERROR = (
    "Fitting the mixture model failed: its covariances became NaN or infinite, "
    "which happens when the squares of the data overflow their dtype. Rescale the "
    "data (for example L2-normalise it or use StandardScaler) or pass float64."
)
