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


# A score block of about this size stays in the core's cache (L2, or the slice of L3
# next to it) between the GEMM that writes it and the passes that reduce it (shift,
# argmax, top-k, log-sum-exp). Measured with benchmarks/bench_nearest_mean.py on a
# 2-core Xeon (2 MiB L2 a core): 8 MiB blocks were fastest, 0.85x the bare GEMM, where
# blocks of hundreds of MiB (the old working_memory-sized chunks) cost 1.3-1.5x.
CACHE_BLOCK_BYTES = 8 * 2**20
# Below a few hundred rows a GEMM loses speed per row (the prototypes are re-read for
# too few rows), so a block never has fewer rows than this unless working_memory says so.
MIN_BLOCK_ROWS = 256


def cache_block_rows(row_bytes):
    """Rows of a cache-sized block whose temporaries take ``row_bytes`` bytes a row."""
    return max(MIN_BLOCK_ROWS, int(CACHE_BLOCK_BYTES // max(row_bytes, 1)))


def distance_chunks(
    n_rows, n_cols, n_features, itemsize, working_memory, col_bytes=None, *,
    cache_blocked=True,
):
    """Row slices for a kernel that holds a row of X and a block of scores per row.

    A chunk holds a slice of X (``n_features`` values a row) and, per column of the
    score block, ``col_bytes`` bytes (default: two blocks of X's dtype, the scores and
    one temporary of the reduction). With ``cache_blocked`` (CPUs) chunks are
    cache-sized (:func:`cache_block_rows` of one score row); a GPU wants the largest
    chunk ``working_memory`` allows (``cache_blocked=False``). Never larger than
    ``working_memory`` allows.
    """
    col_bytes = 2 * itemsize if col_bytes is None else col_bytes
    max_rows = cache_block_rows(itemsize * n_cols) if cache_blocked and n_cols else None
    return row_chunks(
        n_rows, itemsize * n_features + col_bytes * n_cols, working_memory, max_rows=max_rows
    )
