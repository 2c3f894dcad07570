"""RanPAC against a direct transcription of the official RanPAC.py (same projection)."""

import importlib.util

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils import check_random_state

from skproto import config_context
from skproto.incremental import RanPAC
from skproto.incremental._ranpac import RIDGE_GRID, _ridge_path_mse
from skproto.statistics import GramStatistics

torch_installed = importlib.util.find_spec("torch") is not None

rng = np.random.default_rng(0)
CENTERS = 2 * rng.normal(size=(6, 10))
Y = np.repeat(np.arange(6), 40)
X = (CENTERS[Y] + rng.normal(size=(240, 10))).astype(np.float64)
TASKS = [np.isin(Y, [0, 1]), np.isin(Y, [2, 3]), np.isin(Y, [4, 5])]


class OfficialRanPAC:
    """``replace_fc`` / ``optimise_ridge_parameter`` of RanPAC.py, in float64 numpy.

    The official code: ``Features_h = relu(Features_f @ W_rand)``; ``Q += H^T Y``,
    ``G += H^T H`` (Y one-hot over all classes); ``Wo = solve(G + ridge I, Q).T``;
    logits ``H @ Wo.T``. The ridge: each of ``10 ** arange(-8, 9)`` fitted on the first
    80% of the features, MSE of the predictions on the last 20%.
    """

    def __init__(self, W, n_classes):
        self.W = W
        self.G = np.zeros((W.shape[1], W.shape[1]))
        self.Q = np.zeros((W.shape[1], n_classes))

    def optimise_ridge_parameter(self, H, Yh):
        ridges = 10.0 ** np.arange(-8, 9)
        n_val = int(H.shape[0] * 0.8)
        Q_val = H[:n_val].T @ Yh[:n_val]
        G_val = H[:n_val].T @ H[:n_val]
        losses = []
        for ridge in ridges:
            Wo = np.linalg.solve(G_val + ridge * np.eye(G_val.shape[0]), Q_val).T
            losses.append(np.mean((H[n_val:] @ Wo.T - Yh[n_val:]) ** 2))
        return ridges[np.argmin(losses)], np.array(losses)

    def replace_fc(self, Xt, yt, ridge=None):
        H = np.maximum(Xt @ self.W, 0)
        Yh = np.eye(self.Q.shape[1])[yt]
        self.Q = self.Q + H.T @ Yh
        self.G = self.G + H.T @ H
        if ridge is None:
            ridge, _ = self.optimise_ridge_parameter(H, Yh)
        self.Wo = np.linalg.solve(self.G + ridge * np.eye(self.G.shape[0]), self.Q).T
        return ridge

    def logits(self, Xt):
        return np.maximum(Xt @ self.W, 0) @ self.Wo.T


def test_class_incremental_head_equals_the_official_computation():
    clf = RanPAC(n_components=50, ridge=3.0, random_state=0)
    # The same projection (setup_RP: torch.randn(in_features, M)).
    official = OfficialRanPAC(check_random_state(0).standard_normal((10, 50)), 6)
    for task in TASKS:
        clf.partial_fit(X[task], Y[task])
        official.replace_fc(X[task], Y[task], ridge=3.0)
        # After each task, the head on the classes seen so far.
        seen = clf.classes_
        assert_allclose(clf.coef_, official.Wo[seen], rtol=1e-8, atol=1e-10)
    assert_allclose(clf.statistics_.gram, official.G, rtol=1e-11, atol=1e-9)
    assert_allclose(clf.statistics_.targets, official.Q, rtol=1e-11, atol=1e-9)
    assert_allclose(clf.coef_, official.Wo, rtol=1e-8, atol=1e-10)
    assert_allclose(clf.decision_function(X), official.logits(X), rtol=1e-7, atol=1e-9)
    assert_array_equal(clf.predict(X), np.argmax(official.logits(X), axis=1))


def test_projection_is_a_seeded_standard_gaussian_in_the_training_dtype():
    clf = RanPAC(n_components=30, ridge=1.0, random_state=7).fit(X.astype(np.float32), Y)
    expected = check_random_state(7).standard_normal((10, 30)).astype(np.float32)
    assert clf.projection_.dtype == np.float32
    assert_array_equal(clf.projection_, expected)
    assert clf.coef_.dtype == np.float32
    assert clf.decision_function(X).dtype == np.float32


