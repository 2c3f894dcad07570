"""skproto.statistics.ClassStatistics: exact, associative merges, against direct numpy."""

import functools
import importlib.util
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from skproto import config_context
from skproto.statistics import ClassStatistics

torch_installed = importlib.util.find_spec("torch") is not None
MOMENTS = [None, "diag", "full"]


def direct(X, y, ddof=0):
    """Classes, counts, means, class / pooled / total covariances by plain numpy."""
    X = np.asarray(X, dtype=np.float64)
    classes = np.unique(y)
    counts = np.array([(y == c).sum() for c in classes])
    means = np.array([X[y == c].mean(axis=0) for c in classes])
    class_cov = np.array(
        [(X[y == c] - m).T @ (X[y == c] - m) / (n - ddof) for c, m, n in zip(classes, means, counts)]
    )
    within = sum((X[y == c] - m).T @ (X[y == c] - m) for c, m in zip(classes, means))
    pooled = within / (len(X) - ddof * len(classes))
    total = np.cov(X.T, ddof=ddof).reshape(X.shape[1], X.shape[1])
    return classes, counts, means, class_cov, pooled, total


def _tree_merge(parts, rng):
    """Merge a list of statistics in a random binary-tree order."""
    parts = list(parts)
    while len(parts) > 1:
        i = rng.integers(len(parts) - 1)
        parts[i : i + 2] = [parts[i].merge(parts[i + 1])]
    return parts[0]


@st.composite
def split_data(draw):
    n_features = draw(st.integers(1, 5))
    n_classes = draw(st.integers(1, 4))
    n = draw(st.integers(n_classes, 30))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    offset = draw(st.sampled_from([0.0, 1e3]))
    X = offset + rng.normal(size=(n, n_features)) * rng.uniform(0.1, 10, size=n_features)
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])
    rng.shuffle(y)
    # Cut points: parts of any size >= 1, so some hold one sample or one class only.
    n_cuts = draw(st.integers(0, min(6, n - 1)))
    cuts = sorted(rng.choice(np.arange(1, n), size=n_cuts, replace=False)) if n_cuts else []
    return X, y, cuts, seed


@settings(max_examples=150, deadline=None)
@given(split_data(), st.sampled_from(MOMENTS))
def test_any_tree_of_merges_equals_one_batch(data, moments):
    X, y, cuts, seed = data
    whole = ClassStatistics.from_batch(X, y, moments=moments)
    parts = [
        ClassStatistics.from_batch(Xp, yp, moments=moments)
        for Xp, yp in zip(np.split(X, cuts), np.split(y, cuts))
    ]
    merged = _tree_merge(parts, np.random.default_rng(seed))
    classes, counts, means, class_cov, pooled, total = direct(X, y)
    assert_array_equal(merged.classes, classes)
    assert_array_equal(merged.counts, counts)
    assert merged.counts.dtype == np.int64
    scale = 1 + np.abs(X).max()
    assert_allclose(merged.means(), means, rtol=1e-10, atol=1e-12 * scale)
    assert_allclose(whole.means(), means, rtol=1e-10, atol=1e-12 * scale)
    if moments is None:
        return
    cov_scale = 1e-10 * (1 + np.abs(class_cov).max())
    for stats in (merged, whole):
        if moments == "full":
            assert_allclose(stats.covariances("class"), class_cov, rtol=1e-10, atol=cov_scale)
            assert_allclose(stats.covariances("pooled"), pooled, rtol=1e-10, atol=cov_scale)
            assert_allclose(stats.covariances("total"), total, rtol=1e-10, atol=cov_scale)
        else:
            diag = np.diagonal(class_cov, axis1=1, axis2=2)
            assert_allclose(stats.covariances("class"), diag, rtol=1e-10, atol=cov_scale)
            assert_allclose(stats.covariances("pooled"), np.diag(pooled), rtol=1e-10,
                            atol=cov_scale)
            assert_allclose(stats.covariances("total"), np.diag(total), rtol=1e-10,
                            atol=cov_scale)


