"""Fuzzing: every accepted input gives finite outputs (or a documented, clear error).

Inputs span the whole range of each float type (values near the largest and the
smallest normal numbers, denormals, zero rows, duplicates), with extreme parameters
(temperatures down to 1e-45). An input may be refused with a ValueError / TypeError;
once accepted, predictions are labels of ``classes_``, probabilities are finite and
sum to 1, and scores are finite.

The number of examples per estimator is ``SKPROTO_FUZZ_EXAMPLES`` (150 by default, a
fast profile for CI; the full run uses 1000 or more).
"""

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skproto import (
    FeTrIL,
    MixturePrototypeOODDetector,
    NearestMeanClassifier,
    SemiSupervisedGMM,
    TEENCalibrator,
)

N_EXAMPLES = int(os.environ.get("SKPROTO_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=N_EXAMPLES, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@st.composite
def datasets(draw, min_classes=1):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    info = np.finfo(dtype)
    n_features = draw(st.integers(1, 5))
    n_classes = draw(st.integers(min_classes, 3))
    n_samples = draw(st.integers(max(n_classes, 2), 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # A common scale anywhere in the type's range (denormals included), plus a
    # per-row spread of a few orders of magnitude.
    low, high = np.log10(info.smallest_subnormal) + 1, np.log10(info.max) - 1
    exponent = draw(st.floats(low, high))
    X = rng.normal(size=(n_samples, n_features)) * 10.0 ** rng.uniform(-3, 0, (n_samples, 1))
    if draw(st.booleans()):
        X[rng.random(n_samples) < 0.3] = 0.0  # zero rows
    if draw(st.booleans()):
        X = np.abs(X)  # non-negative, as ReLU features
    with np.errstate(over="ignore", under="ignore"):
        X = (X * 10.0**exponent).astype(dtype)
    X[~np.isfinite(X)] = info.max / 10
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n_samples - n_classes)])
    return X, y, rng


def _fit_or_refuse(estimator, *args):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return estimator.fit(*args)
    except (ValueError, TypeError) as exc:  # a documented refusal, with a message
        assert str(exc)
        return None


def _check_classifier_outputs(clf, X):
    pred = clf.predict(X)
    assert np.isin(pred, clf.classes_).all()
    if hasattr(clf, "predict_proba"):
        proba = clf.predict_proba(X)
        assert np.all(np.isfinite(proba)), proba
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    decision = clf.decision_function(X)
    assert np.all(np.isfinite(decision)), decision
    assert np.isfinite(clf.score(X, clf.predict(X)))


@FUZZ
@given(datasets(), st.sampled_from(["cosine", "euclidean"]),
       st.floats(1e-45, 1e3), st.data())
def test_nearest_mean_outputs_are_finite(data, metric, temperature, more):
    X, y, rng = data
    clf = _fit_or_refuse(NearestMeanClassifier(metric, temperature=temperature), X, y)
    if clf is None:
        return
    _check_classifier_outputs(clf, X)
    X2, y2, _ = more.draw(datasets())
    if X2.shape[1] == X.shape[1]:
        try:
            clf.partial_fit(X2.astype(X.dtype), y2 + 1)
        except (ValueError, TypeError) as exc:
            assert str(exc)
        else:
            _check_classifier_outputs(clf, np.vstack([X, X2.astype(X.dtype)]))


@FUZZ
@given(datasets(), st.floats(0, 1), st.floats(0, 1e3), st.floats(1e-45, 1e3))
def test_teen_outputs_are_finite(data, alpha, tau, temperature):
    X, y, rng = data
    base = y < max(y.max(), 1)
    clf = _fit_or_refuse(TEENCalibrator(alpha, tau=tau, temperature=temperature),
                         X[base], y[base])
    if clf is None:
        return
    if (~base).any():
        clf.partial_fit(X[~base], y[~base])
    _check_classifier_outputs(clf, X)


@FUZZ
@given(datasets(min_classes=2))
def test_fetril_outputs_are_finite(data):
    X, y, rng = data
    first = y < 2
    clf = _fit_or_refuse(FeTrIL(), X[first], y[first])
    if clf is None:
        return
    if (~first).any():
        clf.partial_fit(X[~first], y[~first])
    pred = clf.predict(X)
    assert np.isin(pred, clf.classes_).all()
    assert np.all(np.isfinite(clf.decision_function(X)))


@FUZZ
@given(datasets(), st.sampled_from(["prototype", "mahalanobis", "knn"]),
       st.booleans())
def test_ood_detector_outputs_are_finite(data, ood_score, labelled):
    X, y, rng = data
    detector = MixturePrototypeOODDetector(
        2, max_iter=2, ood_score=ood_score, n_neighbors=2, random_state=0
    )
    detector = _fit_or_refuse(detector, X, y if labelled else None)
    if detector is None:
        return
    for output in (detector.score_samples(X), detector.decision_function(X)):
        assert np.all(np.isfinite(output)), output
    assert np.isin(detector.predict(X), [-1, 1]).all()


@FUZZ
@given(datasets(), st.sampled_from(["spherical", "diag", "full"]),
       st.sampled_from(["soft", "hard"]), st.sampled_from([None, "auto"]))
def test_semi_supervised_gmm_outputs_are_finite(data, covariance_type, assignment, k):
    X, y, rng = data
    y = y.copy()
    y[rng.random(len(y)) < 0.5] = -1  # about half unlabelled
    n_known = len(np.unique(y[y >= 0]))
    n_components = "auto" if k == "auto" else max(n_known, 1) + int((y < 0).any())
    gmm = SemiSupervisedGMM(
        n_components, covariance_type=covariance_type, assignment=assignment,
        max_iter=5, max_move_rounds=2, random_state=0,
    )
    gmm = _fit_or_refuse(gmm, X, y)
    if gmm is None:
        return
    for array in (gmm.means_, gmm.covariances_, gmm.weights_):
        assert np.all(np.isfinite(array))
    assert np.isin(gmm.predict(X), gmm.component_labels_).all()
    proba = gmm.predict_proba(X)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-4)
    assert np.all(np.isfinite(gmm.score_samples(X))) and np.isfinite(gmm.score(X))


