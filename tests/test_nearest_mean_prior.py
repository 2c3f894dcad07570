"""NearestMeanClassifier starting from given prototypes (init_prototypes / from_prototypes).

The prior counts as ``init_counts`` pseudo-samples at the prototype; checked against a
direct numpy transcription of ``(c0 * p0 + sum(x)) / (c0 + n)``.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skproto import NearestMeanClassifier


def _data(seed=0, n=40, d=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.choice(np.array(["a", "b", "c", "d"]), size=n)
    return X, y


def _expected(prior_classes, prior, counts, X, y):
    """Direct transcription: pseudo-samples plus real samples, per class."""
    prior_classes = list(prior_classes)
    classes = np.union1d(prior_classes, y)
    rows, totals, n_real = [], [], []
    for c in classes:
        s = np.zeros(X.shape[1])
        w = 0
        if c in prior_classes:
            k = prior_classes.index(c)
            s += counts[k] * prior[k]
            w += counts[k]
        s += X[y == c].sum(0)
        n_real.append(int((y == c).sum()))
        rows.append(s / (w + n_real[-1]) if w + n_real[-1] else prior[prior_classes.index(c)])
    return classes, np.array(rows), np.array(n_real)


@pytest.mark.parametrize("counts", [0, 1, 5, [3, 0, 2]])
def test_fit_with_prior_is_the_pseudo_count_running_mean(counts):
    X, y = _data()
    rng = np.random.default_rng(1)
    prior_classes = ["d", "a", "z"]  # unsorted; "z" has no samples, "b", "c" no prior
    prior = rng.normal(size=(3, 5))
    counts_arr = np.broadcast_to(np.asarray(counts), (3,))
    clf = NearestMeanClassifier(
        init_prototypes=prior, init_classes=prior_classes, init_counts=counts
    ).fit(X, y)
    classes, means, n_real = _expected(prior_classes, prior, counts_arr, X, y)
    assert_array_equal(clf.classes_, classes)
    assert_allclose(clf.prototypes_, means, rtol=1e-12)
    assert_array_equal(clf.class_counts_, n_real)
    init = dict(zip(prior_classes, counts_arr))
    assert_array_equal(clf.init_counts_, [init.get(c, 0) for c in classes])


def test_partial_fit_sequence_equals_fit_and_from_prototypes():
    X, y = _data(2)
    prior = np.random.default_rng(3).normal(size=(2, 5))
    params = dict(init_prototypes=prior, init_classes=["a", "e"], init_counts=[2, 4])
    full = NearestMeanClassifier(**params).fit(X, y)
    stream = NearestMeanClassifier(**params)
    from_p = NearestMeanClassifier.from_prototypes(prior, ["a", "e"], counts=[2, 4])
    for batch in np.array_split(np.arange(len(y)), 4):
        stream.partial_fit(X[batch], y[batch])
        from_p.partial_fit(X[batch], y[batch])
    for clf in (stream, from_p):
        assert_array_equal(clf.classes_, full.classes_)
        assert_allclose(clf.prototypes_, full.prototypes_, rtol=1e-10)
        assert_array_equal(clf.class_counts_, full.class_counts_)
        assert_array_equal(clf.init_counts_, full.init_counts_)


def test_from_prototypes_predicts_at_once_and_keeps_dtype():
    P = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    clf = NearestMeanClassifier.from_prototypes(P, ["x", "y", "w"], temperature=0.5)
    assert clf.temperature == 0.5
    assert_array_equal(clf.classes_, ["w", "x", "y"])
    assert_array_equal(clf.prototypes_, P[[2, 0, 1]])
    assert clf.prototypes_.dtype == np.float32
    assert_array_equal(clf.class_counts_, [0, 0, 0])
    assert_array_equal(clf.predict([[0.9, 0.1], [0.1, 0.8], [-2.0, 0.5]]), ["x", "y", "w"])
    proba = clf.predict_proba([[0.9, 0.1]])
    S = np.array([[-0.9, 0.9, 0.1]]) / np.linalg.norm([0.9, 0.1])
    assert_allclose(proba, np.exp(S / 0.5) / np.exp(S / 0.5).sum(), rtol=1e-5)
    # Default labels: 0..K-1.
    assert_array_equal(NearestMeanClassifier.from_prototypes(P).classes_, [0, 1, 2])


def test_clone_and_fit_restart_from_the_prior():
    X, y = _data(4)
    prior = np.ones((1, 5))
    clf = NearestMeanClassifier.from_prototypes(prior, ["a"], counts=3)
    clf.partial_fit(X, y)
    refit = clone(clf).fit(X, y)
    assert_allclose(refit.prototypes_, clf.prototypes_, rtol=1e-12)
    again = clf.fit(X[:10], y[:10])  # fit forgets earlier batches, not the prior
    expected = _expected(["a"], prior, [3], X[:10], y[:10])[1]
    assert_allclose(again.prototypes_, expected, rtol=1e-12)


def test_grid_search_over_prior_weight():
    X, y = _data(5, n=60)
    prior = np.random.default_rng(6).normal(size=(4, 5))
    clf = NearestMeanClassifier(init_prototypes=prior, init_classes=["a", "b", "c", "d"])
    search = GridSearchCV(clf, {"init_counts": [0, 1, 100]}, cv=3).fit(X, y)
    assert_allclose(
        search.best_estimator_.prototypes_,
        _expected(
            ["a", "b", "c", "d"], prior, [search.best_params_["init_counts"]] * 4, X, y
        )[1],
        rtol=1e-12,
    )


def test_invalid_priors_are_rejected():
    X, y = _data()
    P = np.zeros((2, 5))
    cases = [
        (dict(init_prototypes=P, init_classes=["a"]), "1 labels but init_prototypes has 2"),
        (dict(init_prototypes=P, init_classes=["a", "a"]), "duplicate"),
        (dict(init_prototypes=P, init_counts=[1, -1]), "non-negative whole"),
        (dict(init_prototypes=P, init_counts=[1.5, 1]), "non-negative whole"),
        (dict(init_prototypes=P, init_counts=[1, 2, 3]), r"shape \(2,\)"),
        (dict(init_prototypes=np.zeros((2, 3)), init_classes=["a", "b"]), "3"),
        (dict(init_classes=["a", "b"]), "init_prototypes is None"),
        (dict(init_prototypes=[[np.nan] * 5, [0] * 5]), "NaN"),
    ]
    for params, message in cases:
        with pytest.raises(ValueError, match=message):
            NearestMeanClassifier(**params).fit(X, y)
    with pytest.raises(ValueError, match="init_counts"):
        NearestMeanClassifier(init_prototypes=P, init_counts=-1).fit(X, y)
    with pytest.raises(ValueError, match="mix strings and numbers"):
        NearestMeanClassifier(init_prototypes=P, init_classes=[0, 1]).fit(X, y)


def test_failed_partial_fit_leaves_prior_state_untouched():
    P = np.eye(3)
    clf = NearestMeanClassifier.from_prototypes(P, ["a", "b", "c"], counts=2)
    clf.partial_fit(np.ones((2, 3)), ["a", "d"])
    before = {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in vars(clf).items()}
    with pytest.raises(ValueError):
        clf.partial_fit(np.ones((2, 4)), ["a", "b"])  # wrong number of features
    with pytest.raises(ValueError):
        clf.partial_fit(np.ones((2, 3)), [1, 2])  # numbers after strings
    assert vars(clf).keys() == before.keys()
    for key, value in before.items():
        assert_array_equal(vars(clf)[key], value)


def test_refit_without_prior_forgets_it():
    X, y = _data(7)
    clf = NearestMeanClassifier(init_prototypes=np.ones((1, 5)), init_classes=["z"]).fit(X, y)
    assert "z" in clf.classes_ and hasattr(clf, "init_counts_")
    clf.set_params(init_prototypes=None, init_classes=None).fit(X, y)
    plain = NearestMeanClassifier().fit(X, y)
    assert not hasattr(clf, "init_counts_")
    assert_array_equal(clf.classes_, plain.classes_)
    assert_allclose(clf.prototypes_, plain.prototypes_)
