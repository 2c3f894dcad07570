"""FeTrIL and fetril_pseudo_features against direct computations."""

import copy
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from skproto import FeTrIL
from skproto.incremental import fetril_pseudo_features


def _blobs(n_classes=6, n_per_class=40, n_features=10, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centers = 3 * rng.normal(size=(n_classes, n_features)) + 2.0
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centers[y] + spread * rng.normal(size=(len(y), n_features))
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


def _reference_pseudo(X, y, old_means, old_classes, pairing):
    """Direct transcription: brute-force nearest current mean, translate its samples."""
    cur = sorted(set(y.tolist()))
    cur_means = {c: X[y == c].mean(axis=0) for c in cur}
    Xs, ys, pairs = [], [], []
    for mu, c in zip(old_means, old_classes):
        if pairing == "euclidean":
            scores = [-np.sum((mu - cur_means[k]) ** 2) for k in cur]
        else:
            scores = [mu @ cur_means[k] / (np.linalg.norm(mu) * np.linalg.norm(cur_means[k]))
                      for k in cur]
        star = cur[int(np.argmax(scores))]
        pairs.append(star)
        Xs.append(X[y == star] - cur_means[star] + mu)
        ys += [c] * int(np.sum(y == star))
    return np.concatenate(Xs), np.array(ys), np.array(pairs)


@pytest.mark.parametrize("pairing", ["euclidean", "cosine"])
def test_pseudo_features_match_reference(pairing):
    X, y = _blobs(n_classes=9, seed=1)
    new = y >= 5
    old_classes = np.array([3, 0, 4, 1, 2])        # any order
    old_means = np.array([X[y == c].mean(0) for c in old_classes])
    Xp, yp, pairs = fetril_pseudo_features(X[new], y[new], old_means, old_classes,
                                           pairing=pairing, return_pairs=True)
    Xr, yr, pr = _reference_pseudo(X[new], y[new], old_means, old_classes, pairing)
    assert_array_equal(pairs, pr)
    assert_array_equal(yp, yr)
    # Same rows per past class (order within a class may differ): compare sorted rows.
    for c in old_classes:
        a = Xp[yp == c]
        b = Xr[yr == c]
        assert_allclose(a[np.lexsort(a.T)], b[np.lexsort(b.T)], rtol=1e-12, atol=1e-12)
        # The pseudo-features of c have exactly the stored mean of c.
        assert_allclose(a.mean(0), old_means[old_classes == c][0], rtol=1e-10, atol=1e-12)


def test_pairings_differ_where_they_should():
    # Current class means: a far one along the direction of the old mean, a near one
    # pointing elsewhere. Euclidean picks the near one, cosine the aligned one.
    X = np.array([[10.0, 0.0], [10.0, 0.2], [0.0, 1.0], [0.2, 1.0]])
    y = np.array([7, 7, 8, 8])
    old = np.array([[1.0, 0.0]])
    _, _, pe = fetril_pseudo_features(X, y, old, [0], pairing="euclidean", return_pairs=True)
    _, _, pc = fetril_pseudo_features(X, y, old, [0], pairing="cosine", return_pairs=True)
    assert pe.tolist() == [8] and pc.tolist() == [7]


def test_pseudo_features_bad_input():
    X, y = np.ones((4, 3)), np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="features"):
        fetril_pseudo_features(X, y, np.ones((2, 4)), [5, 6])
    with pytest.raises(ValueError, match="one label per row"):
        fetril_pseudo_features(X, y, np.ones((2, 3)), [5])
    with pytest.raises(ValueError, match="one label per row of X"):
        fetril_pseudo_features(X, y[:3], np.ones((2, 3)), [5, 6])
    with pytest.raises(ValueError):
        fetril_pseudo_features(X, y, np.ones((2, 3)), [5, 6], pairing="manhattan")
    Xp, yp = fetril_pseudo_features(X, y, np.ones((0, 3)), [])
    assert Xp.shape == (0, 3) and yp.shape == (0,)