@pytest.mark.parametrize("n_components", [200, 20])  # dual (n_train <= M), primal
def test_auto_ridge_equals_optimise_ridge_parameter(n_components):
    first = TASKS[0] | TASKS[1]
    clf = RanPAC(n_components=n_components, random_state=3).partial_fit(X[first], Y[first])
    # Transcription on the same projection and the same shuffled order of the batch.
    random_state = check_random_state(3)
    W = random_state.standard_normal((10, n_components))
    order = random_state.permutation(first.sum())
    Xf, yf = X[first][order], Y[first][order]
    official = OfficialRanPAC(W, 4)
    H = np.maximum(Xf @ W, 0)
    ridge, losses = official.optimise_ridge_parameter(H, np.eye(4)[yf])
    assert clf.ridge_ == ridge
    # Small ridges make the official solve ill-conditioned where the
    # eigendecomposition is exact: compare the well-posed part of the path.
    well_posed = RIDGE_GRID >= 1e-3
    assert_allclose(clf.ridge_mse_[well_posed], losses[well_posed], rtol=1e-6)
    # And the head is solved on the accumulated statistics with that ridge.
    official.replace_fc(Xf, yf, ridge=ridge)
    assert_allclose(clf.coef_, official.Wo, rtol=1e-7, atol=1e-10)


def test_dual_and_primal_ridge_paths_match_per_ridge_solves():
    sub = np.arange(0, 240, 3)  # 80 samples: 64 to fit on, 16 held out
    W = rng.normal(size=(10, 100))
    # 64 <= 100 components: the kernel (dual) path; 64 > 10: the Gram (primal) path.
    for W_used in (W, W[:, :10]):
        mse = _ridge_path_mse(X[sub], Y[sub], W_used, check_random_state(0))
        order = check_random_state(0).permutation(len(sub))
        H = np.maximum(X[sub][order] @ W_used, 0)
        Yh = np.eye(6)[Y[sub][order]]
        _, losses = OfficialRanPAC(W_used, 6).optimise_ridge_parameter(H, Yh)
        keep = RIDGE_GRID >= 1e-2
        assert mse.shape == RIDGE_GRID.shape
        assert_allclose(mse[keep], losses[keep], rtol=1e-6)


def test_ridge_is_selected_once_unless_reselected():
    clf = RanPAC(n_components=40, random_state=0)
    clf.partial_fit(X[TASKS[0]], Y[TASKS[0]])
    ridge, mse = clf.ridge_, clf.ridge_mse_.copy()
    clf.partial_fit(X[TASKS[1]], Y[TASKS[1]])
    assert clf.ridge_ == ridge
    assert_array_equal(clf.ridge_mse_, mse)
    # Official behaviour: select again on the batch alone, solve the accumulated G.
    re = RanPAC(n_components=40, reselect_ridge=True, random_state=0)
    re.partial_fit(X[TASKS[0]], Y[TASKS[0]]).partial_fit(X[TASKS[1]], Y[TASKS[1]])
    expected = _ridge_path_mse(X[TASKS[1]], Y[TASKS[1]], re.projection_,
                               check_random_state(0))
    assert_allclose(re.ridge_mse_, expected)
    assert re.ridge_ == RIDGE_GRID[np.argmin(expected)]
    assert_allclose(re.coef_, re.statistics_.ridge_coefficients(re.ridge_))


@pytest.mark.parametrize("n_parts", [2, 5])
def test_any_split_into_partial_fit_equals_fit(n_parts):
    order = np.random.default_rng(1).permutation(len(X))
    full = RanPAC(n_components=64, ridge=0.7, random_state=0).fit(X, Y)
    inc = RanPAC(n_components=64, ridge=0.7, random_state=0)
    for part in np.array_split(order, n_parts):
        inc.partial_fit(X[part], Y[part])
    assert_array_equal(inc.classes_, full.classes_)
    assert_allclose(inc.statistics_.gram, full.statistics_.gram, rtol=1e-12)
    assert_allclose(inc.coef_, full.coef_, rtol=1e-9, atol=1e-12)
    assert_array_equal(inc.predict(X), full.predict(X))


