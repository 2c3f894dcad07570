"""What the estimators call when they get a Dask array (see :mod:`skproto.dask`).

Each fit computes the estimator's own sufficient statistics per row block, with the
estimator's own in-memory code on the numpy block, and merges them by a tree
reduction; each predict maps the estimator's own in-memory method over the blocks.
So the maths lives in one place, the estimators, and this module only moves it.
"""

import dask.array as da
import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .. import backend
from .. import dask as settings  # SAMPLE_SIZE, read at each call
from ..statistics import ClassStatistics
from ..statistics._class_statistics import sorted_unique_labels, union_labels
from ..utils._dask import not_a_reduction
from . import _core
from ._core import (
    add,
    broadcast,
    check_rows,
    check_X,
    map_rows,
    per_block,
    reduce_blocks,
)

# ------------------------------------------------------------------ class statistics


def _block_class_statistics(X, y, *weights, moments, classification):
    if X.shape[0] == 0:
        return ClassStatistics.empty(X.shape[1], moments=moments, dtype=X.dtype)
    if classification:
        check_classification_targets(y)
    # from_batch checks the block (finite X, valid weights) as an in-memory fit does.
    return ClassStatistics.from_batch(
        X, y, moments=moments, sample_weight=weights[0] if weights else None
    )


def class_statistics(X, y, *, moments=None, sample_weight=None, dtype=None,
                     classification=False):
    """:class:`ClassStatistics` of a Dask array: per block, then a tree of merges."""
    X = check_X(X, dtype=dtype)
    vectors = [check_rows(y, X)]
    if sample_weight is not None:
        vectors.append(check_rows(sample_weight, X, name="sample_weight"))
    blocks = per_block(
        _block_class_statistics, X, *vectors, moments=moments,
        classification=classification,
    )
    return reduce_blocks(blocks, ClassStatistics.merge)


def learn_statistics(estimator, X, y, *, reset, fitted_dtype, moments):
    """The batch statistics of ``BaseStatisticsClassifier._learn`` for a Dask X."""
    X = check_X(X, dtype=fitted_dtype)
    validate_data(estimator, X, reset=reset, skip_check_array=True)
    return class_statistics(X, y, moments=moments, classification=True)


# ------------------------------------------------------------------ predict / score


def _call(X, estimator, method, kwargs):
    with _core.no_feature_name_warning():
        return getattr(estimator, method)(X, **kwargs)


def map_method(estimator, method, X, **kwargs):
    """``estimator.<method>(X)`` as a lazy Dask array, block by block (ParallelPostFit).

    The output's dtype and trailing shape come from the method on one zero row, which
    also raises at once what the method would raise (unfitted, wrong features).
    """
    check_is_fitted(estimator)
    X = check_X(X, dtype=X.dtype if X.dtype.kind == "f" else None)
    validate_data(estimator, X, reset=False, skip_check_array=True)
    with _core.no_feature_name_warning():
        meta = np.asarray(getattr(estimator, method)(np.zeros((1, X.shape[1]), X.dtype),
                                                     **kwargs))
    return map_rows(_call, X, state=broadcast(estimator), meta=meta, method=method,
                    kwargs=kwargs, token=f"{type(estimator).__name__}.{method}")


def accuracy(estimator, X, y, sample_weight=None):
    """Lazy ``ClassifierMixin.score``: the (weighted) mean of ``predict(X) == y``."""
    y_pred = map_method(estimator, "predict", X)
    correct = (y_pred == check_rows(y, y_pred[:, None])).astype(np.float64)
    if sample_weight is None:
        return correct.mean()
    weights = check_rows(sample_weight, y_pred[:, None], name="sample_weight")
    return (correct * weights).sum() / weights.sum()


def mean_score(estimator, X):
    """Lazy mean of ``score_samples`` (the mixture's mean log-likelihood)."""
    return map_method(estimator, "score_samples", X).astype(np.float64).mean()


# ------------------------------------------------------------------ SemiSupervisedGMM


def _block_labels(y, estimator):
    """Check a block of y as the in-memory fit does; its known labels and unlabelled count."""
    classes, fixed, numeric = estimator._validate_y(y, y.shape[0])
    return classes, (numeric if classes.size else None), int((fixed < 0).sum())


