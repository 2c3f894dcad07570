"""Global, thread-local configuration: which backend runs the hot path, on which device.

Modelled on :mod:`sklearn._config`: a process-wide default, a per-thread copy that
``set_config`` edits, and ``config_context`` to change settings for a ``with`` block.
"""

import importlib.util
import math
import re
import threading
from contextlib import contextmanager
from numbers import Real

_BACKENDS = ("numpy", "torch")
_DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d+|mps|auto)$")

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


def validate_device(device):
    """Check the spelling of a device string; the one validator of skproto.

    Accepted: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` and ``"auto"``. Whether
    the device exists is checked by :func:`resolve_device_name`, when torch is about
    to use it.
    """
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise ValueError(
            "device must be one of 'cpu', 'cuda', 'cuda:N' (N a GPU index), 'mps' or "
            f"'auto', got {device!r}."
        )
    return device


def resolve_device_name(device):
    """The torch device string for a valid ``device``, checked to exist on this machine.

    ``"auto"`` is ``"cuda"`` when ``torch.cuda.is_available()``, else ``"cpu"``.
    Raises ImportError (naming the extra) without torch, RuntimeError for a device
    that this machine does not have.
    """
    validate_device(device)
    if device == "cpu":
        return device
    if not _torch_is_installed():
        raise ImportError(
            f"device={device!r} needs PyTorch, which is not installed. "
            "Install it with: pip install 'skproto[torch]'"
        )
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise RuntimeError(
                "device='mps' was requested but torch.backends.mps.is_available() is "
                f"False on this machine (torch {torch.__version__})."
            )
        return device
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but torch.cuda.is_available() is False on "
            f"this machine (torch {torch.__version__}). Use device='cpu' or device='auto'."
        )
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise RuntimeError(
            f"device={device!r} was requested but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)."
        )
    return device


def _validate(backend, device, working_memory):
    """Check the given (non-None) values; raise before anything is changed."""
    current = _get_threadlocal_config()
    if backend is not None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}.")
        if backend == "torch" and not _torch_is_installed():
            raise _torch_missing_error()
    if device is not None:
        validate_device(device)
    # The numpy backend ignores the device; torch must be able to use it.
    if (backend or current["backend"]) == "torch":
        resolve_device_name(device or current["device"])
    if working_memory is not None:
        if (
            isinstance(working_memory, bool)
            or not isinstance(working_memory, Real)
            or not working_memory > 0
            or not math.isfinite(working_memory)
        ):
            raise ValueError(
                "working_memory must be a positive, finite number of MiB, got "
                f"{working_memory!r}."
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
    device : {"cpu", "cuda", "cuda:N", "mps", "auto"}, default=None
        Where the torch backend computes. ``"auto"`` (the default) picks CUDA when
        ``torch.cuda.is_available()``, else the CPU. With ``backend="torch"``, a
        device this machine does not have fails at once (``RuntimeError``). The numpy
        backend always computes on the CPU and ignores it (only its spelling is
        checked).
    working_memory : float, default=None
        Upper bound, in MiB, on the temporary arrays of one chunk of a kernel
        (like scikit-learn's ``working_memory``). Default 1024.

    Parameters left to ``None`` keep their current value.

    The settings also hold in the joblib workers that scikit-learn starts
    (``GridSearchCV(n_jobs=...)``, ``cross_val_score(n_jobs=...)``, with the loky
    processes or threads): skproto extends :class:`sklearn.utils.parallel.Parallel`,
    which carries scikit-learn's own configuration there, to carry skproto's too.
    A plain :class:`joblib.Parallel` of your own does not; call ``config_context``
    inside the function it runs (or use scikit-learn's ``Parallel`` / ``delayed``).

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
    device : {"cpu", "cuda", "cuda:N", "mps", "auto"}, default=None
        Where the torch backend computes (ignored by the numpy backend).
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
