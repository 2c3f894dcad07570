"""Summary metrics of incremental-learning runs.

They take the per-step arrays that
:func:`~skproto.model_selection.evaluate_incremental` returns (or any such arrays).
"""

import numpy as np


def _step_accuracies(step_accuracies):
    a = np.asarray(step_accuracies, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"step_accuracies must be a non-empty 1-D array, got shape {a.shape}."
        )
    return a


def average_incremental_accuracy(step_accuracies):
    """Average incremental accuracy: the mean over steps of the accuracy on all
    classes seen so far, the first step included (Rebuffi et al., iCaRL).

    Parameters
    ----------
    step_accuracies : array-like of shape (n_steps,)
        Accuracy after each step, e.g. ``evaluate_incremental(...).accuracy``.

    Returns
    -------
    aia : float

    References
    ----------
    .. [1] S.-A. Rebuffi, A. Kolesnikov, G. Sperl, C. H. Lampert. "iCaRL:
       Incremental Classifier and Representation Learning", CVPR 2017.

    Examples
    --------
    >>> from skproto.metrics import average_incremental_accuracy
    >>> average_incremental_accuracy([0.9, 0.8, 0.7])
    0.8...
    """
    return float(np.mean(_step_accuracies(step_accuracies)))


def performance_drop(step_accuracies):
    """Performance drop (PD): first-session minus last-session accuracy (FSCIL).

    Parameters
    ----------
    step_accuracies : array-like of shape (n_steps,)
        Accuracy on all seen classes after each session.

    Returns
    -------
    pd : float
        Positive when the model got worse; lower is better.

    References
    ----------
    .. [1] C. Zhang, N. Song, G. Lin, Y. Zheng, P. Pan, Y. Xu. "Few-Shot Incremental
       Learning with Continually Evolved Classifiers", CVPR 2021.

    Examples
    --------
    >>> from skproto.metrics import performance_drop
    >>> performance_drop([0.8, 0.7, 0.6])
    0.2...
    """
    a = _step_accuracies(step_accuracies)
    return float(a[0] - a[-1])


def forgetting(accuracy_matrix, *, average=True):
    """Forgetting at the last step (Chaudhry et al., 2018).

    For every step ``j`` but the last, the forgetting of its classes is the best
    accuracy they ever had after an earlier step minus their accuracy after the last
    step: ``f_j = max_{j <= l < T-1} A[l, j] - A[T-1, j]``.

    Parameters
    ----------
    accuracy_matrix : array-like of shape (n_steps, n_steps)
        ``A[t, j]`` = accuracy on the test samples of the classes of step ``j``
        after training step ``t`` (``evaluate_incremental(...).accuracy_matrix``);
        entries above the diagonal are ignored.
    average : bool, default=True
        Return the mean over the steps ``j < T-1``; False returns each ``f_j``.

    Returns
    -------
    forgetting : float or ndarray of shape (n_steps - 1,)
        NaN (average) or an empty array with a single step.

    References
    ----------
    .. [1] A. Chaudhry, P. K. Dokania, T. Ajanthan, P. H. S. Torr. "Riemannian Walk
       for Incremental Learning: Understanding Forgetting and Intransigence",
       ECCV 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.metrics import forgetting
    >>> A = np.array([[0.9, np.nan, np.nan],
    ...               [0.8, 0.95, np.nan],
    ...               [0.7, 0.85, 0.9]])
    >>> forgetting(A, average=False)
    array([0.2, 0.1])
    >>> forgetting(A)
    0.15...
    """
    A = np.asarray(accuracy_matrix, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(
            f"accuracy_matrix must be a non-empty square 2-D array, got shape {A.shape}."
        )
    T = A.shape[0]
    lower = np.tril(np.ones((T, T), dtype=bool))
    if np.isnan(A[lower]).any():
        raise ValueError(
            "accuracy_matrix has NaN on or below the diagonal (a step without test "
            "samples?); forgetting needs every A[t, j] with j <= t."
        )
    per_step = np.array([A[j:T - 1, j].max() - A[T - 1, j] for j in range(T - 1)])
    if not average:
        return per_step
    return float(per_step.mean()) if per_step.size else float("nan")


def harmonic_mean_accuracy(base_accuracy, novel_accuracy):
    """Harmonic mean of base-class and novel-class accuracy (FSCIL, TEEN).

    ``2 a_b a_n / (a_b + a_n)``, 0 where both are 0, NaN where either is NaN.
    Works element-wise on per-session arrays.

    Parameters
    ----------
    base_accuracy : float or array-like
        Accuracy on the base-session classes (``accuracy_base``).
    novel_accuracy : float or array-like
        Accuracy on the classes of the later sessions (``accuracy_novel``).

    Returns
    -------
    hm : float or ndarray

    References
    ----------
    .. [1] Q.-W. Wang, D.-W. Zhou, Y.-K. Zhang, D.-C. Zhan, H.-J. Ye. "Few-Shot
       Class-Incremental Learning via Training-Free Prototype Calibration",
       NeurIPS 2023.

    Examples
    --------
    >>> from skproto.metrics import harmonic_mean_accuracy
    >>> harmonic_mean_accuracy(0.8, 0.2)
    0.32...
    """
    a = np.asarray(base_accuracy, dtype=np.float64)
    b = np.asarray(novel_accuracy, dtype=np.float64)
    if ((a < 0) | (a > 1) | (b < 0) | (b > 1)).any():
        raise ValueError("accuracies must lie in [0, 1].")
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        hm = np.where(total > 0, 2 * a * b / np.where(total > 0, total, 1), 0.0)
    hm = np.where(np.isnan(total), np.nan, hm)
    return float(hm) if hm.ndim == 0 else hm