def _merge_labels(a, b):
    try:
        classes = union_labels(a[0], b[0])
    except (TypeError, ValueError):
        classes = None
    if classes is None or (None not in (a[1], b[1]) and a[1] != b[1]):
        raise ValueError("The labels mix strings and numbers; use labels of one kind.")
    return classes, a[1] if b[1] is None else b[1], a[2] + b[2]


def _block_fixed(y, estimator, classes):
    local, fixed, _ = estimator._validate_y(y, y.shape[0])
    out = np.full(y.shape[0], -1, dtype=np.int64)
    labelled = fixed >= 0
    out[labelled] = np.searchsorted(classes, local)[fixed[labelled]]
    return out


def gmm_validate(estimator, X, y):
    """X, known classes, fixed components (lazy), label kind and dtype, for a Dask fit."""
    if estimator.n_components == "auto":
        raise ValueError(
            "SemiSupervisedGMM(n_components='auto') estimates the number of components "
            "by split/merge moves on the samples of each cluster, which are no "
            "reduction. On a Dask array give an integer n_components; to estimate it, "
            "fit n_components='auto' on an in-memory sample and pass its n_components_ "
            "(and means_=means_init) to the fit on the Dask array."
        )
    if estimator.assignment == "hard":
        raise ValueError(
            "SemiSupervisedGMM(assignment='hard') on a Dask array is not supported: "
            "use assignment='soft' (EM, one distributed pass per iteration), or fit "
            "the semi-supervised k-means on an in-memory sample."
        )
    X = check_X(X, min_samples=2)
    validate_data(estimator, X, reset=True, skip_check_array=True)
    if y is None:
        fixed = da.full(X.shape[0], -1, dtype=np.int64, chunks=(X.chunks[0],))
        return X, np.array([], dtype=np.int64), fixed, True, None
    y_dtype = y.dtype if hasattr(y, "dtype") else np.asarray(y).dtype
    y = check_rows(y, X)
    state = broadcast(estimator)
    classes, numeric, _ = reduce_blocks(
        _core._per_vector_block(_block_labels, y, estimator=estimator), _merge_labels
    )
    fixed = y.map_blocks(_block_fixed, state, classes, dtype=np.int64,
                         meta=np.empty((0,), dtype=np.int64))
    return X, classes, fixed, True if numeric is None else numeric, y_dtype


def _block_class_means(X, fixed):
    X = check_array(X, dtype=None, ensure_min_samples=0)  # finite, as validate_data
    labelled = fixed >= 0
    if not labelled.any():
        return ClassStatistics.empty(X.shape[1], dtype=X.dtype)
    return ClassStatistics._from_validated(X[labelled], fixed[labelled])


def _block_sample(X, fixed, u, rate):
    keep = (fixed < 0) & (u < rate)
    return X[keep]


def gmm_initial_means(X, fixed, n_known, n_components, rng):
    """The labelled class means (exact, distributed), then k-means++ on a sample.

    The in-memory ``_initial_means`` runs on the exact class means (one row each)
    followed by the sample of unlabelled rows: every unlabelled row when there are at
    most :data:`skproto.dask.SAMPLE_SIZE` of them (in their order, so the centres
    equal the in-memory fit's), else each row with probability
    ``SAMPLE_SIZE / n_unlabelled``.
    """
    from ..discovery._semi_supervised_gmm import _initial_means

    means = np.zeros((0, X.shape[1]), dtype=X.dtype)
    if n_known:
        stats = reduce_blocks(per_block(_block_class_means, X, fixed), ClassStatistics.merge)
        means = stats.means().astype(X.dtype)
    if n_components == n_known:
        return stats.means()
    n_unlabelled = int((fixed < 0).sum().compute())
    rate = min(1.0, settings.SAMPLE_SIZE / n_unlabelled)
    if rate < 1.0:
        u = da.random.default_rng(int(rng.randint(2**31 - 1))).random(
            X.shape[0], chunks=(X.chunks[0],)
        )
    else:
        u = da.zeros(X.shape[0], chunks=(X.chunks[0],))
    sample = np.concatenate(
        per_block(_block_sample, X, fixed, u, rate=rate).compute().tolist()
    )
    stacked = np.concatenate([means, sample.astype(X.dtype, copy=False)])
    codes = np.concatenate([np.arange(n_known), np.full(sample.shape[0], -1)])
    return _initial_means(stacked, codes, n_known, n_components, rng)


