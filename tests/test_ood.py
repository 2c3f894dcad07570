"""MixturePrototypeOODDetector and its backend kernels (sinkhorn, balanced_assignment,
whitened_sq_distance), checked against direct transcriptions of the official PALM code."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

import skproto
from skproto import MixturePrototypeOODDetector, backend
from skproto.ood._mixture_prototype import _init_prototypes

torch = pytest.importorskip("torch")

BACKENDS = ["numpy", "torch"]


def _unit(A):
    return A / np.linalg.norm(A, axis=-1, keepdims=True)


# --- direct transcriptions of jeff024/PALM util/loss_functions.py ----------------


def palm_sinkhorn(out, epsilon, n_iter):
    """PALM.sinkhorn, line by line in numpy (Q is K x B as there)."""
    Q = np.exp(out / epsilon).T
    B = Q.shape[1]
    K = Q.shape[0]
    Q = Q / Q.sum()
    for _ in range(n_iter):
        Q = Q / Q.sum(axis=1, keepdims=True)  # F.normalize(Q, dim=1, p=1)
        Q = Q / K
        Q = Q / Q.sum(axis=0, keepdims=True)  # F.normalize(Q, dim=0, p=1)
        Q = Q / B
    Q = Q * B
    return Q.T


def _f_normalize_l1(A, axis):
    return A / np.maximum(np.abs(A).sum(axis=axis, keepdims=True), 1e-12)


def palm_update(features, labels, protos, proto_labels, epsilon, n_iter, k, proto_m):
    """The prototype update of PALM.mle_loss (one view), line by line in numpy."""
    mask = (labels[:, None] == proto_labels[None, :]).astype(float)
    Q = palm_sinkhorn(features @ protos.T, epsilon, n_iter)
    update_mask = mask * Q
    if k > 0:
        topk_idx = np.argsort(-update_mask, axis=1, kind="stable")[:, :k]
        topk_mask = np.zeros_like(update_mask)
        np.put_along_axis(topk_mask, topk_idx, 1, axis=1)
        update_mask = _f_normalize_l1(_f_normalize_l1(topk_mask * update_mask, 1), 0)
    else:
        update_mask = _f_normalize_l1(_f_normalize_l1(update_mask, 1), 0)
    update_features = update_mask.T @ features
    new = proto_m * protos + (1 - proto_m) * update_features
    return update_mask, update_features, _unit(new)


def palm_maha_score(ftrain, X, center):
    """PALM util/evaluations/mahalanobis.py (SSD+), on normalised features."""
    mean_feat = ftrain.mean(0)
    std_feat = ftrain.std(0)
    prep = lambda x: (x - mean_feat) / (std_feat + 1e-10)  # noqa: E731
    ftrain_ssd = prep(ftrain)
    inv_sigma = np.linalg.pinv(np.cov(ftrain_ssd.T, bias=True))
    c = mean_feat if center == "palm" else ftrain_ssd.mean(0)
    z = prep(X) - c
    return -np.sum(z * (inv_sigma.dot(z.T)).T, axis=-1)


# --- data ------------------------------------------------------------------------


def _modes_data(rng, n_modes_per_class=3, n_classes=2, n_per_mode=40, d=12, noise=0.05):
    """Each class is a union of separated modes on the sphere (orthogonal directions)."""
    centers = np.eye(d)[: n_modes_per_class * n_classes]
    X, y, mode = [], [], []
    for j, c in enumerate(centers):
        X.append(c + noise * rng.randn(n_per_mode, d))
        y.append(np.full(n_per_mode, j // n_modes_per_class))
        mode.append(np.full(n_per_mode, j))
    return np.concatenate(X), np.concatenate(y), np.concatenate(mode), centers


# Small data: several EMA steps per pass, and a momentum that gets there quickly.
FAST = dict(momentum=0.9, batch_size=32)


@pytest.fixture
def rng():
    return np.random.RandomState(0)


# --- kernels ------------------------------------------------------------------------


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("n_iter", [0, 1, 3, 10])
@pytest.mark.parametrize("epsilon", [0.05, 0.5])
def test_sinkhorn_matches_palm_transcription(rng, backend_name, n_iter, epsilon):
    S = _unit(rng.randn(50, 8)) @ _unit(rng.randn(7, 8)).T
    expected = palm_sinkhorn(S, epsilon, n_iter)
    with skproto.config_context(backend=backend_name, device="cpu"):
        Q = backend.sinkhorn(S, epsilon=epsilon, n_iter=n_iter)
    assert Q.dtype == np.float64
    assert_allclose(Q, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_sinkhorn_small_epsilon_is_finite_and_balanced(rng, backend_name):
    # exp(S / 0.001) overflows float32 and float64: the log-domain kernel does not.
    S = (_unit(rng.randn(64, 8)) @ _unit(rng.randn(4, 8)).T).astype(np.float32)
    with skproto.config_context(backend=backend_name, device="cpu"):
        Q = backend.sinkhorn(S, epsilon=0.001, n_iter=200)
    assert Q.dtype == np.float32
    assert np.all(np.isfinite(Q))
    assert_allclose(Q.sum(axis=1), 1, rtol=1e-4)
    # float32 in the log domain loses nothing that matters against float64
    Q64 = backend.sinkhorn(S.astype(np.float64), epsilon=0.001, n_iter=200)
    assert_allclose(Q, Q64, rtol=1e-3, atol=1e-6)


def test_sinkhorn_numpy_equals_torch_float32(rng):
    S = (_unit(rng.randn(300, 16)) @ _unit(rng.randn(30, 16)).T).astype(np.float32)
    Q_np = backend.sinkhorn(S, 0.05, 3)
    with skproto.config_context(backend="torch", device="cpu"):
        Q_t = backend.sinkhorn(S, 0.05, 3)
    assert Q_np.dtype == Q_t.dtype == np.float32
    assert_allclose(Q_np, Q_t, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("top_k", [None, 1, 2])
@pytest.mark.parametrize("grouped", [True, False])
def test_balanced_assignment_matches_palm_update(rng, backend_name, top_k, grouped):
    n_classes, M, d = 3, 3, 10
    features = _unit(rng.randn(40, d))
    labels = rng.randint(n_classes, size=40)
    protos = _unit(rng.randn(n_classes * M, d))
    proto_labels = np.repeat(np.arange(n_classes), M)
    if not grouped:
        labels = np.zeros(40, dtype=int)
        proto_labels = np.zeros(n_classes * M, dtype=int)
    W_exp, U_exp, _ = palm_update(
        features, labels, protos, proto_labels, 0.05, 3, top_k or 0, 0.9
    )
    with skproto.config_context(backend=backend_name, device="cpu"):
        W, U = backend.balanced_assignment(
            features,
            protos,
            epsilon=0.05,
            n_iter=3,
            top_k=top_k,
            x_groups=labels if grouped else None,
            p_groups=proto_labels if grouped else None,
        )
    assert_allclose(W, W_exp, rtol=1e-9, atol=1e-14)
    assert_allclose(U, U_exp, rtol=1e-9, atol=1e-14)
    # A sample only feeds prototypes of its own class, at most top_k of them.
    if grouped:
        assert np.all(W[labels[:, None] != proto_labels[None, :]] == 0)
    if top_k is not None:
        assert np.all((W > 0).sum(axis=1) <= top_k)


def test_balanced_assignment_numpy_equals_torch_float32(rng):
    X = _unit(rng.randn(256, 32)).astype(np.float32)
    P = _unit(rng.randn(24, 32)).astype(np.float32)
    g = rng.randint(4, size=256)
    pg = np.repeat(np.arange(4), 6)
    W_np, U_np = backend.balanced_assignment(X, P, 0.05, 3, 5, g, pg)
    with skproto.config_context(backend="torch", device="cpu"):
        W_t, U_t = backend.balanced_assignment(X, P, 0.05, 3, 5, g, pg)
    assert W_np.dtype == U_np.dtype == W_t.dtype == np.float32
    assert_allclose(W_np, W_t, rtol=1e-4, atol=1e-7)
    assert_allclose(U_np, U_t, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_whitened_sq_distance_direct(rng, backend_name):
    X = rng.randn(500, 6) * 3
    center = rng.randn(6)
    W = rng.randn(6, 4)
    Z = X / np.linalg.norm(X, axis=1, keepdims=True) - center
    expected = np.einsum("ij,jk,lk,il->i", Z, W, W, Z)
    # A small working memory forces several chunks.
    with skproto.config_context(backend=backend_name, device="cpu", working_memory=0.01):
        d2 = backend.whitened_sq_distance(X, center, W)
    assert_allclose(d2, expected, rtol=1e-10)


def test_kernel_input_errors(rng):
    with pytest.raises(ValueError, match="epsilon"):
        backend.sinkhorn(rng.randn(3, 2), epsilon=0)
    with pytest.raises(ValueError, match="finite"):
        backend.sinkhorn([[np.nan, 1.0]])
    with pytest.raises(ValueError, match="together"):
        backend.balanced_assignment(rng.randn(3, 2), rng.randn(2, 2), x_groups=[0, 0, 1])
    with pytest.raises(ValueError, match="one entry per row"):
        backend.balanced_assignment(
            rng.randn(3, 2), rng.randn(2, 2), x_groups=[0, 1], p_groups=[0, 1]
        )
    with pytest.raises(ValueError, match="center"):
        backend.whitened_sq_distance(rng.randn(3, 2), [0.0], np.eye(2))


# --- the estimator -----------------------------------------------------------------


def test_one_fit_step_is_palm_update(rng):
    """One pass, one batch: exactly PALM's update from the same initial prototypes."""
    X, y, _, _ = _modes_data(rng)
    M, m = 3, 0.9
    det = MixturePrototypeOODDetector(
        n_prototypes=M, top_k=2, momentum=m, max_iter=1, batch_size=len(X), random_state=0
    ).fit(X, y)
    Xn = _unit(X)
    P0 = _init_prototypes(Xn, y, 2, M, "k-means++", np.random.RandomState(0))
    _, _, P1 = palm_update(Xn, y, P0, np.repeat([0, 1], M), 0.05, 3, 2, m)
    assert_allclose(det.prototypes_, P1, rtol=1e-10, atol=1e-12)
    assert det.n_iter_ == 1
    assert_array_equal(det.prototype_classes_, np.repeat([0, 1], M))


