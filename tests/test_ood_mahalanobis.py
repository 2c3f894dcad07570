"""MahalanobisOODDetector against scikit-learn's covariance estimators on the data.

The transcription follows OpenOOD's mds / rmds postprocessors: class-centred data into
an sklearn.covariance estimator for the shared covariance, the data centred on the
overall mean for the background one, ``precision_`` for the distances.
"""

import functools
import importlib.util
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.covariance import (
    OAS,
    EmpiricalCovariance,
    LedoitWolf,
    ledoit_wolf_shrinkage,
    oas,
)

from skproto import MixturePrototypeOODDetector, config_context
from skproto.incremental import fecam_shrinkage
from skproto.ood import MahalanobisOODDetector
from skproto.ood._covariance import (
    NormMoments,
    ledoit_wolf_shrinkage_from_moments,
    oas_shrinkage_from_moments,
)
from skproto.statistics import ClassStatistics

torch_installed = importlib.util.find_spec("torch") is not None

rng = np.random.default_rng(0)
D = 8
CENTERS = rng.normal(size=(4, D)) + 2
Y = np.repeat(np.arange(4), 50)
X = CENTERS[Y] + 0.4 * rng.normal(size=(200, D)) @ rng.normal(size=(D, D))
X_OUT = rng.normal(size=(60, D)) - 2  # the opposite directions, once normalised


def unit(A):
    return A / np.linalg.norm(A, axis=1, keepdims=True)


def sklearn_precision(data, covariance):
    """Precision of the sklearn estimator on (already centred) data."""
    if covariance == "empirical":
        return EmpiricalCovariance(assume_centered=True).fit(data).precision_
    if covariance == "ledoit-wolf":
        return LedoitWolf(assume_centered=True).fit(data).precision_
    if covariance == "oas":
        return OAS(assume_centered=True).fit(data).precision_
    emp = EmpiricalCovariance(assume_centered=True).fit(data).covariance_
    return np.linalg.pinv(fecam_shrinkage(emp, 1.0, 0.0))


def transcription(X_train, y_train, X_test, method, covariance):
    Z, Zt = unit(X_train), unit(X_test)
    classes = np.unique(y_train)
    means = np.array([Z[y_train == c].mean(0) for c in classes])
    centred = Z - means[np.searchsorted(classes, y_train)]
    P = sklearn_precision(centred, covariance)
    d = np.array([np.einsum("ij,jk,ik->i", Zt - m, P, Zt - m) for m in means]).T
    mu0 = Z.mean(0)
    P0 = sklearn_precision(Z - mu0, covariance)
    d0 = np.einsum("ij,jk,ik->i", Zt - mu0, P0, Zt - mu0)
    return {"mds": -d.min(1), "rmds": -(d - d0[:, None]).min(1), "ssd": -d0}[method]


@pytest.mark.parametrize("covariance", ["empirical", "ledoit-wolf", "oas", "fecam"])
@pytest.mark.parametrize("method", ["mds", "rmds", "ssd"])
def test_scores_equal_the_sklearn_transcription(method, covariance):
    det = MahalanobisOODDetector(method, covariance=covariance).fit(X, Y)
    X_test = np.vstack([X[:30], X_OUT])
    expected = transcription(X, Y, X_test, method, covariance)
    assert_allclose(det.score_samples(X_test), expected, rtol=1e-7,
                    atol=1e-9 * np.abs(expected).max())
    if covariance in ("ledoit-wolf", "oas"):  # a real shrinkage was applied
        shrinkage = det.background_shrinkage_ if method == "ssd" else det.shrinkage_
        assert 0 < shrinkage < 1


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 40), p=st.integers(1, 7),
       offset=st.sampled_from([0.0, 100.0]))
def test_shrinkage_intensities_from_moments_equal_sklearn(seed, n, p, offset):
    r = np.random.default_rng(seed)
    A = r.normal(size=(n, p)) * r.uniform(0.1, 3, size=p) + offset
    s = ClassStatistics.from_batch(A, np.zeros(n, dtype=int), moments="full")
    m = NormMoments.from_batch(A, np.zeros(n, dtype=int), s.means())
    S = s.covariances("total")
    assert_allclose(ledoit_wolf_shrinkage_from_moments(S, n, m.total_norm4(s)),
                    ledoit_wolf_shrinkage(A), rtol=1e-6, atol=1e-12)
    assert_allclose(oas_shrinkage_from_moments(S, n), oas(A)[1], rtol=1e-6, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_parts=st.integers(1, 6))
