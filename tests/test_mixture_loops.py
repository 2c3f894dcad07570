"""Whole EM and semi-supervised k-means runs in the backend (mixture_em,
semi_supervised_kmeans, mixture_m_step, mixture_assign with fixed rows).

Checked against independent computations: scikit-learn's GaussianMixture and KMeans
run from the same start, a brute-force Lloyd loop, scikit-learn's log-densities; the
torch twins (on the CPU) against the numpy kernels; and, for the device-resident
torch loops, the number of host <-> device copies of a fit, which must not grow with
the number of iterations.
"""

import importlib
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import (
    _compute_precision_cholesky,
    _estimate_log_gaussian_prob,
)

import skproto
from skproto import SemiSupervisedGMM, backend
from skproto.backend._dispatch import FAMILIES

COV_TYPES = ["spherical", "diag", "full"]


def _blobs(seed=0, n_per=120, n_features=6, n_classes=4, spread=2.5, dtype=np.float64):
    rng = np.random.RandomState(seed)
    centres = spread * rng.randn(n_classes, n_features)
    X = np.vstack([c + rng.randn(n_per, n_features) for c in centres])
    return X.astype(dtype), np.repeat(np.arange(n_classes), n_per)


def _start(X, n_components, cov_type, seed=1):
    rng = np.random.RandomState(seed)
    means = X[rng.choice(len(X), n_components, replace=False)].astype(np.float64)
    var = X.var(axis=0).astype(np.float64)
    covariances = {
        "spherical": np.full(n_components, var.mean()),
        "diag": np.tile(var, (n_components, 1)),
        "full": np.stack([np.diag(var)] * n_components),
    }[cov_type]
    weights = np.full(n_components, 1.0 / n_components)
    return weights, means, covariances, _compute_precision_cholesky(covariances, cov_type)


