"""Shared machinery of the prototype classifiers.

:class:`BasePrototypeClassifier` turns fitted ``prototypes_`` and ``classes_`` into
scikit-learn's classifier API (``decision_function``, ``predict``, ``predict_proba``,
``predict_log_proba``, ``score``), with the similarities computed by the backend.
:func:`validate_training_data` and :func:`class_means` are the steps every
prototype estimator's ``fit`` / ``partial_fit`` starts with.
"""

from numbers import Number

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import backend

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