def test_norm_moments_merge_exactly(seed, n_parts):
    r = np.random.default_rng(seed)
    A = r.normal(size=(80, 4)) + 5
    y = r.integers(0, 4, 80)
    cuts = np.sort(r.choice(np.arange(1, 80), n_parts - 1, replace=False))
    parts = []
    for Ap, yp in zip(np.split(A, cuts), np.split(y, cuts)):
        s = ClassStatistics.from_batch(Ap, yp, moments="full")
        parts.append((s, NormMoments.from_batch(Ap, np.searchsorted(s.classes, yp),
                                                s.means())))

    def merge(a, b):
        merged = a[0].merge(b[0])
        return merged, a[1].merge(a[0], b[1], b[0], merged)

    stats, moments = functools.reduce(merge, parts)
    means = np.array([A[y == c].mean(0) for c in stats.classes])
    U = A - means[np.searchsorted(stats.classes, y)]
    norms2 = (U**2).sum(1)
    q = np.array([(norms2[y == c] ** 2).sum() for c in stats.classes])
    assert_allclose(moments.q, q, rtol=1e-9)
    assert_allclose(moments.within_norm4(), (norms2**2).sum(), rtol=1e-9)
    total = (((A - A.mean(0)) ** 2).sum(1) ** 2).sum()
    assert_allclose(moments.total_norm4(stats), total, rtol=1e-9)


@pytest.mark.parametrize("method", ["mds", "rmds", "ssd"])
def test_any_split_into_partial_fit_equals_fit(method):
    order = np.random.default_rng(3).permutation(200)
    full = MahalanobisOODDetector(method, covariance="ledoit-wolf").fit(X, Y)
    inc = MahalanobisOODDetector(method, covariance="ledoit-wolf")
    inc.partial_fit(X[Y < 2], Y[Y < 2])  # classes 2 and 3 arrive later
    for part in np.array_split(order[np.isin(order, np.flatnonzero(Y >= 2))], 3):
        inc.partial_fit(X[part], Y[part])
    assert_allclose(inc.score_samples(X_OUT), full.score_samples(X_OUT), rtol=1e-8)
    if method != "ssd":
        assert_array_equal(inc.classes_, [0, 1, 2, 3])
        assert_allclose(inc.shrinkage_, full.shrinkage_, rtol=1e-8)


@pytest.mark.parametrize("contamination", ["auto", 0.1])
def test_offset_is_the_contamination_quantile_of_the_training_scores(contamination):
    det = MahalanobisOODDetector(contamination=contamination).fit(X, Y)
    fraction = 0.05 if contamination == "auto" else contamination
    assert det.offset_ == np.percentile(det.score_samples(X), 100 * fraction)
    assert np.mean(det.predict(X) == -1) == pytest.approx(fraction, abs=1 / 200)
    assert_allclose(det.decision_function(X), det.score_samples(X) - det.offset_)
    # Far outliers are rejected.
    assert np.mean(det.predict(X_OUT) == -1) > 0.8


def test_labels_rules():
    with pytest.raises(ValueError, match="at least 2 classes"):
        MahalanobisOODDetector("rmds").fit(X)
    mds = MahalanobisOODDetector("mds").fit(X)  # one class: the class-agnostic score
    ssd = MahalanobisOODDetector("ssd").fit(X, Y)  # labels ignored
    assert mds.classes_ is None and ssd.classes_ is None
    assert_allclose(mds.score_samples(X_OUT), ssd.score_samples(X_OUT), rtol=1e-8)
    with pytest.raises(ValueError, match="labels in every call"):
        mds.partial_fit(X, Y)
    sup = MahalanobisOODDetector().fit(X, Y)
    with pytest.raises(ValueError, match="labels in every call"):
        sup.partial_fit(X)


def test_deprecated_palm_scores_warn_and_equal_the_new_estimator():
    with pytest.warns(FutureWarning, match="MahalanobisOODDetector"):
        old = MixturePrototypeOODDetector(2, max_iter=2, ood_score="mahalanobis",
                                          random_state=0).fit(X, Y)
    new = MahalanobisOODDetector("ssd", covariance="empirical").fit(X, Y)
    # Standardising first (PALM / SSD+) does not change a Mahalanobis distance.
    assert_allclose(old.score_samples(X_OUT), new.score_samples(X_OUT), rtol=1e-6)
    # The default score does not warn of a deprecation (it may warn that two
    # passes did not converge).
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        MixturePrototypeOODDetector(2, max_iter=2, random_state=0).fit(X, Y)


@pytest.mark.skipif(not torch_installed, reason="needs torch")
def test_torch_backend_gives_the_same_scores():
    X32 = X.astype(np.float32)
    det = MahalanobisOODDetector().fit(X32, Y)
    with config_context(backend="torch", device="cpu", working_memory=0.001):
        det_t = MahalanobisOODDetector().fit(X32, Y)
        scores = det_t.score_samples(X_OUT.astype(np.float32))
    assert scores.dtype == np.float32
    assert_allclose(scores, det.score_samples(X_OUT.astype(np.float32)), rtol=1e-3,
                    atol=1e-3)
