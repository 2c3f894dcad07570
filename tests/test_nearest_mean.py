import importlib.util
import pickle

import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import softmax
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skproto import NearestMeanClassifier, config_context

torch_installed = importlib.util.find_spec("torch") is not None


def make_data(n=300, n_features=8, n_classes=5, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n)
    y[:n_classes] = np.arange(n_classes)  # every class present
    X = centers[y] + rng.normal(size=(n, n_features))
    return X.astype(dtype), y


def direct_means(X, y):
    classes = np.unique(y)
    return classes, np.stack([X[y == c].astype(np.float64).mean(0) for c in classes])


def direct_cosine(X, P):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Pn = P / np.linalg.norm(P, axis=1, keepdims=True)
    return Xn @ Pn.T


def fitted_state(est):
    """Everything fitted, as plain copies, to compare before/after a failed call."""
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(est).items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype
            assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key]


def test_prototypes_are_raw_class_means():
    X, y = make_data()
    clf = NearestMeanClassifier().fit(X, y)
    classes, means = direct_means(X, y)
    assert_array_equal(clf.classes_, classes)
    assert_allclose(clf.prototypes_, means, rtol=1e-5)
    assert_array_equal(clf.class_counts_, np.bincount(y))
    assert clf.prototypes_.dtype == np.float32
    assert clf.n_features_in_ == X.shape[1]


def test_cosine_predicts_argmax_cosine_to_raw_means():
    X, y = make_data(seed=1)
    X_test, _ = make_data(seed=2)
    clf = NearestMeanClassifier(metric="cosine").fit(X, y)
    _, means = direct_means(X, y)
    S = direct_cosine(X_test.astype(np.float64), means)
    assert_array_equal(clf.predict(X_test), clf.classes_[S.argmax(1)])
    assert_allclose(clf.decision_function(X_test), S, rtol=1e-4, atol=1e-6)


def test_cosine_is_not_nearest_centroid_on_normalised_inputs():
    # Class 0 holds a long and a short vector: averaging raw vectors (SimpleCIL) is
    # dominated by the long one; averaging normalised vectors weighs both equally.
    X = np.array([[10.0, 0.0], [0.0, 1.0], [0.866, 0.5], [0.87, 0.5]])
    y = np.array([0, 0, 1, 1])
    clf = NearestMeanClassifier().fit(X, y)
    raw_mean = X[:2].mean(0)
    normalised = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert_allclose(clf.prototypes_[0], raw_mean)
    query = np.array([[0.5, 0.866]])
    # Direct: cosine to the raw means favours class 1, to the normalised means class 0.
    assert direct_cosine(query, np.stack([raw_mean, X[2:].mean(0)])).argmax() == 1
    normalised_means = np.stack([normalised[:2].mean(0), normalised[2:].mean(0)])
    assert direct_cosine(query, normalised_means).argmax() == 0
    assert NearestCentroid().fit(normalised, y).predict(query / np.linalg.norm(query))[0] == 0
    assert clf.predict(query)[0] == 1


def test_euclidean_matches_sklearn_nearest_centroid():
    X, y = make_data(seed=3, dtype=np.float64)
    X_test, _ = make_data(seed=4, dtype=np.float64)
    ours = NearestMeanClassifier(metric="euclidean").fit(X, y)
    theirs = NearestCentroid().fit(X, y)
    assert_allclose(ours.prototypes_, theirs.centroids_)
    assert_array_equal(ours.predict(X_test), theirs.predict(X_test))
    d2 = ((X_test[:, None, :] - theirs.centroids_[None]) ** 2).sum(-1)
    assert_allclose(ours.decision_function(X_test), -d2, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("temperature", [1.0, 0.05])
def test_predict_proba_is_softmax_of_scores_over_temperature(temperature):
    X, y = make_data(seed=5)
    clf = NearestMeanClassifier(temperature=temperature).fit(X, y)
    _, means = direct_means(X, y)
    expected = softmax(direct_cosine(X.astype(np.float64), means) / temperature, axis=1)
    proba = clf.predict_proba(X)
    assert_allclose(proba, expected, rtol=1e-3, atol=1e-6)
    assert_allclose(proba.sum(1), 1, rtol=1e-5)
    assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-4, atol=1e-7)
    assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(X))


