"""Every public kernel validates its input, naming the argument; estimators skip it."""

import numpy as np
import pytest

from skproto import NearestMeanClassifier, SemiSupervisedGMM, TEENCalibrator, backend
from skproto.incremental import FeCAM, RanPAC
from skproto.ood import KNNOODDetector, MahalanobisOODDetector
from skproto.backend import _checks

rng = np.random.default_rng(0)
X = rng.normal(size=(6, 3))
P = rng.normal(size=(4, 3))
CODES = np.array([0, 1, 0, 1, 2, 2])
PREC = np.ones(2)
LOGW = np.log([0.5, 0.5])


def _with(A, value, index=(0, 0)):
    A = A.astype(np.result_type(A, type(value))).copy()
    A[index] = value
    return A


KERNELS = {
    "similarity": lambda X=X, P=P: backend.similarity(X, P),
    "assign": lambda X=X, P=P: backend.assign(X, P),
    "topk": lambda X=X, P=P: backend.topk(X, P, 2),
    "kth_similarity": lambda X=X, P=P: backend.kth_similarity(X, P, 2),
    "whitened_sq_distance": lambda X=X, P=P: backend.whitened_sq_distance(
        X, P[0], np.eye(P.shape[1])),
    "l2_normalize": lambda X=X, P=P: backend.l2_normalize(X),
    "group_sum": lambda X=X, P=P: backend.group_sum(X, CODES, 3, squares=True),
    "class_moments": lambda X=X, P=P: backend.class_moments(X, CODES, 3, moments="full"),
    "log_responsibilities": lambda X=X, P=P: backend.log_responsibilities(
        X, P[:2], PREC, LOGW, "spherical"),
    "mixture_em_statistics": lambda X=X, P=P: backend.mixture_em_statistics(
        X, P[:2], PREC, LOGW, "spherical"),
    "mixture_assign": lambda X=X, P=P: backend.mixture_assign(
        X, P[:2], PREC, LOGW, "spherical"),
    "mixture_em": lambda X=X, P=P: backend.mixture_em(
        X, P[:2], PREC, LOGW, "spherical", max_iter=2),
    "mixture_m_step": lambda X=X, P=P: backend.mixture_m_step(
        np.ones(len(X)), X, np.ones(len(X)), "spherical"),
    "semi_supervised_kmeans": lambda X=X, P=P: backend.semi_supervised_kmeans(
        X, P[:2], max_iter=2),
    "balanced_assignment": lambda X=X, P=P: backend.balanced_assignment(X, P),
    "balanced_prototypes": lambda X=X, P=P: backend.balanced_prototypes(X, P, max_iter=2),
    "sinkhorn": lambda X=X, P=P: backend.sinkhorn(X),
    "random_features": lambda X=X, P=P: backend.random_features(X, P.T),
    "random_feature_gram": lambda X=X, P=P: backend.random_feature_gram(X, P.T, CODES, 3),
    "random_feature_scores": lambda X=X, P=P: backend.random_feature_scores(X, P.T, P[:2]),
    "mahalanobis_sq_distances": lambda X=X, P=P: backend.mahalanobis_sq_distances(
        X, P, np.eye(P.shape[1])),
    "nearest_mahalanobis": lambda X=X, P=P: backend.nearest_mahalanobis(
        X, P, np.eye(P.shape[1])),
}
# Which argument a bad X / P shows up as, per kernel.
X_NAME = {"sinkhorn": "scores", "mixture_m_step": "sums"}
P_NAME = {"log_responsibilities": "means", "mixture_em_statistics": "means",
          "mixture_assign": "means", "mixture_em": "means",
          "semi_supervised_kmeans": "means",
          "whitened_sq_distance": "center", "mahalanobis_sq_distances": "means",
          "nearest_mahalanobis": "means", "random_features": "W",
          "random_feature_gram": "W", "random_feature_scores": "W"}