@settings(max_examples=50, deadline=None)
@given(split_data())
def test_float32_input_merges_to_float64_accuracy(data):
    X, y, cuts, seed = data
    X32 = X.astype(np.float32)
    parts = [
        ClassStatistics.from_batch(Xp, yp, moments="full")
        for Xp, yp in zip(np.split(X32, cuts), np.split(y, cuts))
    ]
    merged = _tree_merge(parts, np.random.default_rng(seed))
    assert merged.dtype == np.float32 and merged.sums.dtype == np.float64
    classes, counts, means, class_cov, _, _ = direct(X32.astype(np.float64), y)
    assert_allclose(merged.means(), means, rtol=1e-5, atol=1e-6 * np.abs(X).max())
    assert_allclose(merged.covariances(), class_cov, rtol=1e-5,
                    atol=1e-6 * (1 + np.abs(class_cov).max()))


def test_scatter_stays_accurate_far_from_the_origin():
    # Raw sums of squares lose every digit here: sum x^2 - n mean^2 cancels at 1e8^2.
    rng = np.random.default_rng(0)
    X = 1e8 + rng.normal(size=(4000, 3))
    y = rng.integers(0, 2, 4000)
    parts = [ClassStatistics.from_batch(X[i:i + 500], y[i:i + 500], moments="full")
             for i in range(0, 4000, 500)]
    merged = functools.reduce(ClassStatistics.merge, parts)
    _, _, _, class_cov, _, _ = direct(X - 1e8, y)  # shifting does not change a covariance
    assert_allclose(merged.covariances(), class_cov, rtol=1e-6, atol=1e-8)
    raw = np.array([(X[y == c] ** 2).sum(0) / (y == c).sum() - X[y == c].mean(0) ** 2
                    for c in (0, 1)])
    assert np.abs(raw - np.diagonal(class_cov, axis1=1, axis2=2)).max() > 1  # the naive way


def test_merge_keeps_classes_of_one_side_bit_for_bit_and_sorts_new_ones():
    rng = np.random.default_rng(1)
    a = ClassStatistics.from_batch(rng.normal(size=(10, 2)), [1, 3] * 5, moments="diag")
    b = ClassStatistics.from_batch(rng.normal(size=(4, 2)), [0, 3, 5, 3], moments="diag")
    m = a.merge(b)
    assert_array_equal(m.classes, [0, 1, 3, 5])
    assert_array_equal(m.sums[1], a.sums[0]) and assert_array_equal(m.scatters[1], a.scatters[0])
    assert_array_equal(m.sums[[0, 3]], b.sums[[0, 2]])
    assert_array_equal(m.counts, [1, 5, 7, 1])
    # The operands are untouched.
    assert_array_equal(a.classes, [1, 3]) and a.counts.tolist() == [5, 5]


def test_string_labels_and_empty_statistics():
    X = np.arange(12.0).reshape(6, 2)
    y = np.array(["b", "a", "b", "c", "a", "a"])
    s = ClassStatistics.from_batch(X, y, moments="full")
    empty = ClassStatistics.empty(2, moments="full")
    assert empty.merge(s) == s and s.merge(empty) == s
    assert_array_equal(s.classes, ["a", "b", "c"])
    with pytest.raises(ValueError, match="mix strings and numbers"):
        s.merge(ClassStatistics.from_batch(X[:2], [0, 1], moments="full"))
    with pytest.raises(ValueError, match="mix strings and numbers"):
        ClassStatistics.from_batch(X[:2], np.array([0, "a"], dtype=object))


