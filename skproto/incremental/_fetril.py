"""FeTrIL: exemplar-free class-incremental learning by feature translation."""

import numpy as np
from sklearn.base import ClassifierMixin, BaseEstimator, _fit_context, clone
from sklearn.svm import LinearSVC
from sklearn.utils._param_validation import HasMethods, StrOptions, validate_params
from sklearn.utils.metaestimators import available_if

from .. import backend
from .._base import DaskAccuracyMixin, ValidatedPredictMixin, validate_training_data
from ..backend import l2_normalize
from ..statistics import ClassStatistics
from ..utils._dask import dask_adapters, is_dask_collection, not_a_reduction
from ..utils._state import reset_fitted_state, transactional


@validate_params(
    {
        "X": ["array-like"],
        "y": ["array-like"],
        "old_means": ["array-like"],
        "old_classes": ["array-like"],
        "pairing": [StrOptions({"euclidean", "cosine"})],
        "return_pairs": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def fetril_pseudo_features(X, y, old_means, old_classes, *, pairing="euclidean",
                           return_pairs=False):
    """Pseudo-features of past classes, translated from the current classes (FeTrIL).

    For every past class ``c`` (mean ``mu_c``), the current class ``c*`` whose mean
    (over ``X[y == c*]``) is nearest to ``mu_c`` is chosen, and its samples are
    translated onto ``c``::

        pseudo(c) = X[y == c*] - mean(X[y == c*]) + mu_c

    so the pseudo-features of ``c`` have mean exactly ``mu_c`` and the spread of
    ``c*``. This is ``codes/compute_distances.py`` of the official code, in the raw
    feature space.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Real features of the current step.
    y : array-like of shape (n_samples,)
        Their labels (the current classes).
    old_means : array-like of shape (n_old, n_features)
        Stored means of the past classes.
    old_classes : array-like of shape (n_old,)
        Labels of the past classes, one per row of ``old_means``.
    pairing : {"euclidean", "cosine"}, default="euclidean"
        How ``c*`` is chosen: smallest Euclidean distance between means (the official
        code) or largest cosine similarity (PyCIL's FeTrIL). Ties go to the first
        current class in sorted order.
    return_pairs : bool, default=False
        Also return the chosen ``c*`` of each past class.

    Returns
    -------
    X_pseudo : ndarray of shape (n_pseudo, n_features)
        Pseudo-features, grouped by past class in the order of ``old_classes``;
        ``n_pseudo`` is the sum over past classes of the size of their ``c*``.
    y_pseudo : ndarray of shape (n_pseudo,)
        The past class of each row.
    pairs : ndarray of shape (n_old,)
        Only with ``return_pairs=True``: the current class ``c*`` used for each past
        class.

    References
    ----------
    .. [1] G. Petit, A. Popescu, H. Schindler, D. Picard, B. Delezoide. "FeTrIL:
       Feature Translation for Exemplar-Free Class-Incremental Learning", WACV 2023.
       https://github.com/GregoirePetit/FeTrIL

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.incremental import fetril_pseudo_features
    >>> X = np.array([[0.0, 1.0], [0.0, 3.0], [10.0, 0.0], [12.0, 0.0]])
    >>> y = np.array([2, 2, 3, 3])
    >>> Xp, yp, pairs = fetril_pseudo_features(
    ...     X, y, old_means=[[1.0, 1.0]], old_classes=[0], return_pairs=True)
    >>> Xp, yp, pairs
    (array([[1., 0.], [1., 2.]]), array([0, 0]), array([2]))
    """
    X = np.asarray(X)
    y = np.asarray(y)
    old_means = np.asarray(old_means)
    old_classes = np.asarray(old_classes)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array, got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must be 1-D with one label per row of X ({X.shape[0]}), got shape {y.shape}."
        )
    if X.shape[0] == 0:
        raise ValueError("X must hold at least one sample of a current class.")
    if old_means.ndim != 2 or old_means.shape[1] != X.shape[1]:
        raise ValueError(
            f"old_means must be 2-D with {X.shape[1]} features (as X), got shape "
            f"{old_means.shape}."
        )
    if old_classes.shape != (old_means.shape[0],):
        raise ValueError(
            f"old_classes must hold one label per row of old_means "
            f"({old_means.shape[0]}), got shape {old_classes.shape}."
        )
    old_means = old_means.astype(X.dtype, copy=False)
    current = ClassStatistics._from_validated(X, y)
    classes, cur_means = current.classes, current.means().astype(X.dtype)
    if old_means.shape[0] == 0:
        empty = (X[:0].copy(), old_classes[:0].copy())
        return empty + (classes[:0].copy(),) if return_pairs else empty
    nearest, _ = backend.assign(old_means, cur_means, metric=pairing)
    codes = np.searchsorted(classes, y)
    # Rows of X grouped by current class, so each past class takes one slice.
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(classes)))])
    blocks = []
    for c, k in enumerate(nearest):
        rows = X[order[bounds[k]:bounds[k + 1]]]
        blocks.append(rows - cur_means[k] + old_means[c])
    sizes = np.diff(bounds)[nearest]
    X_pseudo = np.concatenate(blocks, axis=0)
    y_pseudo = np.repeat(old_classes, sizes)
    if return_pairs:
        return X_pseudo, y_pseudo, classes[nearest]
    return X_pseudo, y_pseudo


