"""TEENCalibrator and teen_calibrate against direct numpy transcriptions."""

import copy

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

from skproto import NearestMeanClassifier, TEENCalibrator
from skproto.incremental import teen_calibrate


def _reference_calibrate(P, B, alpha, tau):
    """TEEN's soft_calibration, written row by row with plain numpy."""
    out = []
    Bn = np.array([b / np.linalg.norm(b) for b in B])
    for p in P:
        p = p / np.linalg.norm(p)
        logits = tau * np.array([p @ b for b in Bn])
        w = np.exp(logits - logits.max())
        w /= w.sum()
        d = sum(wk * bk for wk, bk in zip(w, Bn))
        d = d / np.linalg.norm(d)
        out.append((1 - alpha) * p + alpha * d)
    return np.array(out)


def _blobs(n_classes=8, n_per_class=30, n_features=12, seed=0, spread=0.6):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, n_features)) + 1.0
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centers[y] + spread * rng.normal(size=(len(y), n_features))
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


def _means(X, y, classes):
    return np.array([X[y == c].mean(axis=0) for c in classes])


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("tau", [0.0, 1.0, 16.0, 100.0])
def test_teen_calibrate_matches_transcription(alpha, tau):
    rng = np.random.default_rng(1)
    P = rng.normal(size=(7, 10)) * rng.uniform(0.5, 5, size=(7, 1))
    B = rng.normal(size=(11, 10)) * rng.uniform(0.5, 5, size=(11, 1))
    assert_allclose(teen_calibrate(P, B, alpha=alpha, tau=tau),
                    _reference_calibrate(P, B, alpha, tau), rtol=1e-10, atol=1e-12)


def test_teen_calibrate_limits_and_dtype():
    rng = np.random.default_rng(2)
    P = rng.normal(size=(3, 5)).astype(np.float32)
    B = rng.normal(size=(4, 5)).astype(np.float32)
    out0 = teen_calibrate(P, B, alpha=0.0)
    assert out0.dtype == np.float32
    assert_allclose(out0, P / np.linalg.norm(P, axis=1, keepdims=True), rtol=1e-6)
    # tau = 0: uniform weights, so alpha = 1 gives the normalised mean direction of B.
    Bn = B / np.linalg.norm(B, axis=1, keepdims=True)
    direction = Bn.mean(0) / np.linalg.norm(Bn.mean(0))
    assert_allclose(teen_calibrate(P, B, alpha=1.0, tau=0.0), np.tile(direction, (3, 1)),
                    rtol=1e-5)
    # Integer prototypes are computed in float64.
    assert teen_calibrate([[1, 2]], [[3, 1]]).dtype == np.float64


@pytest.mark.parametrize(
    "P, B, err, match",
    [
        (np.ones((2, 3)), np.ones((2, 4)), ValueError, "features"),
        (np.ones(3), np.ones((2, 3)), ValueError, "2-D"),
        (np.ones((2, 3)), np.ones((0, 3)), ValueError, "at least one"),
        (np.array([[np.nan, 1.0]]), np.ones((1, 2)), ValueError, "NaN"),
        (np.array([["a", "b"]]), np.ones((1, 2)), TypeError, "real numbers"),
    ],
)
def test_teen_calibrate_bad_input(P, B, err, match):
    with pytest.raises(err, match=match):
        teen_calibrate(P, B)


def test_teen_calibrate_bad_params():
    with pytest.raises(InvalidParameterError):
        teen_calibrate(np.ones((1, 2)), np.ones((1, 2)), alpha=1.5)
    with pytest.raises(InvalidParameterError):
        teen_calibrate(np.ones((1, 2)), np.ones((1, 2)), tau=-1.0)


