"""RanPAC: a ridge head on random ReLU features, with exact class-incremental updates."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array

from .. import backend
from .._base import ValidatedPredictMixin, validate_training_data
from ..statistics import GramStatistics
from ..statistics._class_statistics import sorted_unique_labels
from ..utils._state import reset_fitted_state, transactional

#: The candidates of ``ridge="auto"``: ``10.0 ** np.arange(-8, 9)``, as the official
#: ``optimise_ridge_parameter``.
RIDGE_GRID = 10.0 ** np.arange(-8, 9)

# Fraction of the selection batch the candidates are fitted on (the rest is held out),
# as the official code's ``int(Features.shape[0] * 0.8)``.
_TRAIN_FRACTION = 0.8

# Candidates below this fraction of the largest eigenvalue of G are not tried: G is
# rank-deficient when a task has fewer samples than components, and G + ridge I then
# has a condition number above 1e10, too large for the solve of the head (the
# eigendecomposition of the selection is exact there, the final solve is not). The
# official code solves in float32, where such candidates come out as noise and lose
# the selection anyway.
_MIN_RELATIVE_RIDGE = 1e-10


def _ridge_path_mse(X, y, projection, rng, ridges=RIDGE_GRID):
    """Held-out mean squared error of the ridge head for every candidate ridge.

    The official ``optimise_ridge_parameter``: fit ``(G + lambda I)^{-1} Q`` on the
    first 80% of the (shuffled) batch, predict the one-hot targets of the last 20%,
    score each ``lambda`` by the mean squared error over all held-out entries. Here
    the rows are shuffled with ``rng`` (the official code relies on a shuffled data
    loader), and all candidates share one eigendecomposition: of the kernel matrix
    ``H H^T`` when the training part has at most ``n_components`` rows, of ``G``
    otherwise. Both give ``H_ho (G + lambda I)^{-1} Q`` exactly (push-through
    identity), at ``O(min(n, M)^3)`` instead of 17 solves of size ``M``.

    Returns the array of errors, one per ridge (all equal if nothing is left to fit
    on: then ``argmin`` picks the first candidate, as the official code would);
    candidates below ``_MIN_RELATIVE_RIDGE`` times the largest eigenvalue get
    ``inf``.
    """
    ridges = np.asarray(ridges, dtype=np.float64)
    classes, codes = sorted_unique_labels(y)
    order = rng.permutation(X.shape[0])
    n_train = int(X.shape[0] * _TRAIN_FRACTION)
    train, held_out = order[:n_train], order[n_train:]
    Y = np.eye(len(classes))[codes]
    if n_train == 0 or len(held_out) == 0:
        return np.zeros(len(ridges))
    # Float64 throughout: the smallest candidates make the solve ill-conditioned.
    X64 = X.astype(np.float64)
    W64 = projection.astype(np.float64)
    n_components = W64.shape[1]
    if n_train <= n_components:
        H_train = backend.random_features(X64[train], W64, check_input=False)
        eigval, U = np.linalg.eigh(H_train @ H_train.T)
        A = backend.random_feature_scores(X64[held_out], W64, H_train, check_input=False) @ U
        B = U.T @ Y[train]
    else:
        G, Q = backend.random_feature_gram(
            X64[train], W64, codes[train], len(classes), check_input=False
        )
        eigval, V = np.linalg.eigh(G)
        A = backend.random_feature_scores(X64[held_out], W64, V.T, check_input=False)
        B = V.T @ Q
    # G (or H H^T) is positive semi-definite: negative eigenvalues are rounding.
    eigval = np.maximum(eigval, 0)
    Y_held_out = Y[held_out]
    floor = _MIN_RELATIVE_RIDGE * eigval.max()
    return np.array([
        np.mean((A @ (B / (eigval + ridge)[:, None]) - Y_held_out) ** 2)
        if ridge >= floor else np.inf
        for ridge in ridges
    ])


class RanPAC(ValidatedPredictMixin, ClassifierMixin, BaseEstimator):
    """Random-projection ridge classifier on frozen embeddings, learning classes incrementally.

    RanPAC (McDonnell et al., NeurIPS 2023), as its official code computes it
    (``RanPAC.py``: ``setup_RP``, ``replace_fc``, ``optimise_ridge_parameter``), for
    a frozen encoder: a fixed random Gaussian projection ``W`` of shape
    ``(n_features, n_components)`` and a ReLU give the features
    ``H = max(X W, 0)``; the head is the ridge regression of the one-hot labels
    ``Y`` on ``H``::

        G = sum H^T H,   Q = sum H^T Y,   W_o = (G + ridge I)^{-1} Q,
        decision_function(x) = max(x W, 0) W_o,   predict = argmax.

    ``G`` and ``Q`` are sums over samples (:class:`~skproto.statistics.GramStatistics`),
    so :meth:`partial_fit` merges the batch's statistics exactly and re-solves:
    for a fixed ``ridge``, any split of the data into :meth:`partial_fit` calls gives
    the model of one :meth:`fit` (up to float rounding). A batch may bring new classes
    (they get a column of ``Q``) or more samples of known ones. Only ``G``, ``Q``, the
    projection and the head are kept, never a sample (exemplar-free).

    ``H`` and the accumulation run in the backend
    (:func:`skproto.backend.random_feature_gram`, in row chunks of
    ``working_memory``, accumulated in float64), so ``set_config(backend="torch")``
    runs them on a GPU; the solve uses SciPy (Cholesky).

    **Memory and time.** ``G`` holds ``n_components ** 2`` float64 numbers: 800 MB at
    the official 10,000 components (and as much again during the solve), 32 MB at
    2,000. Each :meth:`partial_fit` costs ``n_samples * n_components ** 2`` for the
    Gram and ``n_components ** 3 / 3`` for the solve (about 10 s at 10,000 components
    on one CPU core); choose ``n_components`` to fit the machine.

    **Choice of the ridge** (``ridge="auto"``): the official
    ``optimise_ridge_parameter``. Each candidate in ``10 ** [-8, ..., 8]`` is fitted on
    80% of the batch and scored by the mean squared error of its predicted one-hot
    targets on the other 20% (the official code scores the MSE, not the accuracy); the
    smallest error wins. The official code runs this at every task, on that task's
    data alone, and solves the accumulated ``G`` with it; the issue's protocol, and
    the default here, selects it once, on the first task (the first :meth:`fit` or
    :meth:`partial_fit`), and keeps it: the model then depends only on the
    accumulated statistics, and the ridge does not jump with the composition of the
    latest task. ``reselect_ridge=True`` gives the official behaviour. The rows are
    shuffled (``random_state``) before the 80 / 20 split, as the official data loader
    shuffles them. Candidates smaller than ``1e-10`` times the largest eigenvalue of
    the selection's ``G`` are skipped: with fewer samples than components ``G`` is
    rank-deficient and ``G + ridge I`` would be too ill-conditioned for the solve (the
    official float32 solve turns them into noise, so they lose its selection too).

    Parameters
    ----------
    n_components : int, default=10000
        Dimension ``M`` of the random projection (official: 10,000). ``G`` needs
        ``8 * M ** 2`` bytes.
    ridge : "auto" or float, default="auto"
        The ridge ``lambda``; ``"auto"`` selects it as described above.
    reselect_ridge : bool, default=False
        With ``ridge="auto"``: select the ridge again at every :meth:`partial_fit`, on
        that batch alone (the official code's behaviour), instead of once on the first
        task.
    random_state : int, RandomState instance or None, default=None
        Seeds the projection (``check_random_state(random_state).standard_normal(
        (n_features, n_components))``, in the training dtype) and then the shuffling
        of the ridge selection.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Classes seen so far, sorted (a new class is inserted at its sorted position).
    projection_ : ndarray of shape (n_features, n_components)
        The fixed random projection ``W``, in the training dtype.
    statistics_ : GramStatistics
        The accumulated ``G``, ``Q`` and class counts.
    ridge_ : float
        The ridge used by the current head.
    ridge_mse_ : ndarray of shape (17,) or None
        Held-out mean squared error of each candidate of ``RIDGE_GRID`` in the last
        selection (``inf`` for skipped candidates; None for a fixed ``ridge``).
    coef_ : ndarray of shape (n_classes, n_components)
        The head ``W_o^T``, in the training dtype.
    n_features_in_ : int
        Number of features seen during `fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during `fit`, when X has feature names that are
        all strings.

    See Also
    --------
    skproto.statistics.GramStatistics : The mergeable statistics.
    NearestMeanClassifier : One prototype per class, no projection (SimpleCIL).
    FeCAM : Per-class Mahalanobis distances.

    References
    ----------
    .. [1] M. D. McDonnell, D. Gong, A. Parvaneh, E. Abbasnejad, A. van den Hengel.
       "RanPAC: Random Projections and Pre-trained Models for Continual Learning",
       NeurIPS 2023. Official code: https://github.com/RanPAC/RanPAC

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.incremental import RanPAC
    >>> rng = np.random.default_rng(0)
    >>> centers = 3 * rng.normal(size=(4, 8))
    >>> X = np.repeat(centers, 30, axis=0) + rng.normal(size=(120, 8))
    >>> y = np.repeat([0, 1, 2, 3], 30)
    >>> clf = RanPAC(n_components=200, random_state=0)
    >>> clf = clf.partial_fit(X[y < 2], y[y < 2])        # first task: ridge selected
    >>> clf = clf.partial_fit(X[y >= 2], y[y >= 2])      # new classes, same ridge
    >>> clf.classes_, clf.coef_.shape
    (array([0, 1, 2, 3]), (4, 200))
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "ridge": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "reselect_ridge": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, n_components=10000, *, ridge="auto", reselect_ridge=False,
                 random_state=None):
        self.n_components = n_components
        self.ridge = ridge
        self.reselect_ridge = reselect_ridge
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    @transactional
    def fit(self, X, y):
        """Fit from scratch (a new projection and statistics), forgetting earlier fits.

        If the call fails (bad input, an interrupt), an earlier fit is left exactly as
        it was.

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
        """Merge a batch into ``G`` and ``Q`` and re-solve the head; new classes are added.

        The first call on an unfitted model draws the projection (and, with
        ``ridge="auto"``, selects the ridge on this batch). If the call fails, the
        fitted state is left exactly as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training embeddings; the number of features must match earlier calls.
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
        return self._learn(X, y)

    def _learn(self, X, y):
        first = not hasattr(self, "statistics_")
        X, y = validate_training_data(
            self, X, y, reset=first,
            fitted_dtype=None if first else self.projection_.dtype,
        )
        rng = check_random_state(self.random_state)
        if first:
            projection = rng.standard_normal((X.shape[1], self.n_components)).astype(
                X.dtype
            )
        else:
            projection = self.projection_
        batch = GramStatistics._from_validated(X, y, projection)
        statistics = batch if first else self.statistics_.merge(batch)
        if self.ridge != "auto":
            ridge, mse = float(self.ridge), None
        elif first or self.reselect_ridge or getattr(self, "ridge_mse_", None) is None:
            mse = _ridge_path_mse(X, y, projection, rng)
            ridge = float(RIDGE_GRID[np.argmin(mse)])
        else:
            ridge, mse = self.ridge_, self.ridge_mse_
        self._set_state(statistics, projection, ridge, mse)
        return self

    def _set_state(self, statistics, projection, ridge, mse):
        # The head is solved before anything is assigned.
        coef = statistics.ridge_coefficients(ridge).astype(projection.dtype)
        self.projection_ = projection
        self.statistics_ = statistics
        self.classes_ = statistics.classes
        self.ridge_ = ridge
        self.ridge_mse_ = mse
        self.coef_ = coef

    @classmethod
    def from_statistics(cls, statistics, projection, **params):
        """A fitted classifier from Gram statistics computed elsewhere.

        For example per partition on a cluster, all with the same ``projection``, and
        merged there: the result equals :meth:`fit` on all the data with that
        projection. ``ridge`` must be a number (the automatic selection needs samples).

        Parameters
        ----------
        statistics : GramStatistics
            Statistics of at least one class.
        projection : array-like of shape (n_features, n_components)
            The projection the statistics were computed with.
        **params : dict
            Constructor parameters (``ridge`` a float).

        Returns
        -------
        estimator : RanPAC
            Fitted (``n_features_in_`` from the projection); :meth:`partial_fit`
            continues from the statistics.
        """
        if not isinstance(statistics, GramStatistics):
            raise TypeError(
                f"statistics must be a GramStatistics, got {type(statistics).__name__}."
            )
        if statistics.n_classes == 0:
            raise ValueError("statistics must hold at least one class.")
        estimator = cls(**params)
        estimator._validate_params()
        if estimator.ridge == "auto":
            raise ValueError(
                "from_statistics needs a numeric ridge: ridge='auto' selects it on "
                "held-out samples, which statistics do not keep."
            )
        projection = check_array(projection, dtype=[np.float64, np.float32],
                                 input_name="projection")
        if projection.shape[1] != statistics.n_components:
            raise ValueError(
                f"projection has {projection.shape[1]} components but the statistics "
                f"{statistics.n_components}."
            )
        estimator._set_state(statistics, projection, float(estimator.ridge), None)
        estimator.n_features_in_ = projection.shape[0]
        return estimator

    def _predict_dtype(self):
        return self.projection_.dtype

    def _scores(self, X):
        X = self._validate_X_predict(X)
        return backend.random_feature_scores(X, self.projection_, self.coef_, check_input=False)

    def decision_function(self, X):
        """Ridge outputs ``max(x W, 0) W_o`` of each sample, one column per class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            Columns follow ``classes_``. With exactly two classes, scikit-learn's
            binary convention: ``s[:, 1] - s[:, 0]``; with one class, its column.
        """
        S = self._scores(X)
        if S.shape[1] == 2:
            return S[:, 1] - S[:, 0]
        if S.shape[1] == 1:
            return S[:, 0]
        return S

    def predict(self, X):
        """Class with the largest ridge output (the first class on exact ties).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        scores = self._scores(X)
        return self.classes_[np.argmax(scores, axis=1)]