def _block_assign_nearest(X, fixed, means):
    from ..discovery._semi_supervised_gmm import _assign_nearest

    return _assign_nearest(X, fixed, means)


def gmm_assign_nearest(X, fixed, means):
    """Lazy ``_assign_nearest``: nearest centre per row, labelled rows fixed."""
    return map_rows(_block_assign_nearest, X, fixed, state=broadcast(means),
                    meta=np.empty(0, dtype=np.int64))


def _block_em_statistics(X, fixed, params, covariance_type):
    if X.shape[0] == 0:
        n_components, n_features = params[0].shape
        sq = {"spherical": (n_components,), "diag": (n_components, n_features),
              "full": (n_components, n_features, n_features)}[covariance_type]
        return 0.0, np.zeros(n_components), np.zeros((n_components, n_features)), np.zeros(sq)
    return backend.mixture_em_statistics(X, *params, covariance_type, fixed)


def gmm_em_statistics(X, means, precisions_chol, log_weights, covariance_type, fixed):
    """``backend.mixture_em_statistics`` summed over the blocks by a tree reduction."""
    params = broadcast((means, precisions_chol, log_weights))
    blocks = per_block(_block_em_statistics, X, fixed, state=params,
                       covariance_type=covariance_type)
    return reduce_blocks(blocks, add)


def gmm_em(estimator, X, fixed, params):
    """EM on a Dask array: each iteration one distributed E-step pass (its statistics
    tree-reduced) and the M-step on the client; the loop of
    :func:`skproto.backend.mixture_em`, whose in-memory runs keep X on the device."""
    n_samples = X.shape[0]
    lower_bounds, previous, converged, n_iter = [], -np.inf, False, 0
    for n_iter in range(1, estimator.max_iter + 1):
        log_likelihood, nk, sums, sq_sums = gmm_em_statistics(
            X, params["means"], params["precisions_chol"], np.log(params["weights"]),
            estimator.covariance_type, fixed,
        )
        lower_bound = log_likelihood / n_samples
        lower_bounds.append(lower_bound)
        params = estimator._m_step(X, nk, sums, sq_sums, centred=False)
        if abs(lower_bound - previous) < estimator.tol:
            converged = True
            break
        previous = lower_bound
    labels, lower_bound = gmm_final_assignment(estimator, X, fixed, params)
    lower_bounds.append(lower_bound)
    return dict(
        params, labels=labels, lower_bound=lower_bound, lower_bounds=lower_bounds,
        n_iter=n_iter, converged=converged,
    )


def _block_final(X, fixed, estimator, params):
    labels, mean = estimator._final_assignment(X, fixed, params)
    return labels, mean * X.shape[0]


def _block_final_sum(X, fixed, state):
    return (0.0,) if X.shape[0] == 0 else (_block_final(X, fixed, *state)[1],)


def _block_final_labels(X, fixed, state):
    return _block_final(X, fixed, *state)[0]


def gmm_final_assignment(estimator, X, fixed, params):
    """Labels (lazy) and mean objective of ``_final_assignment`` over the blocks."""
    state = broadcast((estimator, params))
    (total,) = reduce_blocks(per_block(_block_final_sum, X, fixed, state=state), add)
    labels = map_rows(_block_final_labels, X, fixed, state=state,
                      meta=np.empty(0, dtype=np.int64))
    return labels, float(total / X.shape[0])


def _take(index, values):
    return values[index]


def take(values, index):
    """``values[index]`` for a lazy integer index (``labels_`` of a Dask fit)."""
    return index.map_blocks(_take, values=values, dtype=values.dtype,
                            meta=np.empty(0, dtype=values.dtype))


# ------------------------------------------------------------------ OOD detector


def _block_ood_statistics(X, *y):
    X = check_array(X, dtype=None, ensure_min_samples=0)
    labels = y[0] if y else np.zeros(X.shape[0], dtype=np.int64)
    if y:
        check_classification_targets(labels)
    if X.shape[0] == 0:
        return ClassStatistics.empty(X.shape[1], moments="full", dtype=X.dtype), (
            labels[:0], np.zeros(0, dtype=np.int64))
    Xn = backend.l2_normalize(X)
    total = ClassStatistics._from_validated(
        Xn, np.zeros(X.shape[0], dtype=np.int64), moments="full"
    )
    classes, codes = sorted_unique_labels(labels)
    return total, (classes, np.bincount(codes, minlength=len(classes)))


