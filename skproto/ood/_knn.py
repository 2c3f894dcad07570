"""KNN+: the k-th nearest neighbour OOD score on normalised embeddings."""

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from .. import backend
from .._base import ValidatedPredictMixin
from ..utils._state import reset_fitted_state, transactional
from ._mahalanobis import offset_from_scores, validate_outlier_data
from ._outlier_api import OutlierDetectorMixin

# KNN+'s k per training sample: k = 50 for CIFAR-10's 50,000 training images and
# k = 1,000 for ImageNet's 1.28 M (official ``run_cifar.py`` / ``run_imagenet.py``).
_NEIGHBOR_FRACTION = 1e-3


def auto_n_neighbors(n_samples):
    """KNN+'s scaling: ``ceil(n_samples / 1000)``, at least 1."""
    return max(1, math.ceil(_NEIGHBOR_FRACTION * n_samples))


class KNNOODDetector(
    ValidatedPredictMixin, OutlierDetectorMixin, OutlierMixin, BaseEstimator
):
    """KNN+ OOD detector: similarity to the k-th nearest training embedding.

    The score of Sun et al. (ICML 2022), as the official code (``run_cifar.py``):
    embeddings are L2-normalised, and the score of ``z`` is its cosine similarity to
    its ``k``-th nearest normalised training embedding (the paper reports the negative
    Euclidean distance of the normalised vectors, ``-sqrt(2 - 2 cos)``: the same
    ranking). It makes no distributional assumption and uses no labels.

    **The number of neighbours grows with the training set**, as in the paper:
    ``k = 50`` for CIFAR-10's 50,000 training images, ``k = 1000`` for ImageNet's
    1.28 M, i.e. about one neighbour per thousand samples; ``n_neighbors="auto"`` is
    ``ceil(n_samples / 1000)``. A fixed ``k = 50`` is far too large for a few hundred
    samples per class (it reaches across classes) and loses most of the score's power.

    :meth:`partial_fit` appends the normalised batch to the stored embeddings (the
    model *is* the training set), updates ``k`` and the threshold, so any split equals
    one :meth:`fit`. Scores run in the backend (:func:`skproto.backend.kth_similarity`:
    one GEMM per row chunk and a partition, no top-k indices).

    Parameters
    ----------
    n_neighbors : "auto" or int, default="auto"
        ``k``; ``"auto"`` scales it with the training set (above). At most the number
        of training samples (``n_neighbors_``).
    normalize : bool, default=True
        L2-normalise the embeddings and use the cosine similarity (KNN+); False uses
        the negative squared Euclidean distance of the raw embeddings.
    contamination : "auto" or float, default="auto"
        Sets ``offset_``: the ``contamination`` quantile (``"auto"``: 0.05) of the
        *leave-one-out* scores of the training embeddings (the similarity of each to
        its ``k``-th nearest *other* training embedding), i.e. of the scores the
        training samples would get as new samples. :meth:`predict` on the training set
        itself counts each sample as its own neighbour, so it flags fewer than this
        fraction of it (as :class:`~sklearn.neighbors.LocalOutlierFactor` with
        ``novelty=True``, predicting on the training data is not meaningful).

    Attributes
    ----------
    train_features_ : ndarray of shape (n_samples, n_features)
        The (normalised) training embeddings.
    n_neighbors_ : int
        ``k`` in use.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during `fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during `fit`, when X has feature names that are
        all strings.

    See Also
    --------
    MahalanobisOODDetector : Parametric Gaussian scores.
    sklearn.neighbors.LocalOutlierFactor : Local density ratio (``novelty=True``).

    References
    ----------
    .. [1] Y. Sun, Y. Ming, X. Zhu, Y. Li. "Out-of-Distribution Detection with Deep
       Nearest Neighbors", ICML 2022. Official code:
       https://github.com/deeplearning-wisc/knn-ood

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.ood import KNNOODDetector
    >>> rng = np.random.default_rng(0)
    >>> X = np.repeat(3 * np.eye(4)[:2], 50, axis=0) + 0.3 * rng.normal(size=(100, 4))
    >>> det = KNNOODDetector().fit(X)
    >>> det.n_neighbors_                                   # ceil(100 / 1000)
    1
    >>> det.predict([[3.0, 0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]])
    array([ 1, -1])
    >>> X_test = np.repeat(3 * np.eye(4)[:2], 50, axis=0) + 0.3 * rng.normal(size=(100, 4))
    >>> float(np.mean(det.predict(X_test) == 1))           # about 95% of new inliers kept
    0.9...
    """

    _parameter_constraints = {
        "n_neighbors": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "normalize": ["boolean"],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
    }

    def __init__(self, n_neighbors="auto", *, normalize=True, contamination="auto"):
        self.n_neighbors = n_neighbors
        self.normalize = normalize
        self.contamination = contamination

    @_fit_context(prefer_skip_nested_validation=True)
    @transactional
    def fit(self, X, y=None):
        """Store the (normalised) training embeddings, forgetting earlier fits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In-distribution training embeddings.
        y : None
            Ignored (the score uses no labels).

        Returns
        -------
        self : object
            Fitted estimator.
        """
        reset_fitted_state(self)
        return self._learn(X)

    @_fit_context(prefer_skip_nested_validation=True)
    @transactional
    def partial_fit(self, X, y=None):
        """Append a batch of in-distribution embeddings.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._learn(X)

    def _metric(self):
        return "cosine" if self.normalize else "euclidean"

    def _features(self, X):
        return backend.l2_normalize(X, check_input=False) if self.normalize else X

    def _learn(self, X):
        first = not hasattr(self, "train_features_")
        X, _ = validate_outlier_data(
            self, X, None, first, None if first else self.train_features_.dtype
        )
        F = self._features(X)
        train = F if first else np.concatenate([self.train_features_, F])
        n = train.shape[0]
        k = auto_n_neighbors(n) if self.n_neighbors == "auto" else self.n_neighbors
        k = min(k, n)
        # Leave-one-out training scores: each training sample is its own nearest
        # neighbour, so its score "as a new sample" is its (k + 1)-th similarity (with
        # k = 1 the in-sample scores would all be 1 and the threshold useless).
        k_train = k + 1 if n > k else k
        scores = backend.kth_similarity(
            train, train, k_train, metric=self._metric(), check_input=False
        )
        offset = offset_from_scores(scores, self.contamination)
        self.train_features_ = train
        self.n_neighbors_ = k
        self.offset_ = offset
        return self

    def _predict_dtype(self):
        return self.train_features_.dtype

    def score_samples(self, X):
        """Similarity to the ``n_neighbors_``-th nearest training embedding.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Cosine similarity (``normalize=True``) or negative squared Euclidean
            distance; higher = more in-distribution.
        """
        F = self._features(self._validate_X_predict(X))
        return backend.kth_similarity(F, self.train_features_, self.n_neighbors_,
                                      metric=self._metric(), check_input=False)
