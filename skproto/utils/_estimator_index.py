"""The index of skproto's public estimators (for the common tests and the docs)."""

import importlib
import inspect
import pkgutil

from sklearn.base import BaseEstimator

_SKIP_MODULES = ("tests", "cli", "backend", "_config", "dask")


def all_estimators():
    """Public estimator classes of skproto, as sorted ``(name, class)`` pairs.

    Every non-private module of the package is imported and searched for
    :class:`sklearn.base.BaseEstimator` subclasses whose names do not start with an
    underscore or ``Base``. The common tests run scikit-learn's estimator checks over
    this list, so a new estimator is checked without being registered anywhere.

    Examples
    --------
    >>> from skproto.utils import all_estimators
    >>> ("NearestMeanClassifier" in dict(all_estimators()))
    True
    """
    import skproto

    found = {}
    for module in _modules(skproto.__path__, "skproto."):
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseEstimator)
                and obj.__module__.startswith("skproto.")
                and not name.startswith(("_", "Base"))
                and not inspect.isabstract(obj)
            ):
                found[name] = obj
    return sorted(found.items())


def _modules(path, prefix):
    """Import the modules under ``path``, skipping ``_SKIP_MODULES`` before importing.

    (``pkgutil.walk_packages`` imports every package to walk into it, so it would
    import the Dask adapters, and dask, to skip them.)
    """
    for info in pkgutil.iter_modules(path, prefix):
        if info.name.rsplit(".", 1)[-1] in _SKIP_MODULES:
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            # Optional dependency missing (e.g. open_clip): its estimators are skipped.
            continue
        yield module
        if info.ispkg:
            yield from _modules(module.__path__, info.name + ".")
