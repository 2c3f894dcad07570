"""Nearest class mean classifier with class-incremental ``partial_fit`` (SimpleCIL)."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from .._base import (
    FLOAT_DTYPES,
    BaseStatisticsClassifier,
    check_label_kinds,
    check_squared_distances_fit,
)
from ..statistics import ClassStatistics
from ..statistics._class_statistics import union_labels


class NearestMeanClassifier(BaseStatisticsClassifier):
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
    Only ``n_classes x n_features`` numbers are stored, never a sample: the
    per-class counts and sums of :class:`skproto.statistics.ClassStatistics`, from
    which :meth:`from_statistics` also builds a classifier (statistics computed per
    partition elsewhere and merged).

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
    statistics_ : ClassStatistics
        Counts and sums of the training data per class (the prior excluded): what
        :meth:`partial_fit` merges into, and what :meth:`from_statistics` starts from.
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
        *,
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
            Fitted on the prior alone (``class_counts_`` all zero, ``statistics_``
            empty).
        """
        estimator = cls(
            init_prototypes=prototypes, init_classes=classes, init_counts=counts, **params
        )
        estimator._validate_params()
        _, prototypes, _ = estimator._validated_prior()
        empty = ClassStatistics.empty(prototypes.shape[1], dtype=prototypes.dtype)
        estimator._set_statistics(empty, first=True)
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


    def _check_training_X(self, X):
        if self.metric == "euclidean":
            check_squared_distances_fit(X, X.dtype)

    def _validate_X_predict(self, X):
        if self.metric != "euclidean":
            return super()._validate_X_predict(X)
        # One pass instead of two: the max / min of the range check also catch NaN and
        # infinity (and raise scikit-learn's message for them).
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=self._predict_dtype(), ensure_all_finite=False
        )
        check_squared_distances_fit(X, X.dtype)
        return X

    def _head(self, statistics, first):
        """Prototypes from the statistics of the data, merged with the prior if any.

        With a prior, ``prototype = (c0 * p0 + sum of samples) / (c0 + n)``; a class
        with neither samples nor pseudo-counts keeps ``p0``.
        """
        dtype = statistics.dtype
        prior = self._validated_prior()
        if prior is None:
            return {
                "classes_": statistics.classes,
                "prototypes_": statistics.means().astype(dtype),
                "class_counts_": statistics.counts,
            }
        prior_classes, prior_prototypes, prior_counts = prior
        if prior_prototypes.shape[1] != statistics.n_features:
            raise ValueError(
                f"X has {statistics.n_features} features but init_prototypes has "
                f"{prior_prototypes.shape[1]}."
            )
        if statistics.n_classes == 0:  # the prior alone (from_prototypes)
            dtype = prior_prototypes.dtype
        # The prior is c0 pseudo-samples at p0, added to the sums of the data.
        prior_sums = prior_counts[:, None] * prior_prototypes.astype(np.float64)
        check_label_kinds(statistics.classes, classes=prior_classes, classes_name="init_classes")
        classes = union_labels(prior_classes, statistics.classes)
        data_pos = np.searchsorted(classes, statistics.classes)
        prior_pos = np.searchsorted(classes, prior_classes)
        counts = np.zeros(len(classes), dtype=statistics.counts.dtype)
        counts[data_pos] = statistics.counts
        init_counts = np.zeros(len(classes), dtype=np.int64)
        init_counts[prior_pos] = prior_counts
        sums = np.zeros((len(classes), statistics.n_features))
        sums[data_pos] = statistics.sums
        sums[prior_pos] += prior_sums
        weights = counts + init_counts
        prototypes = np.zeros_like(sums)
        prototypes[prior_pos] = prior_prototypes
        has_weight = weights > 0
        prototypes[has_weight] = sums[has_weight] / weights[has_weight, None]
        return {
            "classes_": classes,
            "prototypes_": prototypes.astype(dtype),
            "class_counts_": counts,
            "init_counts_": init_counts,
        }
