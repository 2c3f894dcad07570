"""scikit-learn's estimator checks over every public skproto estimator.

Estimators are discovered (``skproto.utils.all_estimators``), so a new one is
checked without being listed here. Expected failures go in ``EXPECTED_FAILED_CHECKS``
with the reason.
"""

import inspect

import pytest
from sklearn.base import BaseEstimator
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_repr,
    check_estimator_tags_renamed,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    check_valid_tag_types,
    parametrize_with_checks,
)

import skproto
from skproto import NearestMeanClassifier
from skproto.model_selection import ClassIncrementalSplit
from skproto.utils import all_estimators

# {estimator class name: {check name: reason}}
EXPECTED_FAILED_CHECKS = {}

_GMM_ONE_COMPONENT = (
    "the check sets n_components=1 and fits with a y of several classes; "
    "SemiSupervisedGMM reads y as labelled known classes (-1 = unlabelled) and "
    "rejects a fixed number of components smaller than the number of known classes "
    "with a ValueError; subset and order invariance are tested with a valid number of "
    "components in tests/test_semi_supervised_gmm.py"
)
EXPECTED_FAILED_CHECKS["SemiSupervisedGMM"] = {
    check: _GMM_ONE_COMPONENT
    for check in (
        "check_dont_overwrite_parameters",
        "check_fit2d_1feature",
        "check_fit2d_predict1d",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
    )
}

_KNN_LEAVE_ONE_OUT = (
    "KNNOODDetector sets offset_ from leave-one-out training scores (each training "
    "sample's k-th nearest *other* training sample: with k = 1 the in-sample scores "
    "would all be 1 and the threshold useless), so predict on the training set itself, "
    "where each sample is its own nearest neighbour, flags fewer than `contamination` "
    "of it, as LocalOutlierFactor(novelty=True) (which these checks skip through its "
    "`novelty` attribute); tests/test_ood_knn.py checks the fraction on the "
    "leave-one-out scores and the rest of these checks' assertions"
)
EXPECTED_FAILED_CHECKS["KNNOODDetector"] = {
    "check_outliers_train": _KNN_LEAVE_ONE_OUT,
    "check_outliers_fit_predict": _KNN_LEAVE_ONE_OUT,
}

# Constructor arguments that make an estimator fast or valid for the checks' tiny data.
CHECK_PARAMS = {
    # A meta-estimator: its estimator and protocol are required. One class per step,
    # so that the checks' two- and three-class data make a stream of several steps.
    "IncrementalProtocolEstimator": {
        "estimator": NearestMeanClassifier(),
        "splitter": ClassIncrementalSplit(increment=1),
    },
    "MixturePrototypeOODDetector": {"max_iter": 5},
    # The encoders take images / strings, not numeric 2-D arrays, and say so with
    # ``input_tags.two_d_array = False`` (as scikit-learn's text vectorizers do):
    # parametrize_with_checks then runs only check_estimator_cloneable on them, and
    # ``test_api_checks_without_numeric_data`` below runs the API checks that need no
    # data. Nothing here loads a model; tests/test_encoders.py checks fit / transform /
    # clone / pickle / Pipeline / GridSearchCV on a tiny open_clip model.
    "OpenCLIPImageEncoder": {"device": "cpu"},
    "OpenCLIPTextEncoder": {"device": "cpu"},
    "SemiSupervisedGMM": {"max_iter": 20, "max_move_rounds": 3},
    # The checks fit outlier detectors without labels, which the default relative
    # score refuses (one class: its score is 0); mds takes the same path otherwise.
    # tests/test_ood_mahalanobis.py covers rmds.
    "MahalanobisOODDetector": {"method": "mds"},
    # The default 10,000 components (RanPAC's) hold an 800 MB Gram matrix.
    "RanPAC": {"n_components": 64},
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


_NON_NUMERIC_INPUT = [
    est for est in _instances() if not get_tags(est).input_tags.two_d_array
]
_DATA_FREE_CHECKS = [
    check_estimator_tags_renamed,
    check_valid_tag_types,
    check_estimator_repr,
    check_no_attributes_set_in_init,
    check_do_not_raise_errors_in_init_or_set_params,
    check_mixin_order,
    check_parameters_default_constructible,
    check_get_params_invariance,
    check_set_params,
]


@pytest.mark.parametrize(
    "estimator", _NON_NUMERIC_INPUT, ids=lambda est: type(est).__name__
)
@pytest.mark.parametrize("check", _DATA_FREE_CHECKS, ids=lambda check: check.__name__)
def test_api_checks_without_numeric_data(estimator, check):
    # scikit-learn skips every check but cloning for estimators that do not take
    # numeric 2-D arrays; these API checks need no data, so run them anyway.
    check(type(estimator).__name__, estimator)
