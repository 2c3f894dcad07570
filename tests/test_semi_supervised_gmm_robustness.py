"""SemiSupervisedGMM on awkward input: label dtypes, memory, scale, refits, convergence."""

import tracemalloc
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning

import skproto
from skproto import MixturePrototypeOODDetector, SemiSupervisedGMM


def blobs(seed=0, n_per_class=50, n_features=3, n_classes=3, spread=5.0):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.randn(n_per_class, n_features) + spread * i for i in range(n_classes)])
    return X, np.repeat(np.arange(n_classes), n_per_class)


# ------------------------------------------------------------------ discovered labels


@pytest.mark.parametrize("dtype, known, widened", [
    (np.int8, (127, -128), np.int16),
    (np.int16, (32767, 0), np.int32),
    (np.float32, (2.0**24, 3.0), np.float64),
])
def test_discovered_labels_never_equal_a_known_label(dtype, known, widened):
    X, y = blobs()
    y_train = np.where(y == 0, known[0], np.where(y == 1, known[1], -1)).astype(dtype)
    gmm = SemiSupervisedGMM(3, random_state=0).fit(X, y_train)
    new = gmm.component_labels_[2:]
    assert not np.isin(new, known).any()
    assert len(np.unique(gmm.component_labels_)) == 3
    # The next integer after the largest known label, exactly, in a wider dtype.
    assert gmm.component_labels_.dtype == widened
    assert int(new[0]) == int(max(known)) + 1
    labelled = y < 2
    np.testing.assert_array_equal(gmm.labels_[labelled], y_train[labelled])


def test_labels_that_no_dtype_can_continue_are_refused():
    X, y = blobs()
    # Float64 holds every integer up to 2**53 exactly, and no type holds 2**53 + 1.
    y_train = np.where(y == 0, 2.0**53, np.where(y == 1, 0, -1)).astype(np.float64)
    with pytest.raises(ValueError, match="discovered classes would run up to"):
        SemiSupervisedGMM(3, random_state=0).fit(X, y_train)
    # No discovered component: nothing to label, the dtype is kept.
    gmm = SemiSupervisedGMM(2, random_state=0).fit(X[y < 2], y_train[y < 2])
    assert gmm.component_labels_.dtype == np.float64


# ------------------------------------------------------------------ prediction memory


