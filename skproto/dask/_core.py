"""The Dask building blocks: input checks, per-block tasks, tree reductions, broadcasts."""

import functools
import math
import warnings
from contextlib import contextmanager

import dask
import dask.array as da
import numpy as np
from sklearn.utils.validation import column_or_1d

from .._config import config_context, get_config
from ..utils._dask import is_dask_collection

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ------------------------------------------------------------------ input checks


def check_X(X, *, dtype=None, min_samples=1):
    """A 2-D, row-chunked Dask array of floats (cast lazily), with known row chunks.

    Finiteness can only be checked on the data, so every block task checks its own
    block (``check_array``) and a NaN fails the computation with scikit-learn's error.
    """
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X is a {type(X).__module__}.{type(X).__name__}; skproto takes Dask arrays "
            "(dask.array.Array) chunked by rows. Convert a Dask DataFrame with "
            "df.to_dask_array(lengths=True)."
        )
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D Dask array, got shape {X.shape}. Reshape a single feature "
            "with X.reshape(-1, 1)."
        )
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            "X has unknown chunk sizes (for instance after boolean indexing); call "
            "X.compute_chunk_sizes() first."
        )
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported.")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"X must hold numbers, got dtype {X.dtype}.")
    if X.shape[0] < min_samples or X.shape[1] < 1:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) and {X.shape[1]} feature(s) "
            f"(shape={X.shape}) while a minimum of {min_samples} sample(s) and 1 "
            "feature are required."
        )
    if dtype is None:
        dtype = X.dtype if X.dtype in FLOAT_DTYPES else np.dtype(np.float64)
    if X.dtype != dtype:
        X = X.astype(dtype)
    if X.numblocks[1] > 1:  # every task sees whole rows
        X = X.rechunk({1: -1})
    return X


def check_rows(v, X, *, name="y"):
    """A 1-D Dask array with X's row chunks, from a Dask or an in-memory ``v``."""
    if isinstance(v, da.Array):
        if v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]
        if v.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {v.shape}.")
        if any(math.isnan(c) for c in v.chunks[0]):
            raise ValueError(
                f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first."
            )
    elif is_dask_collection(v):
        raise TypeError(f"{name} must be a Dask array or an array-like, got {type(v)}.")
    else:
        v = column_or_1d(v, warn=True)
    if v.shape[0] != X.shape[0]:
        raise ValueError(
            f"X has {X.shape[0]} samples but {name} has {v.shape[0]}; they must match."
        )
    if isinstance(v, da.Array):
        return v if v.chunks[0] == X.chunks[0] else v.rechunk((X.chunks[0],))
    return da.from_array(v, chunks=(X.chunks[0],))


# ------------------------------------------------------------------ tasks


def broadcast(obj):
    """``obj`` as one task of the graph, on which the tasks that need it depend.

    A plain argument of ``map_blocks`` would be copied into every block's task (and
    sent with each); as one key, it travels to each worker once.
    """
    return dask.delayed(obj, traverse=False)


def _run(func, config, kwargs, X, *args):
    # X arrives as the list of its column blocks (one, see check_X): blockwise's
    # concatenate=True would copy even a single block.
    while isinstance(X, list) and len(X) == 1:
        X = X[0]
    if isinstance(X, list):
        X = np.concatenate(X, axis=1)
    if isinstance(X, np.ndarray) and not X.flags.aligned:
        # A block received over the network may start at any byte; numpy's and BLAS's
        # loops then round differently (and run slower) than on an aligned copy.
        X = X.copy()
    with config_context(**config):
        return func(X, *args, **kwargs)


def _run_object(func, config, kwargs, *args):
    out = np.empty(1, dtype=object)
    out[0] = _run(func, config, kwargs, *args)
    return out


def _arguments(X, vectors, state):
    args = [X, "ij"]
    for v in vectors:
        args += [v, "i"]
    if state is not None:
        args += [state, None]
    return args


def per_block(func, X, *vectors, state=None, token=None, **kwargs):
    """One value per row block: ``func(X_block, *vector_blocks, [state], **kwargs)``.

    An object Dask array with one entry per block, to :func:`reduce_blocks` or to
    compute as a list. Each task runs under the caller's skproto configuration.
    """
    return da.blockwise(
        _run_object, "i", func, None, get_config(), None, kwargs, None,
        *_arguments(X, vectors, state), token=token or func.__name__.strip("_"),
        concatenate=False, adjust_chunks={"i": 1}, dtype=object,
        meta=np.empty((0,), dtype=object),
    )


def map_rows(func, X, *vectors, state=None, meta, token=None, **kwargs):
    """A lazy per-row result: ``func`` maps each row block to ``(n_rows,) + tail``.

    ``meta`` is a small array with the dtype and the trailing shape of the output.
    """
    tail = meta.shape[1:]
    out_ind = "i" + "".join(chr(ord("k") + a) for a in range(len(tail)))
    new_axes = {out_ind[1 + a]: size for a, size in enumerate(tail)}
    return da.blockwise(
        _run, out_ind, func, None, get_config(), None, kwargs, None,
        *_arguments(X, vectors, state), token=token or func.__name__.strip("_"),
        concatenate=False, new_axes=new_axes, dtype=meta.dtype,
        meta=np.empty((0,) + tail, dtype=meta.dtype),
    )


# ------------------------------------------------------------------ reductions


def _flatten(parts):
    # dask hands over (nested) lists of the tasks' values, each a 1-entry object array.
    if isinstance(parts, list) or (isinstance(parts, np.ndarray) and parts.dtype == object):
        for part in parts:
            yield from _flatten(part)
    else:
        yield parts


def _identity(block, axis=None, keepdims=None, computing_meta=False):
    return block


