"""A meta-estimator that runs an incremental protocol in ``fit`` and scores it.

scikit-learn's searches (``GridSearchCV``, ``RandomizedSearchCV``) call ``fit`` once per
training fold and ``score`` once per test fold. Wrapping an incremental estimator in
:class:`IncrementalProtocolEstimator` makes that ``fit`` the whole stream of a protocol
(base session, then the incremental sessions) and that ``score`` a protocol metric, so
the searches tune the estimator on the protocol it will be used in.
"""

import copy

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
)
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._base import check_label_kinds
from ..metrics import (
    average_incremental_accuracy,
    forgetting,
    harmonic_mean_accuracy,
    performance_drop,
)
from ..utils._state import reset_fitted_state, transactional
from ._validation import _check_test_data, _protocol_steps, _run_stream, _StepScorer


def _average_incremental_accuracy(res):
    return average_incremental_accuracy(res.accuracy)


def _last_accuracy(res):
    return float(res.accuracy[-1])


def _harmonic_mean(res):
    return float(harmonic_mean_accuracy(res.accuracy_base[-1], res.accuracy_novel[-1]))


def _neg_performance_drop(res):
    return -performance_drop(res.accuracy)


def _neg_forgetting(res):
    return -forgetting(res.accuracy_matrix)


# Higher is better for every one of them, as scikit-learn's scorers (hence "neg_").
SCORINGS = {
    "average_incremental_accuracy": _average_incremental_accuracy,
    "last_accuracy": _last_accuracy,
    "harmonic_mean": _harmonic_mean,
    "neg_performance_drop": _neg_performance_drop,
    "neg_forgetting": _neg_forgetting,
}


def _estimator_has(attr):
    """``available_if`` check: the fitted model (or else the template) has ``attr``."""

    def check(self):
        model = self.estimator_ if hasattr(self, "estimator_") else self.estimator
        return hasattr(model, attr)

    return check


