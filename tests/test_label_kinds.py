"""Labels that mix strings and numbers are refused with one clear message by every
estimator's fit / partial_fit (issue 14, item 4).

numpy cannot sort such labels (``np.unique`` raised "'<' not supported between
instances of 'int' and 'str'", or scikit-learn's "Unknown label type: unknown"
surfaced) and turns a Python list of both into strings without a word. The
estimators are discovered, so a new one is covered without being listed here.
"""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.utils import get_tags

from skproto.discovery import SemiSupervisedGMM
from skproto.model_selection import ClassIncrementalSplit
from skproto import NearestMeanClassifier
from skproto.utils import all_estimators

MESSAGE = "mix strings and numbers"
PARAMS = {
    # A meta-estimator: its estimator and protocol are required.
    "IncrementalProtocolEstimator": {
        "estimator": NearestMeanClassifier(),
        "splitter": ClassIncrementalSplit(increment=2),
    },
    "MixturePrototypeOODDetector": {"max_iter": 5, "random_state": 0},
    # The default 10,000 components (RanPAC's) hold an 800 MB Gram matrix.
    "RanPAC": {"n_components": 32, "random_state": 0},
    "SemiSupervisedGMM": {
        "n_components": 3, "max_iter": 10, "max_move_rounds": 2, "random_state": 0
    },
}
# KNN+ is class-agnostic: like scikit-learn's outlier detectors it ignores y
# (test_knn_ignores_labels below holds that), so there is no label to check.
IGNORES_Y = {"KNNOODDetector"}
ESTIMATORS = [
    cls(**PARAMS.get(name, {}))
    for name, cls in all_estimators()
    if name not in IGNORES_Y
    if get_tags(cls(**PARAMS.get(name, {}))).input_tags.two_d_array  # not the encoders
]
IDS = [type(est).__name__ for est in ESTIMATORS]


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) + np.repeat(np.eye(3, 4) * 5, n // 3, axis=0)
    return X, np.repeat([0, 1, 2], n // 3)


def _mixed(y, container):
    """The labels of ``y`` with class 1 renamed to the string "b" (others stay ints)."""
    mixed = [("b" if v == 1 else int(v)) for v in y]
    if container == "object array":
        return np.array(mixed, dtype=object)
    if container == "pandas Series":
        return pd.Series(mixed, dtype=object)
    return mixed  # a list: numpy alone would silently make every label a string


def _methods(est):
    return [m for m in ("fit", "partial_fit") if hasattr(est, m)]


def _snapshot(est):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(est).items()}


@pytest.mark.parametrize("container", ["object array", "list", "pandas Series"])
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_mixed_labels_in_one_call_are_refused(estimator, container):
    X, y = _data()
    for method in _methods(estimator):
        est = clone(estimator)
        with pytest.raises(ValueError, match=MESSAGE) as info:
            getattr(est, method)(X, _mixed(y, container))
        # The message gives one label of each kind that was found.
        assert "'b'" in str(info.value) and "0" in str(info.value)
        # Nothing but the parameters (compared by repr: a meta-estimator's inner
        # estimator is a fresh clone, equal in parameters, not in identity).
        assert vars(est).keys() == vars(clone(estimator)).keys(), "a failed fit left state"
        assert repr(est.get_params()) == repr(clone(estimator).get_params())


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=IDS)
def test_labels_of_one_kind_are_accepted(estimator):
    # No false alarm: a list of Python and numpy integers, and an object array or a
    # list of strings, fit exactly as the plain int64 / str array of the same labels.
    X, y = _data()
    numbers = [np.int64(v) if i % 2 else int(v) for i, v in enumerate(y)]
    strings = np.array(["abc"[v] for v in y])
    cases = [(numbers, y), (strings.astype(object), strings), (list(strings), strings)]
    if isinstance(estimator, SemiSupervisedGMM):
        # Its string labels come as an object array (a str array cannot hold -1).
        cases = [(numbers, y), (strings.astype(object), strings.astype(object))]
    for labels, plain in cases:
        est = clone(estimator).fit(X, labels)
        assert_array_equal(est.predict(X), clone(estimator).fit(X, plain).predict(X))


@pytest.mark.parametrize("estimator", [e for e in ESTIMATORS if hasattr(e, "partial_fit")],
                         ids=[i for e, i in zip(ESTIMATORS, IDS) if hasattr(e, "partial_fit")])
@pytest.mark.parametrize("first, later", [("numbers", "strings"), ("strings", "numbers")])
def test_partial_fit_refuses_labels_of_the_other_kind(estimator, first, later):
    X, y = _data()
    kinds = {"numbers": y, "strings": np.array(["abc"[v] for v in y])}
    est = clone(estimator).partial_fit(X, kinds[first])
    before = _snapshot(est)
    with pytest.raises(ValueError, match=MESSAGE):
        est.partial_fit(X[:6], kinds[later][:6])
    after = vars(est)
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            assert_array_equal(after[key], value)


def test_gmm_unlabelled_marker_beside_string_labels_is_not_a_mix():
    # -1 marks unlabelled samples and may sit beside string class labels; only a mix
    # among the labelled samples is refused.
    X, y = _data()
    labels = np.array(["abc"[v] for v in y], dtype=object)
    labels[::3] = -1
    gmm = SemiSupervisedGMM(n_components=3, max_iter=10, random_state=0).fit(X, labels)
    assert set(gmm.known_classes_) == {"a", "b", "c"}
    labels[1] = 7  # a number among the string labels
    with pytest.raises(ValueError, match=MESSAGE):
        SemiSupervisedGMM(n_components=3, max_iter=10).fit(X, labels)


def test_check_label_kinds_reads_lists_before_numpy_converts_them():
    from skproto._base import check_label_kinds

    # Independent of the estimators: what numpy does to the list, and what the check says.
    assert np.asarray([0, "a"]).dtype.kind == "U"  # the silent conversion guarded against
    with pytest.raises(ValueError, match=MESSAGE):
        check_label_kinds([0, "a"])
    with pytest.raises(ValueError, match=MESSAGE):
        check_label_kinds([[0], ["a"]])  # a column vector
    with pytest.raises(ValueError, match="seen before \\(classes_\\) are numbers"):
        check_label_kinds(["a"], classes=np.array([0, 1]))
    for fine in ([0, 1.5, np.int32(2)], ["a", np.str_("b")], np.array(["a", "b"]), []):
        check_label_kinds(fine)
    check_label_kinds(["a"], classes=np.array(["b"], dtype=object))


def test_knn_ignores_labels():
    from skproto.ood import KNNOODDetector

    X, y = _data()
    mixed = np.array([0, "b"] * (len(y) // 2), dtype=object)
    np.testing.assert_array_equal(
        KNNOODDetector().fit(X, mixed).score_samples(X), KNNOODDetector().fit(X).score_samples(X)
    )