TAKES_P = {"similarity", "assign", "topk", "kth_similarity", "log_responsibilities",
           "mixture_assign", "mixture_em", "semi_supervised_kmeans",
           "mixture_em_statistics", "balanced_assignment", "balanced_prototypes",
           "whitened_sq_distance",
           "mahalanobis_sq_distances", "nearest_mahalanobis", "random_features",
           "random_feature_gram", "random_feature_scores"}


def test_every_public_kernel_is_covered():
    public = {name for name in backend.__all__ if callable(getattr(backend, name))}
    assert public == set(KERNELS)


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused(name, bad):
    kernel = KERNELS[name]
    with pytest.raises(ValueError, match=rf"^{X_NAME.get(name, 'X')} must be finite"):
        kernel(X=_with(X, bad))
    if name in TAKES_P:
        with pytest.raises(ValueError, match=rf"^{P_NAME.get(name, 'P')} must be finite"):
            kernel(P=_with(P, bad, (0, 0)))


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_complex_input_is_a_type_error_not_a_silent_cast(name):
    with pytest.raises(TypeError, match=rf"^{X_NAME.get(name, 'X')} must hold real numbers"):
        KERNELS[name](X=X + 1j)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_zero_features_is_refused(name):
    with pytest.raises(ValueError, match="at least one feature"):
        KERNELS[name](X=X[:, :0], P=P[:, :0])


@pytest.mark.parametrize("kernel", [backend.topk, backend.kth_similarity])
@pytest.mark.parametrize("k, error", [(1.9, TypeError), (True, TypeError), (0, ValueError),
                                      (5, ValueError), ("2", TypeError)])
def test_k_must_be_an_integer_in_range(kernel, k, error):
    with pytest.raises(error, match="^k must be"):
        kernel(X, P, k)
    assert kernel(X, P, np.int64(2)) is not None  # numpy integers are integers


@pytest.mark.parametrize("kernel", [
    backend.group_sum, backend.class_moments,
    lambda X, codes, n: backend.random_feature_gram(X, P.T, codes, n)])
@pytest.mark.parametrize("n_groups, error", [(2.5, TypeError), (3.0, TypeError),
                                             (0, ValueError)])
def test_n_groups_must_be_an_integer(kernel, n_groups, error):
    with pytest.raises(error, match="^n_groups must be"):
        kernel(X, CODES, n_groups)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"epsilon": 0}, ValueError, "^epsilon"), ({"epsilon": np.inf}, ValueError, "^epsilon"),
    ({"n_iter": 2.5}, TypeError, "^n_iter"), ({"n_iter": -1}, ValueError, "^n_iter"),
])
def test_sinkhorn_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        backend.sinkhorn(X, **kwargs)
    with pytest.raises(error, match=match):
        backend.balanced_assignment(X, P, **kwargs)
    with pytest.raises(error, match=match):
        backend.balanced_prototypes(X, P, **kwargs)
    with pytest.raises(TypeError, match="^top_k"):
        backend.balanced_assignment(X, P, top_k=1.5)
    with pytest.raises(TypeError, match="^top_k"):
        backend.balanced_prototypes(X, P, top_k=1.5)


def test_check_input_false_is_the_unchecked_layer():
    # The caller promises valid input: no finiteness pass (NaN flows through).
    S = backend.similarity(_with(X, np.nan), P, check_input=False)
    assert np.isnan(S[0]).all()


def test_estimators_do_not_validate_twice(monkeypatch):
    calls = []
    real = _checks._check_real_finite
    monkeypatch.setattr(_checks, "_check_real_finite",
                        lambda A, name: (calls.append(name), real(A, name)))
    y = np.array([0, 1, 0, 1, 2, 2])
    for clf in (NearestMeanClassifier(), NearestMeanClassifier("euclidean"),
                TEENCalibrator(), RanPAC(50, ridge=1.0, random_state=0), FeCAM()):
        clf.fit(X, y)
        clf.predict(X)
    for detector in (MahalanobisOODDetector(), KNNOODDetector()):
        detector.fit(X, y).score_samples(X)
    gmm = SemiSupervisedGMM(3, max_iter=3, random_state=0).fit(X, y)
    gmm.predict(X), gmm.score_samples(X)
    assert calls == []