def test_each_mode_gets_a_prototype(rng):
    X, y, mode, centers = _modes_data(rng, n_modes_per_class=3, noise=0.05)
    det = MixturePrototypeOODDetector(n_prototypes=3, random_state=0, **FAST)
    det.fit(X, y)
    P = det.prototypes_
    assert P.shape == (6, X.shape[1])
    assert_allclose(np.linalg.norm(P, axis=1), 1, rtol=1e-6)
    for j, c in enumerate(centers):
        own = det.prototype_classes_ == j // 3
        # the closest prototype of the mode's class sits on the mode's centre
        assert (P[own] @ c).max() > 0.99
    # and the modes of a class are covered by distinct prototypes
    for cls in (0, 1):
        nearest = P[det.prototype_classes_ == cls] @ centers[3 * cls : 3 * cls + 3].T
        assert sorted(nearest.argmax(axis=0)) == [0, 1, 2]
    # the nearest prototype's class is the sample's class
    assert_array_equal(det.predict_class(X), y)


def test_one_prototype_per_class_misses_modes(rng):
    """Control for the test above: one prototype sits between the modes, on none."""
    X, y, _, centers = _modes_data(rng, n_modes_per_class=3, noise=0.05)
    det = MixturePrototypeOODDetector(n_prototypes=1, random_state=0, **FAST).fit(X, y)
    assert (det.prototypes_ @ centers.T).max() < 0.7