def test_sample_weight_equals_repeated_samples():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12, 3))
    y = rng.integers(0, 3, 12)
    w = rng.integers(0, 4, 12)
    w[:3] = [1, 2, 3]
    weighted = ClassStatistics.from_batch(X, y, moments="full", sample_weight=w)
    repeated = ClassStatistics.from_batch(np.repeat(X, w, 0), np.repeat(y, w), moments="full")
    assert_array_equal(weighted.classes, repeated.classes)
    assert_allclose(weighted.counts, repeated.counts)
    assert_allclose(weighted.means(), repeated.means(), rtol=1e-12)
    assert_allclose(weighted.covariances(), repeated.covariances(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="non-negative"):
        ClassStatistics.from_batch(X, y, sample_weight=-w)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ClassStatistics.from_batch([[np.nan]], [0]), ValueError, "NaN"),
        (lambda: ClassStatistics.from_batch([[1.0], [2.0]], [0]), ValueError, "must match"),
        (lambda: ClassStatistics.from_batch([1.0, 2.0], [0, 1]), ValueError, "2D array"),
        (lambda: ClassStatistics.from_batch([[1.0]], [0], moments="cov"), ValueError,
         "moments must be"),
        (lambda: ClassStatistics.from_batch(np.ones((2, 2)), [0, 1]).merge(
            ClassStatistics.from_batch(np.ones((2, 3)), [0, 1])), ValueError, "features"),
        (lambda: ClassStatistics.from_batch(np.ones((2, 2)), [0, 1]).merge(
            ClassStatistics.from_batch(np.ones((2, 2)), [0, 1], moments="diag")), ValueError,
         "moments"),
        (lambda: ClassStatistics.from_batch(np.ones((2, 2)), [0, 1]).covariances(),
         ValueError, "no second moments"),
        (lambda: ClassStatistics.from_batch(np.ones((2, 2)), [0, 1], moments="diag")
         .covariances(ddof=1), ValueError, "too few"),
        (lambda: ClassStatistics([1, 0], [1, 1], np.ones((2, 2))), ValueError, "sorted"),
        (lambda: ClassStatistics([0, 1], [1, 0], np.ones((2, 2))), ValueError, "positive"),
        (lambda: ClassStatistics.from_batch(np.ones((1, 1)), [0]).merge(3), TypeError,
         "ClassStatistics"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_pickles_as_plain_numpy_and_compares_by_value():
    s = ClassStatistics.from_batch(np.arange(6.0).reshape(3, 2), [0, 1, 1], moments="full")
    loaded = pickle.loads(pickle.dumps(s))
    assert loaded == s
    assert all(
        isinstance(v, (np.ndarray, np.dtype, str, type(None))) for v in vars(loaded).values()
    )
    other = ClassStatistics.from_batch(np.arange(6.0).reshape(3, 2) + 1, [0, 1, 1],
                                       moments="full")
    assert other != s


@pytest.mark.skipif(not torch_installed, reason="needs torch")
@pytest.mark.parametrize("moments", MOMENTS)
@pytest.mark.parametrize("weighted", [False, True])
def test_torch_backend_gives_the_same_statistics(moments, weighted):
    rng = np.random.default_rng(3)
    X = (5 + rng.normal(size=(300, 6))).astype(np.float32)
    y = rng.integers(0, 4, 300)
    w = rng.uniform(0, 2, 300) if weighted else None
    ref = ClassStatistics.from_batch(X, y, moments=moments, sample_weight=w)
    with config_context(backend="torch", device="cpu", working_memory=0.01):
        got = ClassStatistics.from_batch(X, y, moments=moments, sample_weight=w)
    assert_array_equal(got.classes, ref.classes)
    assert_allclose(got.counts, ref.counts, rtol=1e-12)
    assert_allclose(got.sums, ref.sums, rtol=1e-10)
    if moments is not None:
        assert_allclose(got.scatters, ref.scatters, rtol=1e-9, atol=1e-9)


def test_chunking_does_not_change_the_statistics():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(500, 7))
    y = rng.integers(0, 5, 500)
    ref = ClassStatistics.from_batch(X, y, moments="full")
    with config_context(working_memory=0.001):  # one row a chunk
        got = ClassStatistics.from_batch(X, y, moments="full")
    assert_allclose(got.sums, ref.sums, rtol=1e-12)
    assert_allclose(got.scatters, ref.scatters, rtol=1e-10, atol=1e-12)
