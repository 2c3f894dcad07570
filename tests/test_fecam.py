"""FeCAM against a direct transcription of the official FeCAM_vit_cifar100.py."""

import importlib.util

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skproto import config_context
from skproto.incremental import FeCAM, fecam_shrinkage
from skproto.statistics import ClassStatistics

torch_installed = importlib.util.find_spec("torch") is not None

rng = np.random.default_rng(0)
D = 6
CENTERS = rng.normal(size=(5, D)) + 3
SCALES = rng.uniform(0.2, 1.0, size=(5, D))
Y = np.repeat(np.arange(5), 60)
X = CENTERS[Y] + SCALES[Y] * rng.normal(size=(300, D)) @ rng.normal(size=(D, D))
TASKS = [np.isin(Y, [0, 1]), np.isin(Y, [2, 3]), np.isin(Y, [4])]


# ---- transcription of the official script (numpy, as it is written) ----
def shrink_cov(cov, alpha1=1, alpha2=0):
    diag_mean = np.mean(np.diagonal(cov))
    off_diag = np.copy(cov)
    np.fill_diagonal(off_diag, 0.0)
    mask = off_diag != 0.0
    off_diag_mean = (off_diag * mask).sum() / mask.sum()
    iden = np.eye(cov.shape[0])
    return cov + (alpha1 * diag_mean * iden) + (alpha2 * off_diag_mean * (1 - iden))


def normalize_cov(cov_mat):
    out = []
    for cov in cov_mat:
        sd = np.sqrt(np.diagonal(cov))
        out.append(cov / (np.matmul(np.expand_dims(sd, 1), np.expand_dims(sd, 0))))
    return out


def _mahalanobis(dist, cov):
    inv_covmat = np.linalg.pinv(cov)
    return np.diagonal(np.matmul(np.matmul(dist, inv_covmat), dist.T), 0)


def official_distances(X_train, y_train, X_test, tasks, alpha1=1, alpha2=0):
    """The script's loop: per task, per class mean / np.cov / shrink / normalise."""
    def normalize(A):
        return A / np.linalg.norm(A, axis=1, keepdims=True)

    class_mean_set, shrink_cov_mat = [], []
    for task in tasks:
        Xt, yt = normalize(X_train[task]), y_train[task]
        for i in np.unique(yt):
            class_mean_set.append(np.mean(Xt[yt == i], axis=0))
            shrink_cov_mat.append(shrink_cov(np.cov(Xt[yt == i].T), alpha1, alpha2))
    norm_cov_mat = normalize_cov(shrink_cov_mat)
    out = normalize(X_test)
    return np.array([_mahalanobis(out - class_mean_set[c], norm_cov_mat[c])
                     for c in range(len(class_mean_set))]).T


@pytest.mark.parametrize("alphas", [(1, 0), (1, 1), (0.5, 0.3)])
def test_incremental_distances_equal_the_official_script(alphas):
    clf = FeCAM(diag_shrinkage=alphas[0], offdiag_shrinkage=alphas[1])
    for i, task in enumerate(TASKS):
        clf.partial_fit(X[task], Y[task])
        expected = official_distances(X, Y, X, TASKS[: i + 1], *alphas)
        if expected.shape[1] == 2:  # scikit-learn's binary decision: s[:, 1] - s[:, 0]
            expected_decision = expected[:, 0] - expected[:, 1]
        else:
            expected_decision = -expected
        assert_allclose(clf.decision_function(X), expected_decision, rtol=1e-7, atol=1e-9)
        assert_array_equal(clf.predict(X), np.argmin(expected, axis=1))


def test_shrinkage_matches_the_official_function_and_skips_exact_zeros():
    S = np.cov(rng.normal(size=(D, 40)))
    S[0, 1] = S[1, 0] = 0.0  # an exact zero is left out of the off-diagonal mean
    for a1, a2 in [(1, 0), (1, 1), (2.5, -0.5)]:
        assert_allclose(fecam_shrinkage(S, a1, a2), shrink_cov(S, a1, a2), rtol=1e-13)
    stack = np.stack([S, 2 * S + np.eye(D)])
    assert_allclose(fecam_shrinkage(stack, 1, 1)[1], shrink_cov(stack[1], 1, 1))
    with pytest.raises(ValueError, match="square"):
        fecam_shrinkage(np.ones((2, 3)))