@pytest.mark.parametrize("ood_score", ["prototype", "mahalanobis", "knn"])
def test_far_outliers_are_separated(rng, ood_score):
    X, y, _, centers = _modes_data(rng, d=12, n_per_mode=60)
    X_test, _, _, _ = _modes_data(np.random.RandomState(1), d=12, n_per_mode=20)
    # Outliers: directions orthogonal to every training mode.
    X_out = np.eye(12)[6:][rng.randint(6, size=100)] + 0.05 * rng.randn(100, 12)
    det = MixturePrototypeOODDetector(
        n_prototypes=3, ood_score=ood_score, n_neighbors=10, random_state=0, **FAST
    ).fit(X, y)
    s_in, s_out = det.score_samples(X_test), det.score_samples(X_out)
    auroc = roc_auc_score(np.r_[np.ones(len(s_in)), np.zeros(len(s_out))], np.r_[s_in, s_out])
    assert auroc > 0.999
    assert (det.predict(X_out) == -1).all()
    assert (det.predict(X_test) == 1).mean() > 0.85


def test_prototype_and_knn_scores_exact_form(rng):
    X, y, _, _ = _modes_data(rng)
    X_new = rng.randn(30, X.shape[1])
    det = MixturePrototypeOODDetector(n_prototypes=2, random_state=0).fit(X, y)
    expected = (_unit(X_new) @ _unit(det.prototypes_).T).max(axis=1)
    assert_allclose(det.score_samples(X_new), expected, rtol=1e-12)

    knn = MixturePrototypeOODDetector(ood_score="knn", n_neighbors=7).fit(X, y)
    sims = np.sort(_unit(X_new) @ _unit(X).T, axis=1)[:, ::-1]
    assert_allclose(knn.score_samples(X_new), sims[:, 6], rtol=1e-12)
    assert_allclose(knn.train_features_, _unit(X))
    # n_neighbors above the training size uses all training samples
    big = MixturePrototypeOODDetector(ood_score="knn", n_neighbors=10_000).fit(X[:20])
    assert big.n_neighbors_ == 20


