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

from numbers import Number

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import assert_all_finite, check_is_fitted, validate_data

from . import backend
from .statistics import ClassStatistics
from .utils._dask import dask_adapters, is_dask_collection
from .utils._state import reset_fitted_state, transactional

FLOAT_DTYPES = (np.float64, np.float32)


def _label_kinds(labels, ignore=None):
    """The kinds of labels in an array: ``{"string" or "number": an example label}``.

    The example is None where the dtype alone gives the kind (no label is read).
    Object labels equal to ``ignore`` (a marker such as -1) count as neither.
    """
    if labels.dtype.kind in "US":
        return {"string": None}
    if labels.dtype.kind in "biuf":
        return {"number": None}
    if labels.dtype.kind != "O":
        return {}
    kinds = {}
    # Object arrays hold Python objects of any type: look at them, stopping as soon
    # as both kinds are seen.
    for value in labels.ravel().tolist():
        if ignore is not None and isinstance(value, Number) and value == ignore:
            continue
        if isinstance(value, (str, bytes)):
            kinds.setdefault("string", value)
        elif isinstance(value, Number):
            kinds.setdefault("number", value)
        if len(kinds) == 2:
            break
    return kinds


def check_label_kinds(
    y, *, classes=None, ignore=None, input_name="y", classes_name="classes_"
):
    """Raise a ValueError when labels mix strings and numbers.

    numpy cannot sort such labels (``np.unique`` raises "'<' not supported between
    instances of 'int' and 'str'") and silently turns a Python list of both into
    strings (``[0, "a"]`` becomes ``["0", "a"]``), so a mix is refused up front:
    within ``y`` (one call), and between ``y`` and the labels already known
    (``classes``, e.g. the fitted ``classes_`` in ``partial_fit``).

    Parameters
    ----------
    y : array-like
        Labels, as given by the user (a list is inspected before numpy converts it).
    classes : array-like, default=None
        Labels seen before; ``y`` must be of the same kind.
    ignore : number, default=None
        A marker that is not a label (-1 for unlabelled samples), allowed beside
        string labels.
    input_name, classes_name : str
        Names used in the error message.
    """
    try:
        # A list is read as objects: np.asarray would have already turned its
        # numbers into strings. Arrays (and pandas objects) keep their own dtype.
        labels = np.asarray(y) if hasattr(y, "__array__") else np.asarray(y, dtype=object)
    except (TypeError, ValueError):
        return  # not array-like at all: validate_data reports it
    kinds = _label_kinds(labels, ignore)
    if len(kinds) == 2:
        raise ValueError(
            f"The labels in {input_name} mix strings and numbers (for example "
            f"{kinds['string']!r} and {kinds['number']!r}). Use labels of one kind: "
            "all strings or all numbers."
        )
    if classes is None or not kinds or labels.size == 0:
        return
    known = _label_kinds(np.asarray(classes))
    if known and set(known) != set(kinds):
        (new_kind,), (old_kind,) = kinds, known
        raise ValueError(
            f"The labels in {input_name} are {new_kind}s but the labels seen before "
            f"({classes_name}) are {old_kind}s: labels would mix strings and numbers. "
            f"Use labels of the same kind as {classes_name}."
        )


def validate_training_data(estimator, X, y, *, reset, fitted_dtype=None):
    """Validate X (finite, 2-D, float) and y (class labels) for fit / partial_fit.

    Labels that mix strings and numbers are refused with a ValueError that says so
    (:func:`check_label_kinds`). ``reset=False`` checks the feature count and names
    against the fitted ones, and that the labels are of the same kind (all numbers
    or all strings) as ``classes_``. Float32 input stays float32; a later call
    passes the dtype of its fitted means as ``fitted_dtype``, and X is cast to it.
    """
    # Before validate_data: it converts a list such as [0, "a"] to strings.
    check_label_kinds(y)
    dtype = list(FLOAT_DTYPES) if fitted_dtype is None else fitted_dtype
    X, y = validate_data(estimator, X, y, reset=reset, dtype=dtype, y_numeric=False)
    check_classification_targets(y)
    if not reset and hasattr(estimator, "classes_"):
        check_label_kinds(y, classes=estimator.classes_)
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


