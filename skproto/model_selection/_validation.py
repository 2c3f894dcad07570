"""The evaluation loop of incremental-learning protocols."""

import time

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch
from sklearn.utils.validation import check_consistent_length, column_or_1d

_STRATEGIES = ("partial_fit", "joint")


def _accuracy(correct, mask):
    return float(correct[mask].mean()) if mask.any() else float("nan")


def evaluate_incremental(estimator, X_train, y_train, X_test, y_test, splitter, *,
                         strategy="partial_fit", return_estimator=False):
    """Run an incremental protocol and measure accuracy after every step.

    Step 0 calls ``fit`` on a clone of ``estimator`` with the samples of the first
    step, every later step calls ``partial_fit`` with the samples of that step only
    (``strategy="partial_fit"``). After each step the model predicts the test
    samples of **all classes seen so far**, and accuracy is reported on all of them,
    on the classes of earlier steps ("old") and on the classes of this step ("new"),
    and on the first step's classes ("base") vs all later ones ("novel", the FSCIL
    split used for the harmonic mean). Accuracies are over samples (top-1), as in
    iCaRL / PyCIL / FeTrIL; with a class-balanced test set this equals the mean
    per-class accuracy that TEEN reports.

    Parameters
    ----------
    estimator : estimator
        A classifier with ``fit``, ``predict`` and (for ``strategy="partial_fit"``) a
        ``partial_fit`` that accepts new classes, e.g.
        :class:`~skproto.NearestMeanClassifier`, :class:`~skproto.TEENCalibrator`,
        :class:`~skproto.FeTrIL`. It is cloned, never modified.
    X_train, y_train : array-like of shape (n_train, n_features), (n_train,)
        Training data; the splitter cuts it into steps.
    X_test, y_test : array-like of shape (n_test, n_features), (n_test,)
        Test data; samples of classes that no step introduces are ignored.
    splitter : object
        A splitter whose ``split(X, y)`` yields ``(train_index, new_classes)`` per
        step, e.g. :class:`ClassIncrementalSplit` or :class:`FewShotIncrementalSplit`.
    strategy : {"partial_fit", "joint"}, default="partial_fit"
        ``"joint"`` refits a fresh clone at every step on the training samples of
        all steps so far: the non-incremental upper bound (e.g. with
        ``LogisticRegression``), which needs no ``partial_fit``.
    return_estimator : bool, default=False
        Also return the model fitted after the last step.

    Returns
    -------
    results : :class:`~sklearn.utils.Bunch`
        Per-step arrays (length ``n_steps``) and the protocol:

        - ``accuracy``: on the test samples of all seen classes;
        - ``accuracy_old`` / ``accuracy_new``: on the classes of earlier steps / of
          this step (``accuracy_old[0]`` is NaN);
        - ``accuracy_base`` / ``accuracy_novel``: on the first step's classes / on the
          classes of all later steps (``accuracy_novel[0]`` is NaN);
        - ``accuracy_matrix``: ``(n_steps, n_steps)``, ``[t, j]`` = accuracy on the
          classes of step ``j`` after step ``t`` (NaN for ``j > t``); input of
          :func:`~skproto.metrics.forgetting`;
        - ``n_seen_classes``, ``new_classes`` (list of arrays), ``n_train_samples``;
        - ``fit_time`` / ``predict_time``: seconds per step;
        - ``estimator_name``, ``strategy``; ``estimator`` with ``return_estimator``.

        It can be passed to
        :meth:`IncrementalAccuracyDisplay.from_results`.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto import NearestMeanClassifier
    >>> from skproto.metrics import average_incremental_accuracy
    >>> from skproto.model_selection import ClassIncrementalSplit, evaluate_incremental
    >>> rng = np.random.default_rng(0)
    >>> centers = 4 * rng.normal(size=(6, 5))
    >>> y = np.repeat(np.arange(6), 20)
    >>> X = centers[y] + rng.normal(size=(120, 5))
    >>> res = evaluate_incremental(NearestMeanClassifier(), X[::2], y[::2], X[1::2],
    ...                            y[1::2], ClassIncrementalSplit(2, increment=2))
    >>> res.n_seen_classes
    array([2, 4, 6])
    >>> res.accuracy
    array([1., 1., 1.])
    >>> float(average_incremental_accuracy(res.accuracy))
    1.0
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {_STRATEGIES}, got {strategy!r}.")
    if not hasattr(splitter, "split"):
        raise TypeError(f"splitter must have a split(X, y) method, got {splitter!r}.")
    y_train = column_or_1d(y_train)
    y_test = column_or_1d(y_test)
    check_consistent_length(X_train, y_train)
    check_consistent_length(X_test, y_test)
    X_train = X_train if hasattr(X_train, "iloc") else np.asarray(X_train)
    X_test = X_test if hasattr(X_test, "iloc") else np.asarray(X_test)

    def rows(X, index):
        return X.iloc[index] if hasattr(X, "iloc") else X[index]

    steps = list(splitter.split(X_train, y_train))
    if not steps:
        raise ValueError("the splitter yielded no step.")
    n_steps = len(steps)
    # Test sample -> step that introduces its class (-1: never used).
    test_step = np.full(len(y_test), -1)
    for s, (_, classes) in enumerate(steps):
        test_step[np.isin(y_test, classes)] = s

    out = {k: np.full(n_steps, np.nan) for k in (
        "accuracy", "accuracy_old", "accuracy_new", "accuracy_base", "accuracy_novel",
        "fit_time", "predict_time")}
    matrix = np.full((n_steps, n_steps), np.nan)
    n_seen = np.zeros(n_steps, dtype=int)
    n_train = np.zeros(n_steps, dtype=int)
    model = None
    seen_index = []
    for t, (index, classes) in enumerate(steps):
        index = np.asarray(index)
        seen_index.append(index)
        start = time.perf_counter()
        if strategy == "joint":
            index = np.concatenate(seen_index)
            model = clone(estimator).fit(rows(X_train, index), y_train[index])
        elif t == 0:
            model = clone(estimator).fit(rows(X_train, index), y_train[index])
        else:
            model.partial_fit(rows(X_train, index), y_train[index])
        out["fit_time"][t] = time.perf_counter() - start
        n_train[t] = len(index)
        n_seen[t] = (n_seen[t - 1] if t else 0) + len(classes)

        seen = (test_step >= 0) & (test_step <= t)
        start = time.perf_counter()
        pred = model.predict(rows(X_test, np.flatnonzero(seen))) if seen.any() else []
        out["predict_time"][t] = time.perf_counter() - start
        correct = np.asarray(pred) == y_test[seen]
        step_of = test_step[seen]
        out["accuracy"][t] = _accuracy(correct, np.ones_like(correct))
        out["accuracy_old"][t] = _accuracy(correct, step_of < t)
        out["accuracy_new"][t] = _accuracy(correct, step_of == t)
        out["accuracy_base"][t] = _accuracy(correct, step_of == 0)
        out["accuracy_novel"][t] = _accuracy(correct, step_of > 0)
        for j in range(t + 1):
            matrix[t, j] = _accuracy(correct, step_of == j)

    results = Bunch(
        **out,
        accuracy_matrix=matrix,
        n_seen_classes=n_seen,
        new_classes=[np.asarray(c) for _, c in steps],
        n_train_samples=n_train,
        estimator_name=type(estimator).__name__,
        strategy=strategy,
    )
    if return_estimator:
        results.estimator = model
    return results
