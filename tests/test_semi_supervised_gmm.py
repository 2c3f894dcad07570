"""SemiSupervisedGMM: the method's maths against independent transcriptions."""

import numpy as np
import pytest
from scipy.special import multigammaln
from sklearn.mixture import GaussianMixture

import skproto
from skproto import SemiSupervisedGMM
from skproto.discovery._estimate_k import _niw_log_marginal_likelihood
from skproto.metrics import cluster_accuracy

COV_TYPES = ["spherical", "diag", "full"]


def make_gcd(seed, n_known=4, n_novel=6, n_features=16, n_per_class=80, std=0.04):
    """Well-separated classes on the unit sphere; half of the known classes' samples
    labelled, all novel samples unlabelled."""
    rng = np.random.RandomState(seed)
    centres = rng.randn(n_known + n_novel, n_features)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    X = np.vstack([c + std * rng.randn(n_per_class, n_features) for c in centres])
    y = np.repeat(np.arange(n_known + n_novel), n_per_class)
    labelled = (y < n_known) & (rng.rand(y.size) < 0.5)
    return X.astype(np.float32), y, np.where(labelled, y, -1)


def overlapping(seed, n_features=4):
    """Overlapping blobs, so EM takes many iterations."""
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.randn(100, n_features) + 1.5 * rng.randn(n_features) for _ in range(4)])
    y = np.repeat(np.arange(4), 100)
    y_train = np.where((y < 2) & (rng.rand(400) < 0.3), y, -1)
    return X, y, y_train


# ------------------------------------------------------------------ the EM maths


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_em_step_equals_sklearn_gaussian_mixture(cov_type):
    """One E-step + M-step (no labels) equals scikit-learn's _e_step / _m_step."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 3) + rng.randint(0, 3, (200, 1)) * 3
    ref = GaussianMixture(3, covariance_type=cov_type, reg_covar=1e-6)
    ref.means_ = rng.randn(3, 3) * 2
    ref.weights_ = rng.dirichlet(np.ones(3))
    ref.covariances_ = {
        "spherical": rng.uniform(0.5, 2, 3),
        "diag": rng.uniform(0.5, 2, (3, 3)),
        "full": np.stack([np.eye(3) * v for v in rng.uniform(0.5, 2, 3)]),
    }[cov_type]
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    ref.precisions_cholesky_ = _compute_precision_cholesky(ref.covariances_, cov_type)
    stats = skproto.backend.mixture_em_statistics(
        X, ref.means_, ref.precisions_cholesky_, np.log(ref.weights_), cov_type
    )
    weights, means, covs, prec_chol = skproto.backend.mixture_m_step(
        *stats[1:], cov_type, reg_covar=1e-6, n_samples=X.shape[0]
    )
    log_norm, log_resp = ref._e_step(X)
    assert stats[0] / len(X) == pytest.approx(log_norm, rel=1e-10)
    ref._m_step(X, log_resp)
    np.testing.assert_allclose(means, ref.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(covs, ref.covariances_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(weights, ref.weights_, rtol=1e-8)
    np.testing.assert_allclose(
        prec_chol, _compute_precision_cholesky(ref.covariances_, cov_type), rtol=1e-8
    )


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_soft_em_log_likelihood_never_decreases(cov_type):
    X, _, y_train = overlapping(0)
    gmm = SemiSupervisedGMM(
        4, covariance_type=cov_type, tol=0, max_iter=60, random_state=0
    ).fit(X, y_train)
    bounds = np.array(gmm.lower_bounds_)
    assert bounds.size > 10
    assert np.all(np.diff(bounds) >= -1e-9 * np.abs(bounds[:-1]).max())
    assert gmm.lower_bound_ == pytest.approx(bounds[-1])


def test_objective_is_the_semi_supervised_log_likelihood():
    """lower_bound_ = mean of log p(x) (unlabelled) and log p(x, y) (labelled),
    computed here with scikit-learn's GaussianMixture holding the same parameters."""
    X, _, y_train = overlapping(1)
    gmm = SemiSupervisedGMM(4, covariance_type="full", random_state=0).fit(X, y_train)
    ref = GaussianMixture(4, covariance_type="full")
    ref.means_, ref.precisions_cholesky_, ref.weights_ = (
        gmm.means_, gmm.precisions_cholesky_, gmm.weights_,
    )
    ref.covariances_ = gmm.covariances_
    joint = ref._estimate_weighted_log_prob(X)
    per_sample = ref.score_samples(X)
    labelled = y_train >= 0
    comp = np.searchsorted(gmm.known_classes_, y_train[labelled])
    per_sample[labelled] = joint[labelled, comp]
    assert gmm.lower_bound_ == pytest.approx(per_sample.mean(), rel=1e-9)
    np.testing.assert_allclose(gmm.score_samples(X), ref.score_samples(X), rtol=1e-9)
    np.testing.assert_allclose(gmm.predict_proba(X), ref.predict_proba(X), atol=1e-9)
    assert gmm.score(X) == pytest.approx(ref.score(X))


