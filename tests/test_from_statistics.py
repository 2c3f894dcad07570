"""Estimators built from ClassStatistics computed elsewhere equal a fit on all the data."""

import functools
import inspect

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skproto import NearestMeanClassifier, TEENCalibrator
from skproto.statistics import ClassStatistics
from skproto.utils import all_estimators

rng = np.random.default_rng(0)
CENTERS = 3 * rng.normal(size=(6, 8))
Y = rng.integers(0, 6, 600)
X = (CENTERS[Y] + rng.normal(size=(600, 8))).astype(np.float32)


def _per_partition(X, y, n_parts=5, moments=None):
    return [
        ClassStatistics.from_batch(Xp, yp, moments=moments)
        for Xp, yp in zip(np.array_split(X, n_parts), np.array_split(y, n_parts))
    ]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("moments", [None, "full"])
def test_nearest_mean_from_merged_partitions_equals_fit(metric, moments):
    stats = functools.reduce(ClassStatistics.merge, _per_partition(X, Y, moments=moments))
    clf = NearestMeanClassifier.from_statistics(stats, metric=metric)
    ref = NearestMeanClassifier(metric=metric).fit(X, Y)
    assert clf.prototypes_.dtype == np.float32 and clf.n_features_in_ == 8
    assert_array_equal(clf.classes_, ref.classes_)
    assert_allclose(clf.prototypes_, ref.prototypes_, rtol=1e-6)
    assert_array_equal(clf.predict(X), ref.predict(X))
    # And partial_fit continues from the statistics exactly.
    X_new = X[:50] + 10
    y_new = np.full(50, 9)
    clf.partial_fit(X_new, y_new)
    ref = NearestMeanClassifier(metric=metric).fit(np.vstack([X, X_new]), np.r_[Y, y_new])
    assert_allclose(clf.prototypes_, ref.prototypes_, rtol=1e-6)


def test_teen_from_statistics_with_base_classes_equals_the_sessions():
    base = Y < 4
    ref = TEENCalibrator(alpha=0.4).fit(X[base], Y[base]).partial_fit(X[~base], Y[~base])
    stats = ClassStatistics.from_batch(X, Y)
    clf = TEENCalibrator.from_statistics(stats, base_classes=[0, 1, 2, 3], alpha=0.4)
    assert_array_equal(clf.is_base_class_, ref.is_base_class_)
    assert_allclose(clf.prototypes_, ref.prototypes_, rtol=1e-6, atol=1e-7)
    all_base = TEENCalibrator.from_statistics(stats)
    assert all_base.is_base_class_.all()
    with pytest.raises(ValueError, match="base_classes"):
        TEENCalibrator.from_statistics(stats, base_classes=[0, 42])


@pytest.mark.parametrize("cls", [NearestMeanClassifier, TEENCalibrator])
def test_from_statistics_refuses_bad_input(cls):
    with pytest.raises(TypeError, match="ClassStatistics"):
        cls.from_statistics({"classes": [0]})
    with pytest.raises(ValueError, match="at least one class"):
        cls.from_statistics(ClassStatistics.empty(3))
    with pytest.raises(ValueError, match="temperature"):
        cls.from_statistics(ClassStatistics.from_batch(X, Y), temperature=-1)


@pytest.mark.parametrize("name, cls", all_estimators(), ids=lambda v: getattr(v, "__name__", v))
def test_parameters_after_the_first_are_keyword_only(name, cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[1:]), name
