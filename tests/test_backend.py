"""The backend kernels against direct formulas, across chunk sizes, and torch vs numpy."""

import importlib.util

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skproto import backend, config_context

torch_installed = importlib.util.find_spec("torch") is not None
BACKENDS = ["numpy"] + (["torch"] if torch_installed else [])
METRICS = ["cosine", "euclidean", "dot"]


def direct_similarity(X, P, metric):
    """Independent transcription in float64, straight from the definitions."""
    X = X.astype(np.float64)
    P = P.astype(np.float64)
    if metric == "dot":
        return X @ P.T
    if metric == "euclidean":
        return -((X[:, None, :] - P[None, :, :]) ** 2).sum(-1)
    nx = np.linalg.norm(X, axis=1, keepdims=True)
    npr = np.linalg.norm(P, axis=1, keepdims=True)
    Xn = np.divide(X, nx, out=np.zeros_like(X), where=nx > 0)
    Pn = np.divide(P, npr, out=np.zeros_like(P), where=npr > 0)
    return Xn @ Pn.T


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(203, 17)).astype(np.float32)
    P = rng.normal(size=(11, 17)).astype(np.float32)
    X[5] = 0.0  # a zero vector: cosine 0 with everything
    X[7] = P[3]  # an exact hit: distance 0, cosine 1
    return X, P


# A working memory this small forces chunks of a few rows, so chunk borders are tested.
WORKING_MEMORIES = [1024, 0.001]


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("working_memory", WORKING_MEMORIES)
def test_similarity_matches_direct_formula(data, backend_name, metric, working_memory):
    X, P = data
    with config_context(backend=backend_name, device="cpu", working_memory=working_memory):
        S = backend.similarity(X, P, metric=metric)
    assert S.dtype == np.float32
    assert S.shape == (X.shape[0], P.shape[0])
    expected = direct_similarity(X, P, metric)
    scale = np.abs(expected).max()
    assert_allclose(S, expected, rtol=1e-4, atol=1e-5 * scale)
    if metric == "cosine":
        assert_array_equal(S[5], 0)
        assert_allclose(S[7, 3], 1, rtol=1e-6)
    if metric == "euclidean":
        assert S.max() <= 0
        assert abs(S[7, 3]) <= 1e-4 * scale


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("working_memory", WORKING_MEMORIES)
def test_assign_is_argmax_of_similarity(data, backend_name, metric, working_memory):
    X, P = data
    expected = direct_similarity(X, P, metric)
    with config_context(backend=backend_name, device="cpu", working_memory=working_memory):
        index, score = backend.assign(X, P, metric=metric)
    assert index.shape == (X.shape[0],) and score.dtype == np.float32
    # Rows whose two best similarities are too close to call in float32 are skipped.
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-4 * np.abs(expected).max()
    if metric != "cosine":
        clear[5] = True  # the zero row is only a tie under the cosine metric
    assert clear.sum() > 190
    assert_array_equal(index[clear], expected.argmax(axis=1)[clear])
    assert_allclose(score, expected.max(axis=1), rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 4, 11])
def test_topk_matches_sorting(data, backend_name, metric, k):
    X, P = data
    X = X[np.arange(len(X)) != 5]  # the zero row ties everywhere under cosine
    expected = direct_similarity(X, P, metric)
    with config_context(backend=backend_name, device="cpu", working_memory=0.001):
        indices, scores = backend.topk(X, P, k, metric=metric)
    assert indices.shape == scores.shape == (X.shape[0], k)
    assert_array_equal(indices, np.argsort(-expected, axis=1, kind="stable")[:, :k])
    assert_allclose(
        scores, -np.sort(-expected, axis=1)[:, :k], rtol=1e-4, atol=1e-5 * np.abs(expected).max()
    )
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_topk_rejects_bad_k(data):
    X, P = data
    for k in (0, P.shape[0] + 1):
        with pytest.raises(ValueError, match="k must be in"):
            backend.topk(X, P, k)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("working_memory", WORKING_MEMORIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_sum_matches_loop(backend_name, working_memory, dtype):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(157, 9)).astype(dtype)
    codes = rng.integers(0, 6, size=157)
    codes[codes == 4] = 5  # group 4 is empty
    with config_context(backend=backend_name, device="cpu", working_memory=working_memory):
        sums, counts, sq_sums = backend.group_sum(X, codes, 7, squares=True)
        sums_only = backend.group_sum(X, codes, 7)
    assert len(sums_only) == 2
    assert sums.dtype == dtype and counts.dtype == np.int64
    for g in range(7):
        members = X[codes == g].astype(np.float64)
        assert counts[g] == len(members)
        assert_allclose(sums[g], members.sum(0), rtol=1e-5, atol=1e-5)
        assert_allclose(sq_sums[g], (members**2).sum(0), rtol=1e-5, atol=1e-5)
    assert_array_equal(sums[4], 0)
    assert_allclose(sums_only[0], sums, rtol=1e-6)