def _combine(parts, axis=None, keepdims=None, merge=None, computing_meta=False):
    if computing_meta:
        return parts
    return functools.reduce(merge, _flatten(parts))


def _aggregate(parts, axis=None, keepdims=None, merge=None, computing_meta=False):
    out = np.empty((), dtype=object)
    if not computing_meta:
        out[()] = functools.reduce(merge, _flatten(parts))
    return out


def tree_reduction(blocks, merge, split_every=None):
    """Lazy tree reduction of :func:`per_block` values with the binary ``merge``.

    :func:`dask.array.reduction`: groups of at most ``split_every`` values (dask's
    ``split_every`` setting when None) merge on the workers, level by level, so that
    the client only receives the final value.
    """
    return da.reduction(
        blocks, _identity, functools.partial(_aggregate, merge=merge),
        combine=functools.partial(_combine, merge=merge), axis=0, dtype=object,
        concatenate=False, split_every=split_every, meta=np.empty((), dtype=object),
    )


def compute_values(*lazy):
    """Compute tree reductions (and other lazy values) together; unwrap 0-d objects."""
    values = dask.compute(*lazy)
    return [v.item() if isinstance(v, np.ndarray) and v.dtype == object and v.ndim == 0
            else v for v in values]


def reduce_blocks(blocks, merge, split_every=None):
    """:func:`tree_reduction`, computed: the merged value."""
    return compute_values(tree_reduction(blocks, merge, split_every))[0]


def add(a, b):
    """Elementwise sum of two equally shaped tuples of numbers or arrays."""
    return tuple(x + y for x, y in zip(a, b))


# ------------------------------------------------------------------ order statistics

_BINS = 1 << 14
_GATHER = 1 << 16


def _lerp_as_numpy(a, b, gamma):
    """numpy's ``_lerp`` (the "linear" method of :func:`numpy.percentile`)."""
    diff = b - a
    out = np.add(a, diff * gamma, out=...)
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe",
                dtype=type(out.dtype))
    return out[()]


def _window(v, low, high, closed):
    # In float64, as the float64 edges: a Python float against float32 values would
    # be compared in float32 and move the window's bounds.
    v = v.astype(np.float64, copy=False)
    low, high = np.float64(low), np.float64(high)
    return (v >= low) & ((v <= high) if closed else (v < high))


def _histogram(v, low, high, closed, edges):
    v = v[_window(v, low, high, closed)].astype(np.float64, copy=False)
    bins = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
    return (np.bincount(bins, minlength=len(edges) - 1),)


def _distinct(v, low, high, closed):
    values, counts = np.unique(v[_window(v, low, high, closed)], return_counts=True)
    return values, counts


def _merge_distinct(a, b):
    values, inverse = np.unique(np.concatenate([a[0], b[0]]), return_inverse=True)
    counts = np.bincount(inverse.ravel(), np.concatenate([a[1], b[1]]).astype(np.float64))
    return values, np.rint(counts).astype(np.int64)


def _per_vector_block(func, v, **kwargs):
    """:func:`per_block` for a 1-D Dask array."""
    return da.blockwise(
        _run_object, "i", func, None, get_config(), None, kwargs, None, v, "i",
        adjust_chunks={"i": 1}, dtype=object, meta=np.empty((0,), dtype=object),
    )


def exact_percentile(scores, q):
    """``np.percentile(scores, q)`` of a 1-D Dask array, exactly, without gathering it.

    The two order statistics around numpy's virtual index are found by histogram
    refinement: each pass counts the values per bin of the current window (a tree
    reduction of ``2^14`` counts), the window narrows to the bins holding the wanted
    ranks, and once it holds few distinct values they are gathered with their counts.
    numpy's interpolation is then applied to them, so the result is the same float.
    ``scores`` should be persisted: every pass reads it.
    """
    n = int(scores.shape[0])
    weak_q = type(q) in (int, float)  # as numpy.percentile: weak promotion of q
    quantile = np.true_divide(q, 100, out=...)
    virtual = (n - 1) * quantile  # numpy's "linear" (Hyndman & Fan's type 7)
    previous = int(np.floor(virtual))
    if virtual >= n - 1:
        previous = following = n - 1
    elif virtual < 0:
        previous = following = 0
    else:
        following = previous + 1
    gamma = np.asanyarray(virtual - np.floor(virtual), dtype=virtual.dtype)
    if weak_q:
        gamma = float(gamma)
    run = functools.partial(_per_vector_block, v=scores)

    low, high = (float(v) for v in dask.compute(scores.min(), scores.max()))
    closed, below = True, 0
    for _ in range(64):
        edges = np.linspace(low, high, _BINS + 1)
        counts = reduce_blocks(
            run(_histogram, low=low, high=high, closed=closed, edges=edges), add
        )[0]
        cumulative = below + np.cumsum(counts)
        first = int(np.searchsorted(cumulative, previous, side="right"))
        last = int(np.searchsorted(cumulative, following, side="right"))
        new_low, new_high = float(edges[first]), float(edges[last + 1])
        new_closed = closed and last == _BINS - 1
        new_below = below + int(counts[:first].sum())
        in_window = int(counts[first:last + 1].sum())
        progress = (new_low, new_high, new_closed) != (low, high, closed)
        low, high, closed, below = new_low, new_high, new_closed, new_below
        if in_window <= _GATHER or not progress:
            break
    values, counts = reduce_blocks(
        run(_distinct, low=low, high=high, closed=closed), _merge_distinct
    )
    ranks = below + np.cumsum(counts)
    a = values[np.searchsorted(ranks, previous, side="right")]
    b = values[np.searchsorted(ranks, following, side="right")]
    return _lerp_as_numpy(a, b, gamma)


@contextmanager
def no_feature_name_warning():
    """Block tasks pass numpy blocks; the client has already warned about feature names."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        yield
