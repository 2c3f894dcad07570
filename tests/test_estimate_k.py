"""K estimation (skproto.discovery._estimate_k): each method against what it should find."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from skproto import SemiSupervisedGMM
from skproto.discovery import _estimate_k


def make_gcd(seed, n_known=4, n_novel=6, n_features=16, n_per_class=80, std=0.04,
             fraction=0.5, novel_per_class=None):
    """Well-separated classes on the unit sphere; ``fraction`` of each known class
    labelled, every novel sample unlabelled."""
    rng = np.random.RandomState(seed)
    n_classes = n_known + n_novel
    centres = rng.randn(n_classes, n_features)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sizes = [n_per_class] * n_known + [novel_per_class or n_per_class] * n_novel
    X = np.vstack([c + std * rng.randn(n, n_features) for c, n in zip(centres, sizes)])
    y = np.repeat(np.arange(n_classes), sizes)
    labelled = (y < n_known) & (rng.rand(y.size) < fraction)
    return X.astype(np.float32), y, np.where(labelled, y, -1)


def gcd_cluster_acc(y_true, y_pred):
    """The official GCD ``cluster_acc``: Hungarian on ``w.max() - w``, transcribed."""
    size = max(y_pred.max(), y_true.max()) + 1
    w = np.zeros((size, size), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        w[p, t] += 1
    rows, cols = linear_sum_assignment(w.max() - w)
    return w[rows, cols].sum() / y_pred.size


# ------------------------------------------------------------------ labelled_accuracy


def test_labelled_accuracy_scores_are_the_gcd_hungarian_accuracy():
    X, _, y_train = make_gcd(0, n_known=3, n_novel=3, std=0.3)
    fixed = y_train.astype(np.int64)
    gmm = SemiSupervisedGMM(random_state=0)
    seen = {}

    def cluster(Z, free, k, seed):
        assert (free == -1).all()  # GCD's k-means ignores the labels
        seen[k] = gmm._cluster_labels(Z, free, k, seed)
        return seen[k]

    k_hat, scores = _estimate_k.labelled_accuracy(
        X, fixed, 3, cluster, max_components=12, seed=0
    )
    lab = fixed >= 0
    assert set(scores) == set(seen) and len(scores) >= 3
    for k, labels in seen.items():
        assert scores[k] == pytest.approx(gcd_cluster_acc(fixed[lab], labels[lab]))
    # Brent returns the best point it evaluated.
    assert scores[k_hat] == max(scores.values())
    assert 3 <= k_hat <= 12


def test_labelled_accuracy_brent_finds_the_peak_of_a_known_score():
    # A clustering whose labelled accuracy is known in closed form: k <= 8 clusters
    # fold the 8 labelled classes onto k (accuracy k / 8); each cluster beyond 8
    # takes 3 samples of one class (accuracy 1 - 3 (k - 8) / 400). Peak: K = 8.
    n_per = 50
    fixed = np.repeat(np.arange(8), n_per)
    X = np.zeros((fixed.size, 1))

    def cluster(Z, free, k, seed):
        if k <= 8:
            return fixed % k
        labels = fixed.copy()
        for j in range(k - 8):
            members = np.flatnonzero(fixed == j % 8)
            labels[members[3 * (j // 8): 3 * (j // 8) + 3]] = 8 + j
        return labels

    k_hat, scores = _estimate_k.labelled_accuracy(
        X, fixed, 2, cluster, max_components=40, seed=0
    )
    assert k_hat == 8
    assert scores[8] == 1.0


# ------------------------------------------------------------------ class_size


@pytest.mark.parametrize("f", [0.2, 0.5, 0.9])
def test_labelled_fraction_recovers_the_fraction_in_pure_cells(f):
    # 60 cells of 100 samples: 20 of known classes (each sample labelled with
    # probability f), 40 of novel classes (never labelled).
    rng = np.random.RandomState(0)
    cells = np.repeat(np.arange(60), 100)
    labelled = (cells < 20) & (rng.rand(cells.size) < f)
    got = _estimate_k.labelled_fraction(cells, labelled, np.random.RandomState(1))
    truth = labelled.sum() / (cells < 20).sum()
    assert got == pytest.approx(truth, abs=0.04)


def test_labelled_fraction_is_not_biased_by_choosing_the_cells():
    # Small pure cells: the most-labelled cells, measured on the samples that chose
    # them, would overestimate f; the held-out half does not.
    rng = np.random.RandomState(2)
    cells = np.repeat(np.arange(400), 12)
    known = cells < 200
    labelled = known & (rng.rand(cells.size) < 0.4)
    got = _estimate_k.labelled_fraction(
        cells, labelled, np.random.RandomState(3), top_fraction=0.1
    )
    size = np.bincount(cells)
    frac = np.bincount(cells[labelled], minlength=400) / size
    naive = np.sort(frac)[-20:].mean()  # the top cells, measured on themselves
    truth = labelled.sum() / known.sum()
    assert naive > truth + 0.15
    assert got == pytest.approx(truth, abs=0.05)


@pytest.mark.parametrize("seed, fraction, n_known, n_novel", [
    (0, 0.5, 4, 6), (1, 0.25, 4, 6), (2, 0.8, 6, 3), (3, 0.5, 3, 9),
])
def test_class_size_finds_the_number_of_classes(seed, fraction, n_known, n_novel):
    X, _, y_train = make_gcd(seed, n_known=n_known, n_novel=n_novel, fraction=fraction)
    gmm = SemiSupervisedGMM(k_estimation="class_size", random_state=seed).fit(X, y_train)
    assert abs(gmm.n_components_ - (n_known + n_novel)) <= 1


def test_class_size_counts_in_units_of_the_known_classes():
    # Novel classes half as large as the known ones: by design the estimate counts
    # them in units of a known class, so it finds about half of them.
    X, _, y_train = make_gcd(4, n_known=4, n_novel=8, n_per_class=120, novel_per_class=60)
    gmm = SemiSupervisedGMM(k_estimation="class_size", random_state=0).fit(X, y_train)
    assert abs(gmm.n_components_ - (4 + 4)) <= 1


# ------------------------------------------------------------------ routing


def test_max_components_caps_the_estimate():
    X, _, y_train = make_gcd(0)
    for method in ("class_size", "labelled_accuracy"):
        gmm = SemiSupervisedGMM(k_estimation=method, max_components=6, random_state=0)
        assert 4 <= gmm.fit(X, y_train).n_components_ <= 6


def test_no_labelled_sample_falls_back_to_split_merge():
    X, _, _ = make_gcd(0, n_known=0, n_novel=4)
    ref = SemiSupervisedGMM(k_estimation="split_merge", random_state=0).fit(X)
    for method in ("class_size", "labelled_accuracy"):
        got = SemiSupervisedGMM(k_estimation=method, random_state=0).fit(X)
        assert got.n_components_ == ref.n_components_
        np.testing.assert_array_equal(got.labels_, ref.labels_)


def test_all_labelled_discovers_nothing():
    X, y, _ = make_gcd(0, n_known=3, n_novel=0)
    for method in ("class_size", "labelled_accuracy", "split_merge"):
        assert SemiSupervisedGMM(k_estimation=method).fit(X, y).n_components_ == 3


def test_means_init_needs_split_merge_or_a_fixed_number():
    X, _, y_train = make_gcd(0, n_known=2, n_novel=2)
    init = np.vstack([X[y_train == 0].mean(0), X[y_train == 1].mean(0), X[:2]])
    with pytest.raises(ValueError, match="means_init fixes the number of components"):
        SemiSupervisedGMM(k_estimation="class_size", means_init=init).fit(X, y_train)
    gmm = SemiSupervisedGMM(k_estimation="split_merge", means_init=init, random_state=0)
    assert gmm.fit(X, y_train).n_components_ >= 2


def test_estimates_are_reproducible():
    X, _, y_train = make_gcd(5)
    for method in ("class_size", "labelled_accuracy"):
        a = SemiSupervisedGMM(k_estimation=method, random_state=7).fit(X, y_train)
        b = SemiSupervisedGMM(k_estimation=method, random_state=7).fit(X, y_train)
        assert a.n_components_ == b.n_components_
        np.testing.assert_array_equal(a.labels_, b.labels_)


def test_an_estimate_of_k_gives_the_fit_with_that_k():
    # The estimation leaves the random stream of the fit alone: same random_state,
    # same K -> the same mixture as n_components=K.
    # Overlapping classes, so that a different k-means++ draw gives a different fit.
    X, _, y_train = make_gcd(6, std=0.3)
    for method in ("class_size", "labelled_accuracy"):
        auto = SemiSupervisedGMM(k_estimation=method, random_state=3).fit(X, y_train)
        fixed = SemiSupervisedGMM(auto.n_components_, random_state=3).fit(X, y_train)
        np.testing.assert_array_equal(auto.labels_, fixed.labels_)
        np.testing.assert_array_equal(auto.means_, fixed.means_)
