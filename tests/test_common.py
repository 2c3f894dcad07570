"""scikit-learn's estimator checks over every public skproto estimator.

Estimators are discovered (``skproto.utils.discovery.all_estimators``), so a new one is
checked without being listed here. Expected failures go in ``EXPECTED_FAILED_CHECKS``
with the reason.
"""

import inspect

import pytest
from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

import skproto
from skproto.utils.discovery import all_estimators

# {estimator class name: {check name: reason}}
EXPECTED_FAILED_CHECKS = {}

# Constructor arguments that make an estimator fast or valid for the checks' tiny data.
CHECK_PARAMS = {
    "MixturePrototypeOODDetector": {"max_iter": 5},
}


def _instances():
    for name, cls in all_estimators():
        yield cls(**CHECK_PARAMS.get(name, {}))


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(list(_instances()), expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_every_exported_estimator_is_checked():
    exported = {
        name
        for name in skproto.__all__
        if inspect.isclass(getattr(skproto, name))
        and issubclass(getattr(skproto, name), BaseEstimator)
    }
    assert exported, "skproto exports no estimator"
    assert exported <= set(dict(all_estimators()))