def test_binary_and_single_class_decision_function():
    X, y = make_data(n_classes=2, seed=6)
    clf = NearestMeanClassifier().fit(X, y)
    S = direct_cosine(X.astype(np.float64), direct_means(X, y)[1])
    decision = clf.decision_function(X)
    assert decision.shape == (len(X),)
    assert_allclose(decision, S[:, 1] - S[:, 0], rtol=1e-4, atol=1e-6)
    assert_array_equal(clf.predict(X), clf.classes_[(decision > 0).astype(int)])

    one = NearestMeanClassifier().fit(X[y == 1], y[y == 1])
    assert_array_equal(one.predict(X), np.ones(len(X), dtype=int))
    assert_allclose(one.predict_proba(X), 1.0)
    assert one.decision_function(X).shape == (len(X),)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_batches=st.integers(1, 6),
    metric=st.sampled_from(["cosine", "euclidean"]),
)
def test_any_partial_fit_sequence_equals_one_fit(seed, n_batches, metric):
    rng = np.random.default_rng(seed)
    X, y = make_data(n=120, n_classes=6, seed=seed)
    # Batches in a random order, cut at random points: classes arrive and come back.
    order = rng.permutation(len(X))
    cuts = np.sort(rng.choice(np.arange(1, len(X)), size=n_batches - 1, replace=False))
    inc = NearestMeanClassifier(metric=metric)
    for batch in np.split(order, cuts):
        inc.partial_fit(X[batch], y[batch])
    full = NearestMeanClassifier(metric=metric).fit(X, y)
    assert_array_equal(inc.classes_, full.classes_)
    assert_array_equal(inc.class_counts_, full.class_counts_)
    assert_allclose(inc.prototypes_, full.prototypes_, rtol=1e-5, atol=1e-5)
    assert_array_equal(inc.predict(X), full.predict(X))


def test_partial_fit_appends_new_classes_and_keeps_old_prototypes_exactly():
    X, y = make_data(n=400, n_classes=8, seed=7)
    clf = NearestMeanClassifier()
    clf.partial_fit(X[y >= 4], y[y >= 4])  # classes 4..7 first
    old = clf.prototypes_.copy()
    clf.partial_fit(X[y < 4], y[y < 4])  # then 0..3
    assert_array_equal(clf.classes_, np.arange(8))  # sorted
    assert_array_equal(clf.prototypes_[4:], old)  # bit for bit
    assert_allclose(clf.prototypes_[:4], direct_means(X[y < 4], y[y < 4])[1], rtol=1e-5)


def test_single_sample_of_a_new_class_is_fine():
    X, y = make_data(seed=8)
    clf = NearestMeanClassifier().fit(X, y)
    x_new = np.full((1, X.shape[1]), 7.0, dtype=np.float32)
    clf.partial_fit(x_new, [99])
    assert clf.classes_[-1] == 99 and clf.class_counts_[-1] == 1
    assert_array_equal(clf.prototypes_[-1], x_new[0])
    assert clf.predict(x_new)[0] == 99


def test_string_labels():
    X, y = make_data(n_classes=3, seed=9)
    names = np.array(["cat", "dog", "emu"])[y]
    clf = NearestMeanClassifier().partial_fit(X[y < 2], names[y < 2])
    clf.partial_fit(X[y == 2], names[y == 2])
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    full = NearestMeanClassifier().fit(X, y)
    assert_array_equal(clf.predict(X), np.array(["cat", "dog", "emu"])[full.predict(X)])


def _bad_calls(n_features):
    good = np.ones((3, n_features), dtype=np.float32)
    nan = good.copy()
    nan[1, 0] = np.nan
    inf = good.copy()
    inf[0, 2] = np.inf
    return [
        ("NaN", nan, [0, 1, 2], ValueError, "NaN"),
        ("inf", inf, [0, 1, 2], ValueError, "infinity"),
        ("features", np.ones((3, n_features + 1)), [0, 1, 2], ValueError, "features"),
        ("empty", np.empty((0, n_features)), [], ValueError, "0 sample"),
        ("1-D X", np.ones(n_features), [0], ValueError, "2D array"),
        ("y length", good, [0, 1], ValueError, "inconsistent numbers of samples"),
        ("continuous y", good, [0.5, 1.5, 2.25], ValueError, "Unknown label type"),
        ("string labels after numbers", good, ["a", "b", "c"], ValueError, "mix strings and numbers"),
        ("complex X", good.astype(np.complex64), [0, 1, 2], ValueError, "[Cc]omplex"),
        ("text X", np.array([["a"] * n_features] * 3), [0, 1, 2], ValueError, "convert"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_calls(4))))
def test_failed_partial_fit_leaves_model_exactly_as_it_was(case):
    X, y = make_data(n_features=4, seed=10)
    clf = NearestMeanClassifier().fit(X, y)
    clf.partial_fit(X[:10], y[:10])
    before = fitted_state(clf)
    name, X_bad, y_bad, error, match = _bad_calls(4)[case]
    with pytest.raises(error, match=match):
        clf.partial_fit(X_bad, y_bad)
    assert_same_state(before, fitted_state(clf))
    assert_array_equal(clf.predict(X), NearestMeanClassifier().fit(
        np.vstack([X, X[:10]]), np.concatenate([y, y[:10]])).predict(X))


