"""Semi-supervised Gaussian mixture with split/merge moves, for category discovery (GPC).

The EM loop reads like the paper; the covariance-specific maths lives in the small
module-level functions below (as in scikit-learn's ``_gaussian_mixture.py``), and the
E-step runs in the backend kernels (:func:`skproto.backend.mixture_em_statistics`,
:func:`skproto.backend.log_responsibilities`), so ``config_context(backend="torch")``
moves it to a GPU.
"""

import numbers
from numbers import Integral, Real

import numpy as np
from scipy import linalg
from scipy.special import gammaln, multigammaln
from sklearn.base import BaseEstimator, ClusterMixin, _fit_context
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import validate_data

from .. import backend
from .._base import ValidatedPredictMixin
from ..statistics import ClassStatistics
from ..utils._dask import dask_adapters, is_dask_collection
from ..utils._state import reset_fitted_state, transactional

_PRECISION_ERROR = (
    "Fitting the mixture model failed because some components have ill-defined "
    "empirical covariance (for instance caused by singleton or collapsed samples). "
    "Increase reg_covar, decrease n_components, or scale the input data."
)


# ---------------------------------------------------------------------------------
# Covariance-specific maths (M-step and precisions), one small function each.
# ---------------------------------------------------------------------------------


def _estimate_gaussian_parameters(nk, sums, scatters, reg_covar, covariance_type):
    """ML weights, means and covariances from counts, sums and centred scatters.

    ``scatters`` are the (responsibility-weighted) second moments around each
    component's mean: ``(K, D, D)`` (full), ``(K, D)`` (diag) or ``(K,)``, the trace
    (spherical). :func:`_centred_scatters` makes them from one EM pass;
    :func:`_partition_statistics` from a hard partition.
    """
    n_features = sums.shape[1]
    nk = nk + 10 * np.finfo(np.float64).eps  # an empty component stays finite
    means = sums / nk[:, None]
    if covariance_type == "full":
        covariances = scatters / nk[:, None, None]
        covariances = 0.5 * (covariances + covariances.transpose(0, 2, 1))
        covariances += reg_covar * np.eye(n_features)
    elif covariance_type == "diag":
        covariances = np.maximum(scatters / nk[:, None], 0) + reg_covar
    else:  # spherical: the mean of the diagonal variances
        covariances = np.maximum(scatters / nk / n_features, 0) + reg_covar
    return nk, means, covariances


def _centred_scatters(nk, sums, sq_sums, covariance_type):
    """Raw second moments of an EM pass -> scatters around the component means."""
    nk = nk + 10 * np.finfo(np.float64).eps
    if covariance_type == "full":
        return sq_sums - np.einsum("kd,ke->kde", sums, sums) / nk[:, None, None]
    if covariance_type == "diag":
        return sq_sums - sums**2 / nk[:, None]
    return sq_sums - (sums**2).sum(axis=1) / nk


def _partition_statistics(X, labels, n_components, covariance_type):
    """Class statistics of a hard partition, and its nk, sums and centred scatters.

    Built on :class:`skproto.statistics.ClassStatistics` (centred before squaring,
    so accurate far from the origin); components without a sample get zeros.
    """
    moments = "full" if covariance_type == "full" else "diag"
    stats = ClassStatistics._from_validated(X, labels, moments=moments)
    nk = np.zeros(n_components)
    sums = np.zeros((n_components, X.shape[1]))
    scatters = np.zeros((n_components,) + stats.scatters.shape[1:])
    nk[stats.classes] = stats.counts
    sums[stats.classes] = stats.sums
    scatters[stats.classes] = stats.scatters
    if covariance_type == "spherical":
        scatters = scatters.sum(axis=1)
    return stats, nk, sums, scatters


def _total_covariance(stats, reg_covar, covariance_type):
    """Covariance of all the data, in the form of one component's covariance."""
    total = stats.covariances("total")
    if covariance_type == "full":
        return total + reg_covar * np.eye(total.shape[0])
    if covariance_type == "diag":
        return total + reg_covar
    return total.mean() + reg_covar


def _compute_precision_cholesky(covariances, covariance_type):
    """Cholesky factor ``L`` of each precision (``P = L L^T``), as scikit-learn stores it."""
    if covariance_type == "full":
        n_components, n_features, _ = covariances.shape
        precisions_chol = np.empty_like(covariances)
        for k in range(n_components):
            try:
                cov_chol = linalg.cholesky(covariances[k], lower=True)
            except linalg.LinAlgError:
                raise ValueError(_PRECISION_ERROR) from None
            precisions_chol[k] = linalg.solve_triangular(
                cov_chol, np.eye(n_features), lower=True
            ).T
        return precisions_chol
    if np.any(covariances <= 0.0):
        raise ValueError(_PRECISION_ERROR)
    return 1.0 / np.sqrt(covariances)


# ---------------------------------------------------------------------------------
# Split / merge: Normal-Inverse-Wishart marginal likelihoods (DeepDPM, GPC).
# ---------------------------------------------------------------------------------


