"""One transactional mechanism: a failed fit or partial_fit leaves the model as it was."""

import functools
from contextlib import contextmanager


@contextmanager
def rollback_on_error(estimator):
    """Restore ``estimator.__dict__`` as it was if the block raises (anything at all).

    The snapshot is shallow, so the block must replace fitted arrays rather than
    write into them; every estimator in skproto builds its new state in local
    variables and assigns it at the end. ``BaseException`` is caught, so a
    ``KeyboardInterrupt`` in the middle of a kernel restores the model too, and so is
    what ``validate_data(reset=True)`` sets (``n_features_in_``,
    ``feature_names_in_``) before a later check fails.
    """
    snapshot = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(snapshot)
        raise


def transactional(method):
    """Decorate ``fit`` / ``partial_fit`` so that a failure restores every attribute.

    Use it under scikit-learn's ``@_fit_context``. A ``fit`` that resets the model
    (:func:`reset_fitted_state`) does so inside the transaction, so that a refit on
    bad input keeps the earlier fit.
    """

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with rollback_on_error(self):
            return method(self, *args, **kwargs)

    return wrapper


def reset_fitted_state(estimator):
    """Delete every fitted attribute (public names ending in ``_``) of ``estimator``."""
    for name in [n for n in vars(estimator) if n.endswith("_") and not n.startswith("_")]:
        delattr(estimator, name)