def test_failed_first_partial_fit_leaves_model_unfitted():
    clf = NearestMeanClassifier()
    X = np.ones((3, 4))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.partial_fit(X, [0, 1])
    assert vars(clf) == vars(NearestMeanClassifier())
    # A later good call starts from scratch, with any feature count.
    clf.partial_fit(np.ones((2, 6)), [0, 1])
    assert clf.n_features_in_ == 6


def test_fit_resets_and_a_failed_fit_leaves_the_earlier_fit():
    X, y = make_data(seed=11)
    clf = NearestMeanClassifier().fit(X, y)
    clf.fit(X[y < 2], y[y < 2])
    assert_array_equal(clf.classes_, [0, 1])
    before = fitted_state(clf)
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(np.full((2, X.shape[1] + 3), np.nan), [0, 1])
    assert_same_state(before, fitted_state(clf))


def test_bad_parameters():
    X, y = make_data()
    with pytest.raises(ValueError, match="metric"):
        NearestMeanClassifier(metric="manhattan").fit(X, y)
    with pytest.raises(ValueError, match="temperature"):
        NearestMeanClassifier(temperature=0).fit(X, y)


def test_dtypes_are_preserved():
    X, y = make_data(dtype=np.float64)
    clf = NearestMeanClassifier().fit(X, y)
    assert clf.prototypes_.dtype == np.float64
    assert clf.decision_function(X).dtype == np.float64
    clf32 = NearestMeanClassifier().fit(X.astype(np.float32), y)
    clf32.partial_fit(X[:5], y[:5])  # float64 batch, cast to the fitted float32
    assert clf32.prototypes_.dtype == np.float32
    assert clf32.predict_proba(X).dtype == np.float32
    ints = NearestMeanClassifier().fit(np.arange(12).reshape(6, 2), [0, 0, 0, 1, 1, 1])
    assert ints.prototypes_.dtype == np.float64


def test_nothing_per_sample_is_stored():
    X, y = make_data(n=5000, n_features=6, n_classes=3, seed=12)
    clf = NearestMeanClassifier().fit(X, y)
    for batch in np.array_split(np.arange(len(X)), 7):
        clf.partial_fit(X[batch], y[batch])
    sizes = [v.size for v in vars(clf).values() if isinstance(v, np.ndarray)]
    assert max(sizes) <= 3 * 6
    assert len(pickle.dumps(clf)) < 5_000


def test_pipeline_and_grid_search():
    X, y = make_data(n=300, seed=13)
    pipe = make_pipeline(StandardScaler(), NearestMeanClassifier())
    search = GridSearchCV(pipe, {"nearestmeanclassifier__metric": ["cosine", "euclidean"]}, cv=3)
    search.fit(X, y)
    assert search.best_params_["nearestmeanclassifier__metric"] in ("cosine", "euclidean")
    assert search.score(X, y) > 0.8
    # The pipeline's prediction is the classifier's on the scaled data.
    best = search.best_estimator_
    scaled = best[0].transform(X)
    assert_array_equal(best.predict(X), best[-1].predict(scaled))


def test_joblib_round_trip(tmp_path):
    X, y = make_data(seed=14)
    clf = NearestMeanClassifier().fit(X, y)
    path = tmp_path / "nmc.joblib"
    joblib.dump(clf, path)
    loaded = joblib.load(path)
    assert_array_equal(loaded.decision_function(X), clf.decision_function(X))
    loaded.partial_fit(X[:3] + 1, [50, 50, 51])  # keeps learning after loading
    assert list(loaded.classes_[-2:]) == [50, 51]


def test_feature_names_are_tracked():
    pd = pytest.importorskip("pandas")
    X, y = make_data(n_features=3)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    clf = NearestMeanClassifier().fit(df, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names"):
        clf.partial_fit(df.rename(columns={"a": "z"}), y)


@pytest.mark.skipif(not torch_installed, reason="needs torch")
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_torch_backend_gives_identical_results(metric):
    X, y = make_data(n=500, n_features=16, n_classes=7, seed=15)
    X_test, _ = make_data(n=400, n_features=16, n_classes=7, seed=16)
    with config_context(backend="torch", device="cpu"):
        clf_t = NearestMeanClassifier(metric=metric).fit(X, y)
        clf_t.partial_fit(X[:50], y[:50])
        pred_t, proba_t = clf_t.predict(X_test), clf_t.predict_proba(X_test)
    clf_n = NearestMeanClassifier(metric=metric).fit(X, y)
    clf_n.partial_fit(X[:50], y[:50])
    assert_allclose(clf_t.prototypes_, clf_n.prototypes_, rtol=1e-6)
    assert_array_equal(pred_t, clf_n.predict(X_test))
    # float32 squared distances of ~100 differ in the last bits between BLAS libraries.
    assert_allclose(proba_t, clf_n.predict_proba(X_test), rtol=1e-4, atol=2e-5)