@pytest.mark.parametrize("assignment", ["soft", "hard"])
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_labelled_samples_keep_their_class(assignment, cov_type):
    X, y, y_train = overlapping(2)
    # Flip some labels so that the labelled samples disagree with the geometry.
    y_train = y_train.copy()
    flip = np.flatnonzero(y_train >= 0)[::3]
    y_train[flip] = 1 - y_train[flip]
    gmm = SemiSupervisedGMM(
        n_components="auto", covariance_type=cov_type, assignment=assignment,
        n_components_init=5, random_state=0,
    ).fit(X, y_train)
    labelled = y_train >= 0
    np.testing.assert_array_equal(gmm.labels_[labelled], y_train[labelled])
    np.testing.assert_array_equal(gmm.known_classes_, [0, 1])
    np.testing.assert_array_equal(gmm.component_labels_[:2], [0, 1])


def _semi_supervised_kmeans(X, y_train, centres, max_iter=100):
    """Direct transcription of GPC's K_Means.fit_mix loop (labelled samples fixed)."""
    classes = np.unique(y_train[y_train >= 0])
    fixed = np.full(len(X), -1)
    fixed[y_train >= 0] = np.searchsorted(classes, y_train[y_train >= 0])
    centres = centres.copy()
    labels = None
    for _ in range(max_iter):
        d = ((X[:, None, :] - centres[None]) ** 2).sum(-1)
        new = np.where(fixed >= 0, fixed, d.argmin(1))
        if labels is not None and (new == labels).all():
            break
        labels = new
        for k in range(len(centres)):
            if (labels == k).any():
                centres[k] = X[labels == k].mean(0)
    return labels, centres


@pytest.mark.parametrize("seed", range(3))
def test_hard_assignment_equals_semi_supervised_kmeans(seed):
    X, _, y_train = overlapping(seed)
    rng = np.random.RandomState(seed)
    init = np.vstack(
        [X[y_train == 0].mean(0), X[y_train == 1].mean(0), X[rng.choice(400, 3)]]
    )
    gmm = SemiSupervisedGMM(
        5, assignment="hard", means_init=init, random_state=0
    ).fit(X, y_train)
    labels, centres = _semi_supervised_kmeans(X, y_train, init)
    np.testing.assert_array_equal(gmm.labels_, gmm.component_labels_[labels])
    np.testing.assert_allclose(gmm.means_, centres, rtol=1e-10, atol=1e-12)
    assert gmm.converged_
    assert gmm.inertia_ == pytest.approx(((X - centres[labels]) ** 2).sum())
    # predict follows the nearest centre, as the fit does.
    unl = y_train < 0
    np.testing.assert_array_equal(gmm.predict(X[unl]), gmm.labels_[unl])


# ------------------------------------------------------------------ split / merge


