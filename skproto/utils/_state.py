"""Helpers that keep an estimator's fitted state consistent across failed calls."""

from contextlib import contextmanager


@contextmanager
def rollback_on_error(estimator):
    """Restore ``estimator.__dict__`` as it was if the block raises.

    The snapshot is shallow, so the block must replace fitted arrays rather than
    write into them; every estimator in skproto builds its new state in local
    variables and assigns it at the end, and this guard also undoes what
    ``validate_data(reset=True)`` sets (``n_features_in_``, ``feature_names_in_``)
    before a later check fails.
    """
    snapshot = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(snapshot)
        raise
