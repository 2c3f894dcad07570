"""Per-class sufficient statistics that merge exactly: the core of every estimator."""

import numpy as np
from sklearn.utils.validation import check_array, column_or_1d

from .. import backend
from ..utils._dask import dask_adapters, is_dask_collection

MOMENTS = (None, "diag", "full")
_COVARIANCE_KINDS = ("class", "pooled", "total")


def sorted_unique_labels(y):
    """``np.unique(y, return_inverse=True)``, with a clear error for mixed label types."""
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError:
        raise ValueError(
            "The labels mix strings and numbers; use labels of one kind (all strings "
            "or all numbers)."
        ) from None
    return classes, codes.reshape(-1).astype(np.int64, copy=False)


def union_labels(a, b):
    """Sorted union of two sorted label arrays (one may be empty)."""
    if len(a) == 0:
        return b.copy()
    if len(b) == 0:
        return a.copy()
    if (a.dtype.kind in "US") != (b.dtype.kind in "US"):
        raise ValueError(
            "Cannot merge statistics whose labels mix strings and numbers: "
            f"{a[:3].tolist()}... and {b[:3].tolist()}...."
        )
    return np.union1d(a, b)


def _positions(classes, subset):
    """Index in the sorted ``classes`` of every label of ``subset``."""
    if len(subset) == 0:
        return np.zeros(0, dtype=np.intp)
    return np.searchsorted(classes, subset)