def test_classes_arriving_out_of_order_are_sorted():
    labels = np.array(["z", "m", "a", "q", "c", "b"])[Y]
    clf = RanPAC(n_components=40, ridge=1.0, random_state=0)
    for task in TASKS[::-1]:
        clf.partial_fit(X[task], labels[task])
    assert_array_equal(clf.classes_, np.sort(np.unique(labels)))
    ref = RanPAC(n_components=40, ridge=1.0, random_state=0).fit(X, labels)
    assert_allclose(clf.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    assert np.mean(clf.predict(X) == labels) > 0.9


def test_from_statistics_equals_fit_and_continues():
    ref = RanPAC(n_components=32, ridge=2.0, random_state=0).fit(X, Y)
    parts = [GramStatistics.from_batch(X[p], Y[p], ref.projection_)
             for p in np.array_split(np.arange(len(X)), 3)]
    stats = parts[0].merge(parts[1]).merge(parts[2])
    clf = RanPAC.from_statistics(stats, ref.projection_, ridge=2.0)
    assert clf.n_features_in_ == 10
    assert_allclose(clf.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="numeric ridge"):
        RanPAC.from_statistics(stats, ref.projection_)
    with pytest.raises(TypeError, match="GramStatistics"):
        RanPAC.from_statistics("stats", ref.projection_, ridge=1.0)


@pytest.mark.skipif(not torch_installed, reason="needs torch")
def test_torch_backend_gives_the_same_model():
    params = dict(n_components=48, random_state=0)
    ref = RanPAC(**params).fit(X.astype(np.float32), Y)
    with config_context(backend="torch", device="cpu", working_memory=0.01):
        clf = RanPAC(**params).fit(X.astype(np.float32), Y)
        scores = clf.decision_function(X.astype(np.float32))
    assert clf.ridge_ == ref.ridge_
    assert_allclose(clf.statistics_.gram, ref.statistics_.gram, rtol=1e-6)
    assert_allclose(scores, ref.decision_function(X.astype(np.float32)), rtol=1e-4,
                    atol=1e-4)


def test_binary_decision_function_and_bad_input():
    clf = RanPAC(n_components=16, ridge=1.0, random_state=0).fit(X[Y < 2], Y[Y < 2])
    S = clf.decision_function(X)
    assert S.shape == (len(X),)
    assert_array_equal(clf.predict(X), clf.classes_[(S > 0).astype(int)])
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :4], Y)
    with pytest.raises(ValueError):
        RanPAC(ridge=-1.0).fit(X, Y)


def test_rank_deficient_first_task_skips_ridges_too_small_to_solve():
    # 40 samples, 300 components: G has rank <= 40. The exact (eigendecomposition)
    # selection could prefer a ridge whose solve of G + ridge I is numerically
    # meaningless; such candidates are skipped, and the head is then accurate.
    small = np.isin(Y, [0, 1])
    Xs, ys = X[small][::2] * 10, Y[small][::2]
    clf = RanPAC(n_components=300, random_state=0).fit(Xs, ys)
    H = np.maximum(Xs @ clf.projection_, 0)
    random_state = check_random_state(0)
    random_state.standard_normal((10, 300))  # the projection, then the shuffling
    train = random_state.permutation(len(Xs))[: int(0.8 * len(Xs))]
    floor = 1e-10 * np.linalg.eigvalsh(H[train] @ H[train].T).max()
    skipped = RIDGE_GRID < floor
    assert skipped.any() and clf.ridge_ >= floor
    assert np.isinf(clf.ridge_mse_[skipped]).all()
    assert np.isfinite(clf.ridge_mse_[~skipped]).all()
    # The solved head equals the exact (dual) ridge solution H^T (H H^T + l I)^{-1} Y.
    exact = H.T @ np.linalg.solve(H @ H.T + clf.ridge_ * np.eye(len(Xs)),
                                  np.eye(2)[ys])
    assert_allclose(clf.coef_, exact.T, rtol=1e-5, atol=1e-8 * np.abs(exact).max())
    assert clf.score(X[small], Y[small]) > 0.9