@pytest.mark.parametrize("alpha, tau", [(0.5, 16.0), (0.1, 16.0), (0.8, 4.0)])
def test_sessions_match_transcription(alpha, tau):
    X, y = _blobs()
    base, s1, s2 = [0, 1, 2, 3, 4], [5, 6], [7]
    clf = TEENCalibrator(alpha=alpha, tau=tau).fit(X[np.isin(y, base)], y[np.isin(y, base)])
    for session in (s1, s2):
        m = np.isin(y, session)
        clf.partial_fit(X[m][:10], y[m][:10])
    assert_array_equal(clf.classes_, np.arange(8))
    assert_array_equal(clf.is_base_class_, np.isin(np.arange(8), base))

    # Independent computation: raw means of the samples each class received.
    seen_X = np.concatenate([X[np.isin(y, base)]] + [X[np.isin(y, s)][:10] for s in (s1, s2)])
    seen_y = np.concatenate([y[np.isin(y, base)]] + [y[np.isin(y, s)][:10] for s in (s1, s2)])
    means = _means(seen_X, seen_y, range(8))
    assert_allclose(clf.class_means_, means, rtol=1e-12)
    expected = means.copy()
    expected[5:] = _reference_calibrate(means[5:], means[:5], alpha, tau)
    assert_allclose(clf.prototypes_, expected, rtol=1e-10, atol=1e-12)

    # Prediction = argmax cosine to the prototypes.
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Pn = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    cos = Xn @ Pn.T
    assert_array_equal(clf.predict(X), np.argmax(cos, axis=1))
    assert_allclose(clf.decision_function(X), cos, rtol=1e-10, atol=1e-12)
    e = np.exp(cos / clf.temperature)
    assert_allclose(clf.predict_proba(X), e / e.sum(1, keepdims=True), rtol=1e-10)
    assert clf.score(X, y) == pytest.approx(np.mean(np.argmax(cos, axis=1) == y))


def test_alpha_zero_is_nearest_mean():
    X, y = _blobs(seed=3)
    base = y < 5
    teen = TEENCalibrator(alpha=0.0).fit(X[base], y[base]).partial_fit(X[~base][:9], y[~base][:9])
    ncm = NearestMeanClassifier().fit(X[base], y[base]).partial_fit(X[~base][:9], y[~base][:9])
    assert_array_equal(teen.predict(X), ncm.predict(X))
    assert_allclose(teen.decision_function(X), ncm.decision_function(X), rtol=1e-10)


def test_first_partial_fit_is_fit():
    X, y = _blobs(seed=4)
    a = TEENCalibrator().partial_fit(X, y)
    b = TEENCalibrator().fit(X, y)
    assert a.is_base_class_.all()
    assert_allclose(a.prototypes_, b.prototypes_)
    assert_allclose(a.prototypes_, _means(X, y, range(8)), rtol=1e-12)


def test_session_order_and_batching_invariance():
    X, y = _blobs(n_classes=9, seed=5)
    base = y < 4
    sessions = [np.flatnonzero(y == c)[:5] for c in range(4, 9)]
    ref = TEENCalibrator().fit(X[base], y[base])
    for idx in sessions:
        ref.partial_fit(X[idx], y[idx])
    # Reverse order, and everything in one session.
    rev = TEENCalibrator().fit(X[base], y[base])
    for idx in sessions[::-1]:
        rev.partial_fit(X[idx], y[idx])
    allin = np.concatenate(sessions)
    one = TEENCalibrator().fit(X[base], y[base]).partial_fit(X[allin], y[allin])
    for other in (rev, one):
        assert_array_equal(other.classes_, ref.classes_)
        assert_allclose(other.prototypes_, ref.prototypes_, rtol=1e-10, atol=1e-12)


