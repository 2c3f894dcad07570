"""Incremental splitters, the evaluation loop, the metrics and the display."""

import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import hmean
from sklearn.linear_model import LogisticRegression

from skproto import FeTrIL, NearestMeanClassifier, TEENCalibrator
from skproto.metrics import (
    average_incremental_accuracy,
    forgetting,
    harmonic_mean_accuracy,
    performance_drop,
)
from skproto.model_selection import (
    ClassIncrementalSplit,
    FewShotIncrementalSplit,
    IncrementalAccuracyDisplay,
    evaluate_incremental,
)


def _data(n_classes=10, n_per_class=30, n_features=8, seed=0, spread=2.0):
    rng = np.random.default_rng(seed)
    centers = 2 * rng.normal(size=(n_classes, n_features)) + 1.0
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centers[y] + spread * rng.normal(size=(len(y), n_features))
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    half = len(y) // 2
    return X[:half], y[:half], X[half:], y[half:]


# ----------------------------------------------------------------------------- splitters

def test_class_incremental_split_steps():
    y = np.repeat(np.arange(10), 3)[::-1]
    steps = list(ClassIncrementalSplit(n_initial_classes=4, increment=3).split(None, y))
    assert [c.tolist() for _, c in steps] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    for idx, classes in steps:
        assert_array_equal(idx, np.flatnonzero(np.isin(y, classes)))
    # Remainder goes in a smaller last step; B0 protocol when n_initial_classes is None.
    steps = list(ClassIncrementalSplit(increment=4).split(None, y))
    assert [len(c) for _, c in steps] == [4, 4, 2]
    assert ClassIncrementalSplit(increment=4).get_n_splits(y=y) == 3


def test_class_incremental_split_order_and_shuffle():
    y = np.repeat(np.array(["a", "b", "c", "d"]), 2)
    order = ["c", "a", "d", "b"]
    steps = list(ClassIncrementalSplit(2, 2, class_order=order).split(None, y))
    assert [c.tolist() for _, c in steps] == [["c", "a"], ["d", "b"]]
    s1 = [c.tolist() for _, c in ClassIncrementalSplit(1, 1, shuffle=True,
                                                         random_state=3).split(None, y)]
    s2 = [c.tolist() for _, c in ClassIncrementalSplit(1, 1, shuffle=True,
                                                         random_state=3).split(None, y)]
    assert s1 == s2 and sorted(sum(s1, [])) == ["a", "b", "c", "d"]
    # A subset order uses only those classes.
    steps = list(ClassIncrementalSplit(1, 1, class_order=["b", "a"]).split(None, y))
    assert_array_equal(np.concatenate([i for i, _ in steps]), [2, 3, 0, 1])


@pytest.mark.parametrize(
    "splitter, match",
    [
        (ClassIncrementalSplit(n_initial_classes=20), "larger than"),
        (ClassIncrementalSplit(increment=0), "increment"),
        (ClassIncrementalSplit(class_order=[0, 0, 1]), "duplicated"),
        (ClassIncrementalSplit(class_order=[0, 99]), "absent"),
        (FewShotIncrementalSplit(n_base_classes=20), "larger than"),
        (FewShotIncrementalSplit(3, n_ways=5, n_sessions=2), "need"),
        (FewShotIncrementalSplit(3, n_shots=50), "fewer than"),
        (FewShotIncrementalSplit(3, n_ways=2.5), "n_ways"),
    ],
)
def test_splitter_errors(splitter, match):
    y = np.repeat(np.arange(10), 4)
    with pytest.raises(ValueError, match=match):
        list(splitter.split(None, y))
    with pytest.raises(ValueError, match="y is required"):
        list(splitter.split(None, None))


def test_few_shot_split_standard_protocol():
    y = np.repeat(np.arange(100), 12)
    splitter = FewShotIncrementalSplit(60, n_ways=5, n_shots=5, shuffle=True, random_state=0)
    steps = list(splitter.split(None, y))
    assert len(steps) == 9 == splitter.get_n_splits(y=y)
    base_idx, base_classes = steps[0]
    assert len(base_classes) == 60
    assert_array_equal(base_idx, np.flatnonzero(np.isin(y, base_classes)))
    all_classes = np.concatenate([c for _, c in steps])
    assert len(np.unique(all_classes)) == 100
    for idx, classes in steps[1:]:
        assert len(classes) == 5 and len(idx) == 25
        assert_array_equal(np.sort(idx), idx)
        for c in classes:
            assert np.sum(y[idx] == c) == 5
    # Reproducible with an int seed, different with another.
    again = list(splitter.split(None, y))
    for (i1, c1), (i2, c2) in zip(steps, again):
        assert_array_equal(i1, i2) and assert_array_equal(c1, c2)
    other = list(FewShotIncrementalSplit(60, shuffle=True, random_state=1).split(None, y))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(steps, other))


