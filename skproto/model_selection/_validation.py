"""The evaluation loop of incremental-learning protocols."""

import inspect
import time

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch, _safe_indexing
from sklearn.utils.validation import check_consistent_length, column_or_1d, indexable

_STRATEGIES = ("partial_fit", "joint")


def _accuracy(correct, mask):
    return float(correct[mask].mean()) if mask.any() else float("nan")


def evaluate_incremental(estimator, X_train, y_train, X_test, y_test, splitter, *,
                         strategy="partial_fit", return_estimator=False):
    """Run an incremental protocol and measure accuracy after every step.

    Step 0 calls ``fit`` on a clone of ``estimator`` with the samples of the first
    step, every later step calls ``partial_fit`` with the samples of that step only
    (``strategy="partial_fit"``). An estimator whose ``partial_fit`` takes a
    ``classes`` argument is driven by ``partial_fit`` alone, every call given
    ``classes=`` **all the classes of the stream** (the union of the steps' new
    classes): scikit-learn's incremental classifiers (``SGDClassifier``,
    ``Perceptron``, ``GaussianNB``, ``MLPClassifier``, ...) require the classes at the
    first call and cannot add any later. Each such call is one pass over the step's
    samples (one epoch for SGD or an MLP), and classes not yet trained on are
    declared but have learnt nothing. skproto's estimators accept and ignore
    ``classes`` and their first ``partial_fit`` is ``fit``: for them both ways give
    the same results. After each step the model predicts the test
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
        :class:`~skproto.FeTrIL`, or one whose ``partial_fit`` takes ``classes``, as
        scikit-learn's (see above). It is cloned, never modified.
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
    X_train, y_train, steps = _protocol_steps(X_train, y_train, splitter)
    X_test, y_test = _check_test_data(X_test, y_test)
    scorer = _StepScorer([classes for _, classes in steps], X_test, y_test)
    out = {"fit_time": np.full(len(steps), np.nan), "n_train_samples": []}
    model = None
    for t, (model, n_samples, seconds) in enumerate(
        _run_stream(estimator, X_train, y_train, steps, strategy)
    ):
        out["fit_time"][t] = seconds
        out["n_train_samples"].append(n_samples)
        scorer.score_step(t, model)
    results = scorer.results()
    results.fit_time = out["fit_time"]
    results.n_train_samples = np.asarray(out["n_train_samples"], dtype=int)
    results.estimator_name = type(estimator).__name__
    results.strategy = strategy
    if return_estimator:
        results.estimator = model
    return results


def _rows(X, index):
    return _safe_indexing(X, index)


def _check_test_data(X, y):
    # Only made indexable: the estimator validates X itself (it may be a pipeline that
    # takes file paths or texts; a sparse matrix reaches it as a sparse matrix).
    y = column_or_1d(y)
    check_consistent_length(X, y)
    X = np.asarray(X) if isinstance(X, (list, tuple)) else indexable(X)[0]
    return X, y


def _protocol_steps(X, y, splitter):
    """Validated training data and the list of ``(train_index, new_classes)`` steps."""
    if not hasattr(splitter, "split"):
        raise TypeError(f"splitter must have a split(X, y) method, got {splitter!r}.")
    X, y = _check_test_data(X, y)
    steps = [(np.asarray(index), np.asarray(classes))
             for index, classes in splitter.split(X, y)]
    if not steps:
        raise ValueError("the splitter yielded no step.")
    return X, y, steps


def _partial_fit_takes_classes(estimator):
    """Whether ``estimator.partial_fit`` has a ``classes`` parameter."""
    method = getattr(estimator, "partial_fit", None)
    if method is None:
        return False
    try:
        return "classes" in inspect.signature(method).parameters
    except (TypeError, ValueError):  # a builtin or C method without a signature
        return False


def _run_stream(estimator, X, y, steps, strategy="partial_fit"):
    """Train along the steps; yield ``(model, n_train_samples, fit_seconds)`` after each.

    The yielded model is the live one: copy it to keep a step's state.
    """
    classes_kwargs = {}
    if strategy == "partial_fit" and _partial_fit_takes_classes(estimator):
        # scikit-learn's partial_fit classifiers must be told every class of the
        # stream at their first call and cannot add any later (after fit either), so
        # they are driven by partial_fit alone. skproto's estimators ignore
        # ``classes`` and their first partial_fit is fit: same results either way.
        classes_kwargs["classes"] = np.unique(np.concatenate([c for _, c in steps]))
    model = None
    seen_index = []
    for t, (index, _) in enumerate(steps):
        seen_index.append(index)
        start = time.perf_counter()
        if strategy == "joint":
            index = np.concatenate(seen_index)
            model = clone(estimator).fit(_rows(X, index), y[index])
        elif classes_kwargs:
            model = clone(estimator) if t == 0 else model
            model.partial_fit(_rows(X, index), y[index], **classes_kwargs)
        elif t == 0:
            model = clone(estimator).fit(_rows(X, index), y[index])
        else:
            model.partial_fit(_rows(X, index), y[index])
        yield model, len(index), time.perf_counter() - start


class _StepScorer:
    """Accuracies after each step on the test samples of the classes seen so far."""

    def __init__(self, new_classes, X_test, y_test):
        self.X_test, self.y_test = X_test, y_test
        n_steps = len(new_classes)
        # Test sample -> step that introduces its class (-1: never used).
        self.test_step = np.full(len(y_test), -1)
        for s, classes in enumerate(new_classes):
            self.test_step[np.isin(y_test, classes)] = s
        self.out = {k: np.full(n_steps, np.nan) for k in (
            "accuracy", "accuracy_old", "accuracy_new", "accuracy_base", "accuracy_novel",
            "predict_time")}
        self.matrix = np.full((n_steps, n_steps), np.nan)
        self.new_classes = list(new_classes)
        self.n_seen = np.cumsum([len(classes) for classes in self.new_classes])

    def score_step(self, t, model):
        out, y_test = self.out, self.y_test
        seen = (self.test_step >= 0) & (self.test_step <= t)
        start = time.perf_counter()
        pred = model.predict(_rows(self.X_test, np.flatnonzero(seen))) if seen.any() else []
        out["predict_time"][t] = time.perf_counter() - start
        correct = np.asarray(pred) == y_test[seen]
        step_of = self.test_step[seen]
        out["accuracy"][t] = _accuracy(correct, np.ones_like(correct))
        out["accuracy_old"][t] = _accuracy(correct, step_of < t)
        out["accuracy_new"][t] = _accuracy(correct, step_of == t)
        out["accuracy_base"][t] = _accuracy(correct, step_of == 0)
        out["accuracy_novel"][t] = _accuracy(correct, step_of > 0)
        for j in range(t + 1):
            self.matrix[t, j] = _accuracy(correct, step_of == j)

    def results(self):
        return Bunch(
            **self.out,
            accuracy_matrix=self.matrix,
            n_seen_classes=self.n_seen.astype(int),
            new_classes=list(self.new_classes),
        )