def test_more_samples_of_known_classes():
    X, y = _blobs(seed=6)
    base = y < 5
    i5 = np.flatnonzero(y == 5)
    clf = TEENCalibrator(alpha=0.5).fit(X[base], y[base])
    clf.partial_fit(X[i5[:3]], y[i5[:3]])
    clf.partial_fit(X[i5[3:8]], y[i5[3:8]])             # more shots of a novel class
    means = _means(X[base], y[base], range(5))
    novel = X[i5[:8]].mean(0, keepdims=True)
    # Calibrated once from the running raw mean, not calibrated twice.
    assert_allclose(clf.prototypes_[5], _reference_calibrate(novel, means, 0.5, 16.0)[0],
                    rtol=1e-10)
    assert clf.class_counts_[5] == 8

    # More samples of a base class: its mean moves and the novel class is recalibrated.
    i0 = np.flatnonzero(y == 0)
    extra = X[i0[:4]] + 3.0
    clf.partial_fit(extra, np.zeros(4, dtype=int))
    n0 = np.sum(y[base] == 0)
    new_mean0 = (means[0] * n0 + extra.sum(0)) / (n0 + 4)
    means[0] = new_mean0
    assert clf.is_base_class_[:5].all() and not clf.is_base_class_[5]
    assert_allclose(clf.prototypes_[:5], means, rtol=1e-10)
    assert_allclose(clf.prototypes_[5], _reference_calibrate(novel, means, 0.5, 16.0)[0],
                    rtol=1e-10)


def test_string_labels_sorted_and_float32():
    X, y = _blobs(n_classes=4, seed=7)
    names = np.array(["dog", "cat", "zebra", "ant"])[y]
    X32 = X.astype(np.float32)
    clf = TEENCalibrator().fit(X32[y < 3], names[y < 3])
    clf.partial_fit(X32[y == 3][:5], names[y == 3][:5])
    assert_array_equal(clf.classes_, ["ant", "cat", "dog", "zebra"])
    assert_array_equal(clf.is_base_class_, [False, True, True, True])
    assert clf.prototypes_.dtype == np.float32
    assert set(clf.predict(X32)) <= set(clf.classes_)


def _state(est):
    return copy.deepcopy({k: v for k, v in vars(est).items() if k.endswith("_")})


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert_array_equal(a[k], b[k])
        else:
            assert a[k] == b[k]


@pytest.mark.parametrize(
    "bad",
    [
        lambda X, y: (X[:5, :-1], y[:5]),                       # wrong n_features
        lambda X, y: (np.where(np.arange(X.shape[1]) == 0, np.nan, X[:5]), y[:5]),
        lambda X, y: (X[:5], np.array(["a"] * 5)),              # mix of label types
        lambda X, y: (X[:5], y[:4]),                            # inconsistent lengths
    ],
)
def test_failed_partial_fit_leaves_state_unchanged(bad):
    X, y = _blobs(seed=8)
    clf = TEENCalibrator().fit(X[y < 5], y[y < 5]).partial_fit(X[y == 5][:5], y[y == 5][:5])
    before = _state(clf)
    Xb, yb = bad(X[y >= 6], y[y >= 6])
    with pytest.raises(ValueError):
        clf.partial_fit(Xb, yb)
    _assert_same_state(before, _state(clf))


def test_bad_params():
    X, y = _blobs(n_classes=3, seed=9)
    for params in ({"alpha": -0.1}, {"alpha": 2}, {"tau": -1}, {"temperature": 0}):
        with pytest.raises(InvalidParameterError):
            TEENCalibrator(**params).fit(X, y)


def test_torch_backend_gives_same_model():
    pytest.importorskip("torch")
    from skproto import config_context

    X, y = _blobs(seed=10)
    X = X.astype(np.float32)
    ref = TEENCalibrator().fit(X[y < 5], y[y < 5]).partial_fit(X[y >= 5][:9], y[y >= 5][:9])
    with config_context(backend="torch", device="cpu"):
        clf = TEENCalibrator().fit(X[y < 5], y[y < 5]).partial_fit(X[y >= 5][:9],
                                                                    y[y >= 5][:9])
        pred = clf.predict(X)
        proba = clf.predict_proba(X)
    assert_allclose(clf.prototypes_, ref.prototypes_, rtol=1e-5, atol=1e-6)
    assert_array_equal(pred, ref.predict(X))
    assert_allclose(proba, ref.predict_proba(X), rtol=1e-4, atol=1e-6)
