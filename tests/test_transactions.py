"""A failed fit / partial_fit leaves every fitted attribute bit for bit as it was.

For every estimator: a refit or update on bad input, and an interrupt raised from
inside a backend kernel at its first, second, ... call.
"""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from skproto import (
    FeCAM,
    FeTrIL,
    KNNOODDetector,
    MahalanobisOODDetector,
    MixturePrototypeOODDetector,
    NearestMeanClassifier,
    RanPAC,
    SemiSupervisedGMM,
    TEENCalibrator,
)
from skproto.backend import _distances, _mixture, _statistics, _transport

# The deprecated PALM Mahalanobis score is one of the factories.
pytestmark = pytest.mark.filterwarnings("ignore:ood_score=:FutureWarning")

rng = np.random.default_rng(0)
CENTERS = 4 * rng.normal(size=(4, 5))
X = np.repeat(CENTERS, 15, axis=0) + rng.normal(size=(60, 5))
Y = np.repeat(np.arange(4), 15)
X_NEW = np.repeat(CENTERS[:2] + 1, 5, axis=0) + rng.normal(size=(10, 5))
Y_NEW = np.repeat([4, 5], 5)  # classes never seen


def _gmm_y(y):
    y = np.asarray(y).copy()
    y[::3] = -1  # a third unlabelled
    return y


FACTORIES = {
    "NearestMeanClassifier": (lambda: NearestMeanClassifier(), Y),
    "NearestMeanClassifier-prior": (
        lambda: NearestMeanClassifier(init_prototypes=CENTERS[:2], init_counts=3), Y
    ),
    "NearestMeanClassifier-euclidean": (lambda: NearestMeanClassifier("euclidean"), Y),
    "TEENCalibrator": (lambda: TEENCalibrator(alpha=0.3), Y),
    "FeTrIL": (lambda: FeTrIL(), Y),
    "SemiSupervisedGMM": (lambda: SemiSupervisedGMM(4, max_iter=5, random_state=0), _gmm_y(Y)),
    "SemiSupervisedGMM-auto": (
        lambda: SemiSupervisedGMM("auto", max_iter=5, max_move_rounds=2, random_state=0),
        _gmm_y(Y),
    ),
    "MixturePrototypeOODDetector": (
        lambda: MixturePrototypeOODDetector(2, max_iter=3, random_state=0), Y
    ),
    "MixturePrototypeOODDetector-maha": (
        lambda: MixturePrototypeOODDetector(2, max_iter=3, ood_score="mahalanobis",
                                            random_state=0), Y
    ),
    "RanPAC": (lambda: RanPAC(n_components=16, random_state=0), Y),
    "RanPAC-reselect": (
        lambda: RanPAC(n_components=16, reselect_ridge=True, random_state=0), Y
    ),
    "FeCAM": (lambda: FeCAM(), Y),
    "FeCAM-pooled": (lambda: FeCAM("pooled", offdiag_shrinkage=1.0), Y),
    "MahalanobisOODDetector": (lambda: MahalanobisOODDetector(), Y),
    "MahalanobisOODDetector-ssd-lw": (
        lambda: MahalanobisOODDetector("ssd", covariance="ledoit-wolf"), Y
    ),
    # Labels are ignored by KNN+: it is fitted without them.
    "KNNOODDetector": (lambda: KNNOODDetector(), None),
}
HAS_PARTIAL_FIT = [name for name, (make, _) in FACTORIES.items()
                   if hasattr(make(), "partial_fit")]

BAD_INPUTS = {
    "nan": lambda y: (np.where(np.arange(60)[:, None] == 3, np.nan, X), y),
    "inf": lambda y: (np.where(np.arange(60)[:, None] == 7, np.inf, X), y),
    "n_features": lambda y: (X[:, :3], y),
    "empty": lambda y: (X[:0], y[:0]),
    "1d": lambda y: (X[:, 0], y),
    "complex": lambda y: (X + 1j, y),
    "strings": lambda y: (X.astype(str).astype(object) + "x", y),
    "y_length": lambda y: (X, y[:-1]),
    "y_continuous": lambda y: (X, np.linspace(0, 1, 60)),
}


def _snapshot(estimator):
    return pickle.dumps(vars(estimator))


def _predictions(estimator):
    if hasattr(estimator, "score_samples"):
        return estimator.score_samples(X)
    return estimator.predict(X)


def _fitted(name):
    make, y = FACTORIES[name]
    return make().fit(X, y), y