def test_group_sum_validates_codes():
    X = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 2\)"):
        backend.group_sum(X, [0, 1, 2], 2)
    with pytest.raises(ValueError, match="one entry per row"):
        backend.group_sum(X, [0, 1], 2)
    with pytest.raises(ValueError, match="integer"):
        backend.group_sum(X, [0.0, 1.0, 1.0], 2)


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="metric must be one of"):
        backend.similarity(np.ones((2, 3)), np.ones((2, 3)), metric="manhattan")
    with pytest.raises(ValueError, match="X has 3 features but P has 4"):
        backend.assign(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="2-D"):
        backend.similarity(np.ones(3), np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least one prototype"):
        backend.assign(np.ones((2, 3)), np.ones((0, 3)))


def test_dtypes_follow_x():
    X64 = np.random.default_rng(2).normal(size=(5, 3))
    P32 = X64[:2].astype(np.float32)
    assert backend.similarity(X64, P32).dtype == np.float64
    assert backend.similarity(X64.astype(np.float32), X64[:2]).dtype == np.float32
    # Integer input is computed in float64.
    assert backend.similarity(np.arange(6).reshape(2, 3), np.ones((1, 3))).dtype == np.float64


def test_empty_x_gives_empty_results(data):
    _, P = data
    X = np.empty((0, P.shape[1]), dtype=np.float32)
    for backend_name in BACKENDS:
        with config_context(backend=backend_name, device="cpu"):
            assert backend.similarity(X, P).shape == (0, P.shape[0])
            index, score = backend.assign(X, P)
            assert index.shape == score.shape == (0,)


@pytest.mark.skipif(not torch_installed, reason="needs torch")
@pytest.mark.parametrize("metric", METRICS)
def test_torch_equals_numpy_on_larger_data(metric):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 64)).astype(np.float32)
    P = rng.normal(size=(300, 64)).astype(np.float32)
    results = {}
    for backend_name in ("numpy", "torch"):
        with config_context(backend=backend_name, device="cpu", working_memory=1):
            results[backend_name] = (
                backend.similarity(X, P, metric),
                backend.assign(X, P, metric),
                backend.topk(X, P, 5, metric),
            )
    (S_np, (i_np, s_np), (ti_np, ts_np)) = results["numpy"]
    (S_t, (i_t, s_t), (ti_t, ts_t)) = results["torch"]
    scale = np.abs(S_np).max()
    assert_allclose(S_t, S_np, rtol=1e-5, atol=1e-6 * scale)
    assert_array_equal(i_t, i_np)
    assert_allclose(s_t, s_np, rtol=1e-5, atol=1e-6 * scale)
    assert_array_equal(ti_t, ti_np)
    assert_allclose(ts_t, ts_np, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_euclidean_never_positive_despite_cancellation(backend_name):
    # x = p + tiny noise at large norm: ||x||^2 - 2 x.p + ||p||^2 cancels catastrophically
    # in float32, and rounding alone would give small positive "squared distances".
    rng = np.random.default_rng(4)
    P = (100 * rng.normal(size=(5, 32))).astype(np.float32)
    X = (P[rng.integers(0, 5, size=500)] + 1e-4 * rng.normal(size=(500, 32))).astype(np.float32)
    with config_context(backend=backend_name, device="cpu"):
        S = backend.similarity(X, P, "euclidean")
        _, best = backend.assign(X, P, "euclidean")
        _, top = backend.topk(X, P, 2, "euclidean")
    assert S.max() <= 0 and best.max() <= 0 and top.max() <= 0


@pytest.mark.parametrize("kernel", ["assign", "topk", "kth_similarity", "similarity"])
def test_numpy_kernels_keep_temporaries_under_working_memory(kernel):
    import tracemalloc

    rng = np.random.default_rng(5)
    X = rng.normal(size=(6000, 32)).astype(np.float32)
    P = rng.normal(size=(2000, 32)).astype(np.float32)
    working_memory = 4  # MiB; one full 6000 x 2000 float32 matrix is 46 MiB
    calls = {
        "assign": lambda: backend.assign(X, P),
        "topk": lambda: backend.topk(X, P, 10),
        "kth_similarity": lambda: backend.kth_similarity(X, P, 10),
        "similarity": lambda: backend.similarity(X, P),
    }
    output_mib = {"assign": 0.07, "topk": 0.7, "kth_similarity": 0.03, "similarity": X.shape[0] * P.shape[0] * 4 / 2**20}
    with config_context(working_memory=working_memory):
        tracemalloc.start()
        try:
            calls[kernel]()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak / 2**20 <= output_mib[kernel] + 1.1 * working_memory


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [1, 3, 11])
def test_kth_similarity_is_the_kth_sorted_value(data, backend_name, metric, k):
    X, P = data
    expected = -np.sort(-direct_similarity(X, P, metric), axis=1)[:, k - 1]
    with config_context(backend=backend_name, device="cpu", working_memory=0.001):
        kth = backend.kth_similarity(X, P, k, metric=metric)
    assert kth.shape == (X.shape[0],) and kth.dtype == np.float32
    scale = np.abs(expected).max()
    assert_allclose(kth, expected, rtol=1e-4, atol=1e-5 * scale)
    with pytest.raises(ValueError, match="k must be in"):
        backend.kth_similarity(X, P, P.shape[0] + 1)


