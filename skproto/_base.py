"""Shared machinery of skproto's estimators.

- :func:`validate_training_data`: the checks every ``fit`` / ``partial_fit`` starts with.
- :class:`ValidatedPredictMixin`: the one ``_validate_X_predict``.
- :class:`BasePrototypeClassifier`: scikit-learn's classifier API on fitted
  ``prototypes_`` and ``classes_``, with the similarities computed by the backend.
- :class:`BaseStatisticsClassifier`: a classifier that is "class statistics, then a
  head": ``partial_fit`` validates, merges the batch's
  :class:`~skproto.statistics.ClassStatistics` into ``statistics_`` and recomputes the
  head; ``fit`` resets and takes the same path; ``from_statistics`` builds the head
  from statistics computed elsewhere. Both run as one transaction
  (:func:`skproto.utils._state.transactional`).
"""

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from . import backend
from .statistics import ClassStatistics
from .utils._dask import dask_adapters, is_dask_collection
from .utils._state import reset_fitted_state, transactional

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


class ValidatedPredictMixin:
    """``_validate_X_predict``: fitted, same features, finite, in the fitted dtype."""

    def _predict_dtype(self):
        """The dtype X is cast to before prediction (a list: keep float32/float64)."""
        return list(FLOAT_DTYPES)

    def _validate_X_predict(self, X):
        check_is_fitted(self)
        return validate_data(
            self, X, reset=False, dtype=self._predict_dtype(), ensure_all_finite=True
        )


class BasePrototypeClassifier(ValidatedPredictMixin, ClassifierMixin, BaseEstimator):
    """Classifier API on top of fitted ``prototypes_`` (one per class).

    Subclasses set ``classes_`` (sorted), ``prototypes_`` (n_classes, n_features) and
    the similarity through :meth:`_get_metric`; ``temperature`` scales the softmax.
    """

    def _get_metric(self):
        return self.metric

    def _predict_dtype(self):
        return self.prototypes_.dtype

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
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "decision_function", X)
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
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict", X)
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
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict_log_proba", X)
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
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict_proba", X)
        return softmax(self._similarities(X) / self.temperature, axis=1)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of :meth:`predict` on ``X`` against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
            A lazy 0-d Dask array when X is a Dask array (``float()`` computes it).
        """
        if is_dask_collection(X):
            return dask_adapters().accuracy(self, X, y, sample_weight)
        return super().score(X, y, sample_weight=sample_weight)


class BaseStatisticsClassifier(BasePrototypeClassifier):
    """A prototype classifier computed from accumulated :class:`ClassStatistics`.

    Subclasses implement :meth:`_head` (the fitted attributes, as a dict, from the
    statistics) and set ``_moments`` to the second moments the head needs.
    """

    _moments = None

    def _head(self, statistics, first):
        """Fitted attributes (a dict) from ``statistics``; ``first``: no earlier fit."""
        raise NotImplementedError

    def _set_statistics(self, statistics, first):
        # The head is computed entirely before anything is assigned.
        state = self._head(statistics, first)
        self.statistics_ = statistics
        vars(self).update(state)

    def _learn(self, X, y):
        """Validate a batch, merge its statistics into ``statistics_``, recompute the head."""
        first = not hasattr(self, "statistics_")
        fitted_dtype = None if first else self.statistics_.dtype
        # Statistics given to from_statistics may keep more moments than needed.
        moments = self._moments if first else self.statistics_.moments
        if is_dask_collection(X):  # per block on the workers, then a tree of merges
            batch = dask_adapters().learn_statistics(
                self, X, y, reset=first, fitted_dtype=fitted_dtype, moments=moments
            )
        else:
            X, y = validate_training_data(self, X, y, reset=first, fitted_dtype=fitted_dtype)
            batch = ClassStatistics._from_validated(X, y, moments=moments)
        self._set_statistics(batch if first else self.statistics_.merge(batch), first)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    @transactional
    def fit(self, X, y):
        """Fit from scratch, forgetting any earlier fit.

        If the call fails (bad input, an interrupt), an earlier fit is left exactly
        as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training embeddings.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        reset_fitted_state(self)
        return self._learn(X, y)

    @_fit_context(prefer_skip_nested_validation=True)
    @transactional
    def partial_fit(self, X, y, classes=None):
        """Update the model with a batch, adding any class not seen before.

        The batch's class statistics are merged exactly into ``statistics_`` and the
        head is recomputed, so any sequence of calls equals one :meth:`fit` on the
        concatenated data (up to float rounding). If the call fails (bad input, an
        interrupt), the fitted state is left exactly as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training embeddings; the number of features must match earlier calls.
        y : array-like of shape (n_samples,)
            Class labels; new labels become new classes.
        classes : array-like of shape (n_classes,), default=None
            Accepted for compatibility with scikit-learn's ``partial_fit`` signature
            and otherwise ignored: classes need not be declared in advance, and a
            class gets a prototype only once it has samples.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._learn(X, y)

    @classmethod
    def from_statistics(cls, statistics, **params):
        """A fitted estimator from class statistics computed elsewhere.

        For example per partition on a cluster and merged there: the result equals
        :meth:`fit` on all the data the statistics came from. The estimator then
        predicts at once, and :meth:`partial_fit` continues from the statistics.

        Parameters
        ----------
        statistics : ClassStatistics
            Statistics of at least one class (their ``moments`` may include more
            than the estimator needs).
        **params : dict
            Constructor parameters of the estimator.

        Returns
        -------
        estimator : object
            Fitted estimator (``n_features_in_`` from the statistics; no
            ``feature_names_in_``).
        """
        if not isinstance(statistics, ClassStatistics):
            raise TypeError(
                f"statistics must be a ClassStatistics, got {type(statistics).__name__}."
            )
        if statistics.n_classes == 0:
            raise ValueError("statistics must hold at least one class.")
        if cls._moments == "full" and statistics.moments != "full" or (
            cls._moments == "diag" and statistics.moments is None
        ):
            raise ValueError(
                f"{cls.__name__} needs statistics with moments={cls._moments!r}, got "
                f"moments={statistics.moments!r}."
            )
        estimator = cls(**params)
        estimator._validate_params()
        estimator._set_statistics(statistics, first=True)
        estimator.n_features_in_ = statistics.n_features
        return estimator