def test_few_shot_split_n_sessions():
    y = np.repeat(np.arange(12), 6)
    steps = list(FewShotIncrementalSplit(4, n_ways=3, n_shots=2, n_sessions=2,
                                         random_state=0).split(None, y))
    assert [c.tolist() for _, c in steps] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]


# ------------------------------------------------------------------------- evaluation

def _manual_loop(estimator, Xtr, ytr, Xte, yte, step_classes):
    rows = []
    seen = []
    for t, classes in enumerate(step_classes):
        m = np.isin(ytr, classes)
        if t == 0:
            estimator.fit(Xtr[m], ytr[m])
        else:
            estimator.partial_fit(Xtr[m], ytr[m])
        old = list(seen)
        seen += list(classes)
        te = np.isin(yte, seen)
        pred = estimator.predict(Xte[te])
        ok = pred == yte[te]
        lab = yte[te]

        def acc(mask):
            return ok[mask].mean() if mask.any() else np.nan

        rows.append([ok.mean(), acc(np.isin(lab, old)), acc(np.isin(lab, classes)),
                     acc(np.isin(lab, step_classes[0])),
                     acc(~np.isin(lab, step_classes[0]))]
                    + [acc(np.isin(lab, step_classes[j])) for j in range(t + 1)])
    return rows


@pytest.mark.parametrize("estimator", [NearestMeanClassifier(), TEENCalibrator(alpha=0.3),
                                       FeTrIL()])
def test_evaluate_incremental_matches_manual_loop(estimator):
    Xtr, ytr, Xte, yte = _data(seed=1)
    splitter = ClassIncrementalSplit(4, 2, shuffle=True, random_state=0)
    res = evaluate_incremental(estimator, Xtr, ytr, Xte, yte, splitter,
                               return_estimator=True)
    step_classes = [c for _, c in splitter.split(None, ytr)]
    rows = _manual_loop(estimator.__class__(**estimator.get_params()), Xtr, ytr, Xte, yte,
                        step_classes)
    for t, row in enumerate(rows):
        assert res.accuracy[t] == pytest.approx(row[0])
        assert_allclose([res.accuracy_old[t], res.accuracy_new[t], res.accuracy_base[t],
                         res.accuracy_novel[t]], row[1:5])
        assert_allclose(res.accuracy_matrix[t, :t + 1], row[5:])
        assert np.isnan(res.accuracy_matrix[t, t + 1:]).all()
    assert np.isnan(res.accuracy_old[0]) and np.isnan(res.accuracy_novel[0])
    assert_array_equal(res.n_seen_classes, [4, 6, 8, 10])
    assert_array_equal(res.n_train_samples, [np.isin(ytr, c).sum() for c in step_classes])
    assert (res.fit_time >= 0).all() and (res.predict_time >= 0).all()
    assert res.estimator_name == type(estimator).__name__
    assert not hasattr(estimator, "classes_")              # the input is not fitted
    assert_array_equal(res.estimator.classes_, np.arange(10))


def test_evaluate_incremental_joint_strategy():
    Xtr, ytr, Xte, yte = _data(seed=2)
    splitter = ClassIncrementalSplit(4, 3)
    res = evaluate_incremental(LogisticRegression(C=0.1), Xtr, ytr, Xte, yte, splitter,
                               strategy="joint")
    seen = []
    for t, (_, classes) in enumerate(splitter.split(None, ytr)):
        seen += list(classes)
        m, te = np.isin(ytr, seen), np.isin(yte, seen)
        lr = LogisticRegression(C=0.1).fit(Xtr[m], ytr[m])
        assert res.accuracy[t] == pytest.approx(lr.score(Xte[te], yte[te]))
        assert res.n_train_samples[t] == m.sum()
    assert res.strategy == "joint"


def test_evaluate_incremental_few_shot_and_errors():
    Xtr, ytr, Xte, yte = _data(seed=3)
    res = evaluate_incremental(TEENCalibrator(), Xtr, ytr, Xte, yte,
                               FewShotIncrementalSplit(6, n_ways=2, n_shots=3, random_state=0))
    assert_array_equal(res.n_seen_classes, [6, 8, 10])
    assert_array_equal(res.n_train_samples[1:], [6, 6])
    # Base accuracy at step 0 is the accuracy.
    assert res.accuracy_base[0] == res.accuracy[0]
    with pytest.raises(ValueError, match="strategy"):
        evaluate_incremental(TEENCalibrator(), Xtr, ytr, Xte, yte,
                             ClassIncrementalSplit(5, 5), strategy="replay")
    with pytest.raises(TypeError, match="split"):
        evaluate_incremental(TEENCalibrator(), Xtr, ytr, Xte, yte, object())
    with pytest.raises(ValueError):
        evaluate_incremental(TEENCalibrator(), Xtr, ytr[:-1], Xte, yte,
                             ClassIncrementalSplit(5, 5))


