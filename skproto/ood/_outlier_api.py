"""scikit-learn's outlier API on top of ``score_samples`` and ``offset_``, for every detector."""

import numpy as np


class OutlierDetectorMixin:
    """``decision_function``, ``predict`` and ``fit_predict`` from ``score_samples``.

    As :class:`sklearn.ensemble.IsolationForest`: ``decision_function = score_samples -
    offset_`` and ``predict`` is +1 where it is >= 0, -1 elsewhere. ``fit_predict``
    passes ``y`` on to ``fit`` (scikit-learn's ``OutlierMixin`` drops it).
    """

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for predicted outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for in-distribution samples, -1 for out-of-distribution ones.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,)
        """
        decision = self.decision_function(X)
        is_inlier = np.ones(decision.shape[0], dtype=int)
        is_inlier[decision < 0] = -1
        return is_inlier

    def fit_predict(self, X, y=None):
        """Fit on X (with labels y if given), then :meth:`predict` X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,), default=None
            Class labels, passed to :meth:`fit`.

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,)
            +1 for inliers, -1 for outliers.
        """
        return self.fit(X, y).predict(X)
