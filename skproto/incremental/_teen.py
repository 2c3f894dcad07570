"""TEEN: training-free prototype calibration for few-shot class-incremental learning."""

from numbers import Real

import numpy as np
from scipy.special import softmax
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import column_or_1d

from .._base import BaseStatisticsClassifier
from ..backend import l2_normalize


@validate_params(
    {
        "novel_prototypes": ["array-like"],
        "base_prototypes": ["array-like"],
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "tau": [Interval(Real, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def teen_calibrate(novel_prototypes, base_prototypes, alpha=0.5, tau=16.0):
    """Calibrate novel-class prototypes towards the base-class prototypes (TEEN).

    With ``P`` and ``B`` the L2-normalised novel and base prototypes::

        W  = softmax(tau * P @ B.T, axis=1)     # similarity-weighted base classes
        D  = l2norm(W @ B)                      # direction of the biased base mixture
        P' = (1 - alpha) * P + alpha * D

    as ``soft_calibration`` of the official code (``models/teen/Network.py``, where
    ``alpha`` is ``shift_weight`` and ``tau`` is ``softmax_t``). ``P'`` is returned
    as computed, not renormalised (the official code does not either; a cosine
    classifier ignores the norm). A zero prototype stays a zero direction.

    Parameters
    ----------
    novel_prototypes : array-like of shape (n_novel, n_features)
        Raw (or normalised) prototypes of the novel classes, e.g. class means of a
        few-shot session.
    base_prototypes : array-like of shape (n_base, n_features)
        Prototypes of the base classes (raw class means of the base session).
    alpha : float in [0, 1], default=0.5
        Weight of the base mixture ``D``; 0 returns ``l2norm(P)`` (plain cosine
        nearest mean), 1 returns ``D``. The paper uses 0.5 by default and 0.1 on
        CIFAR-100.
    tau : float >= 0, default=16.0
        Inverse temperature of the softmax over cosine similarities; 0 weights all
        base classes equally, large values pick the nearest base class.

    Returns
    -------
    calibrated : ndarray of shape (n_novel, n_features)
        In the floating dtype of ``novel_prototypes`` (float64 for other dtypes);
        computed in float64.

    References
    ----------
    .. [1] Q.-W. Wang, D.-W. Zhou, Y.-K. Zhang, D.-C. Zhan, H.-J. Ye. "Few-Shot
       Class-Incremental Learning via Training-Free Prototype Calibration",
       NeurIPS 2023. https://github.com/wangkiw/TEEN

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.incremental import teen_calibrate
    >>> base = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> novel = np.array([[2.0, 2.0]])
    >>> teen_calibrate(novel, base, alpha=0.0)          # just normalised
    array([[0.7071..., 0.7071...]])
    >>> teen_calibrate(novel, base, alpha=0.5, tau=16.0).round(4)
    array([[0.7071, 0.7071]])
    """
    P = np.asarray(novel_prototypes)
    B = np.asarray(base_prototypes)
    for name, A in (("novel_prototypes", P), ("base_prototypes", B)):
        if A.ndim != 2:
            raise ValueError(f"{name} must be a 2-D array, got shape {A.shape}.")
        if not np.issubdtype(A.dtype, np.number) or np.issubdtype(A.dtype, np.complexfloating):
            raise TypeError(f"{name} must hold real numbers, got dtype {A.dtype}.")
        if not np.all(np.isfinite(A)):
            raise ValueError(f"{name} contains NaN or infinity.")
    if B.shape[0] == 0:
        raise ValueError("base_prototypes must hold at least one prototype.")
    if P.shape[1] != B.shape[1]:
        raise ValueError(
            f"novel_prototypes has {P.shape[1]} features but base_prototypes has "
            f"{B.shape[1]}; they must match."
        )
    out_dtype = P.dtype if P.dtype in (np.float32, np.float64) else np.float64
    Pn = l2_normalize(P.astype(np.float64), check_input=False)
    Bn = l2_normalize(B.astype(np.float64), check_input=False)
    W = softmax(tau * (Pn @ Bn.T), axis=1)
    D = l2_normalize(W @ Bn, check_input=False)
    return ((1.0 - alpha) * Pn + alpha * D).astype(out_dtype, copy=False)


class TEENCalibrator(BaseStatisticsClassifier):
    """Few-shot class-incremental nearest prototype with TEEN calibration.

    The base session (:meth:`fit`) stores the raw class mean of each base class as
    its prototype. Each later session (:meth:`partial_fit`) gives every novel class
    the raw mean of its few samples, calibrated towards the base prototypes by
    :func:`~skproto.incremental.teen_calibrate`: ``P' = (1 - alpha) l2norm(P) + alpha
    l2norm(softmax(tau l2norm(P) l2norm(B)^T) l2norm(B))``. Only base prototypes calibrate (never the
    prototypes of earlier novel sessions), and base prototypes are never modified by
    calibration. A sample goes to the prototype with the highest cosine similarity.
    No training, no stored samples: ``n_classes x n_features`` numbers.

    Decisions where the paper is silent (all documented behaviour, all tested):

    - **First** :meth:`partial_fit` **without** :meth:`fit`: it *is* the base
      session; its classes become the base classes, exactly as :meth:`fit`.
    - **Classes** ``classes_`` **are sorted** (a novel class is inserted at its sorted
      position), as in :class:`NearestMeanClassifier`; ``is_base_class_`` says
      which are base.
    - **More samples of a known class** in a later :meth:`partial_fit`: its raw
      running mean is updated exactly (as :class:`NearestMeanClassifier` does), and
      the calibration is recomputed *from the raw means*, never applied to an
      already-calibrated prototype (so it does not compound). If the class is a base
      class, its base prototype changes, and so do the calibrated prototypes of all
      novel classes (they are always ``teen_calibrate(novel means, base means)``).
      Hence, given which classes are base, the model depends only on the data seen
      per class, not on how later sessions are batched or ordered.

    Parameters
    ----------
    alpha : float in [0, 1], default=0.5
        Calibration strength, the weight of the base mixture (``shift_weight`` in the
        official code; a fusion written with the weight on the novel prototype uses
        ``1 - alpha``): 0 gives the plain cosine nearest class mean (SimpleCIL); the
        official default is 0.5, and 0.1 on CIFAR-100.
    tau : float >= 0, default=16.0
        Softmax inverse temperature over novel-to-base cosine similarities
        (``softmax_t`` in the official code).
    temperature : float, default=1.0
        ``predict_proba`` is ``softmax(cosine / temperature)``; it changes neither
        :meth:`predict` nor the ranking.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels seen so far, sorted.
    prototypes_ : ndarray of shape (n_classes, n_features)
        The prototypes used to predict: the raw class mean for a base class, the
        calibrated (unit-norm mixture, not renormalised) prototype for a novel class.
    class_means_ : ndarray of shape (n_classes, n_features)
        Uncalibrated raw class means of all classes.
    class_counts_ : ndarray of shape (n_classes,), dtype int64
        Number of training samples seen per class.
    statistics_ : ClassStatistics
        Per-class counts and sums of all sessions, merged exactly.
    is_base_class_ : ndarray of shape (n_classes,), dtype bool
        True for the classes of the base session.
    n_features_in_ : int
        Number of features seen during `fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during `fit`, when X has feature names that are
        all strings.

    See Also
    --------
    skproto.incremental.teen_calibrate : The calibration, for any prototype matrix.
    NearestMeanClassifier : The same model without calibration (``alpha=0``).

    References
    ----------
    .. [1] Q.-W. Wang, D.-W. Zhou, Y.-K. Zhang, D.-C. Zhan, H.-J. Ye. "Few-Shot
       Class-Incremental Learning via Training-Free Prototype Calibration",
       NeurIPS 2023. https://github.com/wangkiw/TEEN

    Examples
    --------
    >>> import numpy as np
    >>> from skproto import TEENCalibrator
    >>> rng = np.random.default_rng(0)
    >>> centers = rng.normal(size=(4, 8))
    >>> X = np.repeat(centers, 20, axis=0) + 0.3 * rng.normal(size=(80, 8))
    >>> y = np.repeat([0, 1, 2, 3], 20)
    >>> clf = TEENCalibrator(alpha=0.5).fit(X[y < 3], y[y < 3])    # base session
    >>> clf = clf.partial_fit(X[y == 3][:5], y[y == 3][:5])         # 1-way 5-shot
    >>> clf.classes_, clf.is_base_class_
    (array([0, 1, 2, 3]), array([ True,  True,  True, False]))
    >>> float(clf.score(X, y))
    1.0
    """

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, 1, closed="both")],
        "tau": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, alpha=0.5, *, tau=16.0, temperature=1.0):
        self.alpha = alpha
        self.tau = tau
        self.temperature = temperature

    def _get_metric(self):
        return "cosine"

    def _calibrated(self, means, is_base):
        """Prototypes: base rows = raw means, novel rows calibrated against them."""
        prototypes = means.copy()
        if not is_base.all():
            prototypes[~is_base] = teen_calibrate(
                means[~is_base], means[is_base], alpha=self.alpha, tau=self.tau
            )
        return prototypes

    def _head(self, statistics, first):
        means = statistics.means().astype(statistics.dtype)
        if first:
            is_base = np.ones(statistics.n_classes, dtype=bool)
        else:
            is_base = np.isin(statistics.classes, self.classes_[self.is_base_class_])
        return {
            "classes_": statistics.classes,
            "class_means_": means,
            "class_counts_": statistics.counts,
            "is_base_class_": is_base,
            "prototypes_": self._calibrated(means, is_base),
        }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Base session: every class of ``y`` is a base class; forgets earlier fits.

        If the call fails (bad input, an interrupt), an earlier fit is left exactly
        as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training embeddings of the base classes.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return super().fit(X, y)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """A session: classes never seen become novel classes, calibrated to the base.

        The first call on an unfitted model is the base session (same as
        :meth:`fit`). Samples of known classes update their raw running means; the
        calibration is then recomputed from the raw means (see the class docstring).
        If the call fails (bad input, an interrupt), the fitted state is left exactly
        as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training embeddings of the session.
        y : array-like of shape (n_samples,)
            Class labels; new labels become novel classes.
        classes : array-like of shape (n_classes,), default=None
            Accepted for compatibility with scikit-learn's ``partial_fit`` signature
            and otherwise ignored.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        return super().partial_fit(X, y, classes=classes)

    @classmethod
    def from_statistics(cls, statistics, *, base_classes=None, **params):
        """A fitted calibrator from class statistics computed elsewhere.

        Parameters
        ----------
        statistics : ClassStatistics
            Statistics of the base classes and of any novel classes.
        base_classes : array-like, default=None
            Which classes of ``statistics`` are base classes; the others are novel
            and get calibrated. None: all are base (the base session).
        **params : dict
            Constructor parameters (``alpha``, ``tau``, ``temperature``).

        Returns
        -------
        estimator : TEENCalibrator
            Fitted estimator.
        """
        estimator = super().from_statistics(statistics, **params)
        if base_classes is not None:
            base_classes = column_or_1d(base_classes)
            is_base = np.isin(estimator.classes_, base_classes)
            if len(base_classes) == 0 or is_base.sum() != len(np.unique(base_classes)):
                raise ValueError(
                    "base_classes must be a non-empty subset of the classes of the "
                    f"statistics {estimator.classes_.tolist()}, got {base_classes.tolist()}."
                )
            estimator.is_base_class_ = is_base
            estimator.prototypes_ = estimator._calibrated(estimator.class_means_, is_base)
        return estimator