def check_squared_distances_fit(X, dtype, input_name="X"):
    """Refuse values whose squared Euclidean distances overflow ``dtype``.

    ``||x - p||^2 <= n_features (2 max|x|)^2`` for prototypes within the data's
    range; past ``sqrt(max / (4 n_features))`` it can be ``inf`` and probabilities
    NaN, so such input gets a clear error instead of a silently wrong answer.

    The max and min that this needs see NaN and infinity too, so X need not have
    been checked for them first: non-finite X gets scikit-learn's own message.
    """
    if X.size == 0:
        return
    # max and -min: two reductions that allocate nothing (np.abs(X) would copy X).
    high, low = float(X.max()), float(X.min())
    if not (np.isfinite(high) and np.isfinite(low)):
        assert_all_finite(X, input_name=input_name)
    limit = float(np.sqrt(np.finfo(dtype).max / (4.0 * X.shape[1])))
    largest = max(high, -low)
    if largest > limit:
        wider = ", give float64 data" if np.dtype(dtype) == np.float32 else ""
        raise ValueError(
            f"{input_name} holds values up to {largest:.3g}: squared Euclidean distances "
            f"of {X.shape[1]} features overflow {np.dtype(dtype).name} beyond {limit:.3g}. "
            f"Rescale the data{wider}, or use metric='cosine'."
        )


class DaskAccuracyMixin:
    """``score`` that also takes a Dask array (put before ``ClassifierMixin``)."""

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


class BasePrototypeClassifier(
    ValidatedPredictMixin, DaskAccuracyMixin, ClassifierMixin, BaseEstimator
):
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
        return backend.similarity(
            X, self.prototypes_, metric=self._get_metric(), check_input=False
        )

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
        index = backend.assign(
            X, self.prototypes_, metric=self._get_metric(), return_score=False,
            check_input=False,
        )
        return self.classes_[index]

    def _logits(self, X):
        """``(similarities - row max) / temperature``: finite or -inf, never NaN.

        Subtracting the row's maximum before dividing (a softmax is invariant to it)
        keeps a tiny ``temperature`` from turning similarities into ``inf - inf``.
        """
        S = self._similarities(X)
        S -= S.max(axis=1, keepdims=True)
        with np.errstate(over="ignore"):
            S /= S.dtype.type(self.temperature)
        return S

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            ``-inf`` exactly where :meth:`predict_proba` is 0 (a probability below the
            smallest float, e.g. with a tiny ``temperature``).
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict_log_proba", X)
        return log_softmax(self._logits(X), axis=1)

    def predict_proba(self, X):
        """Softmax of the similarities divided by ``temperature``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; finite, each row sums to 1.
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict_proba", X)
        return softmax(self._logits(X), axis=1)


class BaseStatisticsClassifier(BasePrototypeClassifier):
    """A prototype classifier computed from accumulated :class:`ClassStatistics`.

    Subclasses implement :meth:`_head` (the fitted attributes, as a dict, from the
    statistics) and set ``_moments`` to the second moments the head needs.
    """

    _moments = None

    def _head(self, statistics, first):
        """Fitted attributes (a dict) from ``statistics``; ``first``: no earlier fit."""
        raise NotImplementedError

    def _statistics_features(self, X):
        """The features the class statistics are computed on: X itself (FeCAM transforms)."""
        return X

    def _set_statistics(self, statistics, first):
        # The head is computed entirely before anything is assigned.
        state = self._head(statistics, first)
        self.statistics_ = statistics
        vars(self).update(state)

    def _check_training_X(self, X):
        """A hook for checks of the validated training X (none by default)."""

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
            self._check_training_X(X)
            batch = ClassStatistics._from_validated(
                self._statistics_features(X), y, moments=moments
            )
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
