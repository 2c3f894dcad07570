"""Global, thread-local configuration: which backend runs the hot path, on which device.

Modelled on :mod:`sklearn._config`: a process-wide default, a per-thread copy that
``set_config`` edits, and ``config_context`` to change settings for a ``with`` block.
"""

import importlib.util
import threading
from contextlib import contextmanager
from numbers import Real

_BACKENDS = ("numpy", "torch")
_DEVICES = ("cpu", "cuda", "auto")

_global_config = {
    "backend": "numpy",
    "device": "auto",
    "working_memory": 1024,
}
_threadlocal = threading.local()


def _get_threadlocal_config():
    """The calling thread's config dict, copied from the global defaults on first use."""
    if not hasattr(_threadlocal, "global_config"):
        _threadlocal.global_config = _global_config.copy()
    return _threadlocal.global_config


def get_config():
    """Return a copy of the current skproto configuration.

    Returns
    -------
    config : dict
        Keys are the parameters of :func:`set_config`.

    See Also
    --------
    config_context : Context manager to change the configuration temporarily.
    set_config : Set the configuration.

    Examples
    --------
    >>> import skproto
    >>> skproto.get_config()["backend"]
    'numpy'
    """
    return _get_threadlocal_config().copy()


def _torch_missing_error():
    return ImportError(
        "backend='torch' needs PyTorch, which is not installed. "
        "Install it with: pip install 'skproto[torch]'"
    )


def _torch_is_installed():
    return importlib.util.find_spec("torch") is not None


def _check_cuda_available():
    if not _torch_is_installed():
        raise ImportError(
            "device='cuda' needs PyTorch with CUDA support, and PyTorch is not installed. "
            "Install it with: pip install 'skproto[torch]'"
        )
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            "device='cuda' was requested but torch.cuda.is_available() is False on this "
            f"machine (torch {torch.__version__}). Use device='cpu' or device='auto'."
        )


def _validate(backend, device, working_memory):
    """Check the given (non-None) values; raise before anything is changed."""
    if backend is not None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}.")
        if backend == "torch" and not _torch_is_installed():
            raise _torch_missing_error()
    if device is not None:
        if device not in _DEVICES:
            raise ValueError(f"device must be one of {_DEVICES}, got {device!r}.")
        if device == "cuda":
            _check_cuda_available()
    if working_memory is not None:
        if (
            isinstance(working_memory, bool)
            or not isinstance(working_memory, Real)
            or not working_memory > 0
        ):
            raise ValueError(
                f"working_memory must be a positive number of MiB, got {working_memory!r}."
            )


def set_config(backend=None, device=None, working_memory=None):
    """Set skproto's configuration for the calling thread.

    Parameters
    ----------
    backend : {"numpy", "torch"}, default=None
        Library that runs the distance / assignment kernels. ``"numpy"`` (the default)
        needs nothing beyond the core dependencies. ``"torch"`` runs the same kernels
        with PyTorch on ``device``; it raises ``ImportError`` if PyTorch is missing.
        Estimators always take and return numpy arrays, whatever the backend.
    device : {"cpu", "cuda", "auto"}, default=None
        Where the torch backend computes. ``"auto"`` (the default) picks CUDA when
        ``torch.cuda.is_available()``, else the CPU. ``"cuda"`` fails at once if CUDA
        is not available. The numpy backend always computes on the CPU and ignores it.
    working_memory : float, default=None
        Upper bound, in MiB, on the temporary arrays of one chunk of a kernel
        (like scikit-learn's ``working_memory``). Default 1024.

    Parameters left to ``None`` keep their current value.

    See Also
    --------
    config_context : Context manager to change the configuration temporarily.
    get_config : Retrieve the current configuration.

    Examples
    --------
    >>> import skproto
    >>> skproto.set_config(working_memory=512)
    >>> skproto.get_config()["working_memory"]
    512
    >>> skproto.set_config(working_memory=1024)
    """
    _validate(backend, device, working_memory)
    local_config = _get_threadlocal_config()
    if backend is not None:
        local_config["backend"] = backend
    if device is not None:
        local_config["device"] = device
    if working_memory is not None:
        local_config["working_memory"] = working_memory


@contextmanager
def config_context(*, backend=None, device=None, working_memory=None):
    """Context manager to change the configuration within a ``with`` block.

    The previous configuration is restored on exit, also when the block raises.

    Parameters
    ----------
    backend : {"numpy", "torch"}, default=None
        Library that runs the kernels (see :func:`set_config`).
    device : {"cpu", "cuda", "auto"}, default=None
        Where the torch backend computes.
    working_memory : float, default=None
        MiB of temporaries per row chunk.

    Parameters left to ``None`` keep their current value.

    Examples
    --------
    >>> import numpy as np
    >>> import skproto
    >>> from skproto import NearestMeanClassifier
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> clf = NearestMeanClassifier().fit(X, [0, 0, 1, 1])
    >>> with skproto.config_context(working_memory=64):
    ...     clf.predict([[0.8, 0.3]])
    array([0])
    """
    old_config = get_config()
    set_config(backend=backend, device=device, working_memory=working_memory)
    try:
        yield
    finally:
        set_config(**old_config)