# ---------------------------------------------------------------- cache-sized blocks


def test_distance_chunks_are_cache_sized_and_within_working_memory():
    from skproto.backend._dispatch import (
        CACHE_BLOCK_BYTES,
        MIN_BLOCK_ROWS,
        distance_chunks,
    )

    n, k, d, itemsize = 200_000, 1_000, 512, 4
    # Default working_memory (1 GiB) allows ~100k rows; the cache block caps it.
    chunks = distance_chunks(n, k, d, itemsize, 1024)
    sizes = {c.stop - c.start for c in chunks[:-1]}
    assert sizes == {CACHE_BLOCK_BYTES // (itemsize * k)}
    assert chunks[0].start == 0 and chunks[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
    # Many prototypes: never fewer than MIN_BLOCK_ROWS rows per block ...
    wide = distance_chunks(n, 100_000, d, itemsize, 1024)
    assert wide[0].stop - wide[0].start == MIN_BLOCK_ROWS
    # ... unless working_memory allows fewer (it always wins).
    row_bytes = itemsize * d + 2 * itemsize * 100_000
    tight = distance_chunks(n, 100_000, d, itemsize, 50)
    assert tight[0].stop - tight[0].start == 50 * 2**20 // row_bytes < MIN_BLOCK_ROWS
    # A GPU takes the largest chunk working_memory allows.
    gpu = distance_chunks(n, k, d, itemsize, 64, cache_blocked=False)
    assert gpu[0].stop - gpu[0].start == 64 * 2**20 // (itemsize * d + 2 * itemsize * k)


@pytest.mark.parametrize("library", BACKENDS)
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_assign_without_score_returns_the_same_index(library, metric):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((700, 16)).astype(np.float32)
    P = rng.standard_normal((40, 16)).astype(np.float32)
    with config_context(backend=library):
        index, score = backend.assign(X, P, metric)
        index_only = backend.assign(X, P, metric, return_score=False)
    assert isinstance(index_only, np.ndarray)
    np.testing.assert_array_equal(index_only, index)
    # The index is the argmax of the full similarity matrix, computed separately.
    S = backend.similarity(X, P, metric)
    np.testing.assert_array_equal(index, np.argmax(S, axis=1))
    np.testing.assert_allclose(score, S[np.arange(len(X)), index], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 1e-20, 1e-33, 1e-41, 1e-43, 1e20, 2e37])
def test_cosine_index_only_at_any_row_scale(scale):
    # predict's index-only path skips the row norms; rows so small or large that the
    # raw GEMM loses digits or overflows must still get the true argmax.
    rng = np.random.default_rng(7)
    P = rng.standard_normal((30, 24)).astype(np.float32)
    X = rng.standard_normal((300, 24)).astype(np.float32)
    Xs = (X.astype(np.float64) * scale).astype(np.float32)
    keep = np.abs(Xs).max(axis=1) > 0  # rows that underflowed to zero carry nothing
    Xu = Xs.astype(np.float64) / np.abs(Xs.astype(np.float64)).max(axis=1, keepdims=True).clip(1e-300)
    Pn = P / np.linalg.norm(P, axis=1, keepdims=True)
    S = Xu @ Pn.T
    expected = np.argmax(S, axis=1)
    top2 = np.sort(S, axis=1)[:, -2:]
    clear = keep & (top2[:, 1] - top2[:, 0] > 1e-4)  # no float32 near-ties
    index = backend.assign(Xs, P, "cosine", return_score=False)
    index_scored, _ = backend.assign(Xs, P, "cosine")
    assert clear.sum() > 150
    assert_array_equal(index[clear], expected[clear])
    assert_array_equal(index, index_scored)


@pytest.mark.parametrize("n_prototypes", [5, 64])  # below / above n_features = 16
@pytest.mark.parametrize("scale", [1.0, 2.0**70])
def test_euclidean_kernels_with_and_without_the_folded_shift(n_prototypes, scale):
    # More prototypes than features folds -||p||^2 into the GEMM; fewer shifts the
    # block. Both must give the brute-force squared distances, also when X and P are
    # rescaled by a power of two first (scale 2**70).
    rng = np.random.default_rng(11)
    X = rng.standard_normal((500, 16)) * scale
    P = rng.standard_normal((n_prototypes, 16)) * scale
    D = -((X[:, None, :] - P[None, :, :]) ** 2).sum(axis=2)
    assert_allclose(backend.similarity(X, P, "euclidean"), D, rtol=1e-9)
    index, score = backend.assign(X, P, "euclidean")
    assert_array_equal(index, np.argmax(D, axis=1))
    assert_allclose(score, D.max(axis=1), rtol=1e-9)
    idx, top = backend.topk(X, P, 3, "euclidean")
    assert_array_equal(idx, np.argsort(-D, axis=1, kind="stable")[:, :3])
    kth = backend.kth_similarity(X, P, 2, "euclidean")
    assert_allclose(kth, np.sort(D, axis=1)[:, -2], rtol=1e-9)
