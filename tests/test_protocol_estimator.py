"""IncrementalProtocolEstimator: protocol-aware model selection with sklearn's searches."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import uniform
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold
from sklearn.utils._param_validation import InvalidParameterError

from skproto import FeTrIL, NearestMeanClassifier, TEENCalibrator
from skproto.model_selection import (
    ClassIncrementalSplit,
    FewShotIncrementalSplit,
    IncrementalProtocolEstimator,
    evaluate_incremental,
)


def _blobs(n_classes=8, n_per_class=20, n_features=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = 3 * rng.normal(size=(n_classes, n_features)) + 1.0
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centers[y] + 1.5 * rng.normal(size=(len(y), n_features))
    return X, y


def _manual_protocol(estimator, X_train, y_train, X_test, y_test, splitter):
    """Independent transcription: fit / partial_fit per step, then per-step accuracies."""
    steps = [(index, classes) for index, classes in splitter.split(X_train, y_train)]
    model = clone(estimator)
    acc, base, novel, matrix = [], [], [], np.full((len(steps), len(steps)), np.nan)
    seen = []
    for t, (index, classes) in enumerate(steps):
        if t == 0:
            model.fit(X_train[index], y_train[index])
        else:
            model.partial_fit(X_train[index], y_train[index])
        seen += list(classes)
        test = np.isin(y_test, seen)
        ok = model.predict(X_test[test]) == y_test[test]
        labels = y_test[test]
        acc.append(ok.mean())
        in_base = np.isin(labels, steps[0][1])
        base.append(ok[in_base].mean())
        novel.append(ok[~in_base].mean() if (~in_base).any() else np.nan)
        for j in range(t + 1):
            matrix[t, j] = ok[np.isin(labels, steps[j][1])].mean()
    return np.array(acc), np.array(base), np.array(novel), matrix


def _hm(a, b):
    return 2 * a * b / (a + b)


@pytest.mark.parametrize("estimator", [NearestMeanClassifier(), TEENCalibrator(alpha=0.4),
                                       FeTrIL()], ids=lambda e: type(e).__name__)
def test_scores_equal_an_independent_run_of_the_protocol(estimator):
    X, y = _blobs(seed=1)
    X_train, y_train, X_test, y_test = X[::2], y[::2], X[1::2], y[1::2]
    splitter = ClassIncrementalSplit(3, increment=2, shuffle=True, random_state=0)
    acc, base, novel, matrix = _manual_protocol(estimator, X_train, y_train, X_test,
                                                y_test, splitter)
    expected = {
        "average_incremental_accuracy": acc.mean(),
        "last_accuracy": acc[-1],
        "harmonic_mean": _hm(base[-1], novel[-1]),
        "neg_performance_drop": -(acc[0] - acc[-1]),
        "neg_forgetting": -np.mean([matrix[j:-1, j].max() - matrix[-1, j]
                                    for j in range(len(acc) - 1)]),
    }
    for scoring, value in expected.items():
        protocol = IncrementalProtocolEstimator(estimator, splitter=splitter,
                                                scoring=scoring)
        assert protocol.fit(X_train, y_train).score(X_test, y_test) == pytest.approx(value)
    res = protocol.evaluate(X_test, y_test)
    assert_allclose(res.accuracy, acc)
    assert_allclose(res.accuracy_matrix, matrix)
    # The same numbers as evaluate_incremental on the same split.
    ref = evaluate_incremental(estimator, X_train, y_train, X_test, y_test, splitter)
    for key in ("accuracy", "accuracy_old", "accuracy_new", "accuracy_base",
                "accuracy_novel", "n_seen_classes"):
        assert_allclose(res[key], ref[key])
    # A callable scoring gets the same results.
    protocol.set_params(scoring=lambda r: r.accuracy[1])
    assert protocol.score(X_test, y_test) == pytest.approx(acc[1])
    assert not hasattr(estimator, "classes_")             # the template is never fitted


def test_fit_keeps_the_model_of_every_step():
    X, y = _blobs(seed=2)
    splitter = ClassIncrementalSplit(4, increment=2)
    protocol = IncrementalProtocolEstimator(NearestMeanClassifier(), splitter=splitter)
    protocol.fit(X, y)
    assert [len(m.classes_) for m in protocol.estimators_] == [4, 6, 8]
    assert_array_equal(protocol.n_seen_classes_, [4, 6, 8])
    assert [c.tolist() for c in protocol.new_classes_] == [[0, 1, 2, 3], [4, 5], [6, 7]]
    assert protocol.estimator_ is protocol.estimators_[-1]
    # Each snapshot is the model as it was after its step: equal to a fit on the
    # classes seen so far (incremental class means are exact).
    for model, n_seen in zip(protocol.estimators_, protocol.n_seen_classes_):
        ref = NearestMeanClassifier().fit(X[y < n_seen], y[y < n_seen])
        assert_allclose(model.prototypes_, ref.prototypes_)
    assert_array_equal(protocol.predict(X), protocol.estimator_.predict(X))
    assert_allclose(protocol.predict_proba(X), protocol.estimator_.predict_proba(X))
    assert_array_equal(protocol.classes_, np.arange(8))
    assert protocol.n_features_in_ == X.shape[1]
    assert protocol.fit_time_.shape == (3,)


def _teen_on_digits():
    X, y = load_digits(return_X_y=True)
    # One shot per novel class: the setting where TEEN's calibration helps.
    splitter = FewShotIncrementalSplit(5, n_ways=1, n_shots=1, shuffle=True, random_state=0)
    return X, y, IncrementalProtocolEstimator(TEENCalibrator(), splitter=splitter,
                                              scoring="harmonic_mean")


def test_grid_search_tunes_teen_alpha_on_the_few_shot_protocol():
    # Before: GridSearchCV(TEENCalibrator(...)) made every class a base class, so every
    # alpha got exactly the same score and the search picked the first one.
    X, y, protocol = _teen_on_digits()
    alphas = [0.0, 0.25, 0.5, 0.75]
    search = GridSearchCV(protocol, {"estimator__alpha": alphas}, cv=3).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert search.best_params_["estimator__alpha"] > 0
    assert scores.max() - scores.min() > 0.02               # the candidates differ
    # Independent check of every score: the protocol run by hand on the same folds.
    folds = StratifiedKFold(3).split(X, y)
    per_fold = []
    for train, test in folds:
        row = []
        for alpha in alphas:
            _, base, novel, _ = _manual_protocol(TEENCalibrator(alpha=alpha), X[train],
                                                 y[train], X[test], y[test],
                                                 protocol.splitter)
            row.append(_hm(base[-1], novel[-1]))
        per_fold.append(row)
    assert_allclose(scores, np.mean(per_fold, axis=0))
    # What the plain search saw: all classes at once, nothing calibrated, equal scores.
    plain = GridSearchCV(TEENCalibrator(), {"alpha": alphas}, cv=3).fit(X, y)
    assert np.ptp(plain.cv_results_["mean_test_score"]) == 0


def test_randomized_search_and_nested_parameters():
    X, y, protocol = _teen_on_digits()
    search = RandomizedSearchCV(
        protocol, {"estimator__alpha": uniform(0, 1), "estimator__tau": [4.0, 16.0]},
        n_iter=4, cv=2, random_state=0,
    ).fit(X, y)
    alphas = search.cv_results_["param_estimator__alpha"]
    assert len(set(np.round(alphas.astype(float), 6))) == 4
    assert len(set(np.round(search.cv_results_["mean_test_score"], 9))) > 1
    best = search.best_estimator_
    assert best.estimator_.alpha == search.best_params_["estimator__alpha"]
    params = protocol.get_params()
    assert params["estimator__tau"] == 16.0 and params["splitter"] is protocol.splitter


def test_sklearn_partial_fit_classifier_inside():
    X, y = _blobs(seed=3)
    splitter = ClassIncrementalSplit(4, increment=2)
    protocol = IncrementalProtocolEstimator(SGDClassifier(random_state=0),
                                            splitter=splitter, scoring="last_accuracy")
    score = protocol.fit(X, y).score(X, y)
    assert_array_equal(protocol.estimators_[0].classes_, np.arange(8))   # declared
    ref = evaluate_incremental(SGDClassifier(random_state=0), X, y, X, y, splitter)
    assert score == pytest.approx(ref.accuracy[-1])


def test_string_labels_and_errors():
    X, y = _blobs(n_classes=4, seed=4)
    labels = np.array(["ant", "bee", "cat", "dog"])[y]
    protocol = IncrementalProtocolEstimator(NearestMeanClassifier(),
                                            splitter=ClassIncrementalSplit(2, increment=1))
    protocol.fit(X, labels)
    assert set(protocol.predict(X)) <= set(labels)
    assert 0 <= protocol.score(X, labels) <= 1
    with pytest.raises(InvalidParameterError, match="scoring"):
        clone(protocol).set_params(scoring="accuracy").fit(X, labels)
    with pytest.raises(InvalidParameterError, match="splitter"):
        clone(protocol).set_params(splitter=3).fit(X, labels)
    with pytest.raises(ValueError, match="requires y"):
        clone(protocol).fit(X, None)
    with pytest.raises(ValueError, match="larger than the number of classes"):
        clone(protocol).set_params(splitter=ClassIncrementalSplit(9)).fit(X, labels)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        clone(protocol).score(X, labels)