# ---------------------------------------------------------------------------- metrics

def test_average_accuracy_and_performance_drop():
    rng = np.random.default_rng(4)
    a = rng.uniform(size=7)
    assert average_incremental_accuracy(a) == pytest.approx(sum(a) / 7)
    assert performance_drop(a) == pytest.approx(a[0] - a[6])
    for f in (average_incremental_accuracy, performance_drop):
        with pytest.raises(ValueError):
            f([])
        with pytest.raises(ValueError):
            f(np.ones((2, 2)))


def test_forgetting_matches_definition():
    rng = np.random.default_rng(5)
    T = 6
    A = rng.uniform(size=(T, T))
    A[np.triu_indices(T, 1)] = np.nan
    expected = []
    for j in range(T - 1):
        best = max(A[l, j] for l in range(j, T - 1))
        expected.append(best - A[T - 1, j])
    assert_allclose(forgetting(A, average=False), expected)
    assert forgetting(A) == pytest.approx(np.mean(expected))
    assert np.isnan(forgetting([[0.5]]))
    with pytest.raises(ValueError, match="square"):
        forgetting(np.ones((2, 3)))
    B = A.copy()
    B[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        forgetting(B)


def test_forgetting_on_evaluation_results():
    Xtr, ytr, Xte, yte = _data(seed=6)
    res = evaluate_incremental(NearestMeanClassifier(), Xtr, ytr, Xte, yte,
                               ClassIncrementalSplit(2, 2))
    f = forgetting(res.accuracy_matrix, average=False)
    assert f.shape == (4,)
    # f_j >= A[j, j] - A[T-1, j], since the max runs over a range starting at step j.
    A = res.accuracy_matrix
    assert (f >= A[np.arange(4), np.arange(4)] - A[4, :4] - 1e-12).all()


def test_harmonic_mean():
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0.01, 1, size=5), rng.uniform(0.01, 1, size=5)
    assert_allclose(harmonic_mean_accuracy(a, b), hmean(np.stack([a, b]), axis=0))
    assert harmonic_mean_accuracy(0.0, 0.0) == 0.0
    assert harmonic_mean_accuracy(0.8, 0.0) == 0.0
    assert np.isnan(harmonic_mean_accuracy(np.nan, 0.5))
    with pytest.raises(ValueError):
        harmonic_mean_accuracy(1.5, 0.5)


# ---------------------------------------------------------------------------- display

def test_display_from_results_and_estimator():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Xtr, ytr, Xte, yte = _data(seed=8)
    splitter = ClassIncrementalSplit(4, 2)
    res = evaluate_incremental(NearestMeanClassifier(), Xtr, ytr, Xte, yte, splitter)
    disp = IncrementalAccuracyDisplay.from_results(res, curves=("accuracy", "accuracy_old"))
    assert_array_equal(disp.lines_["accuracy"].get_xdata(), res.n_seen_classes)
    assert_allclose(disp.lines_["accuracy"].get_ydata(), res.accuracy)
    assert_allclose(disp.lines_["accuracy_old"].get_ydata(), res.accuracy_old)
    assert disp.line_ is disp.lines_["accuracy"]
    assert disp.ax_.get_xlabel() == "Number of classes seen"
    assert "NearestMeanClassifier" in disp.line_.get_label()

    # A second model on the same axes, run by from_estimator.
    disp2 = IncrementalAccuracyDisplay.from_estimator(
        TEENCalibrator(), Xtr, ytr, Xte, yte, splitter, ax=disp.ax_, name="TEEN",
        color="red")
    assert disp2.ax_ is disp.ax_ and len(disp.ax_.get_lines()) == 3
    assert disp2.line_.get_label() == "TEEN" and disp2.line_.get_color() == "red"
    texts = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert "TEEN" in texts

    # Without class counts the x axis is the step.
    d3 = IncrementalAccuracyDisplay([0.5, 0.4]).plot()
    assert d3.line_.get_xdata().tolist() == [0, 1] and d3.ax_.get_xlabel() == "Step"
    with pytest.raises(ValueError, match="not given"):
        IncrementalAccuracyDisplay([0.5, 0.4]).plot(curves=("accuracy_new",))
    with pytest.raises(ValueError, match="unknown curve"):
        IncrementalAccuracyDisplay([0.5]).plot(curves=("f1",))
    with pytest.raises(ValueError, match="accuracy"):
        IncrementalAccuracyDisplay.from_results({"acc": [1.0]})
    plt.close("all")