def _niw_log_marginal_likelihood(Z, prior_mean, psi_scale, kappa, nu):
    """log p(Z) of the points ``Z`` under a Gaussian with a NIW(m0, psi I, kappa, nu) prior.

    The standard conjugate result (Murphy, 2007, eq. 266)::

        log p(Z) = -n D / 2 log(pi) + log Gamma_D(nu_n / 2) - log Gamma_D(nu / 2)
                   + nu / 2 log|Psi| - nu_n / 2 log|Psi_n| + D / 2 (log kappa - log kappa_n)

    with ``kappa_n = kappa + n``, ``nu_n = nu + n`` and ``Psi_n = Psi + S + kappa n /
    kappa_n (xbar - m0)(xbar - m0)^T`` (``S`` the scatter around the sample mean).
    ``Psi_n = psi I + A^T A`` for the ``(n + 1, D)`` matrix ``A`` stacking the centred
    points and the scaled mean offset, so ``log|Psi_n|`` comes from the smaller of the
    ``D x D`` and ``(n + 1) x (n + 1)`` Gram matrices (determinant lemma).
    """
    Z = np.asarray(Z, dtype=np.float64)
    n, n_features = Z.shape
    xbar = Z.mean(axis=0)
    kappa_n = kappa + n
    nu_n = nu + n
    A = np.vstack([Z - xbar, np.sqrt(kappa * n / kappa_n) * (xbar - prior_mean)])
    if A.shape[0] < n_features:
        gram = np.eye(A.shape[0]) + (A @ A.T) / psi_scale
        logdet_n = n_features * np.log(psi_scale) + np.linalg.slogdet(gram)[1]
    else:
        logdet_n = np.linalg.slogdet(psi_scale * np.eye(n_features) + A.T @ A)[1]
    return (
        -0.5 * n * n_features * np.log(np.pi)
        + multigammaln(0.5 * nu_n, n_features)
        - multigammaln(0.5 * nu, n_features)
        + 0.5 * nu * n_features * np.log(psi_scale)
        - 0.5 * nu_n * logdet_n
        + 0.5 * n_features * (np.log(kappa) - np.log(kappa_n))
    )


def _log_split_ratio(log_alpha, n1, ll1, n2, ll2, ll):
    """log Hastings ratio of splitting a cluster into two (DeepDPM, eq. 4)."""
    return log_alpha + gammaln(n1) + ll1 + gammaln(n2) + ll2 - gammaln(n1 + n2) - ll