@pytest.mark.parametrize("center", ["mean", "palm"])
def test_mahalanobis_matches_palm_release(rng, center):
    X = rng.rand(300, 8) + np.linspace(0, 2, 8)
    X_new = np.r_[rng.rand(40, 8) + np.linspace(0, 2, 8), rng.rand(40, 8)]
    det = MixturePrototypeOODDetector(
        n_prototypes=2, max_iter=2, ood_score="mahalanobis", mahalanobis_center=center
    ).fit(X)
    expected = palm_maha_score(_unit(X), _unit(X_new), center)
    assert_allclose(det.score_samples(X_new), expected, rtol=1e-8)


@pytest.mark.parametrize("ood_score", ["prototype", "mahalanobis", "knn"])
def test_pickle_round_trip_scores_exactly(rng, ood_score):
    X, y, _, _ = _modes_data(rng)
    X = X.astype(np.float32)
    det = MixturePrototypeOODDetector(n_prototypes=2, ood_score=ood_score, n_neighbors=5)
    det.fit(X, y)
    clone = pickle.loads(pickle.dumps(det))
    X_new = rng.randn(25, X.shape[1]).astype(np.float32)
    scores = det.score_samples(X_new)
    assert scores.dtype == np.float32
    assert_array_equal(clone.score_samples(X_new), scores)
    assert_array_equal(clone.predict(X_new), det.predict(X_new))
    assert clone.offset_ == det.offset_


@pytest.mark.parametrize("ood_score", ["prototype", "mahalanobis", "knn"])
def test_torch_backend_gives_the_same_fit_and_scores(rng, ood_score):
    X, y, _, _ = _modes_data(rng, n_per_mode=50)
    X_new = rng.randn(40, X.shape[1])
    params = dict(n_prototypes=3, batch_size=48, max_iter=20, ood_score=ood_score,
                  n_neighbors=5, random_state=0)
    det_np = MixturePrototypeOODDetector(**params).fit(X, y)
    with skproto.config_context(backend="torch", device="cpu"):
        det_t = MixturePrototypeOODDetector(**params).fit(X, y)
        scores_t = det_t.score_samples(X_new)
        classes_t = det_t.predict_class(X_new)
    assert det_t.n_iter_ == det_np.n_iter_
    assert_allclose(det_t.prototypes_, det_np.prototypes_, rtol=1e-9, atol=1e-12)
    assert_allclose(scores_t, det_np.score_samples(X_new), rtol=1e-9, atol=1e-12)
    assert_array_equal(classes_t, det_np.predict_class(X_new))
    assert det_t.offset_ == pytest.approx(det_np.offset_, rel=1e-9)


@pytest.mark.parametrize("contamination", ["auto", 0.1, 0.25])
def test_contamination_sets_offset(rng, contamination):
    X = rng.randn(200, 5) + 3
    det = MixturePrototypeOODDetector(n_prototypes=2, contamination=contamination)
    det.fit(X)
    fraction = 0.05 if contamination == "auto" else contamination
    scores = det.score_samples(X)
    assert det.offset_ == pytest.approx(np.percentile(scores, 100 * fraction))
    assert (det.predict(X) == -1).mean() == pytest.approx(fraction, abs=1 / 200)
    assert_allclose(det.decision_function(X), scores - det.offset_)
    assert_array_equal(det.fit_predict(X), det.predict(X))


def test_fit_predict_uses_labels(rng):
    X, y, _, _ = _modes_data(rng)
    det = MixturePrototypeOODDetector(n_prototypes=2, random_state=0, **FAST)
    pred = det.fit_predict(X, y)
    assert det.prototypes_.shape == (4, X.shape[1])  # supervised: 2 per class
    assert_array_equal(pred, det.fit(X, y).predict(X))


