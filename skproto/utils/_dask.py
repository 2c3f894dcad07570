"""Recognise Dask collections without importing dask; reach the Dask adapters lazily.

The estimators route a Dask array to :mod:`skproto.dask` with a one-line check at the
top of ``fit`` / ``partial_fit`` / ``predict`` / ``score``; nothing here (nor anywhere
in the core) imports dask, so ``import skproto`` and every in-memory fit stay free of
it.
"""


def is_dask_collection(obj):
    """True for a Dask collection (array, DataFrame, Delayed), by the type's module only."""
    module = type(obj).__module__ or ""
    return module == "dask" or module.startswith("dask.")


def dask_adapters():
    """The module of the Dask adapters (:mod:`skproto.dask._adapters`), imported now."""
    from ..dask import _adapters

    return _adapters


def not_a_reduction(estimator, why, alternative):
    """The TypeError for a fit on a Dask array that cannot be a distributed reduction."""
    return TypeError(
        f"{type(estimator).__name__} cannot fit on a Dask array: {why} Alternatives: "
        f"{alternative}"
    )