@pytest.mark.parametrize("n", [5, 40])
def test_niw_log_marginal_likelihood_matches_direct_formula(n):
    rng = np.random.RandomState(n)
    D = 12
    Z = rng.randn(n, D) * 0.1 + 0.3
    m0, s, kappa, nu = rng.randn(D) * 0.1, 0.005, 1e-4, D + 1.0
    xbar = Z.mean(0)
    S = (Z - xbar).T @ (Z - xbar)
    kn, nun = kappa + n, nu + n
    psi_n = s * np.eye(D) + S + kappa * n / kn * np.outer(xbar - m0, xbar - m0)
    expected = (
        -n * D / 2 * np.log(np.pi)
        + multigammaln(nun / 2, D) - multigammaln(nu / 2, D)
        + nu / 2 * np.linalg.slogdet(s * np.eye(D))[1]
        - nun / 2 * np.linalg.slogdet(psi_n)[1]
        + D / 2 * (np.log(kappa) - np.log(kn))
    )
    got = _niw_log_marginal_likelihood(Z, m0, s, kappa, nu)
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_estimated_number_of_classes_within_20_percent(seed):
    X, y, y_train = make_gcd(seed)
    gmm = SemiSupervisedGMM(k_estimation="split_merge", random_state=seed).fit(X, y_train)
    assert abs(gmm.n_components_ - 10) <= 2
    all_acc, old_acc, _ = cluster_accuracy(y, gmm.labels_, old_classes=range(4))
    assert old_acc > 0.9 and all_acc > 0.75
    # Starting from too many components, merges bring it back.
    over = SemiSupervisedGMM(
        k_estimation="split_merge", n_components_init=20, random_state=seed
    ).fit(X, y_train)
    assert abs(over.n_components_ - 10) <= 2
    assert over.n_move_rounds_ >= 1


def test_moves_are_reproducible_and_use_random_state():
    X, _, y_train = make_gcd(7)
    params = dict(k_estimation="split_merge", n_components_init=14, random_state=3)
    a = SemiSupervisedGMM(**params).fit(X, y_train)
    b = SemiSupervisedGMM(**params).fit(X, y_train)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_fixed_n_components_does_not_move():
    X, y, y_train = make_gcd(1)
    gmm = SemiSupervisedGMM(10, random_state=0).fit(X, y_train)
    assert gmm.n_components_ == 10 and gmm.n_move_rounds_ == 0
    assert cluster_accuracy(y, gmm.labels_) > 0.75


# ------------------------------------------------------------------ labels


def test_discovered_labels_are_above_the_known_ones():
    X, y, y_train = make_gcd(0, n_known=2, n_novel=2)
    y_train = np.where(y_train >= 0, y_train * 10 + 3, -1)  # known labels 3 and 13
    gmm = SemiSupervisedGMM(4, random_state=0).fit(X, y_train)
    np.testing.assert_array_equal(gmm.component_labels_, [3, 13, 14, 15])
    assert gmm.labels_.dtype == y_train.dtype
    # Negative known labels: discovered labels start at 0, never at -1.
    neg = np.where(y_train >= 0, -y_train - 5, -1)  # -8 and -18
    gmm = SemiSupervisedGMM(4, random_state=0).fit(X, neg)
    np.testing.assert_array_equal(gmm.component_labels_, [-18, -8, 0, 1])
    # Float labels keep a float dtype.
    gmm = SemiSupervisedGMM(4, random_state=0).fit(X, y_train.astype(float))
    np.testing.assert_array_equal(gmm.component_labels_, [3.0, 13.0, 14.0, 15.0])


def test_string_labels_in_an_object_array():
    X, y, y_train = make_gcd(0, n_known=2, n_novel=2)
    names = np.array(["cat", "novel_dog"], dtype=object)
    y_obj = np.array([names[v] if v >= 0 else -1 for v in y_train], dtype=object)
    gmm = SemiSupervisedGMM(4, random_state=0).fit(X, y_obj)
    assert list(gmm.component_labels_) == ["cat", "novel_dog", "_novel_0", "_novel_1"]
    labelled = y_train >= 0
    np.testing.assert_array_equal(gmm.labels_[labelled], y_obj[labelled])
    with pytest.raises(ValueError, match="object array with -1"):
        SemiSupervisedGMM(4).fit(X, y_obj.astype(str))


# ------------------------------------------------------------------ degenerate input