# --------------------------------------------------------------------------- scale

XS = np.array([[3.0, 1.0, 1.0], [1.0, 3.0, 1.0], [1.0, 1.0, 3.0]])
SCALES = [(1e20, np.float32), (1e-13, np.float32), (1e-41, np.float32),
          (1e160, np.float64), (1e-300, np.float64), (1e-320, np.float64)]


@pytest.mark.parametrize("scale, dtype", SCALES)
@pytest.mark.parametrize(
    "make",
    [lambda: NearestMeanClassifier(), lambda: TEENCalibrator(), lambda: FeTrIL(),
     lambda: NearestMeanClassifier("euclidean")],
    ids=["nmc-cosine", "teen", "fetril", "nmc-euclidean"],
)
def test_predictions_do_not_depend_on_the_scale(make, scale, dtype):
    # The example: at these scales row norms overflow, or fall below the old
    # fixed 1e-12 cut-off, and every row went to classes_[0].
    X = (XS * scale).astype(dtype)
    try:
        clf = make().fit(X, [0, 1, 2])
    except ValueError as exc:  # euclidean refuses squared distances that overflow
        assert "overflow" in str(exc) and scale > 1
        return
    np.testing.assert_array_equal(clf.predict(X), [0, 1, 2])
    if hasattr(clf, "predict_proba"):
        unit = make().fit(XS.astype(dtype), [0, 1, 2])
        if clf.get_params().get("metric", "cosine") == "cosine":
            # Cosine is scale-invariant: the same probabilities as at scale 1.
            np.testing.assert_allclose(clf.predict_proba(X), unit.predict_proba(XS),
                                       rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
@pytest.mark.parametrize("scale, dtype", SCALES)
def test_kernels_are_scale_invariant_for_cosine(backend_name, scale, dtype):
    pytest.importorskip("torch") if backend_name == "torch" else None
    from skproto import backend, config_context

    rng = np.random.default_rng(0)
    X, P = rng.normal(size=(20, 4)), rng.normal(size=(5, 4))
    Xs, Ps = (X * scale).astype(dtype), (P * scale).astype(dtype)
    # The reference: the same (rounded) numbers, brought back to scale 1 in float64.
    expected = backend.similarity(Xs.astype(np.float64) / scale, Ps.astype(np.float64) / scale)
    with config_context(backend=backend_name, device="cpu"):
        got = backend.similarity(Xs, Ps)
        normalized = backend.l2_normalize(Xs)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(normalized.astype(np.float64), axis=1), 1,
                               rtol=1e-5)


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
@pytest.mark.parametrize("scale, dtype", [(1e-30, np.float32), (1e-200, np.float64),
                                          (1e15, np.float32)])
def test_euclidean_kernels_keep_their_digits_at_extreme_scales(backend_name, scale, dtype):
    pytest.importorskip("torch") if backend_name == "torch" else None
    from skproto import backend, config_context

    rng = np.random.default_rng(1)
    X, P = rng.normal(size=(200, 6)), rng.normal(size=(7, 6))
    Xs, Ps = (X * scale).astype(dtype), (P * scale).astype(dtype)
    with config_context(backend=backend_name, device="cpu"):
        index, score = backend.assign(Xs, Ps, "euclidean")
    X, P = Xs.astype(np.float64) / scale, Ps.astype(np.float64) / scale
    expected = -((X[:, None] - P[None]) ** 2).sum(-1)
    # Without the exact power-of-two rescaling, squares under- or overflow and the
    # nearest prototype is lost (ties at 0, or inf - inf).
    np.testing.assert_array_equal(index, expected.argmax(1))
    # The score is -d^2 in the data's units: rounded to 0 where d^2 is below the
    # smallest float, else accurate.
    true_score = expected.max(1) * scale**2
    if np.all(np.abs(true_score) > np.finfo(dtype).tiny):
        np.testing.assert_allclose(score, true_score, rtol=1e-3)
    else:
        assert np.all(score <= 0) and np.all(np.abs(score) <= np.finfo(dtype).tiny)
