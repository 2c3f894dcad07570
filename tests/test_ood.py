"""MixturePrototypeOODDetector and its backend kernels (sinkhorn, balanced_assignment,
whitened_sq_distance), checked against direct transcriptions of the official PALM code."""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
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
