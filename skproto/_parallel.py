"""Carry skproto's configuration into the joblib workers that scikit-learn starts.

scikit-learn's :class:`sklearn.utils.parallel.Parallel` captures scikit-learn's
thread-local configuration when it is called and re-enables it around every task
(:func:`sklearn.utils.parallel.delayed` wraps the task for that). Everything that
scikit-learn runs in parallel goes through it: ``GridSearchCV``, ``cross_validate``,
``OneVsRestClassifier``, ... and with any joblib backend (loky processes, threads,
dask). skproto's configuration is thread-local too, so without help a worker would
run on the defaults.

:func:`install` extends ``Parallel.__call__`` once, at import of skproto, to do the
same for skproto's configuration: each task is wrapped in :class:`_WithSkprotoConfig`,
which is picklable (for process workers) and enables the captured settings with
:func:`skproto.config_context` for the duration of the task only. Only the
configuration travels; nothing else of scikit-learn's behaviour changes.
"""

import functools

_INSTALLED_FLAG = "_skproto_config_propagation"


class _WithSkprotoConfig:
    """A joblib task (a callable) run under a captured skproto configuration."""

    def __init__(self, function, config):
        self.function = function
        self.config = config

    def __getattr__(self, name):
        # scikit-learn's Parallel calls ``with_config_and_warning_filters`` (or, in
        # older versions, ``with_config``) on its own task wrapper; forward those.
        if name in ("function", "config"):
            raise AttributeError(name)
        attribute = getattr(self.function, name)
        if name.startswith("with_config") and callable(attribute):

            @functools.wraps(attribute)
            def attach(*args, **kwargs):
                self.function = attribute(*args, **kwargs)
                return self

            return attach
        return attribute

    def __call__(self, *args, **kwargs):
        from ._config import config_context

        with config_context(**self.config):
            return self.function(*args, **kwargs)


def install():
    """Make ``sklearn.utils.parallel.Parallel`` carry skproto's configuration (idempotent)."""
    from sklearn.utils import parallel

    call = parallel.Parallel.__call__
    if getattr(call, _INSTALLED_FLAG, False):
        return

    @functools.wraps(call)
    def __call__(self, iterable):
        from ._config import get_config

        # Captured here, in the calling thread, as scikit-learn captures its own.
        config = get_config()
        return call(
            self,
            ((_WithSkprotoConfig(task, config), args, kwargs) for task, args, kwargs in iterable),
        )

    setattr(__call__, _INSTALLED_FLAG, True)
    parallel.Parallel.__call__ = __call__
