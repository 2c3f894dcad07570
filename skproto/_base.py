"""Shared machinery of the prototype classifiers.

:class:`BasePrototypeClassifier` turns fitted ``prototypes_`` and ``classes_`` into
scikit-learn's classifier API (``decision_function``, ``predict``, ``predict_proba``,
``predict_log_proba``, ``score``), with the similarities computed by the backend.
:func:`validate_training_data` and :func:`class_means` are the steps every
prototype estimator's ``fit`` / ``partial_fit`` starts with.
"""

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from . import backend

FLOAT_DTYPES = (np.float64, np.float32)


def validate_training_data(estimator, X, y, *, reset, fitted_dtype=None):
    """Validate X (finite, 2-D, float) and y (class labels) for fit / partial_fit.

    ``reset=False`` checks the feature count and names against the fitted ones,
    and that the labels are of the same kind (all numbers or all strings) as
    ``classes_``. Float32 input stays float32; a later call passes the dtype of its
    fitted means as ``fitted_dtype``, and X is cast to it.
    """
    dtype = list(FLOAT_DTYPES) if fitted_dtype is None else fitted_dtype
    X, y = validate_data(estimator, X, y, reset=reset, dtype=dtype, y_numeric=False)
    check_classification_targets(y)
    if not reset and hasattr(estimator, "classes_"):
        # Raises "Mix of label input types (string and number)" on a mix.
        unique_labels(estimator.classes_, y)
    return X, y


def class_means(X, y):
    """Sorted class labels, raw class means (in X's dtype) and class sizes."""
    classes, codes = np.unique(y, return_inverse=True)
    sums, counts = backend.group_sum(X, codes.ravel(), len(classes))
    means = (sums / counts[:, None]).astype(X.dtype, copy=False)
    return classes, means, counts


def merge_class_means(classes, means, counts, new_classes, new_means, new_counts):
    """Merge per-class running means with the means of a new batch.

    Returns the sorted union of the classes, their means and sizes. A class absent
    from the batch keeps its mean bit for bit; a class present in both gets the
    exact running mean ``(n_old * m_old + n_new * m_new) / (n_old + n_new)``, computed
    in float64; a class new in the batch is appended at its sorted position.
    """
    all_classes = np.union1d(classes, new_classes)
    old_pos = np.searchsorted(all_classes, classes)
    new_pos = np.searchsorted(all_classes, new_classes)

    all_counts = np.zeros(len(all_classes), dtype=np.int64)
    all_counts[old_pos] = counts
    all_means = np.zeros((len(all_classes), means.shape[1]), dtype=means.dtype)
    all_means[old_pos] = means

    prior = all_counts[new_pos]
    total = prior + new_counts
    # m_old + n_new / (n_old + n_new) * (m_new - m_old): exact for n_old == 0 too.
    m_old = all_means[new_pos].astype(np.float64)
    weight = (new_counts / total)[:, None]
    all_means[new_pos] = m_old + weight * (new_means.astype(np.float64) - m_old)
    all_counts[new_pos] = total
    return all_classes, all_means, all_counts


class BasePrototypeClassifier(ClassifierMixin, BaseEstimator):
    """Classifier API on top of fitted ``prototypes_`` (one per class).

    Subclasses set ``classes_`` (sorted), ``prototypes_`` (n_classes, n_features) and
    the similarity through :meth:`_get_metric`; ``temperature`` scales the softmax.
    """

    def _get_metric(self):
        return self.metric

    def _validate_X_predict(self, X):
        check_is_fitted(self)
        return validate_data(
            self, X, reset=False, dtype=self.prototypes_.dtype, ensure_all_finite=True
        )

    def _similarities(self, X):
        """Similarity of each sample to each class prototype, (n_samples, n_classes)."""
        X = self._validate_X_predict(X)
        return backend.similarity(X, self.prototypes_, metric=self._get_metric())

    def decision_function(self, X):
        """Similarity of each sample to each class prototype.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            ``scores[i, k]`` is the similarity of ``X[i]`` to the prototype of
            ``classes_[k]``. With exactly two classes, scikit-learn's convention
            applies: a 1-D array ``s[:, 1] - s[:, 0]``, positive for ``classes_[1]``.
            With a single class, the 1-D similarity to it.
        """
        S = self._similarities(X)
        if S.shape[1] == 2:
            return S[:, 1] - S[:, 0]
        if S.shape[1] == 1:
            return S[:, 0]
        return S

    def predict(self, X):
        """Class of the most similar prototype (the first class on exact ties).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        X = self._validate_X_predict(X)
        index, _ = backend.assign(X, self.prototypes_, metric=self._get_metric())
        return self.classes_[index]

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        return log_softmax(self._similarities(X) / self.temperature, axis=1)

    def predict_proba(self, X):
        """Softmax of the similarities divided by ``temperature``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        return softmax(self._similarities(X) / self.temperature, axis=1)