def _cases(bad_inputs, names):
    """(name, bad) pairs; label errors only for estimators fitted with labels."""
    return [(name, bad) for name in sorted(names) for bad in sorted(bad_inputs)
            if not (FACTORIES[name][1] is None and bad.startswith("y_"))]


def _bad(bad, y):
    """The bad (X, y) of a case; y stays None for estimators fitted without labels."""
    X_bad, y_bad = BAD_INPUTS[bad](np.zeros(60) if y is None else y)
    return X_bad, None if y is None else y_bad


# A refit may change the number of features: that one is bad only for partial_fit.
@pytest.mark.parametrize("name, bad", _cases(set(BAD_INPUTS) - {"n_features"}, FACTORIES))
def test_failed_refit_keeps_the_earlier_fit(name, bad):
    estimator, y = _fitted(name)
    before, predicted = _snapshot(estimator), _predictions(estimator)
    X_bad, y_bad = _bad(bad, y)
    with pytest.raises((ValueError, TypeError)):
        estimator.fit(X_bad, y_bad)
    assert _snapshot(estimator) == before
    assert_array_equal(_predictions(estimator), predicted)


@pytest.mark.parametrize("name, bad", _cases(BAD_INPUTS, HAS_PARTIAL_FIT))
def test_failed_partial_fit_keeps_the_model(name, bad):
    estimator, y = _fitted(name)
    estimator.partial_fit(X_NEW, None if y is None else Y_NEW)
    before, predicted = _snapshot(estimator), _predictions(estimator)
    X_bad, y_bad = _bad(bad, y)
    with pytest.raises((ValueError, TypeError)):
        estimator.partial_fit(X_bad, y_bad)
    assert _snapshot(estimator) == before
    assert_array_equal(_predictions(estimator), predicted)


class _Interrupt:
    """Stands for a kernel module: the ``n``-th kernel call raises KeyboardInterrupt."""

    def __init__(self, real_kernels, n, counter):
        self.real_kernels, self.n, self.counter = real_kernels, n, counter

    def __call__(self, family):
        module = self.real_kernels(family)
        interrupt = self

        class Proxy:
            def __getattr__(self, name):
                function = getattr(module, name)

                def call(*args, **kwargs):
                    interrupt.counter[0] += 1
                    if interrupt.counter[0] == interrupt.n:
                        raise KeyboardInterrupt
                    return function(*args, **kwargs)

                return call

        return Proxy()


@pytest.fixture
def interrupt_at(monkeypatch):
    def install(n):
        counter = [0]
        for module in (_distances, _statistics, _mixture, _transport):
            monkeypatch.setattr(module, "kernels", _Interrupt(module.kernels, n, counter))
        return counter

    return install


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_interrupt_inside_a_kernel_leaves_the_model_untouched(name, method, n, interrupt_at):
    if method == "partial_fit" and name not in HAS_PARTIAL_FIT:
        pytest.skip("no partial_fit")
    estimator, y = _fitted(name)
    before, predicted = _snapshot(estimator), _predictions(estimator)
    counter = interrupt_at(n)
    args = (X, y) if method == "fit" else (X_NEW, None if y is None else Y_NEW)
    try:
        getattr(estimator, method)(*args)
    except KeyboardInterrupt:
        assert _snapshot(estimator) == before
    else:
        # The call made fewer than n kernel calls: nothing to interrupt.
        assert counter[0] < n
        return
    assert counter[0] == n
    # The model is intact and usable once the interrupt is over.
    counter[0] = -(10**9)
    assert_array_equal(_predictions(estimator), predicted)


def test_failed_teen_refit_keeps_prototypes():
    # The bug of the earlier code: the fitted attributes were deleted before the guard.
    t = TEENCalibrator().fit(X, Y)
    with pytest.raises(ValueError):
        t.fit([[np.nan, 0.0]] * 4, [0, 0, 1, 1])
    assert_array_equal(t.predict(X), TEENCalibrator().fit(X, Y).predict(X))


def test_failing_inner_classifier_keeps_fetril():
    class Exploding:
        def get_params(self, deep=True):
            return {}

        def set_params(self, **params):
            return self

        def fit(self, X, y):
            raise KeyboardInterrupt

        def predict(self, X):
            raise AssertionError

    clf = FeTrIL().fit(X, Y)
    before = _snapshot(clf)
    clf.classifier = Exploding()
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X_NEW, Y_NEW)
    clf.classifier = None
    assert _snapshot(clf) == before