def _l2(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("pairing", ["euclidean", "cosine"])
def test_steps_match_manual_training(pairing):
    X, y = _blobs(n_classes=7, seed=2)
    steps = [[0, 1, 2], [3, 4], [5, 6]]
    clf = FeTrIL(pairing=pairing)
    means = {}
    for t, step in enumerate(steps):
        m = np.isin(y, step)
        if t == 0:
            clf.fit(X[m], y[m])
            Xtr, ytr = X[m], y[m]
        else:
            clf.partial_fit(X[m], y[m])
            old = sorted(means)
            Xp, yp, _ = _reference_pseudo(X[m], y[m], np.array([means[c] for c in old]),
                                          np.array(old), pairing)
            Xtr, ytr = np.concatenate([X[m], Xp]), np.concatenate([y[m], yp])
        for c in step:
            means[c] = X[y == c].mean(0)
        ref = LinearSVC(C=1.0, dual=False, tol=1e-4).fit(_l2(Xtr), ytr)
        assert_array_equal(clf.classes_, np.arange(sum(map(len, steps[:t + 1]))))
        assert_allclose(clf.classifier_.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
        assert_array_equal(clf.predict(X), ref.predict(_l2(X)))
        assert_allclose(clf.decision_function(X), ref.decision_function(_l2(X)), rtol=1e-6,
                        atol=1e-8)
        assert_allclose(clf.class_means_, np.array([means[c] for c in sorted(means)]),
                        rtol=1e-10)
    assert sorted(clf.pairs_) == [0, 1, 2, 3, 4]
    assert set(clf.pairs_.values()) <= {5, 6}
    assert clf.score(X, y) > 0.9


def test_no_past_sample_is_stored():
    def fitted(n_per_class):
        X, y = _blobs(n_classes=6, n_per_class=n_per_class, seed=3)
        clf = FeTrIL().fit(X[y < 3], y[y < 3])
        return clf.partial_fit(X[y >= 3], y[y >= 3]), X, y

    small, _, _ = fitted(20)
    large, X, y = fitted(400)
    n_classes, n_features = 6, X.shape[1]
    for est in (large, large.classifier_):
        for name, value in vars(est).items():
            if isinstance(value, np.ndarray):
                # Nothing grows with the number of samples: at most one row per class.
                assert value.shape[0] <= n_classes, name
                assert value.size <= n_classes * n_features, name
    # The pickled model does not grow with the data (20 vs 400 samples per class).
    assert abs(len(pickle.dumps(large)) - len(pickle.dumps(small))) < 200


def test_first_partial_fit_is_fit_and_known_class_reappears():
    X, y = _blobs(seed=4)
    a = FeTrIL().partial_fit(X[y < 3], y[y < 3])
    b = FeTrIL().fit(X[y < 3], y[y < 3])
    assert_allclose(a.classifier_.coef_, b.classifier_.coef_)
    assert a.pairs_ == {}
    # Step with new classes 3, 4 and more samples of class 0: 0 is a current class.
    idx0 = np.flatnonzero(y == 0)[:10]
    m = np.isin(y, [3, 4])
    Xs = np.concatenate([X[m], X[idx0] + 1.0])
    ys = np.concatenate([y[m], y[idx0]])
    a.partial_fit(Xs, ys)
    assert sorted(a.pairs_) == [1, 2]
    n0 = np.sum(y[y < 3] == 0)
    expected0 = (X[y == 0].sum(0) + (X[idx0] + 1.0).sum(0)) / (n0 + 10)
    assert_allclose(a.class_means_[0], expected0, rtol=1e-10)
    assert a.class_counts_[0] == n0 + 10
    assert_array_equal(a.classes_, [0, 1, 2, 3, 4])


def test_class_means_order_invariant():
    X, y = _blobs(seed=5)
    a = FeTrIL().fit(X[y < 2], y[y < 2])
    b = FeTrIL().fit(X[y < 2], y[y < 2])
    for steps in (([2, 3], [4, 5]),):
        for s in steps:
            a.partial_fit(X[np.isin(y, s)], y[np.isin(y, s)])
        for s in steps[::-1]:
            b.partial_fit(X[np.isin(y, s)], y[np.isin(y, s)])
    assert_allclose(a.class_means_, b.class_means_)
    assert_array_equal(a.class_counts_, b.class_counts_)


def test_predict_proba_only_with_capable_classifier():
    X, y = _blobs(n_classes=4, seed=6)
    svm = FeTrIL().fit(X[y < 2], y[y < 2])
    assert not hasattr(svm, "predict_proba")
    assert not hasattr(FeTrIL(), "predict_proba")
    lr = FeTrIL(classifier=LogisticRegression(C=10.0)).fit(X[y < 2], y[y < 2])
    lr.partial_fit(X[y >= 2], y[y >= 2])
    proba = lr.predict_proba(X)
    assert proba.shape == (len(X), 4)
    assert_allclose(proba.sum(1), 1.0)
    assert_allclose(proba, lr.classifier_.predict_proba(_l2(X)))
    assert_allclose(np.exp(lr.predict_log_proba(X)), proba, rtol=1e-6)


def test_classifier_is_cloned_not_fitted_in_place():
    X, y = _blobs(n_classes=4, seed=7)
    base = LogisticRegression()
    clf = FeTrIL(classifier=base).fit(X[y < 2], y[y < 2])
    first = clf.classifier_
    clf.partial_fit(X[y >= 2], y[y >= 2])
    assert not hasattr(base, "coef_")
    assert clf.classifier_ is not first and first.coef_.shape[0] == 1


class _Exploding(LinearSVC):
    def fit(self, X, y):
        if len(np.unique(y)) > 3:
            raise RuntimeError("boom")
        return super().fit(X, y)


def _state(est):
    return {k: copy.deepcopy(v) for k, v in vars(est).items() if k.endswith("_")}


@pytest.mark.parametrize("case", ["n_features", "nan", "classifier"])
def test_failed_partial_fit_leaves_state_unchanged(case):
    X, y = _blobs(seed=8)
    clf = FeTrIL(classifier=_Exploding(dual=False)).fit(X[y < 3], y[y < 3])
    before = _state(clf)
    Xb, yb = X[y >= 3], y[y >= 3]
    if case == "n_features":
        Xb = Xb[:, :-1]
    elif case == "nan":
        Xb = Xb.copy()
        Xb[0, 0] = np.nan
    with pytest.raises(RuntimeError if case == "classifier" else ValueError):
        clf.partial_fit(Xb, yb)
    after = _state(clf)
    assert after.keys() == before.keys()
    assert_array_equal(after["classes_"], before["classes_"])
    assert_array_equal(after["class_means_"], before["class_means_"])
    assert_array_equal(after["classifier_"].coef_, before["classifier_"].coef_)


def test_bad_params():
    X, y = _blobs(n_classes=3, seed=9)
    with pytest.raises(ValueError):
        FeTrIL(pairing="manhattan").fit(X, y)
    with pytest.raises(ValueError):
        FeTrIL(classifier="svm").fit(X, y)


@pytest.mark.parametrize("pairing", ["euclidean", "cosine"])
def test_torch_backend_gives_same_pseudo_features(pairing):
    pytest.importorskip("torch")
    from skproto import config_context

    X, y = _blobs(n_classes=8, seed=11)
    X = X.astype(np.float32)
    new = y >= 4
    old_means = np.array([X[y == c].mean(0) for c in range(4)])
    ref = fetril_pseudo_features(X[new], y[new], old_means, np.arange(4), pairing=pairing,
                                 return_pairs=True)
    with config_context(backend="torch", device="cpu"):
        out = fetril_pseudo_features(X[new], y[new], old_means, np.arange(4),
                                     pairing=pairing, return_pairs=True)
    assert_array_equal(out[2], ref[2])
    assert_array_equal(out[1], ref[1])
    assert_allclose(out[0], ref[0], rtol=1e-5, atol=1e-5)