class SemiSupervisedGMM(ValidatedPredictMixin, ClusterMixin, BaseEstimator):
    """Semi-supervised Gaussian mixture that discovers new classes and their number.

    Generalized category discovery: some samples carry labels of known classes, the
    others (``y == -1``, scikit-learn's semi-supervised convention) mix known classes
    and classes never labelled, and the number of classes is unknown. This is GPC
    (Zhao, Wen and Han, ICCV 2023) on frozen embeddings: a Gaussian mixture whose
    first components are the known classes, with every labelled sample **fixed to its
    class's component** throughout, and whose number of components is estimated by
    split and merge moves accepted by a Metropolis-Hastings ratio of
    Normal-Inverse-Wishart marginal likelihoods (DeepDPM, Ronen et al., CVPR 2022).

    **Fit.** Initial centres are the labelled class means, then k-means++ (D^2
    sampling over the unlabelled samples, given those means) for the other
    components. ``assignment="soft"`` (default, the paper) runs EM: unlabelled samples
    get posterior responsibilities, labelled ones a one-hot responsibility on their
    class; it maximises ``sum_unlabelled log p(x) + sum_labelled log p(x, y)``, which
    never decreases (``lower_bounds_``). ``assignment="hard"`` is semi-supervised
    k-means, what GPC's released code runs (``K_Means.fit_mix``): each unlabelled sample
    goes to the nearest centre (Euclidean), each centre is the mean of its samples,
    until no assignment changes; the covariances and weights are then estimated from
    the final partition so that :meth:`predict_proba` and :meth:`score` exist.

    **Number of components** (``n_components="auto"``). Starting from
    ``n_components_init`` components, the fit alternates a full EM / k-means run with
    one round of moves on the hard assignments, until a round accepts no move or
    ``max_move_rounds`` rounds have run:

    - *split*: a component without labelled samples is cut in two by 2-means on its
      samples (skipped when a side has ``<= min_split_size`` samples) and the split is
      accepted with probability ``min(1, H)``,
      ``log H = log alpha + lgamma(N1) + L1 + lgamma(N2) + L2 - lgamma(N) - L``, where
      ``L`` is the NIW log marginal likelihood of a cluster's samples;
    - *merge*: each discovered component not split in this round is proposed for
      merging with its nearest such component (Euclidean distance of means), accepted
      with the inverse ratio; each component takes part in at most one merge per
      round. As in GPC's code, components of known classes neither split nor merge;
    - empty discovered components are dropped.

    The NIW prior follows GPC/DeepDPM: mean ``m0`` = the data mean,
    ``Psi = prior_covariance_scale * I`` (0.005), ``kappa = 1e-4``, ``nu = D + 1``.
    That ``Psi`` is sized for **L2-normalised** embeddings (GPC normalises its
    features); scale it with the data otherwise. The moves always use the full-covariance
    NIW marginal likelihood, whatever ``covariance_type``. GPC's code accepts a
    rejected move anyway with a fixed probability 0.1; here acceptance is the
    Metropolis-Hastings probability ``min(1, H)`` (DeepDPM's default), drawn from
    ``random_state``, so a fit is reproducible. Two more deliberate differences from
    the released code: the marginal likelihood centres the scatter on the cluster's
    sample mean (the conjugate formula; GPC passes the k-means centre, equal at
    convergence), and a component takes part in at most one merge per round (GPC may
    merge one cluster with two neighbours and duplicate centres). On real, not
    contrastively trained embeddings the NIW criterion tends to under-estimate the
    number of classes (see the benchmark in the README).

    **Labels.** Known classes keep their labels (``known_classes_``, sorted; they are
    components ``0 .. n_known - 1``). Discovered components get labels that cannot
    collide with them: for numeric labels, the integers from ``max(known) + 1`` (or
    0 if that is smaller, so ``-1`` is never a label) upwards, in the dtype of ``y``;
    for other labels (strings, in an object array), the strings ``"novel_0"``,
    ``"novel_1"``, ... (prefixed with more underscores until no known label starts
    with the prefix). ``component_labels_`` maps component index to label.

    **Degenerate inputs.** ``y=None`` or all ``-1``: no known class; an unsupervised
    GMM (``n_components="auto"`` starts from ``n_components_init``, default 2).
    All samples labelled: a supervised GMM with one component per class and nothing
    to discover (``n_components="auto"`` gives ``n_components_ == n_known``; an
    integer ``n_components`` larger than the number of classes raises ValueError, as
    there is no unlabelled sample to seed the extra components). One sample, NaN or
    infinite values, a string-dtype ``y`` (use an object array with ``-1`` for the
    unlabelled samples, as :class:`sklearn.semi_supervised.SelfTrainingClassifier`),
    a NaN label or non-class labels (continuous floats): ValueError.

    Parameters
    ----------
    n_components : "auto" or int, default="auto"
        ``"auto"``: estimate the number of components (known + discovered classes) by
        split/merge. An int fixes it (at least the number of known classes).
    covariance_type : {"diag", "spherical", "full"}, default="diag"
        Covariance of each component. ``"diag"`` is the default because ``"full"``
        costs ``O(n_components * D^3)`` per iteration and ``D^2`` numbers per
        component, heavy for 512- or 768-d embeddings.
    assignment : {"soft", "hard"}, default="soft"
        ``"soft"``: EM (the paper). ``"hard"``: semi-supervised k-means (the released
        code). See above.
    max_iter : int, default=100
        Maximum EM (or k-means) iterations per run.
    tol : float, default=1e-3
        EM stops when the mean log-likelihood objective improves by less than ``tol``.
    n_init : int, default=1
        Initialisations of the first run; the best (largest objective, or smallest
        inertia for ``"hard"``) is kept.
    reg_covar : float, default=1e-6
        Added to the diagonal of the covariances.
    n_components_init : int, default=None
        Starting number of components for ``n_components="auto"``. ``None``: twice the
        number of known classes (at least 2). At least one discovered component is
        started (only discovered components can split), at most one per unlabelled
        sample. A known class's component never splits, so novel samples absorbed by
        it in the first run stay there: starting with too many components (merges
        remove the extra ones) is safer than too few.
    max_move_rounds : int, default=10
        Maximum rounds of split/merge moves (``n_components="auto"`` only).
    min_split_size : int, default=5
        A split is skipped when one side has this many samples or fewer.
    concentration : float, default=1.0
        Dirichlet-process concentration ``alpha`` in the Hastings ratios.
    prior_covariance_scale : float, default=0.005
        ``Psi = prior_covariance_scale * I`` of the NIW prior.
    prior_kappa : float, default=1e-4
        NIW ``kappa``.
    prior_dof : float, default=None
        NIW ``nu`` (must exceed ``n_features - 1``); ``None``: ``n_features + 1``.
    means_init : array-like of shape (n_init_components, n_features), default=None
        Initial centres instead of "class means + k-means++"; row ``j < n_known`` is
        the centre of ``known_classes_[j]``. Its length sets the starting number of
        components (and must equal ``n_components`` when that is an int).
    random_state : int, RandomState instance or None, default=None
        Seeds k-means++, the 2-means of the splits and the move acceptance.

    Attributes
    ----------
    n_components_ : int
        Number of components after fitting.
    known_classes_ : ndarray of shape (n_known,)
        Sorted labels of the known classes (components ``0 .. n_known - 1``).
    component_labels_ : ndarray of shape (`n_components_`,)
        Label of each component: the known classes, then the discovered labels.
    labels_ : ndarray of shape (n_samples,)
        Label of each training sample (its own label when it was labelled).
    means_ : ndarray of shape (`n_components_`, n_features)
    covariances_ : ndarray
        ``(n_components_,)`` spherical, ``(n_components_, n_features)`` diag,
        ``(n_components_, n_features, n_features)`` full.
    precisions_cholesky_ : ndarray
        Cholesky factors of the precisions, shaped like ``covariances_`` (the inverse
        standard deviations for spherical and diag), as scikit-learn's.
    weights_ : ndarray of shape (`n_components_`,)
    lower_bound_ : float
        Mean objective (``log p(x)`` for unlabelled, ``log p(x, y)`` for labelled
        samples) at the fitted parameters.
    lower_bounds_ : list of float
        The objective before each EM iteration of the last run, then at the end
        (soft assignment; empty for hard).
    inertia_ : float
        Sum of squared distances to the assigned centres (hard assignment only).
    n_iter_ : int
        Iterations of the last EM / k-means run.
    converged_ : bool
        Whether the last run converged before ``max_iter``.
    n_move_rounds_ : int
        Split/merge rounds that were run.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Only when X has feature names that are all strings.

    See Also
    --------
    sklearn.mixture.GaussianMixture : Unsupervised, fixed number of components.
    skproto.metrics.cluster_accuracy : The All / Old / New accuracy of GCD.

    References
    ----------
    .. [1] B. Zhao, X. Wen, K. Han. "Learning Semi-supervised Gaussian Mixture Models
       for Generalized Category Discovery", ICCV 2023 (GPC; code: DTennant/GPC).
    .. [2] M. Ronen, S. E. Finder, O. Freifeld. "DeepDPM: Deep Clustering With an
       Unknown Number of Clusters", CVPR 2022.
    .. [3] S. Vaze, K. Han, A. Vedaldi, A. Zisserman. "Generalized Category
       Discovery", CVPR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto import SemiSupervisedGMM
    >>> rng = np.random.RandomState(0)
    >>> centres = 0.5 * np.eye(8)[:4]                   # 4 classes, 2 known
    >>> X = np.vstack([c + 0.03 * rng.randn(60, 8) for c in centres])
    >>> y = np.repeat([0, 1, 2, 3], 60)
    >>> y_train = np.where((y < 2) & (np.arange(240) % 2 == 0), y, -1)
    >>> gmm = SemiSupervisedGMM(random_state=0).fit(X, y_train)
    >>> gmm.n_components_, gmm.known_classes_
    (4, array([0, 1]))
    >>> gmm.component_labels_
    array([0, 1, 2, 3])
    >>> from skproto.metrics import cluster_accuracy
    >>> cluster_accuracy(y, gmm.labels_, old_classes=[0, 1])
    (1.0, 1.0, 1.0)
    """

    _parameter_constraints = {
        "n_components": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"spherical", "diag", "full"})],
        "assignment": [StrOptions({"soft", "hard"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "reg_covar": [Interval(Real, 0, None, closed="left")],
        "n_components_init": [None, Interval(Integral, 1, None, closed="left")],
        "max_move_rounds": [Interval(Integral, 0, None, closed="left")],
        "min_split_size": [Interval(Integral, 1, None, closed="left")],
        "concentration": [Interval(Real, 0, None, closed="neither")],
        "prior_covariance_scale": [Interval(Real, 0, None, closed="neither")],
        "prior_kappa": [Interval(Real, 0, None, closed="neither")],
        "prior_dof": [None, Interval(Real, 0, None, closed="neither")],
        "means_init": ["array-like", None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components="auto",
        *,
        covariance_type="diag",
        assignment="soft",
        max_iter=100,
        tol=1e-3,
        n_init=1,
        reg_covar=1e-6,
        n_components_init=None,
        max_move_rounds=10,
        min_split_size=5,
        concentration=1.0,
        prior_covariance_scale=0.005,
        prior_kappa=1e-4,
        prior_dof=None,
        means_init=None,
        random_state=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.assignment = assignment
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.reg_covar = reg_covar
        self.n_components_init = n_components_init
        self.max_move_rounds = max_move_rounds
        self.min_split_size = min_split_size
        self.concentration = concentration
        self.prior_covariance_scale = prior_covariance_scale
        self.prior_kappa = prior_kappa
        self.prior_dof = prior_dof
        self.means_init = means_init
        self.random_state = random_state

    # ------------------------------------------------------------------ validation

    def _validate_y(self, y, n_samples):
        """Known classes, each sample's fixed component (-1: free) and the label kind."""
        if y is None:
            return np.array([], dtype=np.int64), np.full(n_samples, -1, np.int64), True
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n_samples:
            raise ValueError(f"y has {y.shape[0]} entries but X has {n_samples} samples.")
        if y.dtype.kind in "US":
            raise ValueError(
                "y has a string dtype, which cannot hold the unlabelled marker -1. Use an "
                "object array with -1 for the unlabelled samples."
            )
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity; mark unlabelled samples with -1.")
        if y.dtype.kind == "O" and any(
            v is None or (isinstance(v, float) and not np.isfinite(v)) for v in y
        ):
            raise ValueError("y contains None, NaN or infinity; mark unlabelled samples with -1.")
        unlabelled = np.array([v == -1 for v in y]) if y.dtype.kind == "O" else (y == -1)
        known = y[~unlabelled]
        if known.dtype.kind == "O":
            numeric = all(
                isinstance(v, numbers.Number) and not isinstance(v, bool) for v in known
            )
        else:
            numeric = known.dtype.kind in "biuf"
        if known.size:
            if numeric and type_of_target(known.astype(np.float64)) not in ("binary", "multiclass"):
                raise ValueError(
                    "The labels of the labelled samples must be classes (integers or "
                    "strings), got continuous values."
                )
            classes, codes = np.unique(known, return_inverse=True)
        else:
            classes, codes = known[:0], np.array([], dtype=np.int64)
        fixed = np.full(n_samples, -1, dtype=np.int64)
        fixed[~unlabelled] = codes.ravel()
        return classes, fixed, numeric

    def _discovered_labels(self, classes, numeric, n_new, y_dtype):
        if numeric:
            start = 0 if classes.size == 0 else max(int(np.floor(classes.max())) + 1, 0)
            dtype = y_dtype if y_dtype is not None and y_dtype.kind in "iuf" else np.int64
            new = np.arange(start, start + n_new).astype(dtype)
            return np.concatenate([classes.astype(dtype), new])
        prefix = "novel_"
        while any(str(c).startswith(prefix) for c in classes):
            prefix = "_" + prefix
        new = np.array([f"{prefix}{i}" for i in range(n_new)], dtype=object)
        return np.concatenate([classes.astype(object), new])

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    @transactional
    def fit(self, X, y=None):
        """Fit the mixture; estimate the number of components if ``n_components="auto"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings. Float32 stays float32.
        y : array-like of shape (n_samples,), default=None
            Class labels of the labelled samples, ``-1`` for the unlabelled ones.
            ``None``: all samples unlabelled.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        reset_fitted_state(self)
        if is_dask_collection(X):  # EM with one distributed pass per iteration
            X, classes, fixed, numeric, y_dtype = dask_adapters().gmm_validate(self, X, y)
        else:
            X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
            y_dtype = None if y is None else np.asarray(y).dtype
            classes, fixed, numeric = self._validate_y(y, X.shape[0])
        state = self._fit(X, fixed, len(classes))
        labels = self._discovered_labels(
            classes, numeric, state["means"].shape[0] - len(classes), y_dtype
        )
        dtype = X.dtype
        self.known_classes_ = classes
        self.component_labels_ = labels
        self.n_components_ = state["means"].shape[0]
        self.means_ = state["means"].astype(dtype)
        self.covariances_ = state["covariances"].astype(dtype)
        self.precisions_cholesky_ = state["precisions_chol"].astype(dtype)
        self.weights_ = state["weights"].astype(dtype)
        self.lower_bound_ = state["lower_bound"]
        self.lower_bounds_ = state["lower_bounds"]
        self.n_iter_ = state["n_iter"]
        self.converged_ = state["converged"]
        self.n_move_rounds_ = state["n_move_rounds"]
        if self.assignment == "hard":
            self.inertia_ = state["inertia"]
        self.labels_ = (
            dask_adapters().take(labels, state["labels"])
            if is_dask_collection(state["labels"]) else labels[state["labels"]]
        )
        return self

    def _prior(self, X):
        n_features = X.shape[1]
        nu = n_features + 1.0 if self.prior_dof is None else float(self.prior_dof)
        if nu <= n_features - 1:
            raise ValueError(
                f"prior_dof must exceed n_features - 1 = {n_features - 1}, got {nu}."
            )
        return dict(
            prior_mean=X.mean(axis=0, dtype=np.float64),
            psi_scale=float(self.prior_covariance_scale),
            kappa=float(self.prior_kappa),
            nu=nu,
        )

    def _starting_n_components(self, n_known, n_unlabelled):
        if self.means_init is not None:
            n_start = np.asarray(self.means_init).shape[0]
        elif self.n_components != "auto":
            n_start = self.n_components
        else:
            n_start = self.n_components_init or max(2 * n_known, 2)
            # Discovered components are seeded on unlabelled samples: at most one each,
            # and at least one, since only discovered components may split.
            n_start = n_known + min(max(n_start - n_known, 1), n_unlabelled)
        if n_start < n_known:
            raise ValueError(
                f"The number of components ({n_start}) must be at least the number of "
                f"known classes ({n_known})."
            )
        if n_start - n_known > n_unlabelled:
            raise ValueError(
                f"{n_start - n_known} components beyond the {n_known} known classes need "
                f"at least as many unlabelled samples (y == -1) to start from; got "
                f"{n_unlabelled}."
            )
        if n_start == 0:
            raise ValueError("At least one component is needed.")
        return n_start

    def _fit(self, X, fixed, n_known):
        rng = check_random_state(self.random_state)
        n_unlabelled = int((fixed < 0).sum())
        n_start = self._starting_n_components(n_known, n_unlabelled)
        if self.means_init is not None:
            means_init = np.asarray(self.means_init, dtype=np.float64)
            if means_init.shape != (n_start, X.shape[1]) or (
                self.n_components != "auto" and n_start != self.n_components
            ):
                raise ValueError(
                    f"means_init must have shape (n_components, {X.shape[1]}), got "
                    f"{means_init.shape} with n_components={self.n_components!r}."
                )

        best = None
        for _ in range(self.n_init):
            if self.means_init is not None:
                means = np.asarray(self.means_init, dtype=np.float64)
            else:
                means = _initial_means(X, fixed, n_known, n_start, rng)
            state = self._run_from_means(X, fixed, means)
            if best is None or self._better(state, best):
                best = state

        state, n_rounds = best, 0
        if self.n_components == "auto":
            prior = self._prior(X)
            for n_rounds in range(1, self.max_move_rounds + 1):
                labels = _split_merge(
                    X, fixed, state, n_known, prior, self.concentration,
                    self.min_split_size, rng,
                )
                if labels is None:
                    n_rounds -= 1
                    break
                state = self._run_from_partition(X, fixed, labels)
        state["n_move_rounds"] = n_rounds
        return state

    def _better(self, state, best):
        if self.assignment == "hard":
            return state["inertia"] < best["inertia"]
        return state["lower_bound"] > best["lower_bound"]

    # ------------------------------------------------------------------ EM / k-means

    def _run_from_means(self, X, fixed, means):
        """One run started from centres: hard-assign, then EM or k-means."""
        if self.assignment == "hard":
            return self._semi_supervised_kmeans(X, fixed, means)
        labels = _assign_nearest(X, fixed, means)
        return self._run_from_partition(X, fixed, labels, means_fallback=means)

    def _run_from_partition(self, X, fixed, labels, means_fallback=None):
        """One run started from a hard partition (M-step first), then EM or k-means."""
        n_components = (
            int(labels.max()) + 1 if means_fallback is None else means_fallback.shape[0]
        )
        if self.assignment == "hard":
            sums, counts = backend.group_sum(X, labels, n_components)
            means = sums.astype(np.float64) / np.maximum(counts, 1)[:, None]
            return self._semi_supervised_kmeans(X, fixed, means)
        stats, nk, sums, scatters = _partition_statistics(
            X, labels, n_components, self.covariance_type
        )
        params = self._m_step(X, nk, sums, scatters)
        empty = nk == 0
        if empty.any():
            # A centre that won no sample keeps its position and gets the data's spread.
            params["means"][empty] = means_fallback[empty]
            params["covariances"][empty] = _total_covariance(
                stats, self.reg_covar, self.covariance_type
            )
            params["precisions_chol"] = _compute_precision_cholesky(
                params["covariances"], self.covariance_type
            )
        return self._em(X, fixed, params)

    def _m_step(self, X, nk, sums, scatters):
        nk, means, covariances = _estimate_gaussian_parameters(
            nk, sums, scatters, self.reg_covar, self.covariance_type
        )
        return dict(
            weights=nk / X.shape[0],
            means=means,
            covariances=covariances,
            precisions_chol=_compute_precision_cholesky(covariances, self.covariance_type),
        )

    def _em(self, X, fixed, params):
        """EM with labelled samples fixed to their component (GPC, soft assignment)."""
        n_samples = X.shape[0]
        lower_bounds, previous, converged = [], -np.inf, False
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):
            # E-step at the current parameters, reduced straight into the M-step sums.
            log_likelihood, nk, sums, sq_sums = _em_statistics(
                X, params["means"], params["precisions_chol"], np.log(params["weights"]),
                self.covariance_type, fixed,
            )
            lower_bound = log_likelihood / n_samples
            lower_bounds.append(lower_bound)
            params = self._m_step(
                X, nk, sums, _centred_scatters(nk, sums, sq_sums, self.covariance_type)
            )
            if abs(lower_bound - previous) < self.tol:
                converged = True
                break
            previous = lower_bound
        labels, lower_bound = self._final_assignment(X, fixed, params)
        lower_bounds.append(lower_bound)
        return dict(
            params, labels=labels, lower_bound=lower_bound, lower_bounds=lower_bounds,
            n_iter=n_iter, converged=converged,
        )

    def _final_assignment(self, X, fixed, params):
        if is_dask_collection(X):
            return dask_adapters().gmm_final_assignment(self, X, fixed, params)
        log_resp, log_norm = backend.log_responsibilities(
            X, params["means"], params["precisions_chol"], np.log(params["weights"]),
            self.covariance_type,
        )
        labels = np.argmax(log_resp, axis=1)
        is_fixed = fixed >= 0
        labels[is_fixed] = fixed[is_fixed]
        per_sample = log_norm.astype(np.float64)
        # Labelled samples contribute log p(x, y) = log p(y | x) + log p(x).
        per_sample[is_fixed] += log_resp[is_fixed, fixed[is_fixed]]
        return labels, float(per_sample.mean())

    def _semi_supervised_kmeans(self, X, fixed, means):
        """GPC's ``K_Means.fit_mix``: labelled samples stay with their class's centre."""
        labels, converged, n_iter = None, False, 0
        for n_iter in range(1, self.max_iter + 1):
            new_labels = _assign_nearest(X, fixed, means)
            if labels is not None and np.array_equal(new_labels, labels):
                converged = True
                break
            labels = new_labels
            sums, counts = backend.group_sum(X, labels, means.shape[0])
            # An empty component keeps its centre.
            means = np.where(
                counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], means
            )
        if not converged:
            labels = _assign_nearest(X, fixed, means)
        inertia = float(
            ((X.astype(np.float64) - means[labels]) ** 2).sum()
        )
        params = self._m_step(
            X, *_partition_statistics(X, labels, means.shape[0], self.covariance_type)[1:]
        )
        params["means"] = means  # the k-means centres (equal to the partition means)
        _, lower_bound = self._final_assignment(X, fixed, params)
        # _final_assignment's labels would follow the mixture; hard mode keeps k-means'.
        return dict(
            params, labels=labels, lower_bound=lower_bound, lower_bounds=[],
            n_iter=n_iter, converged=converged, inertia=inertia,
        )

    # ------------------------------------------------------------------ inference

    def _log_resp(self, X):
        X = self._validate_X_predict(X)
        return backend.log_responsibilities(
            X, self.means_, self.precisions_cholesky_, np.log(self.weights_),
            self.covariance_type,
        )

    def predict(self, X):
        """Label of the most probable component (nearest centre for ``"hard"``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Values from ``component_labels_``.
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict", X)
        if self.assignment == "hard":
            X = self._validate_X_predict(X)
            index, _ = backend.assign(X, self.means_, metric="euclidean")
        else:
            index = np.argmax(self._log_resp(X)[0], axis=1)
        return self.component_labels_[index]

    def predict_proba(self, X):
        """Posterior probability of each component under the fitted mixture.

        For ``assignment="hard"`` this is the posterior of the mixture estimated from
        the final k-means partition; its argmax can differ from :meth:`predict`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, `n_components_`)
            Columns follow ``component_labels_``.
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "predict_proba", X)
        return np.exp(self._log_resp(X)[0])

    def score_samples(self, X):
        """Log-likelihood ``log p(x)`` of each sample under the fitted mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        if is_dask_collection(X):
            return dask_adapters().map_method(self, "score_samples", X)
        return self._log_resp(X)[1]

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` under the fitted mixture (labels ignored).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        log_likelihood : float
            A lazy 0-d Dask array when X is a Dask array (``float()`` computes it).
        """
        if is_dask_collection(X):
            return dask_adapters().mean_score(self, X)
        return float(self.score_samples(X).astype(np.float64).mean())


# ---------------------------------------------------------------------------------
# Initialisation and moves (module-level: they only need arrays).
# ---------------------------------------------------------------------------------


def _em_statistics(X, means, precisions_chol, log_weights, covariance_type, fixed):
    """The E-step statistics of one EM iteration: sums over the samples (any blocks)."""
    if is_dask_collection(X):  # per block, then a tree reduction
        return dask_adapters().gmm_em_statistics(
            X, means, precisions_chol, log_weights, covariance_type, fixed
        )
    return backend.mixture_em_statistics(
        X, means, precisions_chol, log_weights, covariance_type, fixed
    )


def _assign_nearest(X, fixed, means):
    """Nearest centre (squared Euclidean) for free samples; labelled samples fixed."""
    if is_dask_collection(X):
        return dask_adapters().gmm_assign_nearest(X, fixed, means)
    index, _ = backend.assign(X, means, metric="euclidean")
    index = index.astype(np.int64)
    is_fixed = fixed >= 0
    index[is_fixed] = fixed[is_fixed]
    return index


def _initial_means(X, fixed, n_known, n_components, rng):
    """Labelled class means, then k-means++ over the unlabelled samples (GPC's ``kpp``).

    The D^2 sampling is the greedy variant of scikit-learn's ``kmeans_plusplus``
    (``2 + log k`` candidates per centre, keep the one that lowers the potential most).
    On a Dask array: the exact labelled means, then this on a sample of the unlabelled
    samples (see :data:`skproto.dask.SAMPLE_SIZE`).
    """
    if is_dask_collection(X):
        return dask_adapters().gmm_initial_means(X, fixed, n_known, n_components, rng)
    means = np.empty((n_components, X.shape[1]))
    if n_known:
        sums, counts = backend.group_sum(X[fixed >= 0], fixed[fixed >= 0], n_known)
        means[:n_known] = sums / counts[:, None]
    if n_components == n_known:
        return means
    U = X if n_known == 0 and (fixed < 0).all() else X[fixed < 0]
    u_sq = np.einsum("ij,ij->i", U, U, dtype=np.float64)

    def sq_dist(centres):  # (n_centres, n_unlabelled), float64
        d = u_sq[None, :] - 2 * (centres.astype(U.dtype) @ U.T) + (centres**2).sum(1)[:, None]
        return np.maximum(d, 0)

    first = n_known
    if n_known:
        closest = sq_dist(means[:n_known]).min(axis=0)
    else:
        means[0] = U[rng.randint(U.shape[0])]
        closest = sq_dist(means[:1])[0]
        first = 1
    n_trials = 2 + int(np.log(n_components))
    for k in range(first, n_components):
        total = closest.sum()
        if total > 0:
            picks = np.searchsorted(np.cumsum(closest), rng.uniform(size=n_trials) * total)
            picks = np.minimum(picks, U.shape[0] - 1)
        else:  # every sample sits on a centre already
            picks = rng.randint(U.shape[0], size=n_trials)
        candidate = np.minimum(closest[None, :], sq_dist(U[picks].astype(np.float64)))
        best = int(np.argmin(candidate.sum(axis=1)))
        means[k] = U[picks[best]]
        closest = candidate[best]
    return means


def _two_means(Z, rng, n_init=3, max_iter=100):
    """2-means (k-means++ seeding, Lloyd iterations) of the rows of Z: 0/1 per row.

    The split proposal of GPC / DeepDPM; the best of ``n_init`` seedings by inertia.
    """
    Z = np.asarray(Z, dtype=np.float64)
    z_sq = np.einsum("ij,ij->i", Z, Z)
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        first = Z[rng.randint(Z.shape[0])]
        d2 = ((Z - first) ** 2).sum(axis=1)
        total = d2.sum()
        second = Z[rng.randint(Z.shape[0])] if total <= 0 else Z[
            min(int(np.searchsorted(np.cumsum(d2), rng.uniform() * total)), Z.shape[0] - 1)
        ]
        centres = np.vstack([first, second])
        sub = None
        for _ in range(max_iter):
            dist = z_sq[:, None] - 2 * Z @ centres.T + (centres**2).sum(axis=1)
            new_sub = np.argmin(dist, axis=1)
            if sub is not None and np.array_equal(new_sub, sub):
                break
            sub = new_sub
            for j in range(2):
                if (sub == j).any():
                    centres[j] = Z[sub == j].mean(axis=0)
        inertia = np.maximum(dist[np.arange(Z.shape[0]), sub], 0).sum()
        if inertia < best_inertia:
            best, best_inertia = sub, inertia
    return best


def _split_merge(X, fixed, state, n_known, prior, alpha, min_split_size, rng):
    """One round of split and merge moves on the hard assignments.

    Returns the new partition (component index per sample, known classes first), or
    None when no move was accepted.
    """
    labels = state["labels"]
    means = state["means"]
    n_components = means.shape[0]
    log_alpha = np.log(alpha)
    members = [np.flatnonzero(labels == k) for k in range(n_components)]
    log_ml = {}

    def marginal(k):
        if k not in log_ml:
            log_ml[k] = _niw_log_marginal_likelihood(X[members[k]], **prior)
        return log_ml[k]

    # Empty discovered components are dropped.
    alive = [k for k in range(n_components) if k < n_known or members[k].size]
    changed = len(alive) < n_components

    # Splits: only components without labelled samples (the discovered ones).
    split_parts = {}
    for k in alive:
        if k < n_known or members[k].size <= 2 * min_split_size:
            continue
        Xk = X[members[k]]
        sub = _two_means(Xk, rng)
        n1 = int((sub == 0).sum())
        n2 = sub.size - n1
        u = rng.uniform()
        if n1 <= min_split_size or n2 <= min_split_size:
            continue
        log_h = _log_split_ratio(
            log_alpha,
            n1, _niw_log_marginal_likelihood(Xk[sub == 0], **prior),
            n2, _niw_log_marginal_likelihood(Xk[sub == 1], **prior),
            marginal(k),
        )
        if np.log(u) < log_h:
            split_parts[k] = sub

    # Merges (as GPC's code): each remaining discovered component with its nearest
    # remaining discovered component; known classes never merge.
    candidates = [k for k in alive if k not in split_parts]
    used, merges = set(), []
    for a in rng.permutation(candidates):
        a = int(a)
        if a in used:
            continue
        if a < n_known:
            continue
        others = [b for b in candidates if b >= n_known and b != a and b not in used]
        if not others:
            continue
        dist = ((means[others] - means[a]) ** 2).sum(axis=1)
        b = others[int(np.argmin(dist))]
        union = np.concatenate([members[a], members[b]])
        log_h = -_log_split_ratio(
            log_alpha,
            members[a].size, marginal(a),
            members[b].size, marginal(b),
            _niw_log_marginal_likelihood(X[union], **prior),
        )
        if np.log(rng.uniform()) < log_h:
            used.update((a, b))
            merges.append((min(a, b), max(a, b)))  # the smaller index survives

    if not (changed or split_parts or merges):
        return None

    # New component indices: known classes keep 0..n_known-1, then the survivors.
    absorbed = {b: a for a, b in merges}
    survivors = [k for k in alive if k not in absorbed and k not in split_parts]
    new_index = {k: i for i, k in enumerate(survivors)}
    new_labels = np.empty_like(labels)
    for k in alive:
        target = absorbed.get(k, k)
        if k in split_parts:
            continue
        new_labels[members[k]] = new_index[target]
    next_index = len(survivors)
    for k, sub in split_parts.items():
        new_labels[members[k][sub == 0]] = next_index
        new_labels[members[k][sub == 1]] = next_index + 1
        next_index += 2
    # Samples of dropped (empty) components: none by definition.
    return new_labels
