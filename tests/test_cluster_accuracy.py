"""cluster_accuracy against a brute-force search over one-to-one matchings."""

import itertools

import numpy as np
import pytest

from skproto.metrics import cluster_accuracy


def _brute_force(y_true, y_pred, old_classes):
    """Best accuracy over every one-to-one cluster -> class map, and the (old, new)
    accuracies of every map that attains it."""
    classes = sorted(set(y_true))
    clusters = sorted(set(y_pred))
    # Pad the classes with "no class" so that every cluster gets a distinct target.
    targets = classes + [None] * len(clusters)
    is_old = np.isin(y_true, old_classes)
    best, pairs = -1, set()
    for perm in itertools.permutations(targets, len(clusters)):
        mapping = dict(zip(clusters, perm))
        correct = np.array([mapping[p] == t for p, t in zip(y_pred, y_true)])
        acc = correct.mean()
        pair = (
            round(correct[is_old].mean(), 12) if is_old.any() else None,
            round(correct[~is_old].mean(), 12) if (~is_old).any() else None,
        )
        if acc > best + 1e-12:
            best, pairs = acc, {pair}
        elif abs(acc - best) <= 1e-12:
            pairs.add(pair)
    return best, pairs


@pytest.mark.parametrize("seed", range(12))
def test_cluster_accuracy_equals_brute_force(seed):
    rng = np.random.RandomState(seed)
    n_classes, n_clusters = rng.randint(2, 5), rng.randint(2, 5)
    y_true = rng.randint(0, n_classes, 15)
    y_pred = rng.randint(0, n_clusters, 15) * 7 + 3  # arbitrary cluster ids
    old = list(range(n_classes // 2 + 1))
    best, pairs = _brute_force(y_true, y_pred, old)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(best)
    all_acc, old_acc, new_acc = cluster_accuracy(y_true, y_pred, old_classes=old)
    assert all_acc == pytest.approx(best)
    got = (round(old_acc, 12), None if np.isnan(new_acc) else round(new_acc, 12))
    assert got in pairs


def test_cluster_accuracy_string_labels_and_nan_groups():
    y_true = np.array(["cat", "cat", "dog", "dog"])
    y_pred = np.array(["b", "b", "a", "b"])
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(0.75)
    all_acc, old_acc, new_acc = cluster_accuracy(y_true, y_pred, old_classes=["cat", "dog"])
    assert (all_acc, old_acc) == (pytest.approx(0.75), pytest.approx(0.75))
    assert np.isnan(new_acc)


def test_cluster_accuracy_uses_one_global_matching():
    # The best matching for "New" alone would map cluster 1 to class 2, but the
    # global matching maps it to class 1 (larger), so New accuracy is 0.
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 1, 1]
    all_acc, old_acc, new_acc = cluster_accuracy(y_true, y_pred, old_classes=[0, 1])
    assert (all_acc, old_acc, new_acc) == (pytest.approx(5 / 6), 1.0, 0.0)


def test_cluster_accuracy_bad_input():
    with pytest.raises(ValueError):
        cluster_accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="at least one sample"):
        cluster_accuracy([], [])