def test_matplotlib_imported_lazily():
    code = ("import sys, skproto, skproto.model_selection, skproto.metrics; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.stdout.strip() == "False"


# ------------------------------------------------- the splitters are not cv= splitters

class _FitSpy(NearestMeanClassifier):
    """Records every fit, to prove that a refused cv= use trains nothing."""

    fits = []

    def fit(self, X, y):
        _FitSpy.fits.append(len(y))
        return super().fit(X, y)


_PROTOCOLS = [
    ClassIncrementalSplit(2, increment=2),
    FewShotIncrementalSplit(4, n_ways=2, n_shots=3, random_state=0),
]


@pytest.mark.parametrize("routing", [False, True], ids=["default", "metadata_routing"])
@pytest.mark.parametrize("splitter", _PROTOCOLS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("route", ["cross_val_score", "GridSearchCV"])
def test_splitter_as_cv_fails_at_once_pointing_to_evaluate_incremental(route, splitter,
                                                                        routing):
    # Before: cross_val_score read the step's new classes as test indices and returned
    # scores such as [0, 0, 0, 0.5, 0.5] without a word.
    import sklearn
    from sklearn.model_selection import GridSearchCV, cross_val_score

    X, y, _, _ = _data()
    _FitSpy.fits.clear()
    with sklearn.config_context(enable_metadata_routing=routing):
        with pytest.raises(TypeError, match="evaluate_incremental") as info:
            if route == "cross_val_score":
                cross_val_score(_FitSpy(), X, y, cv=splitter)
            else:
                GridSearchCV(_FitSpy(), {"metric": ["cosine", "euclidean"]},
                             cv=splitter).fit(X, y)
    assert "not a cross-validation splitter" in str(info.value)
    assert "IncrementalProtocolEstimator" in str(info.value)
    assert _FitSpy.fits == []                              # nothing was trained


@pytest.mark.parametrize("splitter", _PROTOCOLS, ids=lambda s: type(s).__name__)
def test_splitter_refuses_groups_at_the_call_and_keeps_the_protocol_api(splitter):
    _, y, _, _ = _data()
    with pytest.raises(TypeError, match="evaluate_incremental"):
        splitter.split(None, y, groups=None)               # raised before any iteration
    with pytest.raises(TypeError, match="evaluate_incremental"):
        splitter.get_n_splits(None, y, None)
    steps = list(splitter.split(None, y))                  # the protocol API is unchanged
    # 10 classes: 2 + 4 x 2 (class-incremental), 4 + 3 x 2 (few-shot).
    n_steps = 5 if isinstance(splitter, ClassIncrementalSplit) else 4
    assert len(steps) == splitter.get_n_splits(y=y) == n_steps
    assert all(np.isin(y[index], classes).all() for index, classes in steps)


# ------------------------------------------ scikit-learn's own partial_fit classifiers

def _sklearn_partial_fit_classifiers():
    from sklearn.linear_model import Perceptron, SGDClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neural_network import MLPClassifier

    return [SGDClassifier(random_state=0), GaussianNB(), Perceptron(random_state=0),
            MLPClassifier(hidden_layer_sizes=(16,), random_state=0)]


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # GaussianNB, 0 prior
@pytest.mark.parametrize("estimator", _sklearn_partial_fit_classifiers(),
                         ids=lambda e: type(e).__name__)
def test_evaluate_incremental_accepts_sklearn_partial_fit_classifiers(estimator):
    # Before: fit on the first step, then partial_fit with new classes, which these
    # estimators refuse ("classes should include all valid labels", ...).
    from sklearn.base import clone

    Xtr, ytr, Xte, yte = _data(seed=4)
    splitter = ClassIncrementalSplit(4, 3, shuffle=True, random_state=1)
    res = evaluate_incremental(estimator, Xtr, ytr, Xte, yte, splitter,
                               return_estimator=True)
    # Independent loop: scikit-learn's documented way, every class declared up front.
    steps = [c for _, c in splitter.split(None, ytr)]
    all_classes = np.unique(np.concatenate(steps))
    model, seen = clone(estimator), []
    for t, classes in enumerate(steps):
        m = np.isin(ytr, classes)
        model.partial_fit(Xtr[m], ytr[m], classes=all_classes)
        seen += list(classes)
        te = np.isin(yte, seen)
        assert res.accuracy[t] == pytest.approx(np.mean(model.predict(Xte[te]) == yte[te]))
    assert_array_equal(res.estimator.classes_, all_classes)
    assert_array_equal(res.n_seen_classes, [4, 7, 10])
    assert not hasattr(estimator, "classes_")
