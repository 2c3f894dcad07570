"""Mixture-model kernels: numpy vs scikit-learn's formulas, torch (CPU) vs numpy."""

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.mixture._gaussian_mixture import (
    _compute_precision_cholesky,
    _estimate_log_gaussian_prob,
)

import skproto
from skproto import backend

COV_TYPES = ["spherical", "diag", "full"]


def _random_mixture(rng, n_samples=120, n_features=5, n_components=4, cov_type="diag"):
    X = rng.randn(n_samples, n_features) * 2 + 1
    means = rng.randn(n_components, n_features) * 2
    if cov_type == "spherical":
        covariances = rng.uniform(0.5, 2.0, n_components)
    elif cov_type == "diag":
        covariances = rng.uniform(0.5, 2.0, (n_components, n_features))
    else:
        A = rng.randn(n_components, n_features, n_features)
        covariances = A @ A.transpose(0, 2, 1) / n_features + np.eye(n_features)
    prec_chol = _compute_precision_cholesky(covariances, cov_type)
    weights = rng.dirichlet(np.ones(n_components))
    return X, means, prec_chol, np.log(weights)


def _reference_weighted_log_prob(X, means, prec_chol, log_weights, cov_type):
    return _estimate_log_gaussian_prob(X, means, prec_chol, cov_type) + log_weights


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("working_memory", [1024, 0.001])
def test_log_responsibilities_matches_sklearn(cov_type, working_memory):
    rng = np.random.RandomState(0)
    X, means, prec_chol, log_w = _random_mixture(rng, cov_type=cov_type)
    wlp = _reference_weighted_log_prob(X, means, prec_chol, log_w, cov_type)
    expected_norm = logsumexp(wlp, axis=1)
    with skproto.config_context(working_memory=working_memory):  # tiny: many chunks
        log_resp, log_norm = backend.log_responsibilities(X, means, prec_chol, log_w, cov_type)
    np.testing.assert_allclose(log_norm, expected_norm, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(log_resp, wlp - expected_norm[:, None], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_log_responsibilities_float32_stays_float32(cov_type):
    rng = np.random.RandomState(1)
    X, means, prec_chol, log_w = _random_mixture(rng, cov_type=cov_type)
    log_resp, log_norm = backend.log_responsibilities(
        X.astype(np.float32), means, prec_chol, log_w, cov_type
    )
    assert log_resp.dtype == np.float32 and log_norm.dtype == np.float32
    expected = logsumexp(_reference_weighted_log_prob(X, means, prec_chol, log_w, cov_type), 1)
    np.testing.assert_allclose(log_norm, expected, rtol=1e-4, atol=1e-3)


def _direct_statistics(X, means, prec_chol, log_w, cov_type, fixed):
    wlp = _reference_weighted_log_prob(X, means, prec_chol, log_w, cov_type)
    norm = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - norm[:, None])
    is_fixed = fixed >= 0
    resp[is_fixed] = np.eye(means.shape[0])[fixed[is_fixed]]
    norm[is_fixed] = wlp[is_fixed, fixed[is_fixed]]
    nk = resp.sum(0)
    sums = resp.T @ X
    if cov_type == "spherical":
        sq = resp.T @ (X**2).sum(1)
    elif cov_type == "diag":
        sq = resp.T @ X**2
    else:
        sq = np.einsum("nk,nd,ne->kde", resp, X, X)
    return norm.sum(), nk, sums, sq


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_mixture_em_statistics_matches_direct_computation(cov_type):
    rng = np.random.RandomState(2)
    X, means, prec_chol, log_w = _random_mixture(rng, cov_type=cov_type)
    fixed = np.where(rng.rand(X.shape[0]) < 0.3, rng.randint(0, 4, X.shape[0]), -1)
    expected = _direct_statistics(X, means, prec_chol, log_w, cov_type, fixed)
    with skproto.config_context(working_memory=0.002):
        got = backend.mixture_em_statistics(X, means, prec_chol, log_w, cov_type, fixed)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-8)
    # fixed=None means all rows free.
    got = backend.mixture_em_statistics(X, means, prec_chol, log_w, cov_type)
    free = _direct_statistics(X, means, prec_chol, log_w, cov_type, np.full(len(X), -1))
    np.testing.assert_allclose(got[0], free[0], rtol=1e-10)


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_kernels_match_numpy(cov_type, dtype):
    pytest.importorskip("torch")
    rng = np.random.RandomState(3)
    X, means, prec_chol, log_w = _random_mixture(rng, cov_type=cov_type)
    X = X.astype(dtype)
    fixed = np.where(rng.rand(X.shape[0]) < 0.3, rng.randint(0, 4, X.shape[0]), -1)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    with skproto.config_context(working_memory=0.002):
        ref_resp = backend.log_responsibilities(X, means, prec_chol, log_w, cov_type)
        ref_stats = backend.mixture_em_statistics(X, means, prec_chol, log_w, cov_type, fixed)
        with skproto.config_context(backend="torch", device="cpu"):
            got_resp = backend.log_responsibilities(X, means, prec_chol, log_w, cov_type)
            got_stats = backend.mixture_em_statistics(
                X, means, prec_chol, log_w, cov_type, fixed
            )
    for g, e in zip(got_resp, ref_resp):
        assert g.dtype == e.dtype == dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * 10)
    for g, e in zip(got_stats, ref_stats):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * 10)


