"""Out-of-distribution detection metrics: FPR at a TPR, and the usual four-number report.

Convention (scikit-learn's, and PALM's ``cal_metric``): in-distribution samples are
the *positive* class (``y_true == pos_label``, 1 by default) and a higher score means
"more in-distribution", as :meth:`MixturePrototypeOODDetector.score_samples` returns.
"""

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.utils import column_or_1d
from sklearn.utils.validation import check_consistent_length


def _check_binary(y_true, y_score, pos_label):
    y_true = column_or_1d(y_true)
    y_score = column_or_1d(y_score).astype(np.float64, copy=False)
    check_consistent_length(y_true, y_score)
    if not np.all(np.isfinite(y_score)):
        raise ValueError("y_score must be finite.")
    is_in = y_true == pos_label
    if is_in.all() or not is_in.any():
        raise ValueError(
            "y_true must hold both in-distribution samples (== pos_label="
            f"{pos_label!r}) and out-of-distribution ones."
        )
    return is_in.astype(int), y_score


def fpr_at_tpr(y_true, y_score, tpr=0.95, *, pos_label=1):
    """False positive rate at the first threshold whose true positive rate reaches ``tpr``.

    FPR@95%TPR, the standard OOD metric: keep the threshold that accepts at least
    ``tpr`` of the in-distribution samples (``score >= threshold``), and report the
    fraction of out-of-distribution samples it also accepts. Lower is better.

    Among all thresholds ``t`` with ``mean(score_in >= t) >= tpr`` this is the
    smallest ``mean(score_out >= t)`` (the ROC point of scikit-learn's
    :func:`~sklearn.metrics.roc_curve` where the TPR first reaches ``tpr``). PALM's
    ``cal_metric`` instead thresholds at ``np.percentile(score_in, 5)`` with linear
    interpolation and strict ``>``; the two agree up to one sample's worth of FPR.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        ``pos_label`` for in-distribution samples, anything else for OOD.
    y_score : array-like of shape (n_samples,)
        Higher = more in-distribution.
    tpr : float, default=0.95
        Target true positive rate, in (0, 1].
    pos_label : int, float, bool or str, default=1
        Label of the in-distribution samples.

    Returns
    -------
    fpr : float

    Examples
    --------
    >>> from skproto.metrics import fpr_at_tpr
    >>> y_true = [1, 1, 1, 1, 0, 0]
    >>> y_score = [0.9, 0.8, 0.7, 0.2, 0.6, 0.1]
    >>> fpr_at_tpr(y_true, y_score, tpr=0.75)   # threshold 0.7 keeps 3/4 ID, 0/2 OOD
    0.0
    >>> fpr_at_tpr(y_true, y_score, tpr=0.95)   # threshold 0.2 keeps 4/4 ID, 1/2 OOD
    0.5
    """
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}.")
    y, s = _check_binary(y_true, y_score, pos_label)
    fprs, tprs, _ = roc_curve(y, s, drop_intermediate=False)
    # tprs is non-decreasing; the first point that reaches the target has the
    # smallest FPR among those that do. The tolerance absorbs 0.95 * n rounding.
    index = np.searchsorted(tprs, tpr - 1e-12, side="left")
    return float(fprs[index])


def ood_report(y_true, y_score, *, tpr=0.95, pos_label=1):
    """AUROC, FPR at ``tpr`` TPR, AUPR-in and AUPR-out of an OOD score.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        ``pos_label`` for in-distribution samples, anything else for OOD.
    y_score : array-like of shape (n_samples,)
        Higher = more in-distribution.
    tpr : float, default=0.95
        TPR of the FPR metric.
    pos_label : int, float, bool or str, default=1
        Label of the in-distribution samples.

    Returns
    -------
    report : dict
        ``"auroc"``: :func:`~sklearn.metrics.roc_auc_score` with in-distribution
        positive; ``"fpr@95tpr"`` (the key follows ``tpr``): :func:`fpr_at_tpr`;
        ``"aupr_in"``: :func:`~sklearn.metrics.average_precision_score` with
        in-distribution positive; ``"aupr_out"``: the same with OOD positive and
        the negated score.

    Examples
    --------
    >>> from skproto.metrics import ood_report
    >>> report = ood_report([1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.4, 0.1])
    >>> sorted(report)
    ['aupr_in', 'aupr_out', 'auroc', 'fpr@95tpr']
    >>> round(report["auroc"], 4)
    0.8333
    """
    y, s = _check_binary(y_true, y_score, pos_label)
    key = f"fpr@{round(100 * tpr, 6):g}tpr"
    return {
        "auroc": float(roc_auc_score(y, s)),
        key: fpr_at_tpr(y, s, tpr=tpr),
        "aupr_in": float(average_precision_score(y, s)),
        "aupr_out": float(average_precision_score(1 - y, -s)),
    }