def test_unsupervised_fit(rng):
    X, _, mode, centers = _modes_data(rng, n_modes_per_class=2, n_classes=2)
    det = MixturePrototypeOODDetector(n_prototypes=4, top_k=None, random_state=0, **FAST)
    det.fit(X)
    assert det.prototypes_.shape == (4, X.shape[1])
    assert det.classes_ is None and det.prototype_classes_ is None
    # the single pool still finds the four modes
    assert ((det.prototypes_ @ centers.T).max(axis=0) > 0.99).all()
    assert len(np.unique(det.predict_prototype(X))) == 4
    with pytest.raises(ValueError, match="without labels"):
        det.predict_class(X)


def test_top_k_above_n_prototypes_is_no_pruning(rng):
    X, y, _, _ = _modes_data(rng)
    a = MixturePrototypeOODDetector(n_prototypes=3, top_k=10, random_state=0).fit(X, y)
    b = MixturePrototypeOODDetector(n_prototypes=3, top_k=None, random_state=0).fit(X, y)
    assert_array_equal(a.prototypes_, b.prototypes_)


def test_class_smaller_than_n_prototypes(rng):
    X = np.r_[rng.randn(30, 4) + [5, 0, 0, 0], rng.randn(2, 4) + [0, 5, 0, 0]]
    y = np.r_[np.zeros(30, int), np.ones(2, int)]
    det = MixturePrototypeOODDetector(n_prototypes=4, random_state=0).fit(X, y)
    assert np.all(np.isfinite(det.prototypes_))
    assert_array_equal(det.predict_class([[0, 5, 0, 0], [5, 0, 0, 0]]), [1, 0])


def test_string_labels_and_uniform_init(rng):
    X, y, _, _ = _modes_data(rng)
    labels = np.array(["cat", "dog"])[y]
    det = MixturePrototypeOODDetector(n_prototypes=3, init="uniform", random_state=0)
    det.fit(X, labels)
    assert_array_equal(det.classes_, ["cat", "dog"])
    assert (det.predict_class(X) == labels).mean() > 0.95


def test_failed_fit_leaves_state_untouched(rng):
    X, y, _, _ = _modes_data(rng)
    det = MixturePrototypeOODDetector(n_prototypes=2, random_state=0).fit(X, y)
    before = {k: v for k, v in vars(det).items()}
    X_bad = X.copy()
    X_bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        det.fit(X_bad, y)
    assert set(vars(det)) == set(before)
    for key, value in before.items():
        assert np.all(getattr(det, key) == value) if value is not None else True
    assert_array_equal(det.prototypes_, before["prototypes_"])