# ------------------------------------------------------------------ numpy maths


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_mixture_em_equals_sklearn_gaussian_mixture(cov_type):
    """No fixed rows: the same iterations as GaussianMixture from the same start."""
    X, _ = _blobs(0)
    weights, means, covariances, prec_chol = _start(X, 4, cov_type)
    ref = GaussianMixture(
        4, covariance_type=cov_type, reg_covar=1e-6, max_iter=30, tol=1e-6,
        weights_init=weights, means_init=means,
        precisions_init={"full": lambda P: P @ P.transpose(0, 2, 1)}.get(
            cov_type, lambda P: P**2)(prec_chol),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref.fit(X)
    got = backend.mixture_em(X, means, prec_chol, np.log(weights), cov_type,
                             max_iter=30, tol=1e-6)
    assert got["n_iter"] == ref.n_iter_ and got["converged"] == ref.converged_
    assert_allclose(got["means"], ref.means_, rtol=1e-7, atol=1e-9)
    assert_allclose(got["covariances"], ref.covariances_, rtol=1e-7, atol=1e-9)
    assert_allclose(got["weights"], ref.weights_, rtol=1e-7)
    assert_allclose(got["precisions_chol"], ref.precisions_cholesky_, rtol=1e-6)
    # The objective before each iteration: sklearn's lower bound of the last one.
    assert got["lower_bounds"][-2] == pytest.approx(ref.lower_bound_, rel=1e-10)
    assert_array_equal(got["labels"], ref.predict(X))
    assert got["lower_bound"] == pytest.approx(ref.score(X), rel=1e-10)


def _objective(X, means, prec_chol, log_w, cov_type, fixed):
    """Per-row semi-supervised objective and labels, from sklearn's log-densities."""
    wlp = _estimate_log_gaussian_prob(X, means, prec_chol, cov_type) + log_w
    top = wlp.max(axis=1)
    per_row = top + np.log(np.exp(wlp - top[:, None]).sum(axis=1))
    labels = wlp.argmax(axis=1)
    is_fixed = fixed >= 0
    per_row[is_fixed] = wlp[is_fixed, fixed[is_fixed]]
    labels[is_fixed] = fixed[is_fixed]
    return labels, per_row


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_mixture_em_with_fixed_rows_follows_its_objective(cov_type):
    X, y = _blobs(1)
    rng = np.random.RandomState(0)
    fixed = np.where(rng.rand(len(X)) < 0.3, y, -1)
    weights, means, _, prec_chol = _start(X, 4, cov_type)
    got = backend.mixture_em(X, means, prec_chol, np.log(weights), cov_type, fixed,
                             max_iter=40, tol=0)
    bounds = np.array(got["lower_bounds"])
    assert got["n_iter"] == 40 and not got["converged"] and bounds.size == 41
    assert np.all(np.diff(bounds) >= -1e-10 * np.abs(bounds).max())  # EM never decreases
    labels, per_row = _objective(X, got["means"], got["precisions_chol"],
                                 np.log(got["weights"]), cov_type, fixed)
    assert_array_equal(got["labels"], labels)
    assert got["lower_bound"] == pytest.approx(per_row.mean(), rel=1e-10)
    # One more iteration by hand: the last parameters are the M-step of the last E-step.
    stats = backend.mixture_em_statistics(X, got["means"], got["precisions_chol"],
                                          np.log(got["weights"]), cov_type, fixed)
    assert stats[0] / len(X) == pytest.approx(got["lower_bound"], rel=1e-10)


def test_mixture_assign_with_fixed_rows():
    X, y = _blobs(2)
    fixed = np.where(np.arange(len(X)) % 3 == 0, (y + 1) % 4, -1)  # some fixed "wrong"
    weights, means, _, prec_chol = _start(X, 4, "diag")
    labels, per_row = _objective(X, means, prec_chol, np.log(weights), "diag", fixed)
    with skproto.config_context(working_memory=0.01):  # many blocks
        index, log_prob = backend.mixture_assign(X, means, prec_chol, np.log(weights),
                                                 "diag", fixed)
    assert_array_equal(index, labels)
    assert_allclose(log_prob, per_row, rtol=1e-10)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_mixture_m_step_formulas(cov_type):
    X, y = _blobs(3)
    resp = np.eye(4)[y] * 0.7 + 0.075  # rows sum to 1
    nk, sums = resp.sum(0), resp.T @ X
    centred = {
        "full": np.einsum("nk,nkd,nke->kde", resp, X[:, None] - sums / nk[:, None],
                          X[:, None] - sums / nk[:, None]),
        "diag": np.einsum("nk,nkd->kd", resp, (X[:, None] - sums / nk[:, None]) ** 2),
    }
    centred["spherical"] = centred["diag"].sum(axis=1)
    weights, means, covs, prec_chol = backend.mixture_m_step(
        nk, sums, centred[cov_type], cov_type, centred=True, reg_covar=1e-3,
        n_samples=len(X))
    ref = GaussianMixture(4, covariance_type=cov_type, reg_covar=1e-3)
    ref._m_step(X, np.log(resp))
    assert_allclose(means, ref.means_, rtol=1e-10)
    assert_allclose(covs, ref.covariances_, rtol=1e-9)
    assert_allclose(weights, ref.weights_, rtol=1e-10)
    assert_allclose(prec_chol, ref.precisions_cholesky_, rtol=1e-9)
    # Raw second moments give the same parameters.
    raw = {"full": np.einsum("nk,nd,ne->kde", resp, X, X), "diag": resp.T @ X**2,
           "spherical": resp.T @ (X**2).sum(1)}[cov_type]
    again = backend.mixture_m_step(nk, sums, raw, cov_type, reg_covar=1e-3)
    for a, b in zip(again, (weights, means, covs, prec_chol)):
        assert_allclose(a, b, rtol=1e-8)


def test_mixture_m_step_empty_components():
    nk = np.array([3.0, 0.0])
    sums = np.array([[3.0, 6.0], [0.0, 0.0]])
    scatters = np.array([[3.0, 3.0], [0.0, 0.0]])
    weights, means, covs, prec = backend.mixture_m_step(
        nk, sums, scatters, "diag", centred=True, reg_covar=0.0, n_samples=3,
        empty_means=[[9.0, 9.0], [5.0, -5.0]], empty_covariance=[2.0, 4.0])
    assert_allclose(means, [[1.0, 2.0], [5.0, -5.0]])  # only the empty one replaced
    assert_allclose(covs, [[1.0, 1.0], [2.0, 4.0]])
    assert_allclose(prec, 1 / np.sqrt(covs))
    assert weights[1] < 1e-14
    with pytest.raises(ValueError, match="ill-defined"):  # without the fallback
        backend.mixture_m_step(nk, sums, scatters, "diag", centred=True, reg_covar=0.0)


def _brute_force_lloyd(X, fixed, means, max_iter):
    labels = None
    for n_iter in range(1, max_iter + 1):
        d = ((X[:, None, :].astype(np.float64) - means[None]) ** 2).sum(-1)
        new = np.where(fixed >= 0, fixed, d.argmin(axis=1))
        if labels is not None and np.array_equal(new, labels):
            return labels, means, n_iter, True
        labels = new
        means = np.array([X[labels == k].mean(0) if (labels == k).any() else means[k]
                          for k in range(len(means))])
    d = ((X[:, None, :] - means[None]) ** 2).sum(-1)
    return np.where(fixed >= 0, fixed, d.argmin(axis=1)), means, max_iter, False


def test_semi_supervised_kmeans_equals_brute_force_and_kmeans():
    X, y = _blobs(4, spread=1.2)
    rng = np.random.RandomState(0)
    start = X[rng.choice(len(X), 4, replace=False)]
    fixed = np.where(rng.rand(len(X)) < 0.2, y, -1)
    labels, means, inertia, n_iter, converged = backend.semi_supervised_kmeans(
        X, start, fixed, max_iter=100)
    ref_labels, ref_means, ref_iter, ref_conv = _brute_force_lloyd(X, fixed, start, 100)
    assert n_iter > 3 and (n_iter, converged) == (ref_iter, ref_conv)
    assert_array_equal(labels, ref_labels)
    assert_allclose(means, ref_means, rtol=1e-12)
    assert inertia == pytest.approx(((X - means[labels]) ** 2).sum(), rel=1e-12)
    # Without fixed rows it is Lloyd's k-means, as scikit-learn runs it.
    labels, means, inertia, _, _ = backend.semi_supervised_kmeans(X, start, max_iter=300)
    km = KMeans(4, init=start, n_init=1, algorithm="lloyd", tol=0, max_iter=300).fit(X)
    assert_array_equal(labels, km.labels_)
    assert_allclose(means, km.cluster_centers_, rtol=1e-10)
    assert inertia == pytest.approx(km.inertia_, rel=1e-10)
    # A centre that wins no row stays where it is.
    far = np.vstack([start[:3], [1e3] * X.shape[1]])
    assert_allclose(backend.semi_supervised_kmeans(X, far, max_iter=5)[1][3], far[3])


def test_loop_kernels_check_their_parameters():
    X, _ = _blobs(5)
    weights, means, _, prec = _start(X, 4, "diag")
    for kwargs, error in [({"max_iter": 0}, ValueError), ({"max_iter": 2.5}, TypeError),
                          ({"tol": -1}, ValueError), ({"reg_covar": np.nan}, ValueError)]:
        with pytest.raises(error):
            backend.mixture_em(X, means, prec, np.log(weights), "diag", **kwargs)
    with pytest.raises(ValueError, match="fixed must lie"):
        backend.mixture_em(X, means, prec, np.log(weights), "diag", np.full(len(X), 4))
    with pytest.raises(ValueError, match="features"):
        backend.semi_supervised_kmeans(X, means[:, :2])
    with pytest.raises(ValueError, match="max_iter"):
        backend.semi_supervised_kmeans(X, means, max_iter=0)
    with pytest.raises(ValueError, match="second_moments must have shape"):
        backend.mixture_m_step(np.ones(4), means, np.ones(4), "diag")


# ------------------------------------------------------------------ torch twins


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_loops_equal_numpy(cov_type, dtype):
    pytest.importorskip("torch")
    X, y = _blobs(6, n_per=300, dtype=dtype)
    fixed = np.where(np.random.RandomState(0).rand(len(X)) < 0.3, y, -1)
    weights, means, _, prec = _start(X, 4, cov_type)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    # float32 lower bounds differ by ~1e-7 between the libraries, so a tolerance could
    # stop them one iteration apart: float32 runs all iterations.
    tol = 0 if dtype == np.float32 else 1e-7
    results = {}
    for name in ("numpy", "torch"):
        # Small working memory: many blocks on both libraries.
        with skproto.config_context(backend=name, device="cpu", working_memory=0.05):
            results[name] = (
                backend.mixture_em(X, means, prec, np.log(weights), cov_type, fixed,
                                   max_iter=25, tol=tol),
                backend.semi_supervised_kmeans(X, means, fixed, max_iter=50),
                backend.mixture_m_step(np.array([3.0, 0.0, 2.0, 1.0]), means,
                                       _start(X, 4, cov_type)[2], cov_type, centred=True,
                                       empty_means=means + 1,
                                       empty_covariance=_start(X, 4, cov_type)[2][0]),
            )
    (em_np, km_np, ms_np), (em_t, km_t, ms_t) = results["numpy"], results["torch"]
    assert em_t["n_iter"] == em_np["n_iter"] and em_t["converged"] == em_np["converged"]
    assert em_np["converged"] == (dtype == np.float64)
    assert_array_equal(em_t["labels"], em_np["labels"])
    for key in ("weights", "means", "covariances", "precisions_chol"):
        assert em_t[key].dtype == np.float64
        assert_allclose(em_t[key], em_np[key], rtol=rtol, atol=rtol)
    assert_allclose(em_t["lower_bounds"], em_np["lower_bounds"], rtol=rtol / 10)
    assert_array_equal(km_t[0], km_np[0])
    assert_allclose(km_t[1], km_np[1], rtol=1e-6 if dtype == np.float32 else 1e-12)
    assert km_t[2] == pytest.approx(km_np[2], rel=1e-6)
    assert km_t[3:] == km_np[3:]
    for a, b in zip(ms_t, ms_np):
        assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_loops_on_extreme_scales(backend_name):
    if backend_name == "torch":
        pytest.importorskip("torch")
    X, y = _blobs(7, dtype=np.float32)
    start = X[[0, 130, 250, 370]].astype(np.float64)
    ref = backend.semi_supervised_kmeans(X, start, max_iter=50)
    with skproto.config_context(backend=backend_name, device="cpu"):
        for scale in (2.0**60, 2.0**-60):  # squared distances over- / underflow float32
            got = backend.semi_supervised_kmeans(X * np.float32(scale), start * scale,
                                                 max_iter=50)
            assert_array_equal(got[0], ref[0])
            assert_allclose(got[1], ref[1] * scale, rtol=1e-6)


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("assignment", ["soft", "hard"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_estimator_on_torch_equals_numpy(cov_type, assignment, dtype):
    pytest.importorskip("torch")
    X, y = _blobs(8, n_per=150, n_classes=6, dtype=dtype)
    y_train = np.where((y < 3) & (np.arange(len(y)) % 2 == 0), y, -1)
    rtol = 1e-4 if dtype == np.float32 else 1e-8
    for n_components in (6, "auto"):
        fits = []
        for name in ("numpy", "torch"):
            with skproto.config_context(backend=name, device="cpu"):
                fits.append(SemiSupervisedGMM(
                    n_components, covariance_type=cov_type, assignment=assignment,
                    random_state=0).fit(X, y_train))
        ref, got = fits
        assert got.n_components_ == ref.n_components_ and got.n_iter_ == ref.n_iter_
        assert_array_equal(got.labels_, ref.labels_)
        for name in ("means_", "covariances_", "weights_", "precisions_cholesky_"):
            assert getattr(got, name).dtype == dtype
            assert isinstance(getattr(got, name), np.ndarray)
            assert_allclose(getattr(got, name), getattr(ref, name), rtol=rtol, atol=rtol)
        assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=rtol)
        with skproto.config_context(backend="torch", device="cpu"):
            assert_array_equal(got.predict(X), ref.predict(X))
            assert_allclose(got.score_samples(X), ref.score_samples(X), rtol=rtol)


# ------------------------------------------------------------------ copies


class _CopyCounter:
    """Counts to_device / to_numpy calls (and bytes moved) in every torch module."""

    def __init__(self, monkeypatch):
        from skproto.backend._torch import _common

        self.calls = {"to_device": 0, "to_numpy": 0}
        self.bytes = {"to_device": 0, "to_numpy": 0}
        originals = {"to_device": _common.to_device, "to_numpy": _common.to_numpy}

        def counted(name):
            original = originals[name]

            def wrapper(*args, **kwargs):
                self.calls[name] += 1
                out = original(*args, **kwargs)
                self.bytes[name] += out.nbytes if name == "to_numpy" else (
                    out.element_size() * out.nelement())
                return out
            return wrapper

        # The kernels import the two functions by name: load every torch module now
        # (one loaded during the fit would bind the wrapper for good) and patch each
        # module's binding.
        for family in FAMILIES:
            importlib.import_module(f"skproto.backend._torch.{family}")
        for module_name, module in list(sys.modules.items()):
            if module_name.startswith("skproto.backend._torch") and module is not None:
                for name in originals:
                    if hasattr(module, name):
                        monkeypatch.setattr(module, name, counted(name))

    def snapshot(self):
        return dict(self.calls), dict(self.bytes)


def _counted_fit(monkeypatch, X, y, **params):
    with monkeypatch.context() as patch:
        counter = _CopyCounter(patch)
        with skproto.config_context(backend="torch", device="cpu"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter is small on purpose
            gmm = SemiSupervisedGMM(random_state=0, tol=0, **params).fit(X, y)
        return gmm, counter.snapshot()


@pytest.mark.parametrize("params", [
    dict(n_components=5, covariance_type="diag"),
    dict(n_components=5, covariance_type="full"),
    dict(n_components=5, covariance_type="spherical", assignment="hard"),
    dict(n_components="auto", covariance_type="spherical"),
], ids=["diag", "full", "hard", "auto-K"])
def test_host_device_copies_do_not_grow_with_iterations(monkeypatch, params):
    pytest.importorskip("torch")
    X, y = _blobs(9, n_per=400, n_classes=5, spread=0.9, dtype=np.float32)
    y_train = np.where((y < 2) & (np.arange(len(y)) % 2 == 0), y, -1)
    short, (calls_short, bytes_short) = _counted_fit(monkeypatch, X, y_train, max_iter=2)
    long, (calls_long, bytes_long) = _counted_fit(monkeypatch, X, y_train, max_iter=8)
    # The iterations really ran (k-means stops earlier only when it has converged).
    assert short.n_iter_ == 2 and long.n_iter_ > 4
    assert calls_short["to_device"] > 0 and calls_short["to_numpy"] > 0
    assert calls_long == calls_short and bytes_long == bytes_short
    # Each of the few whole-data passes moves X once (the fit's runs, the partition
    # statistics, the nearest-centre start): a handful of X's size, not one per iteration.
    assert bytes_long["to_device"] < 8 * X.nbytes


def test_predict_moves_X_to_the_device_once(monkeypatch):
    pytest.importorskip("torch")
    X, y = _blobs(10, n_per=2000, dtype=np.float32)
    gmm = SemiSupervisedGMM(4, random_state=0).fit(X, np.where(y < 2, y, -1))
    for method in ("predict", "predict_proba", "score_samples"):
        with monkeypatch.context() as patch:
            counter = _CopyCounter(patch)
            with skproto.config_context(backend="torch", device="cpu", working_memory=0.2):
                getattr(gmm, method)(X)
        calls, moved = counter.snapshot()
        assert calls["to_device"] > 4  # many row blocks ...
        params = sum(a.nbytes for a in (gmm.means_, gmm.precisions_cholesky_)) * 2 + 64
        assert X.nbytes <= moved["to_device"] <= X.nbytes + params  # ... X moved once
