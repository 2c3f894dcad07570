"""Clustering accuracy under the generalized category discovery protocol."""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.utils import check_consistent_length, column_or_1d


def cluster_accuracy(y_true, y_pred, old_classes=None):
    """Accuracy of a clustering after the best one-to-one matching of clusters to classes.

    The matching is computed **once, over all given samples**, with the Hungarian
    algorithm (:func:`scipy.optimize.linear_sum_assignment` on the cluster x class
    contingency table): each cluster is mapped to at most one class and each class to
    at most one cluster; samples of unmatched clusters count as errors. This is the
    evaluation of generalized category discovery, ``split_cluster_acc_v2`` of the
    official GCD code (Vaze et al., 2022), also used by GPC and SimGCD: the *Old* and
    *New* accuracies reuse the single global matching, so a cluster cannot be matched
    to one class for "All" and to another for "Old".

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground-truth classes (any hashable labels: ints or strings).
    y_pred : array-like of shape (n_samples,)
        Cluster labels; their values need not match ``y_true``'s.
    old_classes : array-like, default=None
        The known ("Old") classes. When given, the accuracies on the samples whose true
        class is in ``old_classes`` and on the others ("New") are returned as well.

    Returns
    -------
    accuracy : float
        When ``old_classes`` is None: the accuracy on all samples.
    (all, old, new) : tuple of float
        When ``old_classes`` is given. ``old`` or ``new`` is ``nan`` when no sample
        falls in that group.

    References
    ----------
    .. [1] S. Vaze, K. Han, A. Vedaldi, A. Zisserman. "Generalized Category
       Discovery", CVPR 2022 (``split_cluster_acc_v2`` in the official code).

    Examples
    --------
    >>> from skproto.metrics import cluster_accuracy
    >>> y_true = [0, 0, 1, 1, 2, 2]
    >>> y_pred = [5, 5, 7, 7, 7, 9]          # cluster ids are arbitrary
    >>> cluster_accuracy(y_true, y_pred)
    0.833...
    >>> cluster_accuracy(y_true, y_pred, old_classes=[0, 1])
    (0.833..., 1.0, 0.5)
    """
    y_true = column_or_1d(y_true, warn=True)
    y_pred = column_or_1d(y_pred, warn=True)
    check_consistent_length(y_true, y_pred)
    if y_true.shape[0] == 0:
        raise ValueError("cluster_accuracy needs at least one sample.")
    classes, true_codes = np.unique(y_true, return_inverse=True)
    _, pred_codes = np.unique(y_pred, return_inverse=True)
    true_codes, pred_codes = true_codes.ravel(), pred_codes.ravel()
    counts = np.zeros((pred_codes.max() + 1, classes.shape[0]), dtype=np.int64)
    np.add.at(counts, (pred_codes, true_codes), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    matched_class = np.full(counts.shape[0], -1)
    matched_class[rows] = cols
    correct = matched_class[pred_codes] == true_codes
    overall = float(correct.mean())
    if old_classes is None:
        return overall
    is_old = np.isin(y_true, np.asarray(old_classes))
    old = float(correct[is_old].mean()) if is_old.any() else float("nan")
    new = float(correct[~is_old].mean()) if (~is_old).any() else float("nan")
    return overall, old, new
