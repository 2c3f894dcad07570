"""Random-feature and Mahalanobis kernels, and GramStatistics, against direct numpy."""

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from skproto import backend, config_context
from skproto.statistics import GramStatistics

torch_installed = importlib.util.find_spec("torch") is not None
BACKENDS = ["numpy"] + (["torch"] if torch_installed else [])
# 0.001 MiB forces chunks of a few rows, so chunk borders are crossed.
WORKING_MEMORIES = [1024, 0.001]

rng = np.random.default_rng(0)
X = rng.normal(size=(157, 9)).astype(np.float32)
W = rng.normal(size=(9, 23)).astype(np.float32)
CODES = rng.integers(0, 4, 157)


def direct_h(X, W):
    return np.maximum(X.astype(np.float64) @ W.astype(np.float64), 0)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("working_memory", WORKING_MEMORIES)
def test_random_feature_kernels_match_direct_formulas(backend_name, working_memory):
    H = direct_h(X, W)
    Y = np.eye(4)[CODES]
    coef = rng.normal(size=(5, 23))
    with config_context(backend=backend_name, device="cpu", working_memory=working_memory):
        G, Q = backend.random_feature_gram(X, W, CODES, 4)
        features = backend.random_features(X, W)
        scores = backend.random_feature_scores(X, W, coef)
    assert G.dtype == Q.dtype == np.float64
    assert features.dtype == scores.dtype == np.float32
    # H is computed in float32 (X's dtype), so compare at float32 precision.
    assert_allclose(G, H.T @ H, rtol=1e-5, atol=1e-4)
    assert_allclose(Q, H.T @ Y, rtol=1e-5, atol=1e-4)
    assert_allclose(features, H, rtol=1e-5, atol=1e-5)
    assert_allclose(scores, H @ coef.T, rtol=1e-4, atol=1e-4)


def test_random_feature_gram_accumulates_in_float64():
    # float64 input: the only error left is the summation order.
    X64, W64 = X.astype(np.float64), W.astype(np.float64)
    with config_context(working_memory=0.001):
        G, _ = backend.random_feature_gram(X64, W64, CODES, 4)
    H = direct_h(X64, W64)
    assert_allclose(G, H.T @ H, rtol=1e-12)


def test_random_feature_kernels_refuse_bad_shapes():
    with pytest.raises(ValueError, match="W must have shape"):
        backend.random_feature_gram(X, W[:5], CODES, 4)
    with pytest.raises(ValueError, match="coef must have shape"):
        backend.random_feature_scores(X, W, np.ones((2, 3)))
    with pytest.raises(ValueError, match="codes"):
        backend.random_feature_gram(X, W, CODES + 4, 4)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("working_memory", WORKING_MEMORIES)
@pytest.mark.parametrize("shared", [True, False])
def test_mahalanobis_kernels_match_direct_formula(backend_name, working_memory, shared):
    X64 = X.astype(np.float64)
    means = rng.normal(size=(6, 9))
    whitening = rng.normal(size=(9, 7)) if shared else rng.normal(size=(6, 9, 7))
    expected = np.stack([
        (((X64 - means[k]) @ (whitening if shared else whitening[k])) ** 2).sum(1)
        for k in range(6)
    ], axis=1)
    with config_context(backend=backend_name, device="cpu", working_memory=working_memory):
        D = backend.mahalanobis_sq_distances(X64, means, whitening)
        index, best = backend.nearest_mahalanobis(X64, means, whitening)
        D32 = backend.mahalanobis_sq_distances(X, means, whitening)
    assert_allclose(D, expected, rtol=1e-10, atol=1e-9)
    assert_array_equal(index, expected.argmin(1))
    assert_allclose(best, expected.min(1), rtol=1e-10, atol=1e-9)
    assert D32.dtype == np.float32
    assert_allclose(D32, expected, rtol=1e-3, atol=1e-3 * expected.max())


