"""Which library runs a kernel, on which device, and how rows are chunked.

Every public kernel of :mod:`skproto.backend` goes through here: :func:`kernels`
returns the module of one kernel family (``"distances"``, ``"statistics"``,
``"mixture"``, ``"transport"``) for the library chosen by
``skproto.set_config(backend=...)``; :func:`working_memory` is the per-chunk budget in
MiB; :func:`row_chunks` is the one chunk planner both libraries use.
"""

import importlib

from .._config import get_config

FAMILIES = ("distances", "statistics", "mixture", "transport")


def kernels(family):
    """The kernel module of ``family`` for the configured library (numpy or torch)."""
    if family not in FAMILIES:
        raise ValueError(f"Unknown kernel family {family!r}; expected one of {FAMILIES}.")
    library = get_config()["backend"]
    return importlib.import_module(f"skproto.backend._{library}.{family}")


def library():
    """Name of the configured library, ``"numpy"`` or ``"torch"``."""
    return get_config()["backend"]


def working_memory():
    """MiB that the temporaries of one row chunk may use."""
    return get_config()["working_memory"]


def row_slices(n_rows, chunk):
    """Slices of at most ``chunk`` (at least 1) rows covering ``range(n_rows)``."""
    chunk = max(int(chunk), 1)
    return [slice(start, min(start + chunk, n_rows)) for start in range(0, n_rows, chunk)]


def row_chunks(n_rows, row_bytes, working_memory, max_rows=None):
    """Row slices whose temporaries, ``row_bytes`` bytes a row, fit ``working_memory`` MiB.

    ``max_rows`` caps the chunk where a larger one only costs memory (for example
    past a few thousand rows a GEMM is as fast per row as it gets).
    """
    chunk = int(working_memory * 2**20 // max(row_bytes, 1))
    if max_rows is not None:
        chunk = min(chunk, max_rows)
    return row_slices(n_rows, chunk)


def distance_chunks(n_rows, n_cols, n_features, itemsize, working_memory, col_bytes=None):
    """Row slices for a kernel that holds a row of X and a block of scores per row.

    A chunk holds a slice of X (``n_features`` values a row) and, per column of the
    score block, ``col_bytes`` bytes (default: two blocks of X's dtype, the scores and
    one temporary of the reduction).
    """
    col_bytes = 2 * itemsize if col_bytes is None else col_bytes
    return row_chunks(n_rows, itemsize * n_features + col_bytes * n_cols, working_memory)