def test_mixture_kernels_reject_bad_shapes():
    X = np.zeros((3, 2))
    means = np.zeros((2, 2))
    with pytest.raises(ValueError, match="covariance_type"):
        backend.log_responsibilities(X, means, np.ones(2), np.zeros(2), "tied")
    with pytest.raises(ValueError, match="precisions_chol must have shape"):
        backend.log_responsibilities(X, means, np.ones((2, 2)), np.zeros(2), "spherical")
    with pytest.raises(ValueError, match="log_weights"):
        backend.log_responsibilities(X, means, np.ones(2), np.zeros(3), "spherical")
    with pytest.raises(ValueError, match="fixed must lie"):
        backend.mixture_em_statistics(X, means, np.ones(2), np.zeros(2), "spherical", [0, 2, -1])
    with pytest.raises(ValueError, match="fixed must be"):
        backend.mixture_em_statistics(X, means, np.ones(2), np.zeros(2), "spherical", [0, 1])


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("working_memory", [1024, 0.001])
def test_mixture_assign_matches_the_unchunked_computation(cov_type, working_memory):
    rng = np.random.RandomState(4)
    X, means, prec_chol, log_w = _random_mixture(rng, cov_type=cov_type)
    wlp = _reference_weighted_log_prob(X, means, prec_chol, log_w, cov_type)
    with skproto.config_context(working_memory=working_memory):  # tiny: one row a chunk
        index, log_norm = backend.mixture_assign(X, means, prec_chol, log_w, cov_type)
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, np.argmax(wlp, axis=1))
    np.testing.assert_allclose(log_norm, logsumexp(wlp, axis=1), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_mixture_assign_matches_numpy(cov_type, dtype):
    pytest.importorskip("torch")
    rng = np.random.RandomState(5)
    X, means, prec_chol, log_w = _random_mixture(rng, cov_type=cov_type)
    X = X.astype(dtype)
    with skproto.config_context(working_memory=0.002):
        ref = backend.mixture_assign(X, means, prec_chol, log_w, cov_type)
        with skproto.config_context(backend="torch", device="cpu"):
            got = backend.mixture_assign(X, means, prec_chol, log_w, cov_type)
    assert got[1].dtype == ref[1].dtype == dtype
    # Rows whose two best components are within rounding may swap in float32.
    wlp = np.sort(_reference_weighted_log_prob(X, means, prec_chol, log_w, cov_type), axis=1)
    clear = wlp[:, -1] - wlp[:, -2] > 1e-3
    np.testing.assert_array_equal(got[0][clear], ref[0][clear])
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got[1], ref[1], rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_numpy_kernels_in_worker_threads_equal_one_thread(cov_type, monkeypatch):
    """Blocks processed by several threads (BLAS on one each) give the sequential
    results, and the same results on every run (fixed shares of the blocks)."""
    from skproto.backend._numpy import mixture as numpy_mixture

    rng = np.random.RandomState(4)
    X, means, prec_chol, log_w = _random_mixture(rng, n_samples=3000, cov_type=cov_type)
    fixed = np.where(rng.rand(len(X)) < 0.3, rng.randint(0, 4, len(X)), -1)

    def run(n_threads):
        monkeypatch.setattr(numpy_mixture, "_blas_threads", lambda: n_threads)
        with skproto.config_context(working_memory=0.05):  # about 50 blocks
            return (backend.log_responsibilities(X, means, prec_chol, log_w, cov_type)
                    + backend.mixture_assign(X, means, prec_chol, log_w, cov_type, fixed)
                    + backend.mixture_em_statistics(X, means, prec_chol, log_w, cov_type,
                                                    fixed))

    one, three, again = run(1), run(3), run(3)
    for a, b, c in zip(one, three, again):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(b, c)