def test_mahalanobis_kernels_refuse_bad_shapes():
    with pytest.raises(ValueError, match="whitening must have shape"):
        backend.mahalanobis_sq_distances(X, np.zeros((2, 9)), np.zeros((3, 9, 9)))
    with pytest.raises(ValueError, match="means must have shape"):
        backend.nearest_mahalanobis(X, np.zeros((2, 8)), np.eye(9))


# ------------------------------------------------------------------ GramStatistics


def direct_gram(X, y, W):
    H = direct_h(X, W)
    classes = np.unique(y)
    Y = (y[:, None] == classes[None]).astype(float)
    return classes, Y.sum(0).astype(int), H.T @ H, H.T @ Y


def test_from_batch_matches_direct_and_keeps_the_dtype():
    y = np.array(list("abcd"))[CODES]
    s = GramStatistics.from_batch(X, y, W)
    classes, counts, G, Q = direct_gram(X, y, W)
    assert_array_equal(s.classes, classes)
    assert_array_equal(s.counts, counts)
    assert_allclose(s.gram, G, rtol=1e-5, atol=1e-4)
    assert_allclose(s.targets, Q, rtol=1e-5, atol=1e-4)
    assert s.dtype == np.float32 and s.gram.dtype == np.float64
    assert s.n_samples == len(X) and s.n_components == 23


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_parts=st.integers(1, 6))
def test_any_tree_of_merges_equals_one_batch(seed, n_parts):
    r = np.random.default_rng(seed)
    Xs = r.normal(size=(60, 5))
    Ws = r.normal(size=(5, 8))
    ys = r.integers(0, 5, 60) * 10  # sorted insertion of classes unseen so far
    cuts = np.sort(r.choice(np.arange(1, 60), n_parts - 1, replace=False))
    parts = [GramStatistics.from_batch(Xp, yp, Ws)
             for Xp, yp in zip(np.split(Xs, cuts), np.split(ys, cuts))]
    while len(parts) > 1:  # a random binary tree
        i = r.integers(len(parts) - 1)
        parts[i:i + 2] = [parts[i].merge(parts[i + 1])]
    merged = parts[0]
    classes, counts, G, Q = direct_gram(Xs, ys, Ws)
    assert_array_equal(merged.classes, classes)
    assert_array_equal(merged.counts, counts)
    assert_allclose(merged.gram, G, rtol=1e-12, atol=1e-12)
    assert_allclose(merged.targets, Q, rtol=1e-12, atol=1e-12)


def test_merge_inserts_new_classes_at_their_sorted_position():
    Ws = W.astype(np.float64)
    a = GramStatistics.from_batch(X[:10], np.full(10, 5), Ws)
    b = GramStatistics.from_batch(X[10:20], np.full(10, 1), Ws)
    merged = a.merge(b)
    assert_array_equal(merged.classes, [1, 5])
    assert_array_equal(merged.targets[:, 0], b.targets[:, 0])
    assert_array_equal(merged.targets[:, 1], a.targets[:, 0])
    empty = GramStatistics.empty(23)
    assert empty.merge(a) == a.merge(empty)


def test_ridge_coefficients_solve_the_ridge_system():
    s = GramStatistics.from_batch(X, CODES, W)
    coef = s.ridge_coefficients(0.5)
    expected = np.linalg.solve(s.gram + 0.5 * np.eye(23), s.targets).T
    assert coef.shape == (4, 23)
    assert_allclose(coef, expected, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        s.ridge_coefficients(0.0)


def test_merge_refuses_mismatched_statistics():
    s = GramStatistics.from_batch(X, CODES, W)
    with pytest.raises(ValueError, match="components"):
        s.merge(GramStatistics.empty(3))
    with pytest.raises(TypeError, match="GramStatistics"):
        s.merge({"gram": s.gram})
    with pytest.raises(ValueError, match="sorted"):
        GramStatistics([1, 0], [1, 1], np.eye(2), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="projection"):
        GramStatistics.from_batch(X, CODES, W[:4])
