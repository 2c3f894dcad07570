"""Splitters for class-incremental and few-shot class-incremental protocols.

A splitter cuts the classes of a training set into an ordered sequence of steps
(sessions) and yields, for each step, the indices of its training samples and the
classes it introduces. They are not cross-validation splitters: test data is given
separately to :func:`~skproto.model_selection.evaluate_incremental`, which evaluates
after each step on the test samples of all classes seen so far. Given as ``cv=`` to
scikit-learn's model-selection tools they raise a TypeError at once (they would
otherwise read the new classes as test indices and return meaningless scores).
"""

import sys
from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import column_or_1d


def _check_labels(y):
    if y is None:
        raise ValueError("y is required: the steps are made of classes.")
    y = column_or_1d(y, warn=True)
    if y.shape[0] == 0:
        raise ValueError("y is empty.")
    return y


def _check_int(name, value, minimum, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")


def _class_order(y, class_order, shuffle, rng):
    """Ordered classes of the stream: given order, shuffled, or sorted."""
    classes = np.unique(y)
    if class_order is not None:
        order = column_or_1d(np.asarray(class_order))
        if len(np.unique(order)) != len(order):
            raise ValueError("class_order contains duplicated classes.")
        missing = np.setdiff1d(order, classes)
        if missing.size:
            raise ValueError(f"class_order has classes absent from y: {missing.tolist()}.")
        return order
    if shuffle:
        return classes[rng.permutation(len(classes))]
    return classes


class _NotGiven:
    """Default of ``groups``: tells a protocol call from a cross-validation one."""

    def __repr__(self):
        return "<not given>"


_NOT_GIVEN = _NotGiven()


def _refuse_cv_use(splitter):
    """The error for a splitter given as ``cv=`` to scikit-learn's model selection."""
    name = type(splitter).__name__
    return TypeError(
        f"{name} is an incremental-learning protocol, not a cross-validation splitter: "
        "its split(X, y) yields (train_index, new_classes), not (train_index, "
        "test_index), so it cannot be the cv= of cross_val_score, GridSearchCV and "
        "the other scikit-learn model-selection tools. Run the protocol with "
        "skproto.model_selection.evaluate_incremental(estimator, X_train, y_train, "
        f"X_test, y_test, {name}(...)), or tune an estimator on it with "
        "GridSearchCV(IncrementalProtocolEstimator(estimator, "
        f"splitter={name}(...)), param_grid) and an ordinary cv."
    )


def _used_as_cv(groups):
    """True when a scikit-learn model-selection tool calls a protocol method.

    Those tools call ``split(X, y, groups=...)`` / ``get_n_splits(X, y, groups=...)``
    on a ``cv=`` object; the protocol API never passes ``groups``. With metadata
    routing enabled and no metadata, scikit-learn omits ``groups``, so the calling
    module (two frames up: the caller of the protocol method) is checked too.
    """
    if groups is not _NOT_GIVEN:
        return True
    caller = sys._getframe(2).f_globals.get("__name__", "")
    return caller.split(".")[0] == "sklearn"


class _BaseIncrementalSplit:
    """What both protocols share: the steps come from ``_class_steps(y, rng)``.

    Misuse as ``cv=`` raises (see ``_used_as_cv``) instead of silently yielding new
    classes where scikit-learn expects test indices.
    """

    def get_n_splits(self, X=None, y=None, groups=_NOT_GIVEN):
        """Number of steps (sessions), the first one included, for the labels ``y``.

        Parameters
        ----------
        X : object
            Ignored.
        y : array-like of shape (n_samples,)
            Class labels.
        groups : object
            Must not be given: scikit-learn's model-selection tools pass it to a
            ``cv=`` object, and these protocols are not cross-validation splitters
            (a TypeError says what to use instead).

        Returns
        -------
        n_steps : int
        """
        if _used_as_cv(groups):
            raise _refuse_cv_use(self)
        y = _check_labels(y)
        return len(self._class_steps(y, check_random_state(0)))


class ClassIncrementalSplit(_BaseIncrementalSplit):
    """Class-incremental protocol: an initial step, then a fixed number of new classes.

    Step 0 holds the first ``n_initial_classes`` classes of the class order, every
    later step the next ``increment`` classes (the last step may hold fewer), and each
    step's training samples are all the samples of its classes. This is the
    protocol of iCaRL / PyCIL / FeTrIL ("B50 Inc10": ``n_initial_classes=50,
    increment=10``).

    Parameters
    ----------
    n_initial_classes : int or None, default=None
        Classes of the first step; None means ``increment`` ("B0" protocols).
    increment : int, default=10
        New classes per later step.
    class_order : array-like or None, default=None
        Explicit order of the classes (may be a subset of the classes of ``y``: the
        others are never used). Overrides ``shuffle``.
    shuffle : bool, default=False
        Shuffle the class order (with ``random_state``) instead of sorting it.
    random_state : int, RandomState instance or None, default=None
        Seed of the class shuffle; use an int for reproducible steps.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.model_selection import ClassIncrementalSplit
    >>> y = np.repeat(np.arange(5), 2)
    >>> splitter = ClassIncrementalSplit(n_initial_classes=3, increment=1)
    >>> for train_index, new_classes in splitter.split(None, y):
    ...     print(new_classes, train_index)
    [0 1 2] [0 1 2 3 4 5]
    [3] [6 7]
    [4] [8 9]
    """

    def __init__(self, n_initial_classes=None, increment=10, class_order=None,
                 shuffle=False, random_state=None):
        self.n_initial_classes = n_initial_classes
        self.increment = increment
        self.class_order = class_order
        self.shuffle = shuffle
        self.random_state = random_state

    def __repr__(self):
        return (f"{type(self).__name__}(n_initial_classes={self.n_initial_classes!r}, "
                f"increment={self.increment!r}, shuffle={self.shuffle!r}, "
                f"random_state={self.random_state!r})")

    def _class_steps(self, y, rng):
        _check_int("increment", self.increment, 1)
        _check_int("n_initial_classes", self.n_initial_classes, 1, allow_none=True)
        order = _class_order(y, self.class_order, self.shuffle, rng)
        first = self.increment if self.n_initial_classes is None else self.n_initial_classes
        if first > len(order):
            raise ValueError(
                f"n_initial_classes={first} is larger than the number of classes "
                f"({len(order)})."
            )
        return [order[:first]] + [
            order[i:i + self.increment] for i in range(first, len(order), self.increment)
        ]

    def split(self, X=None, y=None, groups=_NOT_GIVEN):
        """Training indices and new classes of each step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            Ignored; present for API consistency.
        y : array-like of shape (n_samples,)
            Class labels of the training set.
        groups : object
            Must not be given. This is not a cross-validation splitter: a call by
            scikit-learn's model-selection tools (``cv=`` of ``cross_val_score``,
            ``GridSearchCV``, ...), which pass ``groups``, raises a TypeError
            pointing to :func:`~skproto.model_selection.evaluate_incremental` and
            :class:`~skproto.model_selection.IncrementalProtocolEstimator`.

        Yields
        ------
        train_index : ndarray of int
            Indices (into ``y``) of the training samples of the step, in increasing
            order.
        new_classes : ndarray
            The classes the step introduces, in class order.
        """
        # Checked here, not in the generator, so that misuse fails at the call.
        if _used_as_cv(groups):
            raise _refuse_cv_use(self)
        return self._iter_steps(_check_labels(y))

    def _iter_steps(self, y):
        rng = check_random_state(self.random_state)
        for classes in self._class_steps(y, rng):
            yield np.flatnonzero(np.isin(y, classes)), classes


class FewShotIncrementalSplit(_BaseIncrementalSplit):
    """Few-shot class-incremental protocol (FSCIL): a many-shot base session, then
    ``n_ways``-way ``n_shots``-shot sessions.

    Session 0 holds all training samples of the first ``n_base_classes`` classes;
    each later session the next ``n_ways`` classes with ``n_shots`` training samples
    each, drawn at random. The standard benchmark (CIFAR-100, miniImageNet; TOPIC,
    CEC, TEEN) is 60 base classes + 8 sessions of 5-way 5-shot for 100 classes:
    ``FewShotIncrementalSplit(60, n_ways=5, n_shots=5)``.

    Parameters
    ----------
    n_base_classes : int, default=60
        Classes of the base session.
    n_ways : int, default=5
        New classes per few-shot session.
    n_shots : int, default=5
        Training samples per new class (a class with fewer samples raises).
    n_sessions : int or None, default=None
        Few-shot sessions after the base one; None means as many full sessions as
        the classes allow (left-over classes are never used).
    class_order : array-like or None, default=None
        Explicit class order (overrides ``shuffle``).
    shuffle : bool, default=False
        Shuffle the class order instead of sorting it.
    random_state : int, RandomState instance or None, default=None
        Seed of the class shuffle and of the choice of the shots. Use an int: then
        every call of :meth:`split` yields the same sessions.

    Examples
    --------
    >>> import numpy as np
    >>> from skproto.model_selection import FewShotIncrementalSplit
    >>> y = np.repeat(np.arange(6), 10)
    >>> splitter = FewShotIncrementalSplit(2, n_ways=2, n_shots=3, random_state=0)
    >>> [(len(idx), cls.tolist()) for idx, cls in splitter.split(None, y)]
    [(20, [0, 1]), (6, [2, 3]), (6, [4, 5])]
    """

    def __init__(self, n_base_classes=60, n_ways=5, n_shots=5, n_sessions=None,
                 class_order=None, shuffle=False, random_state=None):
        self.n_base_classes = n_base_classes
        self.n_ways = n_ways
        self.n_shots = n_shots
        self.n_sessions = n_sessions
        self.class_order = class_order
        self.shuffle = shuffle
        self.random_state = random_state

    def __repr__(self):
        return (f"{type(self).__name__}(n_base_classes={self.n_base_classes!r}, "
                f"n_ways={self.n_ways!r}, n_shots={self.n_shots!r}, "
                f"n_sessions={self.n_sessions!r}, shuffle={self.shuffle!r}, "
                f"random_state={self.random_state!r})")

    def _class_steps(self, y, rng):
        _check_int("n_base_classes", self.n_base_classes, 1)
        _check_int("n_ways", self.n_ways, 1)
        _check_int("n_shots", self.n_shots, 1)
        _check_int("n_sessions", self.n_sessions, 0, allow_none=True)
        order = _class_order(y, self.class_order, self.shuffle, rng)
        n_left = len(order) - self.n_base_classes
        if n_left < 0:
            raise ValueError(
                f"n_base_classes={self.n_base_classes} is larger than the number of "
                f"classes ({len(order)})."
            )
        n_sessions = n_left // self.n_ways if self.n_sessions is None else self.n_sessions
        if self.n_base_classes + n_sessions * self.n_ways > len(order):
            raise ValueError(
                f"{self.n_base_classes} base classes + {n_sessions} sessions of "
                f"{self.n_ways} ways need {self.n_base_classes + n_sessions * self.n_ways} "
                f"classes; y has {len(order)}."
            )
        b, w = self.n_base_classes, self.n_ways
        return [order[:b]] + [order[b + s * w:b + (s + 1) * w] for s in range(n_sessions)]

    def split(self, X=None, y=None, groups=_NOT_GIVEN):
        """Training indices and new classes of each session.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or None
            Ignored; present for API consistency.
        y : array-like of shape (n_samples,)
            Class labels of the training set.
        groups : object
            Must not be given. This is not a cross-validation splitter: a call by
            scikit-learn's model-selection tools (``cv=`` of ``cross_val_score``,
            ``GridSearchCV``, ...), which pass ``groups``, raises a TypeError
            pointing to :func:`~skproto.model_selection.evaluate_incremental` and
            :class:`~skproto.model_selection.IncrementalProtocolEstimator`.

        Yields
        ------
        train_index : ndarray of int
            Session 0: every sample of the base classes; later sessions:
            ``n_shots`` random samples of each new class. Sorted.
        new_classes : ndarray
            The classes the session introduces, in class order.
        """
        if _used_as_cv(groups):
            raise _refuse_cv_use(self)
        return self._iter_steps(_check_labels(y))

    def _iter_steps(self, y):
        rng = check_random_state(self.random_state)
        steps = self._class_steps(y, rng)
        yield np.flatnonzero(np.isin(y, steps[0])), steps[0]
        for classes in steps[1:]:
            shots = []
            for c in classes:
                members = np.flatnonzero(y == c)
                if len(members) < self.n_shots:
                    raise ValueError(
                        f"class {c!r} has {len(members)} training samples, fewer than "
                        f"n_shots={self.n_shots}."
                    )
                shots.append(rng.choice(members, self.n_shots, replace=False))
            yield np.sort(np.concatenate(shots)), classes
