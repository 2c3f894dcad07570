"""Nearest class mean classifier with class-incremental ``partial_fit`` (SimpleCIL)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, column_or_1d

from .._base import (
    FLOAT_DTYPES,
    BasePrototypeClassifier,
    check_label_kinds,
    class_means,
    merge_class_means,
    validate_training_data,
)
from ..utils._state import rollback_on_error


class NearestMeanClassifier(BasePrototypeClassifier):
    """Nearest class mean classifier on frozen embeddings, learning classes incrementally.

    Each class is represented by the mean of its **raw** training features (its
    prototype); a sample goes to the class whose prototype is most similar. With
    ``metric="cosine"`` this is SimpleCIL (Zhou et al., 2023) and the baseline of
    Janson et al. (2022): the means are taken on the raw features and normalised
    afterwards, exactly as LAMDA-PILOT's ``CosineLinear`` head holds them. This is
    *not* scikit-learn's ``NearestCentroid`` on L2-normalised inputs, which averages
    the normalised vectors instead.

    :meth:`partial_fit` accepts classes it has never seen and appends them; batches of
    known classes update their running means exactly, and the prototypes of classes
    absent from a batch do not change. Any sequence of ``partial_fit`` calls gives the
    same prototypes as one :meth:`fit` on the concatenated data (up to float rounding).
    Only ``n_classes x n_features`` numbers are stored, never a sample.

    **Starting from given prototypes** (for example zero-shot prototypes from CLIP's
    text tower, :func:`skproto.encoders.zero_shot_prototypes`): ``init_prototypes``
    (with ``init_classes`` and ``init_counts``), or the shortcut
    :meth:`from_prototypes`, which returns a classifier that predicts at once. Each
    initial prototype counts as ``init_counts`` pseudo-samples located at it, and the
    training samples then enter the same exact running mean::

        prototype = (c0 * p0 + sum of the n training samples) / (c0 + n)

    so the prior weighs as much as ``c0`` samples: it dominates the first few
    samples and fades as ``n`` grows; ``c0 = 0`` keeps the prior only for classes
    without samples. Classes of the prior without samples keep their prototype;
    classes without a prior get the plain mean. The prior is a parameter, so
    :func:`~sklearn.base.clone`, ``GridSearchCV`` and :meth:`fit` keep it (``fit``
    restarts from it); ``init_counts`` can be tuned like any parameter.
    The mean is taken on the raw vectors, so the prototypes and the samples should
    be on the same scale: text prototypes are unit vectors, so feed L2-normalised
    image embeddings (the encoders' default ``normalize=True``).

    Parameters
    ----------
    metric : {"cosine", "euclidean"}, default="cosine"
        Similarity between a sample and a prototype. ``"cosine"``: cosine similarity
        (SimpleCIL). ``"euclidean"``: negative squared Euclidean distance, i.e. the
        nearest centroid rule.
    temperature : float, default=1.0
        ``predict_proba`` is ``softmax(decision / temperature)`` over the classes.
        Cosine similarities lie in [-1, 1], so with the default 1.0 the probabilities
        are soft; values around 0.01-0.1 (CLIP's logit scale is 1/0.01) make them
        sharper. It changes neither :meth:`predict` nor the ranking of classes; tune
        it on a log-loss if calibrated probabilities matter.
    init_prototypes : array-like of shape (n_init_classes, n_features), default=None
        Initial prototypes (a prior), e.g. zero-shot text prototypes. ``None``: start
        from nothing.
    init_classes : array-like of shape (n_init_classes,), default=None
        Labels of the rows of ``init_prototypes`` (distinct). ``None``:
        ``0, 1, ..., n_init_classes - 1``.
    init_counts : int or array-like of int of shape (n_init_classes,), default=1
        Weight of each initial prototype in the running mean, as a number of
        pseudo-samples (>= 0).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels seen so far, sorted (a new class is inserted at its sorted
        position, so columns of :meth:`predict_proba` follow ``classes_``).
    prototypes_ : ndarray of shape (n_classes, n_features)
        Mean of the raw training features of each class, in the dtype of the
        training data (float32 stays float32).
    class_counts_ : ndarray of shape (n_classes,), dtype int64
        Number of training samples seen for each class (pseudo-counts excluded).
    init_counts_ : ndarray of shape (n_classes,), dtype int64
        Pseudo-counts of the initial prototypes (0 for classes not in the prior);
        only set when ``init_prototypes`` is given. The weight of a prototype in the
        running mean is ``class_counts_ + init_counts_``.
    n_features_in_ : int
        Number of features seen during `fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during `fit`, when X has feature names that are
        all strings.

    See Also
    --------
    sklearn.neighbors.NearestCentroid : Euclidean / Manhattan centroids, no
        ``partial_fit``, no cosine metric.

    References
    ----------
    .. [1] D.-W. Zhou, Z.-W. Cai, H.-J. Ye, D.-C. Zhan, Z. Liu. "Revisiting
       Class-Incremental Learning with Pre-Trained Models: Generalizability and
       Adaptivity are All You Need", arXiv:2303.07338, 2023 (IJCV 2024). SimpleCIL.
    .. [2] P. Janson, W. Zhang, R. Aljundi, M. Elhoseiny. "A Simple Baseline that
       Questions the Use of Pretrained-Models in Continual Learning", NeurIPS 2022
       Workshop on Distribution Shifts.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto import NearestMeanClassifier
    >>> X = np.array([[1.0, 0.1], [0.9, 0.0], [0.1, 1.0], [0.0, 0.8]])
    >>> clf = NearestMeanClassifier().partial_fit(X[:2], [0, 0])
    >>> clf = clf.partial_fit(X[2:], [1, 1])     # a class never seen before
    >>> clf.classes_
    array([0, 1])
    >>> clf.predict([[0.7, 0.2], [0.2, 0.9]])
    array([0, 1])

    Starting from prior prototypes worth 2 samples each, then learning:

    >>> prior = NearestMeanClassifier.from_prototypes(
    ...     [[1.0, 0.0], [0.0, 1.0]], classes=["a", "b"], counts=2)
    >>> prior.predict([[0.9, 0.3]])
    array(['a'], dtype='<U1')
    >>> prior.partial_fit([[0.0, 0.4]], ["a"]).prototypes_[0]   # (2*[1, 0] + [0, .4]) / 3
    array([0.666..., 0.133...])
    """

    _parameter_constraints = {
        "metric": [StrOptions({"cosine", "euclidean"})],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "init_prototypes": ["array-like", None],
        "init_classes": ["array-like", None],
        "init_counts": [Interval(Integral, 0, None, closed="left"), "array-like"],
    }

    def __init__(
        self,
        metric="cosine",
        temperature=1.0,
        init_prototypes=None,
        init_classes=None,
        init_counts=1,
    ):
        self.metric = metric
        self.temperature = temperature
        self.init_prototypes = init_prototypes
        self.init_classes = init_classes
        self.init_counts = init_counts

    @classmethod
    def from_prototypes(cls, prototypes, classes=None, counts=1, **params):
        """A classifier that starts from given prototypes and predicts right away.

        Equivalent to ``cls(init_prototypes=prototypes, init_classes=classes,
        init_counts=counts, **params)`` with the prior already in its fitted state,
        so that :meth:`predict` works before any :meth:`fit`; :meth:`partial_fit`
        then refines it, and :meth:`fit` (or a clone's fit) restarts from the prior.

        Parameters
        ----------
        prototypes : array-like of shape (n_classes, n_features)
            The initial prototypes, e.g. from
            :func:`skproto.encoders.zero_shot_prototypes`.
        classes : array-like of shape (n_classes,), default=None
            Their labels; ``None``: ``0, ..., n_classes - 1``.
        counts : int or array-like of int, default=1
            Pseudo-counts: weight of each prototype in the running mean.
        **params : dict
            Other constructor parameters (``metric``, ``temperature``).

        Returns
        -------
        estimator : NearestMeanClassifier
            Fitted on the prior alone (``class_counts_`` all zero).
        """
        estimator = cls(
            init_prototypes=prototypes, init_classes=classes, init_counts=counts, **params
        )
        estimator._validate_params()
        classes, prototypes, counts = estimator._validated_prior()
        estimator.classes_ = classes
        estimator.prototypes_ = prototypes
        estimator.class_counts_ = np.zeros(len(classes), dtype=np.int64)
        estimator.init_counts_ = counts
        estimator.n_features_in_ = prototypes.shape[1]
        return estimator

    def _validated_prior(self):
        """(sorted classes, prototypes, int64 pseudo-counts) of the prior, or None."""
        if self.init_prototypes is None:
            if self.init_classes is not None:
                raise ValueError("init_classes is given but init_prototypes is None.")
            return None
        prototypes = check_array(
            self.init_prototypes, dtype=list(FLOAT_DTYPES), input_name="init_prototypes"
        )
        n_classes = prototypes.shape[0]
        if self.init_classes is None:
            classes = np.arange(n_classes)
        else:
            check_label_kinds(self.init_classes, input_name="init_classes")
            classes = column_or_1d(self.init_classes)
            if len(classes) != n_classes:
                raise ValueError(
                    f"init_classes has {len(classes)} labels but init_prototypes has "
                    f"{n_classes} rows."
                )
            if len(np.unique(classes)) != n_classes:
                raise ValueError("init_classes contains duplicate labels.")
        counts = np.asarray(self.init_counts)
        if counts.ndim == 0:
            counts = np.full(n_classes, counts)
        if counts.shape != (n_classes,):
            raise ValueError(
                f"init_counts must be an int or have shape ({n_classes},), got shape "
                f"{counts.shape}."
            )
        if (
            counts.dtype.kind not in "iuf"
            or not np.all(np.isfinite(counts))
            or np.any(counts < 0)
            or np.any(counts != np.round(counts))
        ):
            raise ValueError(
                "init_counts must be non-negative whole numbers (pseudo-counts), got "
                f"{self.init_counts!r}."
            )
        order = np.argsort(classes, kind="stable")
        return classes[order], prototypes[order], counts[order].astype(np.int64)

    def _start_from_prior(self, X, y, batch):
        """Merge a first batch with the prior: (classes, means, counts, init_counts)."""
        prior = self._validated_prior()
        if prior is None:
            return (*batch, None)
        classes, prototypes, counts = prior
        if prototypes.shape[1] != X.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features but init_prototypes has "
                f"{prototypes.shape[1]}."
            )
        check_label_kinds(y, classes=classes, classes_name="init_classes")
        merged_classes, means, totals = merge_class_means(
            classes, prototypes.astype(X.dtype), counts, *batch
        )
        init_counts = np.zeros(len(merged_classes), dtype=np.int64)
        init_counts[np.searchsorted(merged_classes, classes)] = counts
        return merged_classes, means, totals - init_counts, init_counts

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the class prototypes, forgetting any earlier fit.

        If the call fails (bad input), an earlier fit is left exactly as it was.

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
        with rollback_on_error(self):
            X, y = validate_training_data(self, X, y, reset=True)
            classes, means, counts, init_counts = self._start_from_prior(
                X, y, class_means(X, y)
            )
        self.classes_, self.prototypes_, self.class_counts_ = classes, means, counts
        if init_counts is None:
            self.__dict__.pop("init_counts_", None)  # refit without a prior
        else:
            self.init_counts_ = init_counts
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """Update the prototypes with a batch, adding any class not seen before.

        If the call fails (bad input), the fitted state is left exactly as it was.

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
        first_call = not hasattr(self, "classes_")
        with rollback_on_error(self):
            X, y = validate_training_data(
                self, X, y, reset=first_call,
                fitted_dtype=None if first_call else self.prototypes_.dtype,
            )
            batch = class_means(X, y)
            if first_call:
                classes, means, counts, init_counts = self._start_from_prior(X, y, batch)
            else:
                init_counts = getattr(self, "init_counts_", None)
                weights = self.class_counts_
                if init_counts is not None:
                    weights = weights + init_counts
                classes, means, totals = merge_class_means(
                    self.classes_, self.prototypes_, weights, *batch
                )
                counts = totals
                if init_counts is not None:
                    old = init_counts
                    init_counts = np.zeros(len(classes), dtype=np.int64)
                    init_counts[np.searchsorted(classes, self.classes_)] = old
                    counts = totals - init_counts
        self.classes_, self.prototypes_, self.class_counts_ = classes, means, counts
        if init_counts is not None:
            self.init_counts_ = init_counts
        return self
