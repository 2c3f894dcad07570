"""Out-of-distribution detection with a mixture of prototypes per class (PALM)."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from .. import backend
from .._base import ValidatedPredictMixin, validate_training_data
from ..backend import l2_normalize as _l2_normalize
from ..statistics import ClassStatistics
from ..utils._dask import dask_adapters, is_dask_collection
from ..utils._state import reset_fitted_state, transactional
from ._outlier_api import OutlierDetectorMixin

# SSD+ / PALM add this to the per-feature standard deviation before dividing.
_STD_EPS = 1e-10

# These two scores never use the fitted prototypes; they have their own estimators.
_DEPRECATED_SCORES = {
    "mahalanobis": (
        "ood_score='mahalanobis' is deprecated and will be removed: it does not use the "
        "prototypes. Use skproto.MahalanobisOODDetector(method='ssd', "
        "covariance='empirical') for the same score (plus shrinkage, class-conditional "
        "scores and partial_fit)."
    ),
    "knn": (
        "ood_score='knn' is deprecated and will be removed: it does not use the "
        "prototypes. Use skproto.KNNOODDetector(n_neighbors=...) for the same score "
        "(and its default k that grows with the training set)."
    ),
}


def _init_prototypes(Xn, codes, n_groups, n_prototypes, init, rng):
    """Unit-norm initial prototypes, ``n_prototypes`` per group, group-major order."""
    n_features = Xn.shape[1]
    if init == "uniform":
        # The official PALM code: torch.rand(n_protos, feat_dim), L2-normalised.
        return _l2_normalize(
            rng.random_sample((n_groups * n_prototypes, n_features)).astype(Xn.dtype)
        )
    blocks = []
    for g in range(n_groups):
        Xg = Xn[codes == g]
        if Xg.shape[0] >= n_prototypes:
            # In float64: scikit-learn computes float32 distances in float64 anyway,
            # converting X chunk by chunk at every step (same seeds, half the time).
            Xg64 = Xg.astype(np.float64)
            centers, _ = kmeans_plusplus(
                Xg64, n_prototypes, x_squared_norms=np.einsum("ij,ij->i", Xg64, Xg64),
                random_state=rng,
            )
        else:
            # Fewer samples than prototypes: every sample seeds one or more of them.
            centers = Xg[np.arange(n_prototypes) % Xg.shape[0]]
        blocks.append(centers)
    return _l2_normalize(np.concatenate(blocks).astype(Xn.dtype, copy=False))


def _mahalanobis_statistics(Xn, center):
    """Location and whitening factor of the class-agnostic Mahalanobis score.

    Transcribes the score of the official PALM evaluation
    (``util/evaluations/mahalanobis.py``, itself from SSD+): on L2-normalised
    features ``f``, standardise ``s = (f - mean) / (std + 1e-10)``, take the biased
    covariance ``C`` of ``s`` and its pseudo-inverse, score
    ``-(s - c)^T pinv(C) (s - c)``. ``c`` is the mean of ``s`` (zero, SSD+) for
    ``center="mean"``, or the mean of the *unstandardised* ``f`` for
    ``center="palm"``, as PALM's released code subtracts it.

    The mean and covariance of ``f`` come from one class of
    :class:`~skproto.statistics.ClassStatistics` (``moments="full"``); since ``s``
    is ``f`` shifted and scaled per feature, ``C = diag(1/sd) cov(f) diag(1/sd)`` and
    the mean of ``s`` is zero.

    Returns ``location`` (in the space of ``f``) and ``W`` with ``W @ W.T`` equal to
    ``diag(1/sd) pinv(C) diag(1/sd)``, so the score is
    ``-||(f - location) @ W||^2``.
    """
    stats = ClassStatistics._from_validated(
        Xn, np.zeros(Xn.shape[0], dtype=np.int64), moments="full"
    )
    return _mahalanobis_from_statistics(stats, center, Xn.dtype)


def _mahalanobis_from_statistics(stats, center, dtype):
    """:func:`_mahalanobis_statistics` from the full statistics of the normalised rows."""
    mean = stats.means()[0]
    cov_f = stats.covariances("total")
    sd = np.sqrt(np.maximum(np.diag(cov_f), 0)) + _STD_EPS
    cov = cov_f / np.outer(sd, sd)
    # pinv(C) for a symmetric C, with numpy's default cut-off (1e-15 * largest).
    eigval, eigvec = np.linalg.eigh(cov)
    keep = eigval > 1e-15 * np.abs(eigval).max()
    L = eigvec[:, keep] / np.sqrt(eigval[keep])
    # s's mean is zero (SSD+); PALM's released code subtracts f's mean from s.
    c = np.zeros_like(mean) if center == "mean" else mean
    location = mean + sd * c
    W = L / sd[:, None]
    return location.astype(dtype), W.astype(dtype)


class MixturePrototypeOODDetector(
    ValidatedPredictMixin, OutlierDetectorMixin, OutlierMixin, BaseEstimator
):
    """Out-of-distribution detector with a mixture of prototypes per class (PALM).

    Each in-distribution class is modelled by ``n_prototypes`` unit-norm prototypes
    fitted on the L2-normalised embeddings with the assignment and update rule of
    PALM (Lu et al., ICLR 2024), as its official code computes them
    (``util/loss_functions.py``, ``PALM.sinkhorn`` and ``PALM.mle_loss``). For every
    mini-batch ``z`` (unit rows) and prototypes ``P`` (all classes stacked):

    1. ``Q = exp(z P^T / epsilon)``, scaled by ``sinkhorn_iter`` Sinkhorn-Knopp
       iterations (prototypes to equal mass, then samples to equal mass) over *all*
       prototypes, as :func:`skproto.backend.sinkhorn`;
    2. ``Q`` masked to the prototypes of each sample's own class;
    3. only the ``top_k`` largest entries of each row kept;
    4. rows, then columns normalised to sum 1 (``W``);
    5. ``P <- normalize(momentum * P + (1 - momentum) * W^T z)``.

    The whole loop (shuffles, batches, steps 1-5) runs in the backend
    (:func:`skproto.backend.balanced_prototypes`, step 1-4 of one batch being
    :func:`skproto.backend.balanced_assignment`), so ``set_config(backend="torch")``
    runs it with PyTorch (CPU or GPU), the data and prototypes staying on the device
    for the whole fit. A pass over the shuffled data is one iteration; fitting stops
    after ``max_iter`` passes or once the prototypes have stopped drifting (see
    ``tol``). The mini-batch GEMMs are small, so on the numpy backend they run on one
    BLAS thread (as in scikit-learn's ``KMeans``; more threads than free cores make
    them wait on each other), scoped to the fit; the torch backend does the same on
    a CPU device.
    ``fit(X)`` without labels is PALM's unsupervised setting: one pool of
    ``n_prototypes`` prototypes and no class mask.

    **What of PALM is reproduced, and what is not.** PALM trains an encoder with
    two losses (a maximum-likelihood loss on the prototype mixture, temperature 0.1,
    and a prototype contrastive loss); the prototypes are EMA buffers updated by
    steps 1-5 on the encoder's current features. Here the encoder is frozen (the
    embeddings are given), so there is no loss and no gradient: what is fitted are
    the prototypes alone, by exactly steps 1-5 over mini-batches of the fixed
    features. Departures, all forced by frozen features or chosen for them:
    one view per sample (PALM concatenates two augmented views); the prototypes
    start from k-means++ seeds of each class (``init="k-means++"``) rather than
    PALM's ``torch.rand`` directions (``init="uniform"`` reproduces that), because
    with a fixed encoder the prototypes must come to the data rather than the data
    to the prototypes; the default ``momentum`` is 0.99 instead of 0.999, as the
    fixed point of the update does not depend on it and 0.999 needs thousands of
    steps to move (PALM runs 500 epochs). Prototypes are stored class-major
    (rows ``c * n_prototypes ... (c + 1) * n_prototypes - 1`` belong to
    ``classes_[c]``; PALM interleaves them, ``j % n_classes``).

    **Scores** (``ood_score``, returned by :meth:`score_samples`; higher = more
    in-distribution), all on the L2-normalised embedding ``z``:

    - ``"prototype"``: ``max_j cos(z, p_j)``, the cosine similarity to the nearest
      prototype of any class. With ``n_prototypes=1`` each prototype's fixed point
      is the normalised mean of its class's normalised embeddings, so this is then
      the max-cosine score to the class means (up to the EMA's mini-batch noise).
    - ``"mahalanobis"``: the score of PALM's released evaluation (SSD+):
      class-agnostic ``-(s - c)^T pinv(C) (s - c)`` on the standardised normalised
      features ``s``, ``C`` their biased covariance (see ``mahalanobis_center``). It
      does not use the prototypes.
    - ``"knn"``: the cosine similarity to the ``n_neighbors``-th nearest training
      embedding, the KNN+ score of Sun et al. (2022) (which reports the negative
      Euclidean distance of normalised vectors, ``-sqrt(2 - 2 cos)``: the same
      ranking). It stores the normalised training set and does not use the
      prototypes.

    Parameters
    ----------
    n_prototypes : int, default=6
        Prototypes per class (PALM's ``cache_size``, 6). In unsupervised mode, the
        size of the single pool.
    top_k : int or None, default=5
        Each sample updates only its ``top_k`` most strongly assigned prototypes
        (PALM's ``k``, 5). Values above ``n_prototypes`` act as ``n_prototypes``
        (as PALM's ``min(k, cache_size)``); None keeps all (PALM's ``k=0``).
    epsilon : float, default=0.05
        Entropic regularisation of the Sinkhorn assignment (PALM: 0.05).
    sinkhorn_iter : int, default=3
        Sinkhorn-Knopp iterations (PALM: 3).
    momentum : float, default=0.99
        EMA momentum of the prototype update (PALM: 0.999 over 500 epochs of a
        trained encoder; see above).
    max_iter : int, default=50
        Maximum number of passes over the data. A pass makes
        ``ceil(n_samples / batch_size)`` EMA steps: with few samples, lower
        ``momentum`` or ``batch_size`` rather than raising ``max_iter``.
    batch_size : int, default=512
        Mini-batch size of the assignment (PALM: 512).
    tol : float, default=0.02
        Stop after a pass whose *drift* is at most ``tol``. With ``delta_t`` the
        movement of the prototypes over pass ``t`` and ``rate = 1 - momentum **
        n_batches`` (the fraction of the way to its target that the EMA covers in
        one pass), the drift is ``sqrt(max(0, mean_j <delta_t[j], delta_{t-1}[j]>))
        / rate``: the part of a pass's movement that continues the previous pass's,
        root-mean-square over the prototypes, as an estimate of the distance left to
        the fixed point. Mini-batch noise moves prototypes back and forth and drops
        out of it, where the largest raw movement stays at the noise floor (about
        0.04 with 6 prototypes a class on the Fashion-MNIST embeddings of
        ``benchmarks/bench_ood.py``, so that every fit ran ``max_iter`` passes). The
        default was chosen on those embeddings: it stops the three prototype fits of
        that benchmark after 27-41 passes instead of 50, with AUROCs within 0.005
        of the 50-pass ones (+0.0037, -0.0041, +0.0031; the AUROC of 6 prototypes a
        class peaks near pass 15 and then decreases slowly to that of the fixed
        point, so fitting further is no better). If ``max_iter`` ends the fit first, a
        :class:`~sklearn.exceptions.ConvergenceWarning` is raised. ``tol=0`` runs
        ``max_iter`` passes (unless the prototypes stop exactly), with that warning.
    init : {"k-means++", "uniform"}, default="k-means++"
        ``"k-means++"``: k-means++ seeds among the normalised samples of each class
        (every sample seeds one or more prototypes if a class has fewer than
        ``n_prototypes``). ``"uniform"``: the official code's random directions in
        the positive orthant (``torch.rand``, normalised).
    ood_score : {"prototype", "mahalanobis", "knn"}, default="prototype"
        Which OOD score :meth:`score_samples` returns (see above). ``"mahalanobis"``
        and ``"knn"`` are deprecated (a ``FutureWarning`` at fit; they keep working):
        they ignore the prototypes, so the PALM fit is wasted on them; use
        :class:`~skproto.ood.MahalanobisOODDetector` (``method="ssd"``) and
        :class:`~skproto.ood.KNNOODDetector`.
    n_neighbors : int, default=50
        ``k`` of the ``"knn"`` score (KNN+ uses 50 on CIFAR-10); at most the number
        of training samples (``n_neighbors_``).
    mahalanobis_center : {"mean", "palm"}, default="mean"
        Centre of the ``"mahalanobis"`` score in the standardised space. ``"mean"``:
        the mean of the standardised features (zero), as SSD+ and the PALM paper
        describe the score. ``"palm"``: the mean of the normalised features *before*
        standardisation, which PALM's released ``maha_score`` subtracts (``z = X -
        mean_feat`` with ``X`` already standardised); offered to reproduce its
        numbers. Not the default because it does not centre the distribution.
    contamination : "auto" or float, default="auto"
        Sets ``offset_`` as in :class:`~sklearn.ensemble.IsolationForest`: the
        ``contamination`` quantile of :meth:`score_samples` on the training data,
        so that this fraction of the training samples is predicted -1. ``"auto"``
        means 0.05 for every score: the threshold that keeps 95% of the
        in-distribution training data, the operating point of the FPR@95%TPR
        metric (these scores have no threshold fixed by theory, unlike the
        isolation forest's 0.5). For ``"knn"`` each training sample is its own
        nearest neighbour in that computation, so the threshold is slightly
        optimistic; prefer a float from validation data if it matters.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and the shuffling of the mini-batches.

    Attributes
    ----------
    prototypes_ : ndarray of shape (n_classes * n_prototypes, n_features)
        Unit-norm prototypes, class-major, in the training dtype.
    prototype_classes_ : ndarray of shape (n_classes * n_prototypes,) or None
        Class label of each prototype (None after ``fit(X)`` without labels).
    classes_ : ndarray of shape (n_classes,) or None
        Sorted class labels (None after ``fit(X)`` without labels).
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_iter_ : int
        Passes over the data run by :meth:`fit`.
    n_neighbors_ : int
        ``k`` used by the ``"knn"`` score (only with ``ood_score="knn"``).
    train_features_ : ndarray of shape (n_samples, n_features)
        The L2-normalised training embeddings (only with ``ood_score="knn"``).
    location_ : ndarray of shape (n_features,)
        Centre of the Mahalanobis score, among the normalised features (only with
        ``ood_score="mahalanobis"``).
    whitening_ : ndarray of shape (n_features, n_components)
        ``W`` with the score ``-||(z - location_) @ W||^2`` (only with
        ``ood_score="mahalanobis"``).
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when X has string feature names.

    See Also
    --------
    sklearn.ensemble.IsolationForest : Tree-based outlier detector.
    sklearn.neighbors.LocalOutlierFactor : Density-based detector
        (``novelty=True`` for new data).
    skproto.metrics.ood_report : AUROC, FPR@95%TPR, AUPR-in and AUPR-out.

    References
    ----------
    .. [1] H. Lu, D. Gong, S. Wang, J. Xue, L. Yao, K. Moore. "Learning with
       Mixture of Prototypes for Out-of-Distribution Detection", ICLR 2024.
       Official code: https://github.com/jeff024/PALM
    .. [2] V. Sehwag, M. Chiang, P. Mittal. "SSD: A Unified Framework for
       Self-Supervised Outlier Detection", ICLR 2021 (the Mahalanobis score).
    .. [3] Y. Sun, Y. Ming, X. Zhu, Y. Li. "Out-of-Distribution Detection with Deep
       Nearest Neighbors", ICML 2022 (the KNN+ score).

    Examples
    --------
    >>> import numpy as np
    >>> from skproto import MixturePrototypeOODDetector
    >>> rng = np.random.RandomState(0)
    >>> centers = np.eye(4)[:2] * 10                       # two classes
    >>> X = np.concatenate([c + rng.randn(50, 4) for c in centers])
    >>> y = np.repeat([0, 1], 50)
    >>> det = MixturePrototypeOODDetector(n_prototypes=2, random_state=0).fit(X, y)
    >>> det.prototypes_.shape
    (4, 4)
    >>> X_new = np.array([[10.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 10.0]])
    >>> det.predict(X_new)                                  # +1 inlier, -1 outlier
    array([ 1, -1])
    >>> det.predict_class(X_new[:1])
    array([0])
    """

    _parameter_constraints = {
        "n_prototypes": [Interval(Integral, 1, None, closed="left")],
        "top_k": [Interval(Integral, 1, None, closed="left"), None],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "sinkhorn_iter": [Interval(Integral, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"k-means++", "uniform"})],
        "ood_score": [StrOptions({"prototype", "mahalanobis", "knn"})],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "mahalanobis_center": [StrOptions({"mean", "palm"})],
        "contamination": [
            StrOptions({"auto"}),
            Interval(Real, 0, 0.5, closed="right"),
        ],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_prototypes=6,
        *,
        top_k=5,
        epsilon=0.05,
        sinkhorn_iter=3,
        momentum=0.99,
        max_iter=50,
        batch_size=512,
        tol=0.02,
        init="k-means++",
        ood_score="prototype",
        n_neighbors=50,
        mahalanobis_center="mean",
        contamination="auto",
        random_state=None,
    ):
        self.n_prototypes = n_prototypes
        self.top_k = top_k
        self.epsilon = epsilon
        self.sinkhorn_iter = sinkhorn_iter
        self.momentum = momentum
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.tol = tol
        self.init = init
        self.ood_score = ood_score
        self.n_neighbors = n_neighbors
        self.mahalanobis_center = mahalanobis_center
        self.contamination = contamination
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    @transactional
    def fit(self, X, y=None):
        """Fit the prototypes (and the statistics of the chosen score).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In-distribution training embeddings (raw; they are L2-normalised here).
        y : array-like of shape (n_samples,), default=None
            Class labels. None: PALM's unsupervised setting (one pool of
            ``n_prototypes`` prototypes, no class mask).

        Returns
        -------
        self : object
            Fitted estimator.
        """
        reset_fitted_state(self)
        if is_dask_collection(X):  # the Mahalanobis statistics, on the cluster
            self.__dict__.update(dask_adapters().ood_fit_state(self, X, y))
            return self
        self.__dict__.update(self._fit(X, y))
        return self

    def _fit(self, X, y):
        """Build the whole fitted state in a dict; nothing is assigned on failure."""
        if self.ood_score in _DEPRECATED_SCORES:
            warnings.warn(_DEPRECATED_SCORES[self.ood_score], FutureWarning, stacklevel=4)
        dtype = [np.float64, np.float32]
        if y is None:
            X = validate_data(self, X, reset=True, dtype=dtype)
            classes = None
            codes = np.zeros(X.shape[0], dtype=np.int64)
            n_groups = 1
        else:
            X, y = validate_training_data(self, X, y, reset=True)
            classes, codes = np.unique(y, return_inverse=True)
            codes = codes.ravel().astype(np.int64)
            n_groups = len(classes)
        n_samples = X.shape[0]
        if self.ood_score == "knn" and n_samples < 2:
            raise ValueError(
                f"ood_score='knn' needs at least 2 samples, got n_samples = {n_samples}."
            )
        rng = check_random_state(self.random_state)
        Xn = _l2_normalize(X, check_input=False)
        M = self.n_prototypes
        # k-means++ per class: small GEMMs too (one BLAS thread, as the fit loop).
        with threadpool_limits(limits=1, user_api="blas"):
            P = _init_prototypes(Xn, codes, n_groups, M, self.init, rng)
        proto_codes = np.repeat(np.arange(n_groups), M)
        # Every pass, batch, Sinkhorn iteration and EMA step, on the backend's device.
        P, n_iter, drift, converged = backend.balanced_prototypes(
            Xn,
            P,
            codes if n_groups > 1 else None,
            n_groups,
            epsilon=self.epsilon,
            n_iter=self.sinkhorn_iter,
            top_k=self.top_k,
            momentum=self.momentum,
            batch_size=self.batch_size,
            max_iter=self.max_iter,
            tol=self.tol,
            seed=int(rng.randint(np.iinfo(np.int32).max)),
            check_input=False,
        )
        if not converged:
            warnings.warn(
                f"{type(self).__name__} did not converge in max_iter={self.max_iter} "
                f"passes (drift {drift:.3g} > tol={self.tol:g}: the prototypes still "
                "move); increase max_iter or tol, or lower momentum.",
                ConvergenceWarning,
            )

        state = {
            "prototypes_": P,
            "prototype_classes_": None if classes is None else classes[proto_codes],
            "classes_": classes,
            "n_iter_": n_iter,
        }
        if self.ood_score == "knn":
            state["n_neighbors_"] = min(self.n_neighbors, n_samples)
            state["train_features_"] = Xn
        elif self.ood_score == "mahalanobis":
            state["location_"], state["whitening_"] = _mahalanobis_statistics(
                Xn, self.mahalanobis_center
            )
        train_scores = self._scores_from_state(X, state)
        contamination = 0.05 if self.contamination == "auto" else self.contamination
        state["offset_"] = float(np.percentile(train_scores, 100.0 * contamination))
        return state

    def _scores_from_state(self, X, state):
        if self.ood_score == "prototype":
            _, scores = backend.assign(
                X, state["prototypes_"], metric="cosine", check_input=False
            )
            return scores
        if self.ood_score == "knn":
            k = state["n_neighbors_"]
            return backend.kth_similarity(
                X, state["train_features_"], k, metric="cosine", check_input=False
            )
        d2 = backend.whitened_sq_distance(
            X, state["location_"], state["whitening_"], check_input=False
        )
        return -d2

    def _predict_dtype(self):
        return self.prototypes_.dtype

    def score_samples(self, X):
        """OOD score of each sample: higher = more in-distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The ``ood_score`` chosen at construction (see the class docstring for the
            exact form of each).
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "score_samples", X)
        X = self._validate_X_predict(X)
        return self._scores_from_state(X, vars(self))

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for predicted outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "decision_function", X)
        return super().decision_function(X)

    def predict(self, X):
        """+1 for in-distribution samples, -1 for out-of-distribution ones.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,)
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict", X)
        return super().predict(X)

    def predict_prototype(self, X):
        """Index (row of ``prototypes_``) of the most similar prototype, by cosine.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        index : ndarray of shape (n_samples,)
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict_prototype", X)
        X = self._validate_X_predict(X)
        index, _ = backend.assign(X, self.prototypes_, metric="cosine", check_input=False)
        return index

    def predict_class(self, X):
        """In-distribution class of the most similar prototype.

        Meaningful for in-distribution samples; use :meth:`predict` to decide
        whether a sample is in-distribution at all.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict_class", X)
        check_is_fitted(self)
        if self.classes_ is None:
            raise ValueError(
                "This detector was fitted without labels (fit(X)), so it has no "
                "classes; use predict_prototype for the nearest prototype."
            )
        return self.prototype_classes_[self.predict_prototype(X)]