def test_input_errors(rng):
    X, y, _, _ = _modes_data(rng)
    det = MixturePrototypeOODDetector(n_prototypes=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        det.score_samples(X[:, :5])
    with pytest.raises(ValueError, match="at least 2 samples"):
        MixturePrototypeOODDetector(ood_score="knn").fit(X[:1])
    with pytest.raises(ValueError, match="ood_score"):
        MixturePrototypeOODDetector(ood_score="energy").fit(X, y)
    with pytest.raises(ValueError, match="contamination"):
        MixturePrototypeOODDetector(contamination=0.7).fit(X, y)


# scikit-learn's checks for the two scores that test_common.py does not build.
@parametrize_with_checks(
    [
        MixturePrototypeOODDetector(max_iter=5, ood_score="knn", n_neighbors=5),
        MixturePrototypeOODDetector(max_iter=5, ood_score="mahalanobis"),
    ]
)
def test_sklearn_checks_other_scores(estimator, check):
    check(estimator)


# --- the whole fit as one backend kernel (balanced_prototypes) ---------------------


def _lowbias32(x):
    """lowbias32 on Python integers (arbitrary precision, then mod 2**32)."""
    mask = 2**32 - 1
    x ^= x >> 16
    x = (x * 0x7FEB352D) & mask
    x ^= x >> 15
    x = (x * 0x846CA68B) & mask
    return x ^ (x >> 16)


def _reference_orders(n, seed, max_iter):
    """The documented shuffle, independently: sort the rows by their keyed hash."""
    keys = np.random.RandomState(seed).randint(0, 2**32, size=(max_iter, 2), dtype=np.int64)
    return [
        sorted(range(n), key=lambda i: _lowbias32(_lowbias32(i ^ int(a)) ^ int(b)))
        for a, b in keys
    ]


def _reference_fit(X, P, labels, proto_labels, seed, max_iter, batch_size, top_k, m,
                   n_iter=3, epsilon=0.05):
    """PALM's update (the line-by-line transcription above) over the documented batches."""
    for order in _reference_orders(len(X), seed, max_iter):
        for start in range(0, len(X), batch_size):
            idx = np.array(order[start : start + batch_size])
            _, _, P = palm_update(X[idx], labels[idx], P, proto_labels, epsilon, n_iter,
                                  top_k, m)
    return P


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("grouped, top_k, n_iter, momentum", [
    (True, 2, 3, 0.8), (True, 0, 1, 0.8), (False, 3, 3, 0.8), (False, 0, 0, 0.8),
    (True, 2, 3, 0.0),
])
def test_balanced_prototypes_is_palm_over_the_documented_batches(
    rng, backend_name, grouped, top_k, n_iter, momentum
):
    n, d, n_groups, M = 150, 8, 3 if grouped else 1, 4
    X = _unit(rng.randn(n, d))
    labels = rng.randint(n_groups, size=n)
    P0 = _unit(rng.randn(n_groups * M, d))
    proto_labels = np.repeat(np.arange(n_groups), M)
    expected = _reference_fit(X, P0, labels, proto_labels, seed=7, max_iter=3,
                              batch_size=40, top_k=top_k, m=momentum, n_iter=n_iter)
    with skproto.config_context(backend=backend_name, device="cpu"):
        P, n_passes, _, converged = backend.balanced_prototypes(
            X, P0, labels if grouped else None, n_groups, n_iter=n_iter,
            top_k=top_k or None, momentum=momentum, batch_size=40, max_iter=3, tol=0,
            seed=7,
        )
    assert (n_passes, converged) == (3, False)
    assert P.dtype == np.float64
    assert_allclose(P, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("grouped", [True, False])
def test_balanced_prototypes_torch_equals_numpy(rng, dtype, grouped):
    X = _unit(rng.randn(1000, 24)).astype(dtype)
    n_groups = 5 if grouped else 1
    g = rng.randint(n_groups, size=1000) if grouped else None
    P0 = X[rng.choice(1000, n_groups * 6, replace=False)]
    kw = dict(top_k=5, momentum=0.9, batch_size=128, max_iter=8, tol=0, seed=11)
    P_np, n_np, d_np, _ = backend.balanced_prototypes(X, P0, g, n_groups, **kw)
    with skproto.config_context(backend="torch", device="cpu"):
        P_t, n_t, d_t, _ = backend.balanced_prototypes(X, P0, g, n_groups, **kw)
    assert P_np.dtype == P_t.dtype == dtype and n_np == n_t == 8
    tight = dtype == np.float64
    assert_allclose(P_t, P_np, rtol=1e-10 if tight else 1e-4, atol=1e-12 if tight else 1e-5)
    assert d_t == pytest.approx(d_np, rel=1e-8 if tight else 1e-3)


def test_pass_order_is_the_same_permutation_on_numpy_and_torch():
    from skproto.backend._numpy import transport as np_transport
    from skproto.backend._torch import transport as torch_transport

    n, batch, n_groups = 1003, 100, 7
    codes = np.random.RandomState(0).randint(n_groups, size=n)
    keys = (123456789, 4000000000)
    order = np_transport._pass_order(np.arange(n), keys, batch, codes, n_groups)
    order_t = torch_transport._pass_order(torch.arange(n), keys, batch,
                                          torch.from_numpy(codes), n_groups)
    assert_array_equal(order_t.numpy(), order)
    # A permutation whose batches are those of the documented shuffle, each sorted by group.
    plain = sorted(range(n), key=lambda i: _lowbias32(_lowbias32(i ^ keys[0]) ^ keys[1]))
    assert_array_equal(np.sort(order), np.arange(n))
    for start in range(0, n, batch):
        assert set(order[start : start + batch]) == set(plain[start : start + batch])
        assert np.all(np.diff(codes[order[start : start + batch]]) >= 0)
    # and every pass shuffles anew
    other = np_transport._pass_order(np.arange(n), (1, 2), batch, None, 1)
    assert not np.array_equal(other, np.array(plain))


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_drift_is_the_documented_statistic(rng, backend_name):
    """The returned drift, recomputed from the prototypes after t - 2, t - 1 and t passes."""
    X = _unit(rng.randn(300, 6))
    g = rng.randint(2, size=300)
    P0 = _unit(rng.randn(6, 6))
    kw = dict(top_k=2, momentum=0.7, batch_size=50, tol=0, seed=3)
    with skproto.config_context(backend=backend_name, device="cpu"):
        runs = [backend.balanced_prototypes(X, P0, g, 2, max_iter=t, **kw) for t in (1, 2, 3)]
    P1, P2, P3 = (r[0] for r in runs)
    rate = 1 - 0.7**6
    d1 = P1 - P0
    assert runs[0][2] == pytest.approx(np.sqrt((d1 * d1).sum() / 6) / rate, rel=1e-9)
    d2, d3 = P2 - P1, P3 - P2
    assert runs[2][2] == pytest.approx(np.sqrt(max((d3 * d2).sum() / 6, 0)) / rate, rel=1e-9)
    # tol: the fit stops at the first pass whose drift is at most tol
    with skproto.config_context(backend=backend_name, device="cpu"):
        P, n_passes, drift, converged = backend.balanced_prototypes(
            X, P0, g, 2, max_iter=3, **{**kw, "tol": runs[0][2] * 1.001})
    assert (n_passes, converged) == (1, True)
    assert_array_equal(P, P1)


def test_drift_ignores_the_mini_batch_noise_floor(rng):
    """Where the largest raw movement stays at the noise floor, the drift falls below tol.

    Well-separated modes and momentum 0.5: the prototypes reach the modes within a few
    passes and then only jitter with the batches. The old rule (largest movement over
    the pass / rate <= tol) never stops; the drift does.
    """
    X, y, _, centers = _modes_data(rng, n_per_mode=100, noise=0.2)
    Xn = _unit(X)
    P0 = _init_prototypes(Xn, y, 2, 3, "k-means++", np.random.RandomState(0))
    kw = dict(top_k=2, momentum=0.5, batch_size=20, seed=0)
    rate = 1 - 0.5**30
    P, n_passes, drift, converged = backend.balanced_prototypes(
        Xn, P0, y, 2, max_iter=100, tol=0.02, **kw)
    assert converged and n_passes < 30
    assert (P @ centers.T).max(axis=1).min() > 0.95
    # raw movement at the noise floor, after as before the stop
    moves = []
    for t in range(n_passes, n_passes + 20):
        A = backend.balanced_prototypes(Xn, P0, y, 2, max_iter=t, tol=0, **kw)[0]
        B = backend.balanced_prototypes(Xn, P0, y, 2, max_iter=t + 1, tol=0, **kw)[0]
        moves.append(np.linalg.norm(B - A, axis=1).max() / rate)
    assert min(moves) > 0.02


def test_convergence_warning_and_tol_zero(rng):
    X, y, _, _ = _modes_data(rng)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        det = MixturePrototypeOODDetector(n_prototypes=2, momentum=0.999, max_iter=3,
                                          random_state=0).fit(X, y)
    assert det.n_iter_ == 3
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        det = MixturePrototypeOODDetector(n_prototypes=2, max_iter=4, tol=0,
                                          random_state=0).fit(X, y)
    assert det.n_iter_ == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det = MixturePrototypeOODDetector(n_prototypes=2, random_state=0, **FAST).fit(X, y)
    assert det.n_iter_ < det.max_iter


def _count_transfers(monkeypatch):
    """Count the host<->device copies of the torch backend (to_device / to_numpy) and
    the scalar reads (to_scalars), wherever a torch module imported them."""
    import importlib
    import pkgutil

    from skproto.backend import _torch
    from skproto.backend._torch import _common

    counts = {"to_device": 0, "to_numpy": 0, "to_scalars": 0}
    modules = [importlib.import_module(f"skproto.backend._torch.{m.name}")
               for m in pkgutil.iter_modules(_torch.__path__)]
    for name in counts:
        real = getattr(_common, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            counts[_name] += 1
            return _real(*args, **kwargs)

        for module in modules:
            if getattr(module, name, None) is real:
                monkeypatch.setattr(module, name, counted)
    return counts


@pytest.mark.parametrize("labelled", [True, False])
def test_torch_fit_copies_do_not_grow_with_passes(rng, monkeypatch, labelled):
    X, y, _, _ = _modes_data(rng, n_per_mode=50)
    counts = _count_transfers(monkeypatch)
    per_fit = {}
    for max_iter in (2, 6):
        for key in counts:
            counts[key] = 0
        det = MixturePrototypeOODDetector(n_prototypes=3, batch_size=30, max_iter=max_iter,
                                          tol=0, random_state=0)
        with skproto.config_context(backend="torch", device="cpu"):
            det.fit(X, y if labelled else None)
        assert det.n_iter_ == max_iter
        per_fit[max_iter] = dict(counts)
    copies = {k: per_fit[k]["to_device"] + per_fit[k]["to_numpy"] for k in per_fit}
    assert copies[2] == copies[6] > 0
    # and one read of two numbers a pass (the convergence test)
    assert per_fit[6]["to_scalars"] - per_fit[2]["to_scalars"] == 4


def test_balanced_prototypes_input_errors(rng):
    X, P = _unit(rng.randn(10, 3)), _unit(rng.randn(4, 3))
    with pytest.raises(ValueError, match="blocks of equal size"):
        backend.balanced_prototypes(X, P, np.zeros(10, int), 3)
    with pytest.raises(ValueError, match="x_groups is required"):
        backend.balanced_prototypes(X, P, None, 2)
    with pytest.raises(ValueError, match="x_groups must lie"):
        backend.balanced_prototypes(X, P, np.full(10, 2), 2)
    with pytest.raises(ValueError, match="momentum"):
        backend.balanced_prototypes(X, P, momentum=1.0)
    with pytest.raises(ValueError, match="tol"):
        backend.balanced_prototypes(X, P, tol=-1)
    with pytest.raises(ValueError, match="seed"):
        backend.balanced_prototypes(X, P, seed=2**32)
    with pytest.raises(ValueError, match="max_iter"):
        backend.balanced_prototypes(X, P, max_iter=0)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_limits_threads_and_restores_them(rng, monkeypatch, backend_name, dtype):
    from threadpoolctl import threadpool_info

    from skproto.backend._numpy import transport as np_transport
    from skproto.backend._torch import transport as torch_transport

    module = np_transport if backend_name == "numpy" else torch_transport
    seen = []
    real = module._batch_targets

    def spy(*args, **kwargs):
        blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        seen.append((max(blas), torch.get_num_threads()))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "_batch_targets", spy)
    X, y, _, _ = _modes_data(rng)
    blas_before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    torch_before = torch.get_num_threads()
    with skproto.config_context(backend=backend_name, device="cpu"):
        MixturePrototypeOODDetector(n_prototypes=2, max_iter=2, tol=0).fit(X.astype(dtype), y)
    assert seen
    if backend_name == "numpy":
        assert {s[0] for s in seen} == {1}
    else:
        assert {s[1] for s in seen} == {1}
    assert [lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas"] == blas_before
    assert torch.get_num_threads() == torch_before


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sinkhorn_linear_domain_up_to_its_limit(backend_name, dtype):
    """Just inside linear_range_limit, with adversarial rows and columns (one far below
    the others), the linear-domain result equals the float64 log-domain one."""
    from skproto.backend._numpy.transport import _sinkhorn_log
    from skproto.backend._transport import linear_range_limit

    rs = np.random.RandomState(1)
    B, K, eps = 64, 10, 0.05
    R = linear_range_limit(dtype, B, K) * 0.999
    S = rs.uniform(0.6, 1.0, size=(B, K))
    S[:, 0] = 0.0   # a column far below every other
    S[0] = 0.0      # and a row
    S[1, 1] = 1.0
    S = (S * R * eps).astype(dtype)
    expected = _sinkhorn_log(S.astype(np.float64), eps, 3)
    with skproto.config_context(backend=backend_name, device="cpu"):
        Q = backend.sinkhorn(S, epsilon=eps, n_iter=3)
    assert np.all(np.isfinite(Q))
    rtol = 1e-9 if dtype == np.float64 else 2e-3
    big = expected > 1e-30
    assert_allclose(Q[big], expected[big], rtol=rtol)
    assert np.abs(Q - expected).max() < (1e-12 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_topk_mask_without_sort_keeps_the_tie_rule(lib):
    from skproto.backend._numpy import transport as np_transport
    from skproto.backend._torch import transport as torch_transport

    A = np.random.RandomState(0).randint(0, 4, size=(300, 9)).astype(float)
    for k in (1, 3, 8, 9):
        expected = np.zeros_like(A, dtype=bool)
        top = np.argsort(-A, axis=1, kind="stable")[:, :k]
        np.put_along_axis(expected, top, True, axis=1)
        if lib == "numpy":
            mask = np_transport._topk_mask(A, k)
        else:
            mask = torch_transport._topk_mask(torch.from_numpy(A), k).numpy()
        assert_array_equal(mask, expected)
