"""Gram statistics of random features: the mergeable core of a ridge head (RanPAC)."""

import numpy as np
import scipy.linalg
from sklearn.utils.validation import check_array, column_or_1d

from .. import backend
from ._class_statistics import _positions, sorted_unique_labels, union_labels


class GramStatistics:
    """Per-class counts and the Gram statistics ``G = H^T H``, ``Q = H^T Y``, mergeable.

    For features ``H = max(X @ W, 0)`` of a fixed projection ``W`` (RanPAC's random
    ReLU features) and ``Y`` the one-hot matrix of the labels, ``G`` and ``Q`` are the
    sufficient statistics of the ridge regression of ``Y`` on ``H``::

        W_o = (G + ridge * I)^{-1} Q          (n_components, n_classes)

    Both are sums over samples, so the statistics of disjoint batches :meth:`merge`
    exactly (up to float64 rounding) and associatively: ``G`` adds, and a class new to
    one side adds a column of ``Q`` at its sorted position (the column of a class absent
    from a batch is zero there). Everything is a float64 numpy array.

    ``G`` holds ``n_components ** 2`` float64 numbers: 800 MB for RanPAC's 10,000
    components, 32 MB for 2,000.

    Parameters
    ----------
    classes : array-like of shape (n_classes,)
        Sorted, distinct class labels.
    counts : array-like of shape (n_classes,)
        Number of samples of each class, positive.
    gram : array-like of shape (n_components, n_components)
        ``H^T H``.
    targets : array-like of shape (n_components, n_classes)
        ``H^T Y``: column ``c`` is the sum of the feature rows of class ``c``.
    dtype : numpy dtype, default=np.float64
        Floating dtype of the data the statistics came from (the statistics themselves
        are float64).

    Attributes
    ----------
    n_classes : int
    n_components : int
    n_samples : int

    See Also
    --------
    skproto.incremental.RanPAC : The classifier built on these statistics.
    skproto.backend.random_feature_gram : The kernel that computes them.
    ClassStatistics : Per-class counts, sums and scatters.

    References
    ----------
    .. [1] M. D. McDonnell, D. Gong, A. Parvaneh, E. Abbasnejad, A. van den Hengel.
       "RanPAC: Random Projections and Pre-trained Models for Continual Learning",
       NeurIPS 2023. Official code: https://github.com/RanPAC/RanPAC

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.statistics import GramStatistics
    >>> W = np.array([[1.0, -1.0], [0.5, 1.0]])           # 2 features -> 2 components
    >>> X = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    >>> left = GramStatistics.from_batch(X[:2], ["a", "b"], W)
    >>> right = GramStatistics.from_batch(X[2:], ["c"], W)
    >>> both = left.merge(right)                # the same as one batch of all three
    >>> both.classes, both.targets.shape
    (array(['a', 'b', 'c'], dtype='<U1'), (2, 3))
    >>> bool(np.allclose(both.gram, GramStatistics.from_batch(X, ["a", "b", "c"], W).gram))
    True
    >>> both.ridge_coefficients(1.0).shape      # (n_classes, n_components)
    (3, 2)
    """

    def __init__(self, classes, counts, gram, targets, *, dtype=np.float64):
        classes = np.asarray(classes)
        counts = np.asarray(counts)
        if counts.dtype.kind not in "iu":
            raise TypeError(f"counts must be integers, got dtype {counts.dtype}.")
        counts = counts.astype(np.int64, copy=False)
        gram = np.asarray(gram, dtype=np.float64)
        targets = np.asarray(targets, dtype=np.float64)
        if classes.ndim != 1 or counts.shape != classes.shape:
            raise ValueError("classes and counts must be 1-D arrays of the same length.")
        if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
            raise ValueError(f"gram must be a square matrix, got shape {gram.shape}.")
        if targets.shape != (gram.shape[0], len(classes)):
            raise ValueError(
                f"targets must have shape (n_components, n_classes) = ({gram.shape[0]}, "
                f"{len(classes)}), got {targets.shape}."
            )
        if len(classes) > 1 and not np.all(classes[1:] > classes[:-1]):
            raise ValueError("classes must be sorted and distinct.")
        if np.any(counts <= 0):
            raise ValueError("counts must be positive.")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
        self.classes = classes
        self.counts = counts
        self.gram = gram
        self.targets = targets
        # Kept as a string (not an np.dtype object), so that skops persists it as a
        # plain value.
        self.input_dtype = dtype.name

    @property
    def dtype(self):
        """Floating dtype of the data the statistics came from (np.dtype)."""
        return np.dtype(self.input_dtype)

    @classmethod
    def from_batch(cls, X, y, projection):
        """Statistics of one batch, ``H = max(X @ projection, 0)``, in one chunked pass.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Finite samples.
        y : array-like of shape (n_samples,)
            Their class labels.
        projection : array-like of shape (n_features, n_components)
            The fixed projection ``W``.

        Returns
        -------
        statistics : GramStatistics

        Examples
        --------
        >>> from skproto.statistics import GramStatistics
        >>> s = GramStatistics.from_batch([[1.0], [2.0]], [0, 1], [[1.0, -1.0]])
        >>> s.gram, s.targets
        (array([[5., 0.],
               [0., 0.]]), array([[1., 2.],
               [0., 0.]]))
        """
        X = check_array(X, dtype=[np.float64, np.float32], ensure_all_finite=True)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} samples but y has {y.shape[0]}; they must match."
            )
        projection = check_array(projection, dtype=X.dtype, input_name="projection")
        if projection.shape[0] != X.shape[1]:
            raise ValueError(
                f"projection must have shape (n_features, n_components) = ({X.shape[1]}, "
                f"...), got {projection.shape}."
            )
        return cls._from_validated(X, y, projection)

    @classmethod
    def _from_validated(cls, X, y, projection):
        """:meth:`from_batch` for input already checked (projection in X's dtype)."""
        classes, codes = sorted_unique_labels(y)
        gram, targets = backend.random_feature_gram(
            X, projection, codes, len(classes), check_input=False
        )
        counts = np.bincount(codes, minlength=len(classes)).astype(np.int64)
        return cls(classes, counts, gram, targets, dtype=X.dtype)

    @classmethod
    def empty(cls, n_components, *, dtype=np.float64):
        """Statistics of no sample: the neutral element of :meth:`merge`.

        Parameters
        ----------
        n_components : int
        dtype : numpy dtype, default=np.float64

        Returns
        -------
        statistics : GramStatistics

        Examples
        --------
        >>> from skproto.statistics import GramStatistics
        >>> GramStatistics.empty(4).n_classes
        0
        """
        return cls(np.array([], dtype=np.float64), np.array([], dtype=np.int64),
                   np.zeros((n_components, n_components)), np.zeros((n_components, 0)),
                   dtype=dtype)

    def merge(self, other):
        """Statistics of the union of the two batches (exact, associative).

        Parameters
        ----------
        other : GramStatistics
            Statistics of the same projection (same ``n_components``).

        Returns
        -------
        merged : GramStatistics
            A new object; neither operand is modified.

        Examples
        --------
        >>> from skproto.statistics import GramStatistics
        >>> a = GramStatistics.from_batch([[1.0]], [1], [[1.0]])
        >>> b = GramStatistics.from_batch([[2.0]], [0], [[1.0]])
        >>> a.merge(b).targets                     # class 0 inserted before class 1
        array([[2., 1.]])
        """
        if not isinstance(other, GramStatistics):
            raise TypeError(f"Can only merge GramStatistics, got {type(other).__name__}.")
        if other.n_components != self.n_components:
            raise ValueError(
                f"Cannot merge statistics of {self.n_components} and {other.n_components} "
                "components."
            )
        classes = union_labels(self.classes, other.classes)
        pos_a = _positions(classes, self.classes)
        pos_b = _positions(classes, other.classes)
        counts = np.zeros(len(classes), dtype=np.int64)
        targets = np.zeros((self.n_components, len(classes)))
        counts[pos_a] = self.counts
        targets[:, pos_a] = self.targets
        counts[pos_b] += other.counts
        targets[:, pos_b] += other.targets
        return GramStatistics(classes, counts, self.gram + other.gram, targets,
                              dtype=np.promote_types(self.dtype, other.dtype))

    @property
    def n_classes(self):
        return len(self.classes)

    @property
    def n_components(self):
        return self.gram.shape[0]

    @property
    def n_samples(self):
        return int(self.counts.sum())

    def ridge_coefficients(self, ridge):
        """The ridge head ``((G + ridge I)^{-1} Q)^T``, one row per class.

        Solved by a Cholesky factorisation (``G + ridge I`` is symmetric positive
        definite for ``ridge > 0``), with an LU solve as fallback when rounding makes
        the factorisation fail (a tiny ridge on a rank-deficient ``G``); the official
        code uses ``torch.linalg.solve`` (LU).

        Parameters
        ----------
        ridge : float
            Positive regularisation ``lambda``.

        Returns
        -------
        coef : ndarray of shape (n_classes, n_components), float64

        Examples
        --------
        >>> from skproto.statistics import GramStatistics
        >>> s = GramStatistics.from_batch([[1.0], [2.0]], [0, 1], [[1.0]])
        >>> s.ridge_coefficients(1.0)              # (5 + 1)^{-1} [1, 2]
        array([[0.1666...],
               [0.3333...]])
        """
        ridge = float(ridge)
        if not ridge > 0 or not np.isfinite(ridge):
            raise ValueError(f"ridge must be a positive finite number, got {ridge!r}.")
        A = self.gram.copy()
        A.flat[:: self.n_components + 1] += ridge
        try:
            # cho_factor + cho_solve rather than solve(assume_a="pos"), which also
            # estimates the condition number (measured 3x slower at 2,000 components).
            factor = scipy.linalg.cho_factor(A, overwrite_a=True, check_finite=False)
            solution = scipy.linalg.cho_solve(factor, self.targets, check_finite=False)
        except np.linalg.LinAlgError:
            A = self.gram.copy()
            A.flat[:: self.n_components + 1] += ridge
            solution = np.linalg.solve(A, self.targets)
        return solution.T

    def __eq__(self, other):
        """Equal when every array is equal bit for bit (and the dtypes match)."""
        if not isinstance(other, GramStatistics):
            return NotImplemented
        return self.dtype == other.dtype and all(
            getattr(self, a).dtype == getattr(other, a).dtype
            and np.array_equal(getattr(self, a), getattr(other, a))
            for a in ("classes", "counts", "gram", "targets")
        )

    __hash__ = None

    def __repr__(self):
        return (
            f"GramStatistics(n_classes={self.n_classes}, n_components={self.n_components}, "
            f"n_samples={self.n_samples})"
        )
