"""Nearest class mean classifier with class-incremental ``partial_fit`` (SimpleCIL)."""

from numbers import Real

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from .._base import (
    BasePrototypeClassifier,
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

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels seen so far, sorted (a new class is inserted at its sorted
        position, so columns of :meth:`predict_proba` follow ``classes_``).
    prototypes_ : ndarray of shape (n_classes, n_features)
        Mean of the raw training features of each class, in the dtype of the
        training data (float32 stays float32).
    class_counts_ : ndarray of shape (n_classes,), dtype int64
        Number of training samples seen for each class.
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
    """

    _parameter_constraints = {
        "metric": [StrOptions({"cosine", "euclidean"})],
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, metric="cosine", temperature=1.0):
        self.metric = metric
        self.temperature = temperature

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
            classes, means, counts = class_means(X, y)
        self.classes_, self.prototypes_, self.class_counts_ = classes, means, counts
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
            X, y = validate_training_data(self, X, y, reset=first_call)
            batch = class_means(X, y)
            if first_call:
                merged = batch
            else:
                merged = merge_class_means(
                    self.classes_, self.prototypes_, self.class_counts_, *batch
                )
        self.classes_, self.prototypes_, self.class_counts_ = merged
        return self