def _peak_mib(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1] / 2**20, result
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("cov_type", ["diag", "full"])
def test_prediction_stays_within_working_memory(cov_type):
    rng = np.random.RandomState(0)
    n_components = 64
    X_fit = rng.randn(n_components * 8, 4)
    gmm = SemiSupervisedGMM(n_components, covariance_type=cov_type, max_iter=3,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(X_fit)
    X = rng.randn(40_000, 4)
    full_mib = X.shape[0] * n_components * 8 / 2**20  # the n x K matrix: 19.5 MiB
    with skproto.config_context(working_memory=0.5):
        wlp = gmm._log_resp(X)  # the unchunked reference (allowed to be big)
        p_predict, labels = _peak_mib(lambda: gmm.predict(X))
        p_samples, scores = _peak_mib(lambda: gmm.score_samples(X))
        p_score, score = _peak_mib(lambda: gmm.score(X))
        p_proba, proba = _peak_mib(lambda: gmm.predict_proba(X))
    np.testing.assert_array_equal(labels, gmm.component_labels_[np.argmax(wlp[0], axis=1)])
    np.testing.assert_allclose(scores, wlp[1], rtol=1e-12)
    assert score == pytest.approx(wlp[1].mean(), rel=1e-12)
    np.testing.assert_allclose(proba, np.exp(wlp[0]), rtol=1e-12)
    # Outputs (n int64 / float64, under 1 MiB) plus chunks of about 0.5 MiB.
    assert p_predict < 3 and p_samples < 3 and p_score < 3
    # The result itself, and chunked temporaries only.
    assert p_proba < full_mib + 3
    # The reference builds the matrix: the bound above would catch it.
    assert full_mib > 3 * 4


def test_score_samples_is_the_mixture_log_likelihood():
    X, y = blobs(1)
    gmm = SemiSupervisedGMM(3, covariance_type="diag", random_state=0).fit(X, np.where(y < 2, y, -1))
    var = gmm.covariances_
    log_pdf = -0.5 * (
        ((X[:, None, :] - gmm.means_[None]) ** 2 / var[None]).sum(-1)
        + np.log(2 * np.pi * var).sum(-1)[None]
    )
    expected = logsumexp(log_pdf + np.log(gmm.weights_), axis=1)
    with skproto.config_context(working_memory=0.001):  # one row per chunk
        np.testing.assert_allclose(gmm.score_samples(X), expected, rtol=1e-9)
        np.testing.assert_array_equal(
            gmm.predict(X), gmm.component_labels_[np.argmax(log_pdf + np.log(gmm.weights_), 1)]
        )


# ------------------------------------------------------------------ scale


@pytest.mark.parametrize("cov_type", ["diag", "full", "spherical"])
def test_float32_data_whose_squares_overflow_is_a_clear_error(cov_type):
    X, y = blobs(2)
    X = (X * 1e20).astype(np.float32)
    with pytest.raises(ValueError, match="squared distances overflow float32"):
        SemiSupervisedGMM(3, covariance_type=cov_type).fit(X, np.where(y < 2, y, -1))


@pytest.mark.parametrize("cov_type", ["diag", "full", "spherical"])
def test_float64_data_scaled_by_1e20_gives_the_same_fit(cov_type):
    X, y = blobs(3)
    y_train = np.where(y < 2, y, -1)
    ref = SemiSupervisedGMM(3, covariance_type=cov_type, random_state=0).fit(X, y_train)
    big = SemiSupervisedGMM(3, covariance_type=cov_type, random_state=0).fit(X * 1e20, y_train)
    np.testing.assert_array_equal(big.labels_, ref.labels_)
    np.testing.assert_allclose(big.means_, ref.means_ * 1e20, rtol=1e-6)


@pytest.mark.parametrize("cov_type, shape", [
    ("full", (2, 3, 3)), ("diag", (2, 3)), ("spherical", (2,)),
])
@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_non_finite_covariances_are_a_clear_error(cov_type, shape, backend_name):
    if backend_name == "torch":
        pytest.importorskip("torch")
    # Second moments whose scatter overflows: the M-step's covariances are infinite.
    moments = np.ones(shape) if cov_type != "full" else np.stack([np.eye(3)] * 2)
    moments[(0,) * len(shape)] = np.finfo(np.float64).max
    with skproto.config_context(backend=backend_name, device="cpu"), \
            np.errstate(over="ignore"):
        with pytest.raises(ValueError, match="covariances became NaN or infinite"):
            skproto.backend.mixture_m_step(
                [1e-300, 1.0], np.ones((2, 3)), moments, cov_type, centred=True
            )
        # A singular covariance (no regularisation) is the other clear error.
        with pytest.raises(ValueError, match="ill-defined empirical covariance"):
            skproto.backend.mixture_m_step(
                [2.0, 2.0], np.ones((2, 3)), np.zeros(shape), cov_type, centred=True,
                reg_covar=0.0,
            )


# ------------------------------------------------------------------ refit


def test_refit_with_soft_assignment_drops_inertia():
    X, y = blobs(4)
    y_train = np.where(y < 2, y, -1)
    gmm = SemiSupervisedGMM(3, assignment="hard", random_state=0).fit(X, y_train)
    assert gmm.inertia_ > 0
    gmm.set_params(assignment="soft").fit(X, y_train)
    assert not hasattr(gmm, "inertia_")
    fresh = SemiSupervisedGMM(3, assignment="soft", random_state=0).fit(X, y_train)
    assert sorted(vars(gmm)) == sorted(vars(fresh))


# ------------------------------------------------------------------ convergence


@pytest.mark.parametrize("assignment", ["soft", "hard"])
def test_stopping_at_max_iter_warns(assignment):
    rng = np.random.RandomState(5)
    X = rng.randn(300, 4)  # no structure: neither EM nor k-means settles in 2 steps
    y = np.where(np.arange(300) < 30, np.arange(300) % 2, -1)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=2"):
        gmm = SemiSupervisedGMM(6, assignment=assignment, max_iter=2, tol=0,
                                random_state=0).fit(X, y)
    assert not gmm.converged_
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        gmm = SemiSupervisedGMM(6, assignment=assignment, max_iter=500,
                                random_state=0).fit(X, y)
    assert gmm.converged_


def test_ood_detector_warns_when_it_stops_at_max_iter():
    X, y = blobs(6, n_features=8)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=1"):
        MixturePrototypeOODDetector(n_prototypes=2, max_iter=1, tol=0,
                                    random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MixturePrototypeOODDetector(n_prototypes=2, max_iter=1, tol=1e9,
                                    random_state=0).fit(X, y)