class ClassStatistics:
    """Per-class counts, sums and optional centred second moments, mergeable exactly.

    The sufficient statistics of a "statistics, then a head" estimator: a class mean
    is ``sums / counts``; a class covariance is ``scatters / counts``. Two sets of
    statistics of disjoint batches :meth:`merge` into the statistics of their union,
    exactly (up to float64 rounding) and associatively, so that a fit can be split
    into ``partial_fit`` calls, or into partitions reduced on a cluster, and give the
    same model. Everything is a float64 numpy array whatever the input dtype; the
    object holds no torch or dask objects and pickles as plain numpy.

    Second moments are kept *centred* (the scatter around each class's own mean) and
    merged with Chan et al.'s parallel update::

        n = n_a + n_b,   d = mean_b - mean_a
        scatter = scatter_a + scatter_b + (n_a n_b / n) d d^T

    rather than as raw sums of squares, whose difference ``sum x^2 - n mean^2`` loses
    all precision for data far from the origin (embeddings with a large common
    offset).

    Parameters
    ----------
    classes : array-like of shape (n_classes,)
        Sorted, distinct class labels (numbers or strings).
    counts : array-like of shape (n_classes,)
        Number (or total weight) of samples of each class, positive.
    sums : array-like of shape (n_classes, n_features)
        Sum of the (weighted) samples of each class.
    scatters : array-like, default=None
        Centred second moments: ``(n_classes, n_features)`` (per-feature sums of
        squared deviations) for ``moments="diag"``, ``(n_classes, n_features,
        n_features)`` scatter matrices for ``moments="full"``; None for
        ``moments=None``.
    moments : {None, "diag", "full"}, default=None
        Which second moments are kept.
    dtype : numpy dtype, default=np.float64
        Floating dtype of the data they were computed from (float32 data gives
        float32 prototypes in the estimators built on these statistics); the
        statistics themselves are float64.

    Attributes
    ----------
    dtype : numpy.dtype
        As given (stored as its name, ``input_dtype``).
    n_classes : int
    n_features : int
    n_samples : float
        Total count (weight) over all classes.

    See Also
    --------
    skproto.NearestMeanClassifier.from_statistics : A classifier from statistics
        computed elsewhere.

    References
    ----------
    .. [1] T. F. Chan, G. H. Golub, R. J. LeVeque. "Updating Formulae and a Pairwise
       Algorithm for Computing Sample Variances", Technical Report STAN-CS-79-773,
       Stanford University, 1979.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.statistics import ClassStatistics
    >>> X = np.array([[1.0, 2.0], [3.0, 2.0], [10.0, 0.0], [12.0, 4.0]])
    >>> y = np.array(["a", "a", "b", "b"])
    >>> left = ClassStatistics.from_batch(X[:3], y[:3], moments="full")
    >>> right = ClassStatistics.from_batch(X[3:], y[3:], moments="full")
    >>> merged = left.merge(right)          # the same as one batch of all four rows
    >>> merged.classes, merged.counts
    (array(['a', 'b'], dtype='<U1'), array([2, 2]))
    >>> merged.means()
    array([[ 2.,  2.],
           [11.,  2.]])
    >>> merged.covariances("pooled")
    array([[1., 1.],
           [1., 2.]])
    """

    def __init__(self, classes, counts, sums, scatters=None, *, moments=None,
                 dtype=np.float64):
        if moments not in MOMENTS:
            raise ValueError(f"moments must be one of {MOMENTS}, got {moments!r}.")
        classes = np.asarray(classes)
        counts = np.asarray(counts)
        if counts.dtype.kind not in "iuf":
            raise TypeError(f"counts must be numbers, got dtype {counts.dtype}.")
        if counts.dtype.kind == "f":
            counts = counts.astype(np.float64, copy=False)
        else:
            counts = counts.astype(np.int64, copy=False)
        sums = np.asarray(sums, dtype=np.float64)
        if classes.ndim != 1 or counts.shape != classes.shape:
            raise ValueError("classes and counts must be 1-D arrays of the same length.")
        if sums.ndim != 2 or sums.shape[0] != classes.shape[0]:
            raise ValueError(
                f"sums must have shape (n_classes, n_features) = ({len(classes)}, ...), "
                f"got {sums.shape}."
            )
        if len(classes) > 1 and not np.all(classes[1:] > classes[:-1]):
            raise ValueError("classes must be sorted and distinct.")
        if not np.all(np.isfinite(counts)) or np.any(counts <= 0):
            raise ValueError("counts must be finite and positive.")
        n_classes, n_features = sums.shape
        if moments is None:
            if scatters is not None:
                raise ValueError("scatters given but moments=None.")
        else:
            expected = (n_classes, n_features) + ((n_features,) if moments == "full" else ())
            scatters = np.asarray(scatters, dtype=np.float64)
            if scatters.shape != expected:
                raise ValueError(
                    f"scatters must have shape {expected} for moments={moments!r}, got "
                    f"{scatters.shape}."
                )
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
        self.classes = classes
        self.counts = counts
        self.sums = sums
        self.scatters = scatters
        self.moments = moments
        # Kept as a string (not an np.dtype object), so that skops persists it as
        # a plain value.
        self.input_dtype = dtype.name

    @property
    def dtype(self):
        """Floating dtype of the data the statistics came from (np.dtype)."""
        return np.dtype(self.input_dtype)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_batch(cls, X, y, *, moments=None, sample_weight=None):
        """Statistics of one batch, in one chunked backend pass.

        ``X`` may also be a Dask array chunked by rows (``y`` and ``sample_weight``
        then Dask or in-memory arrays): the statistics of each block are computed
        where the block lives and merged by a tree reduction
        (:func:`dask.array.reduction`), so only statistics reach the caller.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            Finite samples.
        y : array-like or dask.array.Array of shape (n_samples,)
            Their class labels.
        moments : {None, "diag", "full"}, default=None
            Which second moments to keep (see the class docstring).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; a class whose weights sum to 0 is left out.
            ``counts`` is then float64 (integer without weights).

        Returns
        -------
        statistics : ClassStatistics

        Examples
        --------
        >>> from skproto.statistics import ClassStatistics
        >>> s = ClassStatistics.from_batch([[0.0], [2.0], [5.0]], [1, 1, 0], moments="diag")
        >>> s.classes, s.means().ravel(), s.covariances().ravel()
        (array([0, 1]), array([5., 1.]), array([0., 1.]))
        """
        if moments not in MOMENTS:
            raise ValueError(f"moments must be one of {MOMENTS}, got {moments!r}.")
        if is_dask_collection(X):  # per block on the workers, then a tree of merges
            return dask_adapters().class_statistics(
                X, y, moments=moments, sample_weight=sample_weight
            )
        X = check_array(X, dtype=[np.float64, np.float32], ensure_all_finite=True)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} samples but y has {y.shape[0]}; they must match."
            )
        if sample_weight is not None:
            sample_weight = column_or_1d(sample_weight).astype(np.float64)
            if sample_weight.shape[0] != X.shape[0]:
                raise ValueError("sample_weight must have one entry per sample.")
            if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
                raise ValueError("sample_weight must be finite and non-negative.")
        return cls._from_validated(X, y, moments=moments, sample_weight=sample_weight)

    @classmethod
    def _from_validated(cls, X, y, *, moments=None, sample_weight=None):
        """:meth:`from_batch` for input already checked (finite 2-D float X, 1-D y)."""
        if is_dask_collection(X):
            return dask_adapters().class_statistics(
                X, y, moments=moments, sample_weight=sample_weight
            )
        classes, codes = sorted_unique_labels(y)
        counts, sums, scatters = backend.class_moments(
            X, codes, len(classes), sample_weight=sample_weight, moments=moments,
            check_input=False,
        )
        if sample_weight is None:
            counts = np.rint(counts).astype(np.int64)
        else:
            keep = counts > 0
            classes, counts, sums = classes[keep], counts[keep], sums[keep]
            scatters = None if scatters is None else scatters[keep]
        return cls(classes, counts, sums, scatters, moments=moments, dtype=X.dtype)

    @classmethod
    def empty(cls, n_features, *, moments=None, dtype=np.float64):
        """Statistics of no sample at all: the neutral element of :meth:`merge`.

        Parameters
        ----------
        n_features : int
        moments : {None, "diag", "full"}, default=None
        dtype : numpy dtype, default=np.float64

        Returns
        -------
        statistics : ClassStatistics

        Examples
        --------
        >>> from skproto.statistics import ClassStatistics
        >>> ClassStatistics.empty(3).n_classes
        0
        """
        shape = {None: None, "diag": (0, n_features), "full": (0, n_features, n_features)}
        scatters = None if moments is None else np.zeros(shape[moments])
        return cls(np.array([], dtype=np.float64), np.array([], dtype=np.int64),
                   np.zeros((0, n_features)), scatters, moments=moments, dtype=dtype)

    # ------------------------------------------------------------------ merging

    def merge(self, other):
        """Statistics of the union of the two batches (exact, associative).

        Classes of only one side keep their statistics unchanged (bit for bit); a
        class new to ``self`` is inserted at its sorted position; for a class of
        both, counts and sums add and the scatters follow Chan's update.

        Parameters
        ----------
        other : ClassStatistics
            Statistics with the same ``n_features`` and ``moments``.

        Returns
        -------
        merged : ClassStatistics
            A new object; neither operand is modified.

        Examples
        --------
        >>> from skproto.statistics import ClassStatistics
        >>> a = ClassStatistics.from_batch([[0.0], [2.0]], [0, 0], moments="diag")
        >>> b = ClassStatistics.from_batch([[4.0]], [0], moments="diag")
        >>> a.merge(b).covariances().ravel()     # variance of 0, 2, 4
        array([2.666...])
        """
        if not isinstance(other, ClassStatistics):
            raise TypeError(f"Can only merge ClassStatistics, got {type(other).__name__}.")
        if other.n_features != self.n_features:
            raise ValueError(
                f"Cannot merge statistics of {self.n_features} and {other.n_features} "
                "features."
            )
        if other.moments != self.moments:
            raise ValueError(
                f"Cannot merge statistics with moments={self.moments!r} and "
                f"moments={other.moments!r}."
            )
        classes = union_labels(self.classes, other.classes)
        pos_a = _positions(classes, self.classes)
        pos_b = _positions(classes, other.classes)
        counts = np.zeros(len(classes), dtype=np.result_type(self.counts, other.counts))
        sums = np.zeros((len(classes), self.n_features))
        counts[pos_a] = self.counts
        sums[pos_a] = self.sums
        scatters = None
        if self.moments is not None:
            scatters = np.zeros((len(classes),) + self.scatters.shape[1:])
            scatters[pos_a] = self.scatters
        # Classes of both sides: Chan's update, before the counts and sums change.
        both = (
            np.isin(other.classes, self.classes)
            if self.n_classes and other.n_classes
            else np.zeros(other.n_classes, dtype=bool)
        )
        if self.moments is not None:
            scatters[pos_b[~both]] = other.scatters[~both]
            if both.any():
                p = pos_b[both]
                n_a = counts[p].astype(np.float64)
                n_b = other.counts[both].astype(np.float64)
                delta = other.sums[both] / n_b[:, None] - sums[p] / n_a[:, None]
                factor = (n_a * n_b / (n_a + n_b))[:, None]
                if self.moments == "diag":
                    correction = factor * delta**2
                else:
                    correction = factor[:, :, None] * delta[:, :, None] * delta[:, None, :]
                scatters[p] = scatters[p] + other.scatters[both] + correction
        counts[pos_b] += other.counts
        sums[pos_b] += other.sums
        return ClassStatistics(classes, counts, sums, scatters, moments=self.moments,
                               dtype=np.promote_types(self.dtype, other.dtype))

    # ------------------------------------------------------------------ heads

    @property
    def n_classes(self):
        return len(self.classes)

    @property
    def n_features(self):
        return self.sums.shape[1]

    @property
    def n_samples(self):
        return self.counts.sum()

    def means(self):
        """Class means, ``sums / counts``.

        Returns
        -------
        means : ndarray of shape (n_classes, n_features), float64

        Examples
        --------
        >>> from skproto.statistics import ClassStatistics
        >>> ClassStatistics.from_batch([[1.0], [3.0], [7.0]], [0, 0, 1]).means()
        array([[2.],
               [7.]])
        """
        return self.sums / self.counts[:, None]

    def covariances(self, kind="class", *, ddof=0):
        """Class, pooled within-class or total covariances.

        Parameters
        ----------
        kind : {"class", "pooled", "total"}, default="class"
            ``"class"``: one covariance per class, ``scatter_c / (n_c - ddof)``.
            ``"pooled"``: the shared within-class covariance, ``sum_c scatter_c /
            (N - ddof * n_classes)`` (the covariance of Mahalanobis / LDA-style
            classifiers). ``"total"``: the covariance of all samples around the
            overall mean, ``(sum_c scatter_c + sum_c n_c (m_c - m)(m_c - m)^T) /
            (N - ddof)``.
        ddof : int, default=0
            Delta degrees of freedom: 0 gives the maximum-likelihood (biased)
            estimate, as :func:`sklearn.covariance.empirical_covariance`; 1 the
            unbiased one, as :func:`numpy.cov`.

        Returns
        -------
        covariances : ndarray
            For ``moments="full"``: ``(n_classes, n_features, n_features)``
            (``"class"``) or ``(n_features, n_features)``. For ``moments="diag"``:
            per-feature variances, ``(n_classes, n_features)`` or ``(n_features,)``.

        Examples
        --------
        >>> from skproto.statistics import ClassStatistics
        >>> s = ClassStatistics.from_batch([[0.0], [2.0], [10.0], [14.0]], [0, 0, 1, 1],
        ...                                moments="diag")
        >>> s.covariances("class").ravel(), s.covariances("pooled"), s.covariances("total")
        (array([1., 4.]), array([2.5]), array([32.75]))
        """
        if self.moments is None:
            raise ValueError(
                "These statistics keep no second moments (moments=None); compute them "
                "with moments='diag' or 'full'."
            )
        if kind not in _COVARIANCE_KINDS:
            raise ValueError(f"kind must be one of {_COVARIANCE_KINDS}, got {kind!r}.")
        if self.n_classes == 0:
            raise ValueError("No statistics yet: there is no sample to estimate from.")
        counts = self.counts.astype(np.float64)
        extra = (slice(None),) + (None,) * (self.scatters.ndim - 1)
        if kind == "class":
            denominator = counts - ddof
            if np.any(denominator <= 0):
                raise ValueError(
                    f"A class has {counts.min():g} sample(s), too few for a covariance "
                    f"with ddof={ddof}."
                )
            return self.scatters / denominator[extra]
        within = self.scatters.sum(axis=0)
        total = counts.sum()
        if kind == "pooled":
            denominator = total - ddof * self.n_classes
        else:
            deviation = self.means() - self.sums.sum(axis=0) / total
            if self.moments == "diag":
                within = within + (counts[:, None] * deviation**2).sum(axis=0)
            else:
                within = within + (deviation.T * counts) @ deviation
            denominator = total - ddof
        if denominator <= 0:
            raise ValueError(
                f"{total:g} sample(s) in {self.n_classes} class(es) are too few for a "
                f"{kind} covariance with ddof={ddof}."
            )
        return within / denominator

    def __eq__(self, other):
        """Equal when every array is equal bit for bit (same dtypes, same moments)."""
        if not isinstance(other, ClassStatistics):
            return NotImplemented
        arrays = ("classes", "counts", "sums", "scatters")
        return (
            self.moments == other.moments
            and self.dtype == other.dtype
            and all(
                (getattr(self, a) is None and getattr(other, a) is None)
                or (
                    getattr(self, a) is not None
                    and getattr(other, a) is not None
                    and getattr(self, a).dtype == getattr(other, a).dtype
                    and np.array_equal(getattr(self, a), getattr(other, a))
                )
                for a in arrays
            )
        )

    __hash__ = None

    def __repr__(self):
        return (
            f"ClassStatistics(n_classes={self.n_classes}, n_features={self.n_features}, "
            f"n_samples={self.n_samples:g}, moments={self.moments!r})"
        )