def test_tukey_transform_then_normalisation():
    Xp = np.abs(X)
    clf = FeCAM(tukey_beta=0.5).fit(Xp, Y)
    ref = FeCAM().fit(np.sqrt(Xp), Y)  # f(x) = l2norm(x ** 0.5)
    assert_allclose(clf.prototypes_, ref.prototypes_, rtol=1e-12)
    assert_allclose(clf.decision_function(Xp), ref.decision_function(np.sqrt(Xp)),
                    rtol=1e-10)
    with pytest.raises(ValueError, match="non-negative"):
        clf.predict(-Xp)
    with pytest.raises(ValueError, match="non-negative"):
        FeCAM(tukey_beta=0.5).fit(X - 10, Y)


def test_pooled_covariance_is_the_unbiased_within_class_one():
    clf = FeCAM("pooled", offdiag_shrinkage=1.0).fit(X, Y)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    means = np.array([Xn[Y == c].mean(0) for c in range(5)])
    within = sum((Xn[Y == c] - means[c]).T @ (Xn[Y == c] - means[c]) for c in range(5))
    cov = normalize_cov([shrink_cov(within / (len(X) - 5), 1, 1)])[0]
    expected = np.array([_mahalanobis(Xn - m, cov) for m in means]).T
    assert clf.whitening_.shape == (D, D)
    assert_allclose(-clf.decision_function(X), expected, rtol=1e-7, atol=1e-9)


def test_raw_features_without_correlation():
    clf = FeCAM(normalize=False, correlation=False, diag_shrinkage=0.1).fit(X, Y)
    for c in range(5):
        cov = shrink_cov(np.cov(X[Y == c].T), 0.1, 0)
        d = _mahalanobis(X - X[Y == c].mean(0), cov)
        assert_allclose(-clf.decision_function(X)[:, c], d, rtol=1e-7)


def test_any_split_equals_fit_and_the_cache_follows_changes():
    order = np.random.default_rng(1).permutation(len(X))
    full = FeCAM().fit(X, Y)
    inc = FeCAM()
    for part in np.array_split(order, 4):  # known classes get more samples
        inc.partial_fit(X[part], Y[part])
    assert_allclose(inc.whitening_, full.whitening_, rtol=1e-6, atol=1e-8)
    assert_array_equal(inc.predict(X), full.predict(X))
    # A new head parameter between calls recomputes every class, not only new ones.
    inc.set_params(diag_shrinkage=3.0)
    inc.partial_fit(X[Y == 4][:3], Y[Y == 4][:3])
    ref = FeCAM(diag_shrinkage=3.0).fit(np.vstack([X, X[Y == 4][:3]]),
                                        np.r_[Y, Y[Y == 4][:3]])
    assert_allclose(inc.whitening_, ref.whitening_, rtol=1e-6, atol=1e-8)


def test_from_statistics_of_transformed_features():
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    parts = [ClassStatistics.from_batch(Xn[p], Y[p], moments="full")
             for p in np.array_split(np.arange(300), 3)]
    clf = FeCAM.from_statistics(parts[0].merge(parts[1]).merge(parts[2]))
    assert_allclose(clf.decision_function(X), FeCAM().fit(X, Y).decision_function(X),
                    rtol=1e-8)
    with pytest.raises(ValueError, match="moments='full'"):
        FeCAM.from_statistics(ClassStatistics.from_batch(Xn, Y))


def test_single_sample_class_falls_back_to_euclidean():
    clf = FeCAM().fit(np.vstack([X, [[1.0] * D]]), np.r_[Y, 9])
    # Zero covariance, shrunk to zero, normalised to the identity.
    assert_allclose(clf.whitening_[-1] @ clf.whitening_[-1].T, np.eye(D), atol=1e-12)
    assert clf.predict([[1.0] * D])[0] == 9


@pytest.mark.skipif(not torch_installed, reason="needs torch")
def test_torch_backend_gives_the_same_distances():
    clf = FeCAM().fit(X.astype(np.float32), Y)
    ref = clf.decision_function(X.astype(np.float32))
    with config_context(backend="torch", device="cpu", working_memory=0.001):
        assert_allclose(clf.decision_function(X.astype(np.float32)), ref, rtol=1e-4,
                        atol=1e-3)
        assert_array_equal(clf.predict(X.astype(np.float32)),
                           FeCAM().fit(X, Y).predict(X))