class IncrementalProtocolEstimator(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fit = run an incremental protocol; score = a protocol metric. For GridSearchCV.

    Tuning an incremental method with plain cross-validation tunes the wrong thing:
    ``GridSearchCV(TEENCalibrator(), ...)`` fits every class at once, so every class is
    a base class, nothing is calibrated and every ``alpha`` scores the same. Wrapped
    in this meta-estimator, the estimator is trained the way it will be used:

    - :meth:`fit` cuts the training data into steps with ``splitter`` (e.g.
      :class:`FewShotIncrementalSplit` for the few-shot protocol) and runs the stream
      as :func:`evaluate_incremental` does (``fit`` on a clone with the first step,
      ``partial_fit`` with each later one), keeping a copy of the model after every
      step;
    - :meth:`score` tests each step's model on the samples of ``X`` whose classes
      were seen by that step and returns the protocol metric ``scoring`` (higher is
      better); :meth:`evaluate` returns all the per-step accuracies;
    - :meth:`predict` and friends use the model after the last step.

    So ``GridSearchCV(IncrementalProtocolEstimator(est, splitter=...), {"estimator__alpha":
    [...]})`` runs, for every candidate and every cross-validation fold, the whole
    protocol on the training fold and scores it on the test fold. Keep the search's
    own ``scoring=None`` (it then calls :meth:`score`) and an ordinary ``cv`` (an
    int gives stratified folds, as for any classifier: every class is in every fold).
    Give the splitter an integer ``random_state``: then every candidate sees the same
    class order and the same shots on a given fold.

    Parameters
    ----------
    estimator : estimator
        The incremental classifier to run (cloned): a skproto estimator, or any
        classifier with ``fit`` / ``partial_fit`` / ``predict`` that
        :func:`evaluate_incremental` accepts (scikit-learn's ``partial_fit``
        classifiers included). Its parameters are tuned as ``estimator__<name>``.
    splitter : object
        The protocol: :class:`ClassIncrementalSplit`, :class:`FewShotIncrementalSplit`
        or any object whose ``split(X, y)`` yields ``(train_index, new_classes)`` per
        step. Applied to the data given to :meth:`fit` (a training fold inside a
        search), so its class counts must fit the classes of a fold.
    scoring : str or callable, default="average_incremental_accuracy"
        What :meth:`score` returns, from the per-step results of :meth:`evaluate`:

        - ``"average_incremental_accuracy"``: mean over steps of the accuracy on all
          seen classes (iCaRL; the usual class-incremental summary);
        - ``"last_accuracy"``: accuracy on all classes after the last step;
        - ``"harmonic_mean"``: harmonic mean of the base-class and novel-class
          accuracies after the last session (FSCIL, TEEN); NaN with a single step;
        - ``"neg_performance_drop"``: minus (first - last step accuracy);
        - ``"neg_forgetting"``: minus the average forgetting
          (:func:`~skproto.metrics.forgetting`);
        - a callable ``scoring(results) -> float``, ``results`` being the
          :class:`~sklearn.utils.Bunch` of :meth:`evaluate`.

    Attributes
    ----------
    estimators_ : list of estimators
        The model after each step (copies), ``estimators_[t]`` after step ``t``.
    estimator_ : estimator
        The model after the last step (``estimators_[-1]``); used to predict.
    new_classes_ : list of ndarray
        The classes each step introduced.
    n_seen_classes_ : ndarray of shape (n_steps,)
        Number of classes seen after each step.
    fit_time_ : ndarray of shape (n_steps,)
        Seconds spent training each step.
    classes_ : ndarray of shape (n_classes,)
        The classes of the last model (``estimator_.classes_``).
    n_features_in_ : int
        Number of features of the last model, when it has ``n_features_in_``.

    See Also
    --------
    evaluate_incremental : The same protocol, with separate train and test sets,
        without a search.

    Examples
    --------
    Tune TEEN's calibration strength on a few-shot protocol:

    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skproto import TEENCalibrator
    >>> from skproto.model_selection import (FewShotIncrementalSplit,
    ...                                      IncrementalProtocolEstimator)
    >>> X, y = load_digits(return_X_y=True)
    >>> protocol = IncrementalProtocolEstimator(
    ...     TEENCalibrator(),
    ...     splitter=FewShotIncrementalSplit(5, n_ways=1, n_shots=1, random_state=0),
    ...     scoring="harmonic_mean",
    ... )
    >>> search = GridSearchCV(protocol, {"estimator__alpha": [0.0, 0.25, 0.5]}, cv=3)
    >>> search = search.fit(X, y)
    >>> search.best_params_
    {'estimator__alpha': 0.5}
    >>> search.cv_results_["mean_test_score"].round(3)
    array([0.614, 0.687, 0.699])
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"])],
        "splitter": [HasMethods(["split"])],
        "scoring": [StrOptions(set(SCORINGS)), callable],
    }

    def __init__(self, estimator, *, splitter, scoring="average_incremental_accuracy"):
        self.estimator = estimator
        self.splitter = splitter
        self.scoring = scoring

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The data goes to the wrapped estimator untouched (it may be a pipeline that
        # takes images or texts): accept what it accepts.
        inner = get_tags(self.estimator)
        tags.input_tags = copy.deepcopy(inner.input_tags)
        return tags

    # The wrapped estimator validates its own parameters when the stream fits it.
    @_fit_context(prefer_skip_nested_validation=False)
    @transactional
    def fit(self, X, y):
        """Run the protocol's stream of steps on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (anything the wrapped estimator accepts: it is passed
            through, indexed by rows).
        y : array-like of shape (n_samples,)
            Class labels; the splitter cuts the classes into steps.

        Returns
        -------
        self : object
            Fitted meta-estimator.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        reset_fitted_state(self)
        # Before column_or_1d, which turns a list such as [0, "a"] into strings.
        check_label_kinds(y)
        y = column_or_1d(y, warn=True)
        X, y, steps = _protocol_steps(X, y, self.splitter)
        models, fit_time = [], []
        for model, _, seconds in _run_stream(self.estimator, X, y, steps):
            # partial_fit changes the model in place: keep each step's state.
            models.append(copy.deepcopy(model))
            fit_time.append(seconds)
        self.estimators_ = models
        self.estimator_ = models[-1]
        self.new_classes_ = [classes for _, classes in steps]
        self.n_seen_classes_ = np.cumsum([len(c) for c in self.new_classes_])
        self.fit_time_ = np.asarray(fit_time)
        self.classes_ = getattr(self.estimator_, "classes_", None)
        if self.classes_ is None:
            self.classes_ = np.unique(np.concatenate(self.new_classes_))
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        if hasattr(self.estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.estimator_.feature_names_in_
        return self

    def evaluate(self, X, y):
        """Accuracies of each step's model on the samples of the classes it had seen.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test data. Samples of classes that no step introduced are ignored.
        y : array-like of shape (n_samples,)
            Their labels.

        Returns
        -------
        results : :class:`~sklearn.utils.Bunch`
            The per-step entries of :func:`evaluate_incremental` (``accuracy``,
            ``accuracy_old``, ``accuracy_new``, ``accuracy_base``, ``accuracy_novel``,
            ``accuracy_matrix``, ``n_seen_classes``, ``new_classes``,
            ``predict_time``) plus ``fit_time`` (from :meth:`fit`) and
            ``estimator_name``; it can be given to
            :meth:`IncrementalAccuracyDisplay.from_results`.

        Examples
        --------
        >>> import numpy as np
        >>> from skproto import NearestMeanClassifier
        >>> from skproto.model_selection import (ClassIncrementalSplit,
        ...                                      IncrementalProtocolEstimator)
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat(np.arange(4), 10)
        >>> X = 5 * rng.normal(size=(4, 3))[y] + rng.normal(size=(40, 3))
        >>> protocol = IncrementalProtocolEstimator(
        ...     NearestMeanClassifier(), splitter=ClassIncrementalSplit(2, increment=1)
        ... ).fit(X, y)
        >>> res = protocol.evaluate(X, y)
        >>> res.n_seen_classes, res.accuracy.round(3)
        (array([2, 3, 4]), array([0.9  , 0.933, 0.925]))
        """
        check_is_fitted(self)
        X, y = _check_test_data(X, y)
        scorer = _StepScorer(self.new_classes_, X, y)
        for t, model in enumerate(self.estimators_):
            scorer.score_step(t, model)
        results = scorer.results()
        results.fit_time = self.fit_time_.copy()
        results.estimator_name = type(self.estimator).__name__
        return results

    def score(self, X, y):
        """The protocol metric ``scoring`` on ``(X, y)`` (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test data.
        y : array-like of shape (n_samples,)
            Their labels.

        Returns
        -------
        score : float
            ``scoring`` computed from :meth:`evaluate`'s results.
        """
        metric = self.scoring if callable(self.scoring) else SCORINGS[self.scoring]
        return float(metric(self.evaluate(X, y)))

    def predict(self, X):
        """Predict with the model after the last step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the model after the last step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities of the model after the last step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Decision scores of the model after the last step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