def _merge_ood_statistics(a, b):
    classes = union_labels(a[1][0], b[1][0])
    counts = np.zeros(len(classes), dtype=np.int64)
    for labels, c in (a[1], b[1]):
        counts[np.searchsorted(classes, labels)] += c
    return a[0].merge(b[0]), (classes, counts)


def _block_rows(X, *rest, rates):
    *y, u = rest
    if y:
        keep = u < rates[1][np.searchsorted(rates[0], y[0])]
        return X[keep], y[0][keep]
    return X[u < rates], None


def _block_scores(X, state):
    estimator, fitted = state
    return estimator._scores_from_state(X, fitted)


# A class's rows in the sample: its share of SAMPLE_SIZE, at least this many (or all).
_MIN_PER_CLASS = 50


def ood_fit_state(estimator, X, y):
    """The fitted state of ``MixturePrototypeOODDetector`` from a Dask array.

    Only ``ood_score="mahalanobis"``: its statistics (location and whitening) come
    from the exact total covariance of the normalised rows, a tree reduction, and
    ``offset_`` from the exact quantile of the scores of all the rows. The prototypes
    (PALM's sequential EMA, not a reduction, and not used by this score) are fitted by
    the in-memory code on a sample (see :data:`skproto.dask.SAMPLE_SIZE`).
    """
    from ..ood._mixture_prototype import _mahalanobis_from_statistics

    if estimator.ood_score != "mahalanobis":
        raise not_a_reduction(
            estimator,
            f"ood_score={estimator.ood_score!r} scores with PALM's prototypes, fitted by "
            "a sequential EMA over mini-batches, which is no reduction"
            + (" (and 'knn' stores every training row)." if estimator.ood_score == "knn"
               else "."),
            "fit on an in-memory sample (det.fit(X[idx].compute(), y[idx])) and "
            "predict on the Dask array; or ood_score='mahalanobis', whose statistics "
            "are computed exactly on the cluster.",
        )
    X = check_X(X)
    validate_data(estimator, X, reset=True, skip_check_array=True)
    vectors = [] if y is None else [check_rows(y, X)]
    total, (classes, counts) = reduce_blocks(
        per_block(_block_ood_statistics, X, *vectors), _merge_ood_statistics
    )
    location, whitening = _mahalanobis_from_statistics(
        total, estimator.mahalanobis_center, X.dtype
    )

    n_samples = X.shape[0]
    rate = settings.SAMPLE_SIZE / n_samples
    if rate >= 1.0:  # every row, in order: the in-memory fit's prototypes exactly
        u = da.zeros(n_samples, chunks=(X.chunks[0],))
        class_rates = np.ones(len(classes))
    else:
        seed = int(check_random_state(estimator.random_state).randint(2**31 - 1))
        u = da.random.default_rng(seed).random(n_samples, chunks=(X.chunks[0],))
        class_rates = np.minimum(1.0, np.maximum(rate, _MIN_PER_CLASS / counts))
    rates = (classes, class_rates) if y is not None else float(class_rates[0])
    parts = per_block(_block_rows, X, *vectors, u, rates=rates).compute().tolist()
    X_sample = np.concatenate([p[0] for p in parts])
    y_sample = None if y is None else np.concatenate([p[1] for p in parts])
    if y is not None and len(np.unique(y_sample)) != len(classes):
        raise ValueError(  # pragma: no cover - probability below 1e-20 per class
            "The sample for the prototypes missed a class; raise skproto.dask.SAMPLE_SIZE."
        )

    state = estimator._fit(X_sample, y_sample)
    state["location_"], state["whitening_"] = location, whitening
    scores = map_rows(_block_scores, X, state=broadcast((estimator, state)),
                      meta=np.empty(0, dtype=X.dtype)).persist()
    contamination = 0.05 if estimator.contamination == "auto" else estimator.contamination
    state["offset_"] = float(_core.exact_percentile(scores, 100.0 * contamination))
    return state
