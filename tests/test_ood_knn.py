"""KNNOODDetector (KNN+) against a brute-force k-th nearest neighbour."""

import importlib.util
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skproto import MixturePrototypeOODDetector, config_context
from skproto.ood import KNNOODDetector

torch_installed = importlib.util.find_spec("torch") is not None

rng = np.random.default_rng(0)
X = np.repeat(3 * np.eye(6)[:3], 400, axis=0) + 0.5 * rng.normal(size=(1200, 6))
X_TEST = rng.normal(size=(50, 6)) + 1


def unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def brute_kth_cosine(Q, T, k, exclude_self=False):
    S = unit(Q) @ unit(T).T
    if exclude_self:
        np.fill_diagonal(S, -np.inf)
    return -np.sort(-S, axis=1)[:, k - 1]


def test_score_is_the_kth_cosine_and_k_scales_with_the_training_set():
    det = KNNOODDetector().fit(X)
    assert det.n_neighbors_ == math.ceil(1200 / 1000) == 2
    assert_allclose(det.score_samples(X_TEST), brute_kth_cosine(X_TEST, X, 2), rtol=1e-10)
    big = np.vstack([X] * 3)
    assert KNNOODDetector().fit(big).n_neighbors_ == 4
    assert KNNOODDetector(7).fit(X).n_neighbors_ == 7
    assert KNNOODDetector(10_000).fit(X[:20]).n_neighbors_ == 20


def test_euclidean_variant_without_normalisation():
    det = KNNOODDetector(5, normalize=False).fit(X)
    d2 = ((X_TEST[:, None] - X[None]) ** 2).sum(-1)
    assert_allclose(det.score_samples(X_TEST), -np.sort(d2, axis=1)[:, 4], rtol=1e-8)


@pytest.mark.parametrize("contamination", ["auto", 0.1])
def test_offset_is_the_quantile_of_leave_one_out_training_scores(contamination):
    det = KNNOODDetector(3, contamination=contamination).fit(X)
    fraction = 0.05 if contamination == "auto" else contamination
    loo = brute_kth_cosine(X, X, 3, exclude_self=True)
    assert_allclose(det.offset_, np.percentile(loo, 100 * fraction), rtol=1e-10)
    # The checks that the xfailed scikit-learn checks would make, on this data.
    assert np.mean(loo < det.offset_) == pytest.approx(fraction, abs=1 / 1200)
    decision = det.decision_function(X_TEST)
    assert_allclose(decision, det.score_samples(X_TEST) - det.offset_)
    predicted = det.predict(X_TEST)
    assert predicted.dtype.kind == "i"
    assert_array_equal(predicted, np.where(decision < 0, -1, 1))
    # New samples of the same distribution are kept at about 1 - fraction.
    X_new = np.repeat(3 * np.eye(6)[:3], 400, axis=0) + 0.5 * rng.normal(size=(1200, 6))
    assert np.mean(det.predict(X_new) == 1) == pytest.approx(1 - fraction, abs=0.03)


def test_partial_fit_appends_and_equals_fit():
    full = KNNOODDetector().fit(X)
    inc = KNNOODDetector()
    for part in np.array_split(np.arange(1200), 3):
        inc.partial_fit(X[part])
    assert inc.n_neighbors_ == full.n_neighbors_
    assert inc.offset_ == full.offset_
    assert_allclose(inc.score_samples(X_TEST), full.score_samples(X_TEST))


def test_deprecated_palm_knn_warns_and_equals_the_new_estimator():
    with pytest.warns(FutureWarning, match="KNNOODDetector"):
        old = MixturePrototypeOODDetector(1, max_iter=1, ood_score="knn",
                                          n_neighbors=5).fit(X)
    new = KNNOODDetector(5).fit(X)
    assert_allclose(old.score_samples(X_TEST), new.score_samples(X_TEST), rtol=1e-10)


@pytest.mark.skipif(not torch_installed, reason="needs torch")
def test_torch_backend_gives_the_same_scores():
    det = KNNOODDetector(4).fit(X.astype(np.float32))
    expected = det.score_samples(X_TEST.astype(np.float32))
    with config_context(backend="torch", device="cpu", working_memory=0.001):
        assert_allclose(det.score_samples(X_TEST.astype(np.float32)), expected, rtol=1e-5)