def test_all_unlabelled_is_an_unsupervised_gmm():
    X, y, _ = make_gcd(0, n_known=0, n_novel=4)
    a = SemiSupervisedGMM(4, random_state=0).fit(X)
    b = SemiSupervisedGMM(4, random_state=0).fit(X, np.full(len(X), -1))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.known_classes_.size == 0
    np.testing.assert_array_equal(a.component_labels_, np.arange(4))
    auto = SemiSupervisedGMM(random_state=0).fit(X)
    assert abs(auto.n_components_ - 4) <= 1


def test_all_labelled_is_a_supervised_gmm():
    X, y, _ = make_gcd(0, n_known=3, n_novel=0)
    gmm = SemiSupervisedGMM(random_state=0).fit(X, y)
    assert gmm.n_components_ == 3 and gmm.n_move_rounds_ == 0
    np.testing.assert_array_equal(gmm.labels_, y)
    # Class means and per-class variances, exactly.
    for k in range(3):
        np.testing.assert_allclose(gmm.means_[k], X[y == k].mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            gmm.covariances_[k], X[y == k].var(0) + gmm.reg_covar, rtol=1e-3, atol=1e-6
        )
    with pytest.raises(ValueError, match="unlabelled samples"):
        SemiSupervisedGMM(4).fit(X, y)


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.ones((1, 3)), None, "1 sample"),
        (np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 0.0]]), None, "NaN"),
        (np.eye(3), np.array([0.0, np.nan, -1.0]), "NaN"),
        (np.eye(3), np.array([0.5, 1.5, -1.0]), "continuous"),
        (np.eye(3), np.array([0, 1]), "entries"),
    ],
)
def test_bad_input_raises_clear_errors(X, y, match):
    with pytest.raises(ValueError, match=match):
        SemiSupervisedGMM(random_state=0).fit(X, y)


def test_fewer_components_than_known_classes_raises():
    X, y, _ = make_gcd(0, n_known=3, n_novel=0)
    with pytest.raises(ValueError, match="at least the number of known classes"):
        SemiSupervisedGMM(2).fit(X, y)


def test_failed_fit_leaves_the_model_unchanged():
    X, y, y_train = make_gcd(0, n_known=2, n_novel=2)
    gmm = SemiSupervisedGMM(4, random_state=0).fit(X, y_train)
    before = {k: v for k, v in vars(gmm).items() if k.endswith("_")}
    with pytest.raises(ValueError):
        gmm.fit(X[:, :3], np.full(len(X), 7.5))
    after = {k: v for k, v in vars(gmm).items() if k.endswith("_")}
    assert before.keys() == after.keys()
    for key in before:
        assert after[key] is before[key]


def test_prediction_methods_are_invariant_to_subsets_and_order():
    # What the common checks would test, with a valid number of components.
    X, _, y_train = overlapping(3)
    gmm = SemiSupervisedGMM(4, random_state=0).fit(X, y_train)
    perm = np.random.RandomState(0).permutation(len(X))
    for method in ("predict", "predict_proba", "score_samples"):
        full = getattr(gmm, method)(X)
        np.testing.assert_allclose(getattr(gmm, method)(X[perm]), full[perm], rtol=1e-6)
        np.testing.assert_allclose(getattr(gmm, method)(X[:17]), full[:17], rtol=1e-6)
    unl = y_train < 0
    np.testing.assert_array_equal(gmm.predict(X[unl]), gmm.labels_[unl])
    np.testing.assert_allclose(gmm.predict_proba(X).sum(1), 1, rtol=1e-10)


def test_float32_stays_float32_and_torch_backend_agrees():
    pytest.importorskip("torch")
    X, y, y_train = make_gcd(2, n_known=3, n_novel=3)
    ref = SemiSupervisedGMM(random_state=0).fit(X, y_train)
    assert ref.means_.dtype == np.float32 and ref.covariances_.dtype == np.float32
    with skproto.config_context(backend="torch", device="cpu"):
        got = SemiSupervisedGMM(random_state=0).fit(X, y_train)
    assert got.n_components_ == ref.n_components_
    np.testing.assert_array_equal(got.labels_, ref.labels_)
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-4, atol=1e-5)
