"""Mergeable per-class sufficient statistics: the core that estimators are built on.

An estimator that is "statistics, then a head" (a nearest class mean, TEEN's
calibrated prototypes, a Mahalanobis score) accumulates :class:`ClassStatistics`
batch by batch or partition by partition, merges them exactly, and computes its
fitted state from the result::

    stats = ClassStatistics.from_batch(X_block, y_block, moments="full")  # anywhere
    stats = functools.reduce(ClassStatistics.merge, per_block_stats)       # a tree
    model = NearestMeanClassifier.from_statistics(stats)                   # the head

:class:`GramStatistics` does the same for a ridge head on random features (RanPAC):
``G = H^T H`` and ``Q = H^T Y`` add up over batches and partitions.
"""

from ._class_statistics import ClassStatistics
from ._gram_statistics import GramStatistics

__all__ = ["ClassStatistics", "GramStatistics"]
