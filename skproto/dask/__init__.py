"""Fit and predict on Dask arrays: per-block statistics, tree reductions, ``map_blocks``.

Nothing needs importing from here: pass a :class:`dask.array.Array` (chunked by rows)
to ``fit`` / ``partial_fit`` / ``predict`` / ``score`` of any skproto estimator, with
or without a :class:`distributed.Client`, and the estimator routes it to the adapters
of this package (``import skproto`` itself never imports dask):

- **fit** of every estimator whose fit is a reduction of sufficient statistics
  (:class:`~skproto.NearestMeanClassifier`, :class:`~skproto.TEENCalibrator`, the
  EM of :class:`~skproto.SemiSupervisedGMM`, the Mahalanobis statistics of
  :class:`~skproto.MixturePrototypeOODDetector`, and
  :meth:`skproto.statistics.ClassStatistics.from_batch`): statistics per block on the
  workers, combined by :func:`dask.array.reduction` (a tree of ``split_every``
  merges, set with ``dask.config.set(split_every=...)``); only the statistics,
  never a block of X, reach the client;
- **predict / score** return lazy Dask arrays (``map_blocks`` over the row blocks),
  with the fitted estimator broadcast once (one task of the graph holds it, every
  block depends on it) and skproto's configuration (:func:`skproto.get_config`)
  applied on the workers as it was on the client.

The fitted model is plain numpy, as after an in-memory fit (but for the per-sample
``labels_`` of :class:`~skproto.SemiSupervisedGMM`, a lazy Dask array), so it
persists and predicts without dask.

Attributes
----------
SAMPLE_SIZE : int
    Rows (100,000 by default) of the in-memory sample that the steps which are no
    reduction run on: the k-means++ initialisation of the discovered components of
    :class:`~skproto.SemiSupervisedGMM` and the prototypes (PALM's EMA) of
    :class:`~skproto.MixturePrototypeOODDetector` with
    ``ood_score="mahalanobis"``. Data with at most this many rows is used whole, so
    the fit then equals the in-memory fit.
"""

try:
    import dask.array  # noqa: F401
except ImportError as error:  # pragma: no cover - the extra is installed in CI
    raise ImportError(
        "Fitting on Dask arrays needs dask; install it with: pip install 'skproto[dask]'"
    ) from error

SAMPLE_SIZE = 100_000

__all__ = ["SAMPLE_SIZE"]
