"""Covariance estimators of the Mahalanobis OOD scores, from mergeable statistics.

scikit-learn's :func:`~sklearn.covariance.ledoit_wolf` and :func:`~sklearn.covariance.oas`
take the data. Their shrinkage intensities only need a few sums, so they are computed
here from statistics that merge exactly across ``partial_fit`` calls:

- OAS (Chen et al. 2010, as ``sklearn.covariance.oas``): the maximum-likelihood
  covariance ``S`` and the number of samples ``n``.
- Ledoit-Wolf (as ``sklearn.covariance.ledoit_wolf_shrinkage``): ``S``, ``n`` and the
  sum of the fourth powers of the norms of the centred samples, ``sum_i ||x_i - m||^4``
  (scikit-learn's ``beta_``, the sum of the entries of ``(X**2).T @ X**2``). That sum is
  not a function of ``S``; :class:`NormMoments` keeps it per class, with the third-order
  vector it needs to merge (below).
"""

import numpy as np

from .. import backend
from ..incremental import fecam_shrinkage

COVARIANCE_ESTIMATORS = ("empirical", "ledoit-wolf", "oas", "fecam")


def ledoit_wolf_shrinkage_from_moments(S, n_samples, norm4):
    """``sklearn.covariance.ledoit_wolf_shrinkage`` from ``S``, ``n`` and ``sum ||x - m||^4``."""
    p = S.shape[0]
    if p == 1:  # scikit-learn: one feature, no shrinkage
        return 0.0
    mu = np.trace(S) / p
    delta_ = np.sum(S**2)
    beta = (norm4 / n_samples - delta_) / (p * n_samples)
    delta = (delta_ - 2.0 * mu * np.trace(S) + p * mu**2) / p
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def oas_shrinkage_from_moments(S, n_samples):
    """The shrinkage of ``sklearn.covariance.oas`` from ``S`` and ``n``."""
    p = S.shape[0]
    if p == 1:
        return 0.0
    alpha = np.mean(S**2)
    mu = np.trace(S) / p
    num = alpha + mu**2
    den = (n_samples + 1) * (alpha - mu**2 / p)
    return 1.0 if den == 0 else float(min(num / den, 1.0))


def shrink_towards_identity(S, shrinkage):
    """``(1 - shrinkage) S + shrinkage * trace(S) / p * I`` (scikit-learn's target)."""
    p = S.shape[0]
    shrunk = (1.0 - shrinkage) * S
    shrunk.flat[:: p + 1] += shrinkage * np.trace(S) / p
    return shrunk


def estimate_covariance(S, n_samples, norm4, estimator, diag_shrinkage, offdiag_shrinkage):
    """The covariance of ``estimator`` and its shrinkage intensity (None for FeCAM's)."""
    if estimator == "empirical":
        return S, 0.0
    if estimator == "ledoit-wolf":
        shrinkage = ledoit_wolf_shrinkage_from_moments(S, n_samples, norm4)
        return shrink_towards_identity(S, shrinkage), shrinkage
    if estimator == "oas":
        shrinkage = oas_shrinkage_from_moments(S, n_samples)
        return shrink_towards_identity(S, shrinkage), shrinkage
    return fecam_shrinkage(S, diag_shrinkage, offdiag_shrinkage), None


class NormMoments:
    """Per class: ``q = sum ||u||^4`` and ``r = sum ||u||^2 u``, ``u = x - mean_c``.

    With the counts, means and scatters of a :class:`ClassStatistics`, these merge
    exactly, like Chan's update of the scatter: moving a group's centre from its mean
    ``m_g`` to ``m`` (``d = m_g - m``, scatter ``S_g``)::

        q <- q_g + 4 d^T S_g d + 4 d^T r_g + 2 |d|^2 tr(S_g) + n_g |d|^4
        r <- r_g + 2 S_g d + tr(S_g) d + n_g |d|^2 d

    (the terms linear in ``u`` vanish because ``sum u = 0``). Merging two batches of a
    class, or all classes into the total, is this move for every group, then a sum.
    """

    def __init__(self, q, r):
        self.q = q
        self.r = r

    @classmethod
    def from_batch(cls, F, codes, means):
        """``q`` and ``r`` of every class of a batch around its own batch mean (float64)."""
        U = F.astype(np.float64) - means[codes]
        a = np.einsum("ij,ij->i", U, U)
        n_groups = means.shape[0]
        q = np.bincount(codes, weights=a * a, minlength=n_groups)
        r, _ = backend.group_sum(U * a[:, None], codes, n_groups, check_input=False)
        return cls(q, r)

    @staticmethod
    def moved(counts, means, scatters, q, r, center):
        """``q`` and ``r`` of each group around ``center`` instead of its own mean."""
        d = means - center
        d2 = np.einsum("gi,gi->g", d, d)
        Sd = np.einsum("gij,gj->gi", scatters, d)
        trace = np.trace(scatters, axis1=1, axis2=2)
        counts = counts.astype(np.float64)
        q_moved = (q + 4 * np.einsum("gi,gi->g", d, Sd) + 4 * np.einsum("gi,gi->g", d, r)
                   + 2 * d2 * trace + counts * d2**2)
        r_moved = r + 2 * Sd + trace[:, None] * d + (counts * d2)[:, None] * d
        return q_moved, r_moved

    def merge(self, stats_a, other, stats_b, merged):
        """Moments of the union; ``stats_*`` the ClassStatistics of each side, ``merged``
        their merge."""
        K, D = merged.n_classes, merged.n_features
        q = np.zeros(K)
        r = np.zeros((K, D))
        for stats, moments in ((stats_a, self), (stats_b, other)):
            if stats.n_classes == 0:
                continue
            pos = np.searchsorted(merged.classes, stats.classes)
            q_m, r_m = self.moved(stats.counts, stats.means(), stats.scatters,
                                  moments.q, moments.r, merged.means()[pos])
            np.add.at(q, pos, q_m)
            np.add.at(r, pos, r_m)
        return NormMoments(q, r)

    def total_norm4(self, stats):
        """``sum_i ||x_i - m||^4`` around the overall mean ``m`` of all classes."""
        center = stats.sums.sum(axis=0) / stats.counts.sum()
        q_m, _ = self.moved(stats.counts, stats.means(), stats.scatters, self.q, self.r,
                            center)
        return float(q_m.sum())

    def within_norm4(self):
        """``sum_i ||x_i - m_{c(i)}||^4``, every sample around its own class mean."""
        return float(self.q.sum())