def _default_classifier():
    return LinearSVC(C=1.0, dual=False, tol=1e-4)


def _classifier_has(attr):
    def check(self):
        clf = getattr(self, "classifier_", None)
        if clf is None:
            clf = self.classifier if self.classifier is not None else _default_classifier()
        return hasattr(clf, attr)

    return check


class FeTrIL(ValidatedPredictMixin, DaskAccuracyMixin, ClassifierMixin, BaseEstimator):
    """Exemplar-free class-incremental learning by feature translation (FeTrIL).

    The backbone is frozen (the inputs are fixed embeddings); what is learned
    incrementally is a linear classifier. At each step, the classes of the current
    batch keep their real features, and every past class ``c`` gets pseudo-features:
    the features of the current class ``c*`` whose mean is nearest to ``mu_c``,
    translated by ``mu_c - mu_c*`` (see
    :func:`~skproto.incremental.fetril_pseudo_features`). A fresh clone of
    ``classifier`` is then trained on the L2-normalised real + pseudo features of
    all classes seen so far. Only the mean and count of each class are kept between
    steps, never a sample.

    Decisions where the paper is silent:

    - The first :meth:`partial_fit` on an unfitted model is the initial step (as
      :meth:`fit`).
    - A batch may bring samples of classes seen before: they are *current* classes
      of the step (real features, stored mean updated to the exact running mean,
      and they can be the ``c*`` of a past class); only classes absent from the batch
      get pseudo-features.
    - ``classes_`` is sorted (the order of the classifier's ``classes_``).
    - ``predict``, ``decision_function`` and ``predict_proba`` (when the classifier
      has it) L2-normalise the samples first, as the official evaluation does
      (``codes/compute_predictions.py``). For training, the official
      ``train_classifiers.py`` normalises the loaded features batch by batch but
      stacks its first loader batch as loaded; here every training vector, real or
      pseudo, is normalised.

    Parameters
    ----------
    classifier : estimator, default=None
        The classifier trained at each step on the normalised features; cloned
        afresh at every step. None means ``LinearSVC(C=1.0, dual=False, tol=1e-4)``,
        one-vs-rest, as the official code (``codes/train_classifiers.py``). Give
        e.g. ``LogisticRegression()`` for ``predict_proba``. With many classes,
        ``OneVsRestClassifier(LinearSVC(dual=False, tol=1e-4), n_jobs=-1)`` fits the
        same binary problems (the same coefficients) in parallel.
    pairing : {"euclidean", "cosine"}, default="euclidean"
        How the current class nearest to a past class mean is chosen: Euclidean
        distance between raw means (official code, the default) or cosine similarity
        (PyCIL's implementation).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        All classes seen so far, sorted.
    class_means_ : ndarray of shape (n_classes, n_features)
        Mean of the raw training features of each class (in the dtype of the first
        training data).
    class_counts_ : ndarray of shape (n_classes,), dtype int64
        Number of real training samples seen per class.
    statistics_ : ClassStatistics
        Per-class counts and sums of the real samples, merged exactly step by step
        (the source of ``class_means_``).
    classifier_ : estimator
        The classifier fitted at the last step.
    pairs_ : dict
        For the last step, ``{past class: current class used to translate it}``
        (empty after the first step).
    n_features_in_ : int
        Number of features seen during `fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during `fit`, when X has feature names that are
        all strings.

    See Also
    --------
    skproto.incremental.fetril_pseudo_features : The pseudo-feature generator, as a
        function.
    NearestMeanClassifier : Exemplar-free too, without any training.

    References
    ----------
    .. [1] G. Petit, A. Popescu, H. Schindler, D. Picard, B. Delezoide. "FeTrIL:
       Feature Translation for Exemplar-Free Class-Incremental Learning", WACV 2023.
       https://github.com/GregoirePetit/FeTrIL

    Examples
    --------
    >>> import numpy as np
    >>> from skproto import FeTrIL
    >>> rng = np.random.default_rng(0)
    >>> centers = 3 * rng.normal(size=(4, 8))
    >>> X = np.repeat(centers, 30, axis=0) + rng.normal(size=(120, 8))
    >>> y = np.repeat([0, 1, 2, 3], 30)
    >>> clf = FeTrIL().fit(X[y < 2], y[y < 2])           # initial step
    >>> clf = clf.partial_fit(X[y >= 2], y[y >= 2])      # classes 2, 3 arrive
    >>> clf.classes_
    array([0, 1, 2, 3])
    >>> sorted(clf.pairs_)                               # past classes translated
    [0, 1]
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    _parameter_constraints = {
        "classifier": [HasMethods(["fit", "predict"]), None],
        "pairing": [StrOptions({"euclidean", "cosine"})],
    }

    def __init__(self, classifier=None, *, pairing="euclidean"):
        self.classifier = classifier
        self.pairing = pairing

    def _make_classifier(self):
        return clone(self.classifier) if self.classifier is not None else _default_classifier()

    def _train(self, X, y):
        clf = self._make_classifier()
        return clf.fit(l2_normalize(X, check_input=False), y)

    @_fit_context(prefer_skip_nested_validation=False)
    @transactional
    def fit(self, X, y):
        """Initial step: train on the real features of its classes; forgets earlier fits.

        If the call fails (bad input, the classifier fails, an interrupt), an earlier
        fit is left exactly as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training embeddings (raw; they are L2-normalised for the classifier).
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        reset_fitted_state(self)
        return self._step(X, y)

    @_fit_context(prefer_skip_nested_validation=False)
    @transactional
    def partial_fit(self, X, y, classes=None):
        """New step: real features of the batch's classes + pseudo-features of the rest.

        If the call fails (bad input, the classifier fails, an interrupt), the fitted
        state is left exactly as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training embeddings of the step.
        y : array-like of shape (n_samples,)
            Class labels; new labels become new classes.
        classes : array-like of shape (n_classes,), default=None
            Accepted for compatibility with scikit-learn's ``partial_fit`` signature
            and otherwise ignored.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return self._step(X, y)

    def _step(self, X, y):
        """One step: the first (real features only) or a later one (plus pseudo)."""
        if is_dask_collection(X):
            raise not_a_reduction(
                self,
                "its classifier (a LinearSVC by default) is trained on all the real "
                "and pseudo-features, which is no reduction of statistics.",
                "fit FeTrIL on an in-memory sample (X[idx].compute()) and predict on "
                "the Dask array; or, for an exact fit on the cluster, "
                "NearestMeanClassifier().fit(X, y) on the Dask array (the same as "
                "NearestMeanClassifier.from_statistics(ClassStatistics.from_batch(X, y))).",
            )
        first = not hasattr(self, "statistics_")
        X, y = validate_training_data(
            self, X, y, reset=first,
            fitted_dtype=None if first else self.statistics_.dtype,
        )
        batch = ClassStatistics._from_validated(X, y)
        if first:
            statistics, pairs = batch, {}
            classifier = self._train(X, y)
        else:
            past = ~np.isin(self.classes_, batch.classes)
            past_classes = self.classes_[past]
            X_pseudo, y_pseudo, current = fetril_pseudo_features(
                X, y, self.class_means_[past], past_classes,
                pairing=self.pairing, return_pairs=True,
            )
            classifier = self._train(
                np.concatenate([X, X_pseudo]), np.concatenate([y, y_pseudo])
            )
            statistics = self.statistics_.merge(batch)
            pairs = dict(zip(past_classes.tolist(), current.tolist()))
        self.statistics_ = statistics
        self.classes_ = statistics.classes
        self.class_means_ = statistics.means().astype(statistics.dtype)
        self.class_counts_ = statistics.counts
        self.classifier_, self.pairs_ = classifier, pairs
        return self

    def _validate_X_predict(self, X):
        return l2_normalize(super()._validate_X_predict(X), check_input=False)

    def decision_function(self, X):
        """Decision scores of the classifier on the L2-normalised samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            As the classifier's ``decision_function`` (1-D for two classes).
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "decision_function", X)
        X = self._validate_X_predict(X)
        return self.classifier_.decision_function(X)

    def predict(self, X):
        """Class predicted by the classifier on the L2-normalised samples.

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
        return self.classifier_.predict(X)

    @available_if(_classifier_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the classifier (only if it has ``predict_proba``).

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
        X = self._validate_X_predict(X)
        return self.classifier_.predict_proba(X)

    @available_if(_classifier_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities of the classifier (if it has ``predict_log_proba``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict_log_proba", X)
        X = self._validate_X_predict(X)
        return self.classifier_.predict_log_proba(X)
